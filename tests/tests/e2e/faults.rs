//! The fault matrix: each test arms one fault on its own lane (lanes 11-21, 23, 29, 30), drives
//! at least 300 mixed changes (new keys, keys that need encoding, overwrites, deletes) through
//! the real pipeline, and checks the invariants of docs/design.md §2: every change covered by
//! a Completed invalidation created after it, no invalidation beyond a batch's plan, and every
//! batch that could not finish visible as FAILED (table, failures index, failed execution).
//! Each test writes its row of the report table before asserting; `make e2e` prints the table.

use std::time::{Duration, Instant};

use e2e::matrix::{Outcome, mixed_workload, writes_per_fault};
use e2e::{Lane, Stack, Viewers, describe};
use serde_json::{Value, json};

/// Changes in flight at once per lane.
const PARALLEL: usize = 8;

/// Drives the lane's workload, `parallel` changes at a time, as fast as the stack takes it (or
/// spread over `spread`), with viewers reading some of its keys through the edge throughout.
async fn drive(
    stack: &Stack,
    lane: &Lane,
    parallel: usize,
    spread: Duration,
) -> (Vec<(String, f64)>, Instant, Viewers) {
    let started = Instant::now();
    let changes = mixed_workload(lane, writes_per_fault());
    let viewers = stack.watch(lane, &changes);
    (
        stack.apply(&changes, parallel, spread).await,
        started,
        viewers,
    )
}

/// Settles the lane, records its row, then asserts full recovery.
async fn settle_recovered(
    stack: &Stack,
    lane: &Lane,
    fault: &str,
    writes: &[(String, f64)],
    started: Instant,
    viewers: Viewers,
    note: impl FnOnce(&Outcome) -> String,
) -> Outcome {
    let mut outcome = stack.settle(lane, fault, writes, started).await;
    outcome.add_freshness(&viewers.finish(writes));
    outcome.add_note(note(&outcome));
    outcome.record(lane);
    outcome.assert_recovered();
    outcome
}

fn arm(stack: &Stack, fault: Value) -> Value {
    stack.control("faults/set", fault)
}

fn disarm(stack: &Stack, fault: &Value) {
    stack.control("faults/clear", json!({"id": fault["id"]}));
}

/// The `throttled` counter of each armed fault of `kind`, in the order armed (0 once it is gone).
fn throttled_counts(stack: &Stack, kind: &str, armed: &[Value]) -> Vec<u64> {
    let list = stack.control("faults/list", json!({}));
    armed
        .iter()
        .map(|a| {
            list[kind]
                .as_array()
                .and_then(|all| all.iter().find(|f| f["id"] == a["id"]))
                .and_then(|f| f["throttled"].as_u64())
                .unwrap_or(0)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudfront_throttling_half_of_all_calls() {
    let stack = Stack::connect().await;
    let lane = stack.lane(11);
    let fault = arm(
        &stack,
        json!({"kind": "cloudfront", "code": "Throttling", "operation": "*", "rate": 0.5, "distribution_id": lane.distribution_id}),
    );
    let (writes, started, viewers) = drive(&stack, &lane, PARALLEL, Duration::ZERO).await;
    let outcome = settle_recovered(
        &stack,
        &lane,
        "CloudFront Throttling on 50% of calls",
        &writes,
        started,
        viewers,
        |_| String::new(),
    )
    .await;
    disarm(&stack, &fault);
    assert!(outcome.rejected_calls > 0, "the fault fired: {outcome:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudfront_service_unavailable_bursts() {
    let stack = Stack::connect().await;
    let lane = stack.lane(12);
    // Each burst: the next five calls of an operation fail (more than the SDK's own three
    // attempts, so Step Functions retries too).
    let burst = |operation: &str| json!({"kind": "cloudfront", "code": "ServiceUnavailable", "operation": operation, "count": 5, "distribution_id": lane.distribution_id});
    arm(&stack, burst("CreateInvalidation"));
    arm(&stack, burst("GetInvalidation"));
    let (writes, started, viewers) = drive(&stack, &lane, PARALLEL, Duration::ZERO).await;
    // Another burst for the batches after the first invalidation.
    stack.wait_for_call(&lane, "created").await;
    arm(&stack, burst("CreateInvalidation"));
    let outcome = settle_recovered(
        &stack,
        &lane,
        "CloudFront ServiceUnavailable, bursts of 5 calls",
        &writes,
        started,
        viewers,
        |_| String::new(),
    )
    .await;
    assert!(outcome.rejected_calls > 0, "the fault fired: {outcome:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn distribution_held_at_its_in_progress_limit() {
    let stack = Stack::connect().await;
    let lane = stack.lane(13);
    // Held until a submit has met the limit, however long the writes take (the hour is only a
    // backstop should the test die before clearing it).
    let hold = stack.hold_limit(&lane, 3600);
    let (writes, started, viewers) = drive(&stack, &lane, PARALLEL, Duration::ZERO).await;
    stack
        .wait_for_call(&lane, "TooManyInvalidationsInProgress")
        .await;
    let held = started.elapsed();
    disarm(&stack, &hold);
    let outcome = settle_recovered(
        &stack,
        &lane,
        "distribution at its in-progress limit (TooManyInvalidationsInProgress)",
        &writes,
        started,
        viewers,
        |_| format!("held {} s", held.as_secs()),
    )
    .await;
    assert!(
        outcome.rejected_calls > 0,
        "the limit was met: {outcome:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_s3_event_delivered_twice_and_out_of_order() {
    let stack = Stack::connect().await;
    let lane = stack.lane(14);
    let fault = arm(
        &stack,
        json!({"kind": "s3_delivery", "prefix": lane.prefix, "duplicate": true, "reorder": true}),
    );
    let (writes, started, viewers) = drive(&stack, &lane, PARALLEL, Duration::ZERO).await;
    let counters = || {
        let armed = stack.control("faults/list", json!({}));
        armed["s3_delivery"]
            .as_array()
            .and_then(|all| all.iter().find(|f| f["id"] == fault["id"]))
            .cloned()
            .unwrap_or_else(|| panic!("the s3_delivery fault in {armed}"))
    };
    settle_recovered(
        &stack,
        &lane,
        "each S3 event delivered twice, neighbours swapped",
        &writes,
        started,
        viewers,
        |_| {
            let c = counters();
            format!(
                "{} redelivered, {} reordered",
                c["duplicated"], c["reordered"]
            )
        },
    )
    .await;
    let counters = counters();
    disarm(&stack, &fault);
    assert_eq!(
        counters["duplicated"].as_u64(),
        Some(writes.len() as u64),
        "{counters}"
    );
    assert!(counters["reordered"].as_u64() > Some(0), "{counters}");
}

#[tokio::test(flavor = "multi_thread")]
async fn create_invalidation_killed_after_cloudfront_accepted() {
    let stack = Stack::connect().await;
    let lane = stack.lane(15);
    arm(
        &stack,
        json!({"kind": "crash_after", "function": "CreateInvalidationFunction", "service": "cloudfront", "operation": "CreateInvalidation", "contains": lane.distribution_id, "times": 3}),
    );
    let (writes, started, viewers) = drive(&stack, &lane, PARALLEL, Duration::ZERO).await;
    let outcome = settle_recovered(
        &stack,
        &lane,
        "create-invalidation killed after CloudFront accepted",
        &writes,
        started,
        viewers,
        |o| format!("{} accepted requests replayed", o.replayed_calls),
    )
    .await;
    assert!(
        outcome.replayed_calls > 0,
        "the retry after the crash found the invalidation CloudFront had accepted: {outcome:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dedupe_killed_after_its_writes_succeeded() {
    let stack = Stack::connect().await;
    let lane = stack.lane(16);
    // PutItem: the pointer swap or the new batch item (an opener dying half-way);
    // UpdateItem: a path registered, the answer lost.
    let armed: Vec<Value> = [("PutItem", 3), ("UpdateItem", 5)]
        .into_iter()
        .map(|(operation, times)| {
            arm(
                &stack,
                json!({"kind": "crash_after", "function": "DedupeFunction", "service": "dynamodb", "operation": operation, "contains": lane.distribution_id, "times": times}),
            )
        })
        .collect();
    let (writes, started, viewers) = drive(&stack, &lane, PARALLEL, Duration::ZERO).await;
    settle_recovered(
        &stack,
        &lane,
        "dedupe killed after DynamoDB wrote (3 openers, 5 joiners)",
        &writes,
        started,
        viewers,
        |_| String::new(),
    )
    .await;
    // A crash_after fault leaves the list once it has fired all its times.
    let left = stack.control("faults/list", json!({}));
    assert!(
        armed.iter().all(|fault| left["crash_after"]
            .as_array()
            .is_some_and(|all| all.iter().all(|f| f["id"] != fault["id"]))),
        "every kill happened: {left}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opener_that_died_before_its_flush_started() {
    let stack = Stack::connect().await;
    let lane = stack.lane(17);
    let (stale, staged) = stack
        .stage_dead_opener(&lane, "stale/left-behind.html")
        .await;
    let (mut writes, started, viewers) = drive(&stack, &lane, PARALLEL, Duration::ZERO).await;
    writes.push(staged);
    settle_recovered(
        &stack,
        &lane,
        "batch opener died before its flush started",
        &writes,
        started,
        viewers,
        |_| String::new(),
    )
    .await;
    let batches = stack.batches(&lane).await;
    assert!(
        batches
            .iter()
            .any(|b| b["batchId"] == stale
                && b.get("status").map(String::as_str) == Some("COMPLETED")),
        "the stale batch was flushed: {batches:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn many_joiners_racing_batches_that_close() {
    let stack = Stack::connect().await;
    let lane = stack.lane(18);
    // Spread over two and a half debounce windows, 16 at a time: joins keep arriving while
    // each batch closes.
    let spread = stack.info.debounce() * 5 / 2;
    let (writes, started, viewers) = drive(&stack, &lane, 16, spread).await;
    let outcome = settle_recovered(
        &stack,
        &lane,
        "16 concurrent joiners while batches close",
        &writes,
        started,
        viewers,
        |_| String::new(),
    )
    .await;
    assert!(
        outcome.batches >= 2,
        "batches closed mid-stream: {outcome:#?}"
    );
}

/// Lambda at its concurrency limit: collect-keys and dedupe take two of the lane's events at a
/// time and refuse the rest with TooManyRequestsException, which the state machine retries
/// (long, jittered backoff) until every event is in.
#[tokio::test(flavor = "multi_thread")]
async fn lambda_throttled_at_its_concurrency_limit() {
    let stack = Stack::connect().await;
    let lane = stack.lane(21);
    let marker = format!("\"{}", lane.prefix);
    let armed: Vec<Value> = ["CollectKeysFunction", "DedupeFunction"]
        .into_iter()
        .map(|function| {
            arm(
                &stack,
                json!({"kind": "lambda_throttle", "function": function, "concurrency": 2, "contains": marker}),
            )
        })
        .collect();
    let (writes, started, viewers) = drive(&stack, &lane, PARALLEL, Duration::ZERO).await;
    let throttled = || {
        throttled_counts(&stack, "lambda_throttle", &armed)
            .iter()
            .sum::<u64>()
    };
    let outcome = settle_recovered(
        &stack,
        &lane,
        "Lambda at its concurrency limit (collect-keys and dedupe: 2 at a time)",
        &writes,
        started,
        viewers,
        |_| format!("{} invocations throttled", throttled()),
    )
    .await;
    let refused = throttled();
    for fault in &armed {
        disarm(&stack, fault);
    }
    assert!(refused > 0, "the limit was met: {outcome:#?}");
}

/// Step Functions' StartExecution quota, a token bucket per account and Region: the lane's
/// object-changed starts get 2 a second in bursts of 5 (EventBridge retries a refused start by
/// the rule's RetryPolicy), its batch starts 1 a second in bursts of 2 (every object-changed
/// execution asks to start its batch's flush, by name: StartFlush's long retrier, the sweep).
/// Every change still reaches a Completed invalidation.
#[tokio::test(flavor = "multi_thread")]
async fn start_execution_throttled_by_its_token_bucket() {
    let stack = Stack::connect().await;
    let lane = stack.lane(23);
    let armed = [
        arm(
            &stack,
            // One pipe batch start every 20 s: the pipe retries a throttled start in place.
            json!({"kind": "start_throttle", "rate": 0.05, "burst": 1, "contains": format!("\"{}", lane.prefix)}),
        ),
        arm(
            &stack,
            json!({"kind": "start_throttle", "rate": 1.0, "burst": 2, "contains": lane.distribution_id}),
        ),
    ];
    let (writes, started, viewers) = drive(&stack, &lane, PARALLEL, Duration::ZERO).await;
    let throttled = || throttled_counts(&stack, "start_throttle", &armed);
    settle_recovered(
        &stack,
        &lane,
        "StartExecution token bucket (pipe batches 1 per 20 s, invalidate-batch starts 1/s)",
        &writes,
        started,
        viewers,
        |_| {
            let refused = throttled();
            format!(
                "{} pipe-batch and {} invalidate-batch starts throttled",
                refused[0], refused[1]
            )
        },
    )
    .await;
    let refused = throttled();
    for fault in &armed {
        disarm(&stack, fault);
    }
    assert!(refused[0] > 0, "the token bucket was met: {refused:?}");
}

/// A permanent error: every batch FAILED visibly, its execution failed at Submit; after the
/// fix, redriving each failed execution completes it with exactly its planned invalidations.
/// `AccessDenied` comes from IAM itself: an inline policy on create-invalidation's role denies
/// the lane's distribution, and the local stack judges the function's signed request against
/// it (local/iam.py); other codes are CloudFront's answer (a fault).
async fn permanent_error_then_redrive(lane_index: usize, code: &str) {
    let stack = Stack::connect().await;
    let lane = stack.lane(lane_index);
    let (undo, undo_body) = if code == "AccessDenied" {
        let denied = stack.control(
            "iam/deny",
            json!({
                "function": "CreateInvalidationFunction",
                "action": "cloudfront:CreateInvalidation",
                "resource": format!("arn:aws:cloudfront::*:distribution/{}", lane.distribution_id),
            }),
        );
        (
            "iam/undo",
            json!({"role": denied["role"], "policy": denied["policy"]}),
        )
    } else {
        let fault = arm(
            &stack,
            json!({"kind": "cloudfront", "code": code, "operation": "CreateInvalidation", "distribution_id": lane.distribution_id}),
        );
        ("faults/clear", json!({"id": fault["id"]}))
    };
    let (writes, started, viewers) = drive(&stack, &lane, PARALLEL, Duration::ZERO).await;
    let expected_events = writes.len();
    let failed = stack
        .wait_on(
            &lane,
            "every change in a batch, every batch FAILED",
            || async {
                let batches = stack.batches(&lane).await;
                let events: usize = batches
                    .iter()
                    .filter_map(|b| b.get("eventsReceived")?.parse::<usize>().ok())
                    .sum();
                let all_failed = batches
                    .iter()
                    .all(|b| b.get("status").map(String::as_str) == Some("FAILED"));
                if events >= expected_events && all_failed {
                    return Ok(batches);
                }
                Err(format!(
                    "{events} of {expected_events} events planned; {}",
                    describe(&batches)
                ))
            },
        )
        .await;
    let before = stack.score(&lane, "", &writes, started).await;
    assert_eq!(before.failed, before.batches, "{before:#?}");
    assert_eq!(before.failed_visible, before.failed, "{before:#?}");
    assert_eq!(before.invalidations, 0, "{before:#?}");
    for batch in &failed {
        assert!(
            batch.get("lastError").is_some_and(|e| e.contains(code)),
            "{batch:?}"
        );
        assert_eq!(
            stack.failed_state(&batch["batchId"]).await.as_deref(),
            Some("Submit"),
            "{batch:?}"
        );
    }

    stack.control(undo, undo_body);
    for batch in &failed {
        stack.redrive_batch(&batch["batchId"]).await;
    }
    // Until the redriven executions finish, their batches still read FAILED (finished).
    stack.batches_completed(&lane).await;
    let mut outcome = stack
        .settle(
            &lane,
            &format!("{code} on CreateInvalidation, then redrive"),
            &writes,
            started,
        )
        .await;
    outcome.add_freshness(&viewers.finish(&writes));
    outcome.failed_visible = before.failed_visible;
    outcome.failed = before.failed;
    outcome.add_note(format!(
        "{} batches FAILED at Submit with {code}, redriven",
        before.failed
    ));
    outcome.record(&lane);
    outcome.assert_recovered();
}

#[tokio::test(flavor = "multi_thread")]
async fn access_denied_fails_visibly_and_a_redrive_completes_once() {
    permanent_error_then_redrive(19, "AccessDenied").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_such_distribution_fails_visibly_and_a_redrive_completes_once() {
    permanent_error_then_redrive(20, "NoSuchDistribution").await;
}

/// A poison event inside a batch: a message on the ingest queue that no S3 event could be
/// (its object has no key) rides in a pipe batch with the lane's real changes. It is recorded
/// as a failed event and fails its execution as EventsFailed, visibly; every other change of
/// the batch is invalidated as if it were not there.
#[tokio::test(flavor = "multi_thread")]
async fn a_poison_event_inside_a_batch() {
    let stack = Stack::connect().await;
    let lane = stack.lane(29);
    let queue = stack
        .info
        .queues
        .get("IngestQueue")
        .expect("stack.json lists IngestQueue");
    let sqs = aws_sdk_sqs::Client::new(&stack.conf);
    let poison = json!({
        "version": "0", "id": format!("poison-{}", lane.distribution_id),
        "detail-type": "Object Created", "source": "aws.s3", "account": "123456789012",
        "time": "2026-12-02T00:00:00Z", "region": stack.info.region,
        "detail": {"bucket": {"name": stack.info.bucket}, "object": {"size": 1, "note": format!("{}poison", lane.prefix)}},
    });
    let started = Instant::now();
    let changes = mixed_workload(&lane, writes_per_fault());
    let viewers = stack.watch(&lane, &changes);
    let (writes, sent) = tokio::join!(stack.apply(&changes, PARALLEL, Duration::ZERO), async {
        sqs.send_message()
            .queue_url(queue)
            .message_body(poison.to_string())
            .send()
            .await
            .expect("send the poison message")
    });
    assert!(sent.message_id().is_some());
    let mut outcome = stack
        .settle(&lane, "a poison event inside a batch", &writes, started)
        .await;
    outcome.add_freshness(&viewers.finish(&writes));
    outcome.add_note(format!(
        "{} failed event(s) recorded",
        outcome.failed_events
    ));
    outcome.record(&lane);
    outcome.assert_recovered_with_failed_events(1);
}

/// A pipe that cannot start executions: its role loses `states:StartExecution`, so every batch
/// it takes fails and returns to the ingest queue until the queue's redrive policy moves it to
/// `IngestDeadLetterQueue` (the alarm's queue: `cfinv doctor` fails on it). Nothing started,
/// nothing lost: after the fix, the operator redrives the dead-letter queue to its source (the
/// README's `aws sqs start-message-move-task`) and every change is invalidated once.
///
/// The pipe is shared by every lane, so this row stalls all of them: `make e2e` runs it alone,
/// on stack B once B's other rows are done. The ingest queue's visibility timeout is cut to
/// 1 s for the drill, so the 10 receives before the DLQ take a minute, not ten.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "stalls the shared pipe; `make e2e` runs it alone on stack B"]
async fn a_pipe_that_cannot_start_executions() {
    use aws_sdk_sqs::types::QueueAttributeName as A;

    let stack = Stack::connect().await;
    let lane = stack.lane(30);
    let sqs = aws_sdk_sqs::Client::new(&stack.conf);
    let queue_url = |logical: &str| {
        stack
            .info
            .queues
            .get(logical)
            .unwrap_or_else(|| panic!("stack.json lists {logical}"))
            .clone()
    };
    let (ingest, dead_letters) = (queue_url("IngestQueue"), queue_url("IngestDeadLetterQueue"));
    let attribute = |url: String, name: A| {
        let sqs = sqs.clone();
        async move {
            let out = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(name.clone())
                .send()
                .await
                .expect("GetQueueAttributes");
            out.attributes()
                .and_then(|a| a.get(&name))
                .cloned()
                .expect("the attribute asked for")
        }
    };
    let visibility = attribute(ingest.clone(), A::VisibilityTimeout).await;
    let set_visibility = |seconds: &str| {
        sqs.set_queue_attributes()
            .queue_url(&ingest)
            .attributes(A::VisibilityTimeout, seconds)
            .send()
    };
    set_visibility("1")
        .await
        .expect("shorten the visibility timeout");
    let denied = stack.control(
        "iam/deny",
        json!({"role": "IngestPipeRole", "action": "states:StartExecution", "resource": "*"}),
    );

    let (writes, started, viewers) = drive(&stack, &lane, PARALLEL, Duration::ZERO).await;
    let expected = writes.len();
    let dead = stack
        .wait_on(&lane, "every change's message in the ingest DLQ", || {
            let depth = attribute(dead_letters.clone(), A::ApproximateNumberOfMessages);
            async move {
                let n: usize = depth.await.parse().unwrap_or(0);
                if n >= expected {
                    Ok(n)
                } else {
                    Err(format!("{n} of {expected} messages in the ingest DLQ"))
                }
            }
        })
        .await;
    assert_eq!(dead, expected, "one message per change, nothing else");
    assert!(
        stack.batches(&lane).await.is_empty(),
        "an execution started"
    );
    let run = crate::cli::cfinv(&["--json", "doctor", "-d", &lane.distribution_id]);
    assert_eq!(run.code, 1, "doctor must fail: {}", run.stdout);
    let doctor: Value = serde_json::from_str(&run.stdout).expect("doctor's JSON");
    let dlq_check = doctor["checks"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|c| c["name"] == "queue IngestDeadLetterQueue")
        })
        .cloned()
        .expect("doctor checks the ingest DLQ");
    assert_eq!(dlq_check["ok"], json!(false), "{doctor:#}");
    assert!(
        dlq_check["fix"]
            .as_str()
            .is_some_and(|fix| fix.contains("start-message-move-task")),
        "doctor's fix redrives the DLQ: {dlq_check}"
    );

    stack.control(
        "iam/undo",
        json!({"role": denied["role"], "policy": denied["policy"]}),
    );
    set_visibility(&visibility)
        .await
        .expect("restore the visibility timeout");
    let dlq_arn = attribute(dead_letters.clone(), A::QueueArn).await;
    sqs.start_message_move_task()
        .source_arn(dlq_arn)
        .send()
        .await
        .expect("redrive the ingest DLQ to its source");
    settle_recovered(
        &stack,
        &lane,
        "pipe cannot start executions, then DLQ redrive",
        &writes,
        started,
        viewers,
        |_| format!("{dead} messages dead-lettered after 10 receives, redriven"),
    )
    .await;
}
