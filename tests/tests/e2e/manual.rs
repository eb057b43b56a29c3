//! Manual invalidations through the pipeline (docs/design.md §9), by `cfinv invalidate` (lane
//! 27) and by an "Invalidation Requested" event (lane 28): requests over each bound, and events
//! from a source not allowed, are refused and audited with nothing invalidated, and one within
//! them completes and shows in the audit as manual, with who asked and why. Nothing else writes
//! to these lanes, so every invalidation on them is this file's.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use cfinv_core::schema::keys;
use e2e::{Lane, Stack};
use serde_json::{Value, json};

use crate::cli::cfinv;

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_invalidation_is_bounded_batched_completed_and_audited() {
    let stack = Stack::connect().await;
    let lane = stack.lane(27);
    let dist = lane.distribution_id.as_str();
    let invalidations = || invalidations(&stack, &lane);
    let before = invalidations().len();
    let refused = |args: &[&str]| {
        let run = cfinv(&[&["invalidate", "-d", dist], args].concat());
        assert_ne!(run.code, 0, "accepted: {}", run.stdout);
        assert!(
            run.stderr.contains("refused (recorded in the audit)"),
            "{}",
            run.stderr
        );
        run.stderr
    };
    assert!(refused(&["/*"]).contains("--all"));
    assert!(refused(&["/a", "/b", "/c", "--max-paths", "2"]).contains("at most 2"));
    assert!(refused(&["/x1", "--max-paths-per-hour", "0"]).contains("this hour"));
    assert!(refused(&["/a b.html"]).contains("/a%20b.html"));
    assert!(refused(&["--tag", "a,b"]).contains("comma"));

    let path = format!("/{}manual/page.html", lane.prefix);
    let prefix = format!("/{}manual/assets/", lane.prefix);
    let done = cfinv(&[
        "invalidate",
        "-d",
        dist,
        &path,
        "--prefix",
        &prefix,
        "--wait",
        "--reason",
        "release 7",
        "--json",
    ])
    .json();
    assert_eq!(done["status"], "Completed", "{done}");
    assert!(
        done["requestedBy"]
            .as_str()
            .is_some_and(|who| who.starts_with("arn:")),
        "{done}"
    );
    let after = invalidations();
    assert_eq!(
        after.len(),
        before + 1,
        "one invalidation, none for the refused: {after:?}"
    );
    let mut paths: Vec<&str> = after[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, [format!("{prefix}*"), path.clone()]);
    assert_eq!(after[0]["status"], "Completed");

    let batch_id = done["batchIds"][0].as_str().expect("a batch id");
    let request_id = done["requestId"].as_str().expect("a request id");
    let audit = cfinv(&["audit", "batch", batch_id]).ok();
    assert!(
        audit.contains(&format!("manual request {request_id} by arn:"))
            && audit.contains("release 7"),
        "{audit}"
    );
}

/// Every invalidation CloudFront holds for the lane's distribution, newest first.
fn invalidations(stack: &Stack, lane: &Lane) -> Vec<Value> {
    let all = stack.control(
        "cloudfront/invalidations",
        json!({"distribution_id": lane.distribution_id}),
    );
    all["invalidations"].as_array().expect("a list").clone()
}

/// Puts one "Invalidation Requested" event on the default bus; returns its event id.
async fn request_by_event(stack: &Stack, source: &str, detail: Value) -> String {
    let events = aws_sdk_eventbridge::Client::new(&stack.conf);
    let out = events
        .put_events()
        .entries(
            PutEventsRequestEntry::builder()
                .source(source)
                .detail_type(cfinv_core::manual::EVENT_DETAIL_TYPE)
                .detail(detail.to_string())
                .build(),
        )
        .send()
        .await
        .expect("PutEvents");
    assert_eq!(out.failed_entry_count(), 0, "{out:?}");
    out.entries()[0].event_id().expect("an event id").to_owned()
}

/// The request's audit record (`REQUEST#<id>`), once dedupe wrote it, as text values.
async fn request_record(stack: &Stack, lane: &Lane, request_id: &str) -> Value {
    stack
        .wait_lane(lane, &format!("the audit record of request {request_id}"), || async {
            let item = stack.meta_item(keys::request_pk(request_id)).await?;
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let list = |name: &str| -> Vec<String> {
                item.get(name)
                    .and_then(|v| v.as_l().ok())
                    .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
                    .unwrap_or_default()
            };
            Some(json!({
                "outcome": text("outcome"), "refusal": text("refusal"),
                "requestedBy": text("requestedBy"), "channel": text("channel"),
                "reason": text("requestReason"), "items": list("items"), "batchIds": list("batchIds"),
            }))
        })
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_asks_for_an_invalidation_within_the_stack_bounds() {
    let stack = Stack::connect().await;
    let lane = stack.lane(28);
    let dist = lane.distribution_id.as_str();
    let source = cfinv_core::manual::EVENT_SOURCE;
    let path = format!("/{}event/page.html", lane.prefix);
    let before = invalidations(&stack, &lane).len();

    // Refused, each recorded with its reason, none invalidated: a sender the stack does not
    // allow, a request over ManualMaxPaths (the template's default, 100), a malformed detail.
    let stranger = request_by_event(
        &stack,
        "someone.else",
        json!({"distributionId": dist, "paths": [path]}),
    )
    .await;
    let many: Vec<String> = (0..101)
        .map(|i| format!("/{}event/{i}", lane.prefix))
        .collect();
    let over = request_by_event(
        &stack,
        source,
        json!({"distributionId": dist, "paths": many}),
    )
    .await;
    let malformed = request_by_event(
        &stack,
        source,
        json!({"distributionId": dist, "path": path}),
    )
    .await;
    for (id, says) in [
        (&stranger, "may not ask"),
        (&over, "at most 100"),
        (&malformed, "not a request"),
    ] {
        let record = request_record(&stack, &lane, id).await;
        assert_eq!(record["outcome"], "REFUSED", "{id}: {record}");
        assert!(
            record["refusal"].as_str().unwrap().contains(says),
            "{id}: {record}"
        );
        assert_eq!(record["channel"], "event");
    }
    let record = request_record(&stack, &lane, &stranger).await;
    assert!(
        record["requestedBy"]
            .as_str()
            .unwrap()
            .ends_with("/someone.else"),
        "{record}"
    );
    // Each refusal failed its execution by name: visible in the console and the failures index.
    stack
        .wait_lane(
            &lane,
            "the refused requests' executions failed as ManualRequestRefused",
            || async {
                let failed = stack.failed_items().await;
                let refused = [&stranger, &over, &malformed].iter().all(|id| {
                    failed.iter().any(|item| {
                        let text = |name: &str| {
                            item.get(name)
                                .and_then(|v| v.as_s().ok())
                                .map(String::as_str)
                                .unwrap_or("")
                        };
                        text("input").contains(id.as_str())
                            && text("lastError").contains("ManualRequestRefused")
                    })
                });
                refused.then_some(())
            },
        )
        .await;

    let accepted = request_by_event(
        &stack,
        source,
        json!({"distributionId": dist, "paths": [path], "tags": ["Release-8"], "reason": "deploy 8"}),
    )
    .await;
    let record = request_record(&stack, &lane, &accepted).await;
    assert_eq!(record["outcome"], "ACCEPTED", "{record}");
    assert_eq!(record["reason"], "deploy 8");
    let account_source = record["requestedBy"].as_str().unwrap().to_owned();
    assert!(account_source.ends_with(&format!("/{source}")), "{record}");
    let batch_id = record["batchIds"][0].as_str().expect("a batch").to_owned();
    stack
        .wait_lane(&lane, "the requested batch to complete", || async {
            let batch = stack.batch_item(&batch_id).await?;
            (batch.get("status").map(String::as_str) == Some("COMPLETED")).then_some(())
        })
        .await;
    let all = invalidations(&stack, &lane);
    assert_eq!(
        all.len(),
        before + 1,
        "one invalidation, none for the refused: {all:?}"
    );
    let mut paths: Vec<&str> = all[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, ["#release-8", path.as_str()]);
    let audit = cfinv(&["audit", "batch", &batch_id]).ok();
    assert!(
        audit.contains(&format!(
            "manual request {accepted} by {account_source}: deploy 8"
        )),
        "{audit}"
    );
    // The requests, accepted and refused, as the audit lists them.
    let listed = cfinv(&["audit", "requests", "-d", dist, "--since", "1h", "--json"]).json();
    let outcomes: Vec<(&str, &str)> = listed["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|r| {
            (
                r["requestId"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    for (id, outcome) in [
        (&accepted, "ACCEPTED"),
        (&stranger, "REFUSED"),
        (&over, "REFUSED"),
        (&malformed, "REFUSED"),
    ] {
        assert!(
            outcomes.contains(&(id.as_str(), outcome)),
            "{id} {outcome}: {listed}"
        );
    }
    let refused = cfinv(&[
        "audit",
        "requests",
        "-d",
        dist,
        "--since",
        "1h",
        "--refused",
    ])
    .ok();
    assert!(
        refused.contains("someone.else") && !refused.contains(&accepted),
        "{refused}"
    );
}
