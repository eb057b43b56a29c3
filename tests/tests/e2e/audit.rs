//! End-to-end: the `cfinv audit` CLI against a table filled by real pipeline runs on the local
//! stack. Lanes 8, 9 and 22 are this file's (`make e2e` starts 27 distributions): lane 8 gets two
//! completed batches, lane 9 a failed batch and one left SUBMITTED, lane 22 a failed batch that
//! is replayed. Keys are under a prefix of their own per run, so the tests also pass again on
//! the same stack. `cli.rs` runs the binary.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::{Invalidation, Lane, Stack, now_epoch};
use serde_json::{Value, json};

use crate::cli::cfinv;

fn batch_arn(stack: &Stack, batch_id: &str) -> String {
    format!(
        "{}:{batch_id}",
        stack
            .state_machine("InvalidateBatchStateMachine")
            .replace(":stateMachine:", ":execution:")
    )
}

/// Lane 8: a first batch (an index document and a directory collapsed to a wildcard), then a
/// second one overwriting a path and deleting another. Returns this run's invalidations.
async fn two_completed_batches(stack: &Stack, lane: &Lane) -> Vec<Invalidation> {
    let many: Vec<String> = (0..12).map(|i| format!("many/{i}.txt")).collect();
    let mut names = vec!["img/a.png", "index.html"];
    names.extend(many.iter().map(String::as_str));
    let keys = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| format!("{}{n}", lane.prefix))
            .collect()
    };
    // Each step's changes must form one batch, however slowly this machine delivers them:
    // the lane's flush is held until all of them joined.
    let hold = stack.hold_flushes(lane);
    let first = stack.write(lane, &names).await;
    stack.wait_joined(lane, &keys(&names)).await;
    stack.release(&hold);
    stack.wait_covered(lane, &first).await;
    let hold = stack.hold_flushes(lane);
    let mut second = stack.write(lane, &["img/a.png"]).await;
    stack.delete(&format!("{}many/3.txt", lane.prefix)).await;
    second.push((format!("/{}many/3.txt", lane.prefix), now_epoch()));
    stack
        .wait_joined(lane, &keys(&["img/a.png", "many/3.txt"]))
        .await;
    stack.release(&hold);
    // The index document's alias `/<prefix>` has no trailing slash.
    let run = format!("/{}", lane.prefix.trim_end_matches('/'));
    let mut ours = stack.wait_covered(lane, &second).await;
    ours.retain(|i| i.paths.iter().all(|p| p.starts_with(&run)));
    // CloudFront says Completed a poll before the batch does.
    assert!(
        stack.batches_completed(lane).await,
        "the lane's batches COMPLETED"
    );
    ours
}

/// Lane 9: a batch failed by CloudFront's AccessDenied, then one left SUBMITTED (its
/// invalidation stays InProgress for an hour). Returns (failed, submitted) batch ids.
async fn failed_and_stuck_batches(stack: &Stack, lane: &Lane) -> (String, String) {
    let fault = stack.control(
        "faults/set",
        json!({"kind": "cloudfront", "code": "AccessDenied", "operation": "CreateInvalidation", "distribution_id": lane.distribution_id}),
    );
    let earlier = stack.batch_ids(lane).await;
    stack.write(lane, &["denied.html"]).await;
    let earlier = &earlier;
    let batch_in = |status: &'static str| stack.new_batch_in(lane, earlier, status);
    let failed = stack
        .wait_lane(lane, "the batch to be FAILED", || batch_in("FAILED"))
        .await;
    stack.control("faults/clear", json!({"id": fault["id"]}));
    stack.control(
        "cloudfront/in-progress-seconds",
        json!({"seconds": 3600, "distribution_id": lane.distribution_id}),
    );
    stack.write(lane, &["slow.html"]).await;
    let submitted = stack
        .wait_lane(lane, "a batch to be SUBMITTED", || batch_in("SUBMITTED"))
        .await;
    (failed, submitted)
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {v}"))
}

fn ids(list: &Value, field: &str) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|v| str_of(v, field).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_answers_each_question_from_real_pipeline_runs() {
    let stack = Stack::connect().await;
    let run = format!("run{}", now_epoch() as u64);
    let in_run = |lane: Lane| Lane {
        prefix: format!("{}{run}/", lane.prefix),
        ..lane
    };
    let (ok_lane, bad_lane) = (in_run(stack.lane(8)), in_run(stack.lane(9)));
    let (invalidations, (failed_id, submitted_id)) = tokio::join!(
        two_completed_batches(&stack, &ok_lane),
        failed_and_stuck_batches(&stack, &bad_lane)
    );
    let d8 = ok_lane.distribution_id.as_str();
    let d9 = bad_lane.distribution_id.as_str();
    // CloudFront's own view: invalidation by the batch its CallerReference names.
    let by_batch: BTreeMap<String, &Invalidation> = invalidations
        .iter()
        .map(|i| (i.caller_reference.rsplit_once('#').unwrap().0.to_owned(), i))
        .collect();
    assert_eq!(by_batch.len(), 2, "{invalidations:?}");

    // Q2: the lane's batches, newest first, with counts as CloudFront saw them.
    let list = cfinv(&["audit", "batches", "-d", d8, "--since", "1h", "--json"]).json();
    let batches: Vec<&Value> = list["batches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| by_batch.contains_key(str_of(b, "batchId")))
        .collect();
    assert_eq!(batches.len(), 2, "{list}");
    let (newest, oldest) = (batches[0], batches[1]);
    assert!(str_of(newest, "openedAt") > str_of(oldest, "openedAt"));
    for b in &batches {
        let inv = by_batch[str_of(b, "batchId")];
        assert_eq!(str_of(b, "status"), "COMPLETED");
        assert_eq!(b["pathsBilled"], inv.paths.len(), "{b}");
        assert_eq!(b["pathsPlanned"], inv.paths.len(), "{b}");
        assert!(b["tookSeconds"].as_f64().unwrap() > 0.0, "{b}");
    }
    // 12 files, an image, and an index document with its two aliases.
    assert_eq!(oldest["pathsReceived"], 16);
    assert_eq!(oldest["eventsReceived"], 14);
    assert_eq!(newest["pathsReceived"], 2);
    let table = cfinv(&["audit", "batches", "-d", d8, "--since", "1h"]).ok();
    for b in &batches {
        let line = table
            .lines()
            .find(|l| l.contains(str_of(b, "batchId")))
            .unwrap_or_else(|| panic!("{b} not in\n{table}"));
        assert!(line.contains("COMPLETED"), "{line}");
    }
    // From this run's first batch on: exactly this run's batches.
    let from = str_of(oldest, "openedAt");
    let ranged = cfinv(&["audit", "batches", "-d", d8, "--from", from, "--json"]).json();
    assert_eq!(
        ids(&ranged["batches"], "batchId"),
        by_batch.keys().cloned().collect()
    );
    assert_eq!(ranged["total"]["batches"], 2);
    assert_eq!(ranged["total"]["invalidations"], 2);
    let table = cfinv(&["audit", "batches", "-d", d8, "--from", from]).ok();
    assert!(
        table.contains("total: 2 batches (2 completed, 0 failed)"),
        "{table}"
    );
    // `--to` is exclusive: up to the newest batch's opening is the oldest batch alone.
    let to = str_of(newest, "openedAt");
    let first = cfinv(&[
        "audit", "batches", "-d", d8, "--from", from, "--to", to, "--json",
    ])
    .json();
    assert_eq!(
        ids(&first["batches"], "batchId"),
        BTreeSet::from([str_of(oldest, "batchId").to_owned()])
    );

    // Q1: a path's history, newest first, each with the invalidation CloudFront reports.
    let history = cfinv(&[
        "audit",
        "path",
        &format!("/{}img/a.png", ok_lane.prefix),
        "-d",
        d8,
        "--json",
    ])
    .json();
    let changes = history["history"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{history}");
    assert_eq!(str_of(&changes[0], "batchId"), str_of(newest, "batchId"));
    assert_eq!(str_of(&changes[1], "batchId"), str_of(oldest, "batchId"));
    for change in changes {
        let inv = by_batch[str_of(change, "batchId")];
        assert_eq!(str_of(&change["invalidation"], "id"), inv.id);
        assert_eq!(str_of(&change["invalidation"], "status"), "Completed");
        assert_eq!(inv.status, "Completed");
        assert_eq!(str_of(change, "change"), "Created");
        assert!(!str_of(change, "etag").is_empty() && !str_of(change, "eventTime").is_empty());
        assert_eq!(change["eventIds"].as_array().unwrap().len(), 1);
    }
    let table = cfinv(&[
        "audit",
        "path",
        &format!("/{}img/a.png", ok_lane.prefix),
        "-d",
        d8,
    ])
    .ok();
    for inv in by_batch.values() {
        let line = table
            .lines()
            .find(|l| l.contains(&inv.id))
            .unwrap_or_else(|| panic!("{table}"));
        assert!(line.contains("Completed"), "{line}");
    }
    // By key: deleted in the newest batch, invalidated through the wildcard before.
    let key = format!("{}many/3.txt", ok_lane.prefix);
    let history = cfinv(&["audit", "path", "--key", &key, "-d", d8, "--json"]).json();
    let changes = history["history"].as_array().unwrap();
    assert_eq!(str_of(&changes[0], "change"), "Deleted");
    assert_eq!(
        str_of(&changes[1]["invalidation"], "via"),
        format!("/{}many/*", ok_lane.prefix)
    );

    // Q4: one batch in full.
    let detail = cfinv(&["audit", "batch", str_of(oldest, "batchId"), "--json"]).json();
    let inv = by_batch[str_of(oldest, "batchId")];
    assert_eq!(detail["paths"].as_array().unwrap().len(), 16);
    let chunks = detail["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(str_of(&chunks[0], "invalidationId"), inv.id);
    assert_eq!(str_of(&chunks[0], "status"), "Completed");
    let planned: BTreeSet<&str> = chunks[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(planned, inv.paths.iter().map(String::as_str).collect());
    assert!(
        planned.contains(format!("/{}many/*", ok_lane.prefix).as_str()),
        "{planned:?}"
    );
    let timeline = detail["timeline"].as_array().unwrap();
    assert!(str_of(&timeline[0], "event").starts_with("opened"));
    assert_eq!(str_of(timeline.last().unwrap(), "event"), "completed");
    let times: Vec<&str> = timeline.iter().map(|m| str_of(m, "at")).collect();
    assert!(times.is_sorted(), "{times:?}");
    let table = cfinv(&["audit", "batch", str_of(oldest, "batchId")]).ok();
    let wildcard = format!("/{}many/*", ok_lane.prefix);
    for expected in [
        "COMPLETED (took",
        &inv.id,
        &wildcard,
        "paths received (16)",
        "timeline",
    ] {
        assert!(table.contains(expected), "{expected} not in\n{table}");
    }
    let table = cfinv(&["audit", "batch", &failed_id]).ok();
    let field = |name: &str| {
        table
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in\n{table}"))
    };
    assert_eq!(field("status "), "FAILED");
    assert!(field("error ").starts_with("AccessDenied"), "{table}");

    // Q3: the failed batch with its error and the ARN to redrive; the SUBMITTED one is stuck.
    let failures = cfinv(&["audit", "failed", "--json"]).json();
    let failed = failures["batches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| str_of(b, "batchId") == failed_id)
        .unwrap_or_else(|| panic!("{failed_id} not in {failures}"));
    assert!(
        str_of(failed, "lastError").contains("AccessDenied"),
        "{failed}"
    );
    assert_eq!(
        str_of(failed, "executionArn"),
        batch_arn(&stack, &failed_id)
    );
    assert_eq!(str_of(failed, "distributionId"), d9);
    let table = cfinv(&["audit", "failed", "--since", "1h"]).ok();
    let line = table
        .lines()
        .find(|l| l.contains(&failed_id))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("AccessDenied") && line.contains(&batch_arn(&stack, &failed_id)),
        "{line}"
    );

    // "Stuck" means SUBMITTED for longer than 1 s: the batch may have become SUBMITTED just now.
    let submitted = stack
        .wait_lane(
            &bad_lane,
            "the SUBMITTED batch to be listed as stuck",
            || async {
                let stuck = cfinv(&["audit", "stuck", "--older-than", "1s", "--json"]).json();
                stuck["batches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|b| str_of(b, "batchId") == submitted_id)
                    .cloned()
            },
        )
        .await;
    let submitted = &submitted;
    assert_eq!(str_of(submitted, "status"), "SUBMITTED");
    assert_eq!(
        str_of(submitted, "executionArn"),
        batch_arn(&stack, &submitted_id)
    );
    let table = cfinv(&["audit", "stuck", "--older-than", "1s"]).ok();
    assert!(
        table
            .lines()
            .any(|l| l.contains(&submitted_id) && l.contains("SUBMITTED")),
        "{table}"
    );
    // Not stuck by the default threshold: it was submitted seconds ago.
    let young = cfinv(&["audit", "stuck", "--json"]).json();
    assert!(
        !ids(&young["batches"], "batchId").contains(&submitted_id),
        "{young}"
    );

    // Q5: the month's totals are the sums of its batches, and the billed paths CloudFront's.
    let month = &str_of(oldest, "openedAt")[..7];
    let totals = cfinv(&[
        "audit", "month", "--month", month, "-d", d8, "-d", d9, "--json",
    ])
    .json();
    let (start, end) = (str_of(&totals, "from"), str_of(&totals, "to"));
    for (i, d) in [d8, d9].into_iter().enumerate() {
        let row = &totals["distributions"][i];
        assert_eq!(str_of(row, "distributionId"), d);
        let list = cfinv(&[
            "audit", "batches", "-d", d, "--from", start, "--to", end, "--json",
        ])
        .json();
        let fields = [
            "batches",
            "failed",
            "eventsReceived",
            "pathsReceived",
            "pathsBilled",
            "invalidations",
        ];
        for field in fields {
            assert_eq!(
                row[field], list["total"][field],
                "{field} of {d}: {totals} vs {list}"
            );
        }
    }
    // What CloudFront billed on lane 8 in that month (its call log's times are UTC RFC 3339).
    let calls = stack.control("cloudfront/calls", json!({"distribution_id": d8}));
    let billed: u64 = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "created")
        .filter(|c| (start..end).contains(&str_of(c, "iso_time")))
        .map(|c| c["billed_paths"].as_u64().unwrap())
        .sum();
    assert_eq!(totals["distributions"][0]["pathsBilled"], billed);
    assert!(
        totals["distributions"][1]["failed"].as_u64() >= Some(1),
        "{totals}"
    );
    let table = cfinv(&["audit", "month", "--month", month, "-d", d8, "-d", d9]).ok();
    let total = table
        .lines()
        .find(|l| l.starts_with("TOTAL"))
        .unwrap_or_else(|| panic!("{table}"));
    let batches_total = totals["total"]["batches"].to_string();
    assert_eq!(
        total.split_whitespace().nth(1),
        Some(batches_total.as_str()),
        "{table}"
    );
    // Without --distribution: every distribution of the stack.
    let all = cfinv(&["audit", "month", "--month", month, "--json"]).json();
    assert_eq!(
        all["distributions"].as_array().unwrap().len(),
        stack.info.distribution_ids.len()
    );

    // Lane 9 as it was: the stack's InProgress time, and the stuck batch left to finish.
    let settings = stack.control("settings", json!({}));
    stack.control(
        "cloudfront/in-progress-seconds",
        json!({"seconds": settings["settings"]["cloudfront_in_progress_seconds"], "distribution_id": d9}),
    );
    stack.control("cloudfront/complete", json!({"distribution_id": d9}));
}

/// Lane 22: a batch FAILED past redrive is recovered with `cfinv replay`: a new batch carries
/// its paths through the machine to one new invalidation (its own caller reference), the audit
/// links the two, a replay interrupted after its claim is resumed, and a second replay is
/// refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_batch_is_replayed_once_as_a_new_batch() {
    let stack = Stack::connect().await;
    let lane = stack.lane(22);
    let fault = stack.control(
        "faults/set",
        json!({"kind": "cloudfront", "code": "NoSuchDistribution", "operation": "CreateInvalidation", "distribution_id": lane.distribution_id}),
    );
    let earlier = stack.batch_ids(&lane).await;
    // One event (an index document: three paths), so one batch however slow this machine is.
    let writes = stack.write(&lane, &["replay/index.html"]).await;
    let failed = stack
        .wait_lane(&lane, "the batch to be FAILED", || {
            stack.new_batch_in(&lane, &earlier, "FAILED")
        })
        .await;
    stack.control("faults/clear", json!({"id": fault["id"]}));

    // A replay that stopped right after claiming the failed batch (its process killed): the
    // claim names a batch that was never written. Running the replay again resumes it.
    let claimed = format!("{}-20300101T000000Z-0e2e0e2e", lane.distribution_id);
    stack
        .ddb
        .update_item()
        .table_name(&stack.info.table)
        .key("PK", AttributeValue::S(format!("BATCH#{failed}")))
        .key("SK", AttributeValue::S("META".into()))
        .update_expression("SET replayedBy = :r")
        .expression_attribute_values(":r", AttributeValue::S(claimed.clone()))
        .send()
        .await
        .expect("the interrupted replay's claim");
    let replayed = cfinv(&["--json", "replay", &failed]).json();
    let replay_id = str_of(&replayed, "replayBatchId").to_owned();
    assert_eq!(replay_id, claimed, "the claimed replay is resumed");
    assert_eq!(replayed["paths"], json!(3), "{replayed}");
    let again = cfinv(&["replay", &failed]);
    assert_ne!(
        again.code, 0,
        "a second replay is refused: {}",
        again.stdout
    );
    assert!(
        again.stderr.contains("replayed already"),
        "{}",
        again.stderr
    );

    let invalidations = stack.wait_covered(&lane, &writes).await;
    stack
        .wait_lane(&lane, "the replay batch to be COMPLETED", || async {
            let b = stack.batch_item(&replay_id).await?;
            (b.get("status").map(String::as_str) == Some("COMPLETED")).then_some(())
        })
        .await;
    let references: Vec<&str> = invalidations
        .iter()
        .map(|i| i.caller_reference.as_str())
        .filter(|r| r.starts_with(&replay_id) || r.starts_with(&failed))
        .collect();
    assert_eq!(
        references,
        [format!("{replay_id}#0")],
        "one new invalidation"
    );
    let old = cfinv(&["--json", "audit", "batch", &failed]).json();
    assert_eq!(
        str_of(&old["batch"], "status"),
        "FAILED",
        "its history stays"
    );
    assert_eq!(str_of(&old["batch"], "replayedBy"), replay_id);
    let new = cfinv(&["--json", "audit", "batch", &replay_id]).json();
    assert_eq!(str_of(&new["batch"], "replayOf"), failed);
}
