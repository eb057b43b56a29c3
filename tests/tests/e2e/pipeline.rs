//! End-to-end: S3 -> EventBridge -> Step Functions (the real ASL) -> the real release binaries
//! -> DynamoDB and CloudFront, on the local stack started by `make e2e`. Each test owns one
//! distribution (a "lane": keys under `d<i>/`), so the tests run in parallel.
//!
//! The stack runs with a debounce long enough for the emulator to take a 500-write burst
//! (`make e2e` sets it), a short poll, and CloudFront invalidations InProgress for a few
//! seconds (AWS: minutes). Timeouts derive from the stack's own settings.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::{Change, Stack, now_epoch};
use serde_json::json;

/// Invariant 1 (coverage): every change ends in a Completed invalidation created after it,
/// including changes made while an earlier batch of the same distribution is in flight.
#[tokio::test(flavor = "multi_thread")]
async fn every_write_ends_in_a_completed_invalidation_created_after_it() {
    let stack = Stack::connect().await;
    let lane = stack.lane(0);
    let first = stack
        .write(&lane, &["index.html", "css/site.css", "img/logo.png"])
        .await;
    // Wait for the first batch to close, then overwrite: the second write needs a new batch.
    stack
        .wait_lane(&lane, "the first batch to close", || async {
            stack
                .batches(&lane)
                .await
                .iter()
                .any(|b| b.get("status").is_some_and(|s| s != "OPEN"))
                .then_some(())
        })
        .await;
    let second = stack.write(&lane, &["css/site.css", "js/app.js"]).await;
    let mut writes = first;
    writes.extend(second);
    writes.push((format!("/{}", lane.prefix), writes[0].1)); // index.html's directory alias
    let invalidations = stack.wait_covered(&lane, &writes).await;
    assert!(
        invalidations.len() >= 2,
        "the overwrite needed its own invalidation: {invalidations:?}"
    );
    let batches = stack.batches(&lane).await;
    assert!(
        stack.batches_completed(&lane).await,
        "every batch COMPLETED"
    );
    assert!(batches.len() >= 2);
}

/// Invariant 3 (coalescing): a burst of 500 writes that reaches dedupe within one batch's
/// debounce is one batch and one invalidation for the distribution, not 500.
///
/// How fast the emulator carries 500 events from S3 to dedupe depends on the machine, so the
/// test does not bet on it: the lane's Submit is held (a `lambda_hold` fault on
/// create-invalidation) until every event of the burst has joined, and the batch stays OPEN
/// meanwhile (the stack's grace keeps it from going stale). What is asserted is what the
/// system did with those events.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_500_writes_becomes_one_batch_and_one_invalidation() {
    let stack = Stack::connect().await;
    let lane = stack.lane(1);
    let hold = stack.hold_flushes(&lane);
    let started = std::time::Instant::now();
    let names: Vec<String> = (0..500)
        .map(|i| format!("dir{:02}/file-{i:03}.html", i % 5))
        .collect();
    let keys: Vec<String> = names
        .iter()
        .map(|n| format!("{}{n}", lane.prefix))
        .collect();
    let changes: Vec<Change> = keys.iter().cloned().map(Change::Put).collect();
    let writes = stack.apply(&changes, 25, Duration::ZERO).await;
    eprintln!("500 writes in {:.1?}", started.elapsed());
    stack.wait_joined(&lane, &keys).await;
    eprintln!("500 paths joined after {:.1?}", started.elapsed());
    assert!(
        started.elapsed() < stack.info.stale_after(),
        "the burst took longer to join than a batch may stay open ({:?}): start the stack with a longer GraceSeconds",
        stack.info.stale_after()
    );
    let open = stack.batches(&lane).await;
    assert_eq!(open.len(), 1, "one batch took the whole burst: {open:?}");
    stack.release(&hold);
    let invalidations = stack.wait_covered(&lane, &writes).await;
    let created: Vec<_> = stack
        .calls(&lane)
        .into_iter()
        .filter(|c| c.outcome == "created")
        .collect();
    assert_eq!(
        created.len(),
        1,
        "one CreateInvalidation for the whole burst: {created:?}"
    );
    assert_eq!(invalidations.len(), 1);
    // 100 changed files per directory: collapsed to one wildcard per directory.
    let mut paths = invalidations[0].paths.clone();
    paths.sort();
    let expected: Vec<String> = (0..5)
        .map(|d| format!("/{}dir{d:02}/*", lane.prefix))
        .collect();
    assert_eq!(paths, expected);
    let batches = stack.batches(&lane).await;
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(batches[0]["batchId"], open[0]["batchId"]);
    assert_eq!(
        batches[0].get("pathsReceived").map(String::as_str),
        Some("500")
    );
    assert_eq!(batches[0].get("pathsBilled").map(String::as_str), Some("5"));
}

/// Tricky keys arrive as the paths CloudFront caches them under (the mapping table is
/// reasoned from the CloudFront and S3 docs; see functions/core/src/collect.rs).
#[tokio::test(flavor = "multi_thread")]
async fn tricky_keys_are_invalidated_as_the_paths_cloudfront_caches() {
    let stack = Stack::connect().await;
    let lane = stack.lane(2);
    let long = format!("k16/{}", "x".repeat(1024 - lane.prefix.len() - 4));
    // (key under the lane's prefix, paths expected relative to "/<prefix>")
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("k01/red flower.jpg".into(), vec!["k01/red%20flower.jpg"]),
        ("k02/a+b.txt".into(), vec!["k02/a+b.txt", "k02/a%20b.txt"]),
        ("k03/100%.txt".into(), vec!["k03/100%25.txt"]),
        ("k04/notes#1.md".into(), vec!["k04/notes%231.md"]),
        ("k05/what?.html".into(), vec!["k05/what%3F.html"]),
        // No `~` in an invalidation path: the narrowest wildcard before it.
        ("k06/~user/page".into(), vec!["k06/*"]),
        ("k07/사진.png".into(), vec!["k07/%EC%82%AC%EC%A7%84.png"]),
        ("k08/😀.gif".into(), vec!["k08/%F0%9F%98%80.gif"]),
        ("k09/a*b.txt".into(), vec!["k09/a*b.txt"]),
        ("k10/../up.txt".into(), vec!["k10/../up.txt"]),
        ("k11/folder/".into(), vec!["k11/folder/"]),
        (
            "k12/<x>{y}|z^[w]`v\\u\".txt".into(),
            vec!["k12/%3Cx%3E%7By%7D%7Cz%5E%5Bw%5D%60v%5Cu%22.txt"],
        ),
        ("k13/&=;$,'()!@:.txt".into(), vec!["k13/&=;$,'()!@:.txt"]),
        ("k14/CamelCase.PNG".into(), vec!["k14/CamelCase.PNG"]),
        (
            "k15/index.html".into(),
            vec!["k15/index.html", "k15/", "k15"],
        ),
        (long.clone(), vec![long.as_str()]),
    ];
    let mut writes = Vec::new();
    for (name, _) in &cases {
        let key = format!("{}{name}", lane.prefix);
        stack.put(&key, "v").await;
        writes.push(now_epoch());
    }
    let prefix = &lane.prefix;
    let expected: Vec<(String, f64)> = cases
        .iter()
        .zip(&writes)
        .flat_map(|((_, paths), at)| paths.iter().map(move |p| (format!("/{prefix}{p}"), *at)))
        .collect();
    let invalidations = stack.wait_covered(&lane, &expected).await;
    let all: Vec<&String> = invalidations.iter().flat_map(|i| &i.paths).collect();
    for (path, _) in &expected {
        assert!(
            all.contains(&path),
            "{path} was invalidated exactly (not by a wildcard): {all:?}"
        );
    }
    // Distinct paths: on a slow machine the keys span several batches, and an event that a
    // retried dedupe carries into a second batch is invalidated there again (the safe side).
    let wildcards: BTreeSet<&&String> = all.iter().filter(|p| p.ends_with('*')).collect();
    assert_eq!(
        wildcards,
        BTreeSet::from([&&format!("/{prefix}k06/*")]),
        "no wildcard for one key per directory but the `~` key's: {all:?}"
    );
    // The audit says why that path is a wildcard.
    let tilde = format!("/{prefix}k06/*");
    let mut reasons = Vec::new();
    for batch in stack.batches(&lane).await {
        for item in stack.path_items(&batch["batchId"]).await {
            if item.get("path") == Some(&tilde) {
                reasons.push(item.get("reason").cloned().unwrap_or_default());
            }
        }
    }
    assert!(
        !reasons.is_empty() && reasons.iter().all(|r| r.contains("'~'")),
        "the audit's reason for {tilde}: {reasons:?}"
    );
}

/// Deletes are invalidated like writes; no log holds what an object contained.
#[tokio::test(flavor = "multi_thread")]
async fn a_delete_is_invalidated() {
    let stack = Stack::connect().await;
    let lane = stack.lane(3);
    let key = format!("{}old/page.html", lane.prefix);
    let contents = format!("private contents {}", now_epoch());
    stack.put(&key, &contents).await;
    let path = format!("/{key}");
    stack
        .wait_covered(&lane, &[(path.clone(), now_epoch())])
        .await;
    stack.delete(&key).await;
    let deleted_at = now_epoch();
    let invalidations = stack
        .wait_covered(&lane, &[(path.clone(), deleted_at)])
        .await;
    assert_eq!(
        invalidations.len(),
        2,
        "the delete made its own invalidation"
    );
    // The functions never read objects (no s3:GetObject): their logs hold keys, never contents.
    for log in std::fs::read_dir(&stack.info.logs_dir).expect("the stack's log folder") {
        let log = log.expect("a log file").path();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !text.contains(&contents),
            "{} holds object contents",
            log.display()
        );
    }
}

/// Invariant 2 (no duplicates on replay): EventBridge may deliver an event twice. The
/// duplicate joins the same batch and adds nothing: one invalidation, one event counted.
#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_event_delivery_makes_no_second_invalidation() {
    let stack = Stack::connect().await;
    let lane = stack.lane(4);
    let key = format!("{}dup/page.html", lane.prefix);
    // The three deliveries must meet in one batch however slowly this machine runs them (a
    // duplicate arriving after its batch closed joins the next one, by design): the flush is
    // held until all three executions have joined.
    let hold = stack.hold_flushes(&lane);
    stack.put(&key, "v").await;
    let written = now_epoch();
    let events = stack.control("s3/events", json!({}));
    let event = events["events"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .rev()
                .find(|e| e["detail"]["object"]["key"] == key.as_str())
        })
        .cloned()
        .unwrap_or_else(|| panic!("the S3 event for {key} in {events}"));
    // The control API lists what S3 sent (id, detail-type, detail); EventBridge delivers it
    // in its envelope.
    let mut envelope = event.clone();
    for (field, value) in [
        ("version", json!("0")),
        ("source", json!("aws.s3")),
        ("account", json!("123456789012")),
        ("region", json!(stack.info.region)),
        ("resources", json!([])),
    ] {
        envelope[field] = value;
    }
    let mut executions = Vec::new();
    for attempt in 0..2 {
        let started = stack
            .sfn
            .start_execution()
            .state_machine_arn(stack.state_machine("ObjectChangedStateMachine"))
            .name(format!(
                "redelivery-{attempt}-{}",
                event["id"].as_str().unwrap()
            ))
            .input(envelope.to_string())
            .send()
            .await
            .expect("start the redelivered event");
        executions.push(started.execution_arn().to_owned());
    }
    executions.push(stack.delivered_execution(&lane, &event["id"]).await);
    stack
        .wait_lane(&lane, "the three deliveries to join", || async {
            for arn in &executions {
                let run = stack
                    .sfn
                    .describe_execution()
                    .execution_arn(arn)
                    .send()
                    .await;
                let run = run.ok()?;
                let status = run.status().as_str();
                // The pipe's execution carries other tests' events too: one of theirs may fail
                // it as EventsFailed once every event joined; nothing else may.
                let other_events_failed = status == "FAILED" && run.error() == Some("EventsFailed");
                assert!(
                    status == "RUNNING" || status == "SUCCEEDED" || other_events_failed,
                    "{arn}: {status} {:?}",
                    run.error()
                );
                (status != "RUNNING").then_some(())?;
            }
            Some(())
        })
        .await;
    stack.release(&hold);
    stack
        .wait_covered(&lane, &[(format!("/{key}"), written)])
        .await;
    let created: Vec<_> = stack
        .calls(&lane)
        .into_iter()
        .filter(|c| c.outcome == "created")
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    let batches = stack.batches(&lane).await;
    assert_eq!(batches.len(), 1);
    stack
        .wait_lane(&lane, "the batch to record its counts", || async {
            let b = stack.batches(&lane).await;
            b[0].get("eventsReceived").cloned()
        })
        .await;
    let b = &stack.batches(&lane).await[0];
    assert_eq!(
        b.get("eventsReceived").map(String::as_str),
        Some("1"),
        "three deliveries, one event: {b:?}"
    );
}

/// CloudFront throttling is retried (SDK, then Step Functions with jitter) and never
/// duplicates the invalidation.
#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_until_the_invalidation_is_created_once() {
    let stack = Stack::connect().await;
    let lane = stack.lane(5);
    stack.control(
        "faults/set",
        json!({"kind": "cloudfront", "code": "Throttling", "operation": "CreateInvalidation", "distribution_id": lane.distribution_id, "count": 6}),
    );
    let hold = stack.hold_flushes(&lane);
    let writes = stack.write(&lane, &["t/a.html", "t/b.html"]).await;
    let keys: Vec<String> = ["t/a.html", "t/b.html"]
        .iter()
        .map(|n| format!("{}{n}", lane.prefix))
        .collect();
    stack.wait_joined(&lane, &keys).await; // one batch, whatever the machine's speed
    stack.release(&hold);
    stack.wait_covered(&lane, &writes).await;
    let calls = stack.calls(&lane);
    let throttled = calls.iter().filter(|c| c.outcome == "Throttling").count();
    let created = calls.iter().filter(|c| c.outcome == "created").count();
    assert_eq!(throttled, 6, "{calls:?}");
    assert_eq!(created, 1, "{calls:?}");
}

/// TooManyInvalidationsInProgress is retried with a long backoff until the distribution
/// has room again.
#[tokio::test(flavor = "multi_thread")]
async fn too_many_invalidations_in_progress_is_retried_until_there_is_room() {
    let stack = Stack::connect().await;
    let lane = stack.lane(6);
    // Held until the batch's first CreateInvalidation has met the limit, then released.
    let hold = stack.hold_limit(&lane, 3600);
    let writes = stack.write(&lane, &["busy/a.html"]).await;
    stack
        .wait_for_call(&lane, "TooManyInvalidationsInProgress")
        .await;
    stack.control("faults/clear", json!({"id": hold["id"]}));
    stack.wait_covered(&lane, &writes).await;
    let calls = stack.calls(&lane);
    assert_eq!(
        calls.iter().filter(|c| c.outcome == "created").count(),
        1,
        "{calls:?}"
    );
}

/// Invariant 5 (redrive): a permanent error fails the batch visibly (table + execution);
/// after the fix, redriving the execution completes it with exactly one invalidation.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_batch_is_visible_and_a_redrive_completes_it_once() {
    let stack = Stack::connect().await;
    let lane = stack.lane(7);
    let fault = stack.control(
        "faults/set",
        json!({"kind": "cloudfront", "code": "AccessDenied", "operation": "CreateInvalidation", "distribution_id": lane.distribution_id}),
    );
    let writes = stack.write(&lane, &["denied/a.html"]).await;
    let batch = stack
        .wait_lane(&lane, "the batch to be FAILED in the table", || async {
            stack
                .batches(&lane)
                .await
                .into_iter()
                .find(|b| b.get("status").map(String::as_str) == Some("FAILED"))
        })
        .await;
    let batch_id = batch["batchId"].clone();
    assert!(
        batch
            .get("lastError")
            .is_some_and(|e| e.contains("AccessDenied")),
        "{batch:?}"
    );
    assert_eq!(
        stack.batch_execution_status(&batch_id).await.as_deref(),
        Some("FAILED")
    );
    assert!(
        stack
            .failed_items()
            .await
            .iter()
            .any(|i| i.get("batchId").and_then(|v| v.as_s().ok()) == Some(&batch_id)),
        "the batch is in the failures index"
    );

    stack.control("faults/clear", json!({"id": fault["id"]}));
    stack.redrive_batch(&batch_id).await;
    stack.wait_covered(&lane, &writes).await;
    stack
        .wait_lane(&lane, "the redriven execution to succeed", || async {
            (stack.batch_execution_status(&batch_id).await.as_deref() == Some("SUCCEEDED"))
                .then_some(())
        })
        .await;
    stack
        .wait_lane(&lane, "the batch to be COMPLETED", || async {
            let b = stack.batches(&lane).await;
            b.iter()
                .any(|b| {
                    b["batchId"] == batch_id
                        && b.get("status").map(String::as_str) == Some("COMPLETED")
                        && !b.contains_key("statusPk")
                })
                .then_some(())
        })
        .await;
    let calls = stack.calls(&lane);
    assert_eq!(
        calls.iter().filter(|c| c.outcome == "created").count(),
        1,
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.outcome == "AccessDenied"),
        "{calls:?}"
    );
}

/// Invariant 4 (nothing swallowed): a batch whose opener died before its flush started must
/// not keep absorbing paths. On a quiet distribution the scheduled sweep flushes it; on a busy
/// one the next joiner rotates past it and asks for its flush again. Either way its paths are
/// invalidated.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_whose_flush_never_started_is_flushed_by_the_sweep_or_the_next_joiner() {
    let stack = Stack::connect().await;
    let lane = stack.lane(10);

    // A quiet distribution: only the sweep can find the batch.
    let (swept, swept_path) = stack.stage_dead_opener(&lane, "stale/swept.html").await;
    let report = stack.control("sweep", json!({}));
    let started = report["payload"]["started"].to_string();
    assert!(
        started.contains(&swept),
        "the sweep started {swept}: {report}"
    );
    stack
        .wait_covered(&lane, std::slice::from_ref(&swept_path))
        .await;

    // A busy distribution: the next write rotates past the stale batch instead of joining it.
    let (rotated, rotated_path) = stack.stage_dead_opener(&lane, "stale/rotated.html").await;
    let writes = stack.write(&lane, &["fresh/page.html"]).await;
    stack
        .wait_covered(&lane, &[rotated_path, writes[0].clone()])
        .await;
    assert!(
        stack.batches_completed(&lane).await,
        "every batch of the lane COMPLETED"
    );
    let batches = stack.batches(&lane).await;
    let ids: Vec<&str> = batches.iter().map(|b| b["batchId"].as_str()).collect();
    assert!(
        ids.contains(&swept.as_str()) && ids.contains(&rotated.as_str()),
        "{ids:?}"
    );
    assert_eq!(ids.len(), 3, "the new write opened its own batch: {ids:?}");

    // An opener that died right after its pointer swap: no batch item, no path. The next write
    // rotates past it and its flush runs, but an empty batch is not a batch: EMPTY, opened
    // when its id says, out of the distribution's listing, nothing sent to CloudFront.
    let calls_before = stack.calls(&lane).len();
    let orphan = stack.stage_orphan_pointer(&lane).await;
    let writes = stack.write(&lane, &["fresh/after-orphan.html"]).await;
    stack.wait_covered(&lane, &writes).await;
    let item = stack
        .wait_lane(&lane, "the orphan's flush to mark it EMPTY", || async {
            let item = stack.batch_item(&orphan).await?;
            (item.get("status").map(String::as_str) == Some("EMPTY")).then_some(item)
        })
        .await;
    assert_eq!(
        item.get("openedAt").map(|t| t[..19].to_owned()),
        cfinv_core::model::batch_opened_at(&orphan)
            .map(|t| cfinv_core::model::timestamp(t)[..19].to_owned()),
        "opened when its id says, not when it closed: {item:?}"
    );
    assert!(
        !item.contains_key("gsi1pk") && !item.contains_key("statusPk"),
        "{item:?}"
    );
    let ids: Vec<String> = stack
        .batches(&lane)
        .await
        .into_iter()
        .map(|b| b["batchId"].clone())
        .collect();
    assert!(!ids.contains(&orphan), "not listed: {ids:?}");
    let calls = stack.calls(&lane);
    assert_eq!(
        calls.len(),
        calls_before + 1,
        "only the fresh write's batch: {calls:?}"
    );
    assert!(
        calls
            .iter()
            .all(|c| !c.caller_reference.starts_with(&orphan))
    );
    assert_eq!(
        stack.batch_execution_status(&orphan).await.as_deref(),
        Some("SUCCEEDED")
    );
}
