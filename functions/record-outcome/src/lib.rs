//! record-outcome: turns Step Functions "Execution Status Change" events into audit records.
//!
//! This is the safety net that catches what no task can report itself: timeouts, crashes,
//! aborted executions. A failed batch execution marks its batch FAILED (and a later success of
//! the redriven execution clears it); a failed object-changed execution is recorded on its own,
//! with the S3 event it carried, so no change disappears before it reached a batch.

use cfinv_core::collect::EVENTS_FAILED_ERROR;
use cfinv_core::metrics::{BATCHES_FAILED, EVENTS_FAILED, Metrics};
use cfinv_core::model::{BatchRef, ExecutionStatus, execution_name, parse_timestamp};
use cfinv_core::store::{Outcome, OutcomeStore};
use cfinv_core::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusChange {
    execution_arn: String,
    state_machine_arn: String,
    status: ExecutionStatus,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    cause: Option<String>,
    /// Epoch milliseconds.
    #[serde(default)]
    stop_date: Option<i64>,
}

/// What was recorded, for the log and the tests.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    pub kind: &'static str,
    pub status: ExecutionStatus,
    pub execution_arn: String,
}

/// Records the outcome; a failed, timed-out or aborted execution also counts as a failed batch
/// (per distribution) or a failed event.
pub async fn record<S: OutcomeStore>(
    store: &S,
    batch_machine_arn: &str,
    metrics: &Metrics,
    event: &Value,
) -> Result<Recorded> {
    let detail = event
        .get("detail")
        .ok_or_else(|| Error::InvalidEvent("status change event has no detail".into()))?;
    let change: StatusChange = serde_json::from_value(detail.clone())
        .map_err(|e| Error::InvalidEvent(format!("status change detail: {e}")))?;
    let at = change
        .stop_date
        .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok())
        .or_else(|| {
            event
                .get("time")
                .and_then(Value::as_str)
                .and_then(parse_timestamp)
        })
        .unwrap_or_else(OffsetDateTime::now_utc);
    let outcome = Outcome {
        status: change.status,
        execution_arn: change.execution_arn.clone(),
        error: change.error.clone(),
        cause: change.cause.clone(),
        at,
    };
    let failed = matches!(
        change.status,
        ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted
    );
    let kind = if change.state_machine_arn == batch_machine_arn {
        let input = change.input.as_deref().unwrap_or("{}");
        let batch: BatchRef = serde_json::from_str(input).map_err(|e| {
            Error::InvalidEvent(format!("batch execution input is not a batch: {e}"))
        })?;
        store.record_outcome(&batch, &outcome).await?;
        if failed {
            metrics.publish_for(&batch.distribution_id, at, &[(BATCHES_FAILED, 1)]);
        }
        "batch"
    } else if change.error.as_deref() == Some(EVENTS_FAILED_ERROR) {
        // dedupe recorded each failed event of the batch (and counted it) before the execution
        // failed to show them: recording the whole batch again would list its good events too.
        "events"
    } else {
        store
            .record_failed_event(
                execution_name(&change.execution_arn),
                &outcome,
                change.input.as_deref().unwrap_or(""),
            )
            .await?;
        if failed {
            metrics.publish(at, &[], &[(EVENTS_FAILED, 1)]);
        }
        "event"
    };
    tracing::info!(kind, status = %change.status, execution = %change.execution_arn, error = change.error.as_deref(), "outcome recorded");
    Ok(Recorded {
        kind,
        status: change.status,
        execution_arn: change.execution_arn,
    })
}

#[cfg(test)]
mod tests {
    use cfinv_core::memory::MemoryStore;
    use cfinv_core::model::BatchStatus;
    use serde_json::json;

    use super::*;

    const BATCH_SM: &str = "arn:aws:states:us-east-1:1:stateMachine:invalidate-batch";
    const EVENT_SM: &str = "arn:aws:states:us-east-1:1:stateMachine:object-changed";

    fn status_change(machine: &str, name: &str, status: &str, stop_ms: i64) -> Value {
        json!({
            "version": "0", "id": "x", "detail-type": "Step Functions Execution Status Change",
            "source": "aws.states", "time": "2026-11-25T10:00:00Z",
            "detail": {
                "executionArn": format!("{}:{name}", machine.replace(":stateMachine:", ":execution:")),
                "stateMachineArn": machine, "name": name, "status": status,
                "startDate": stop_ms - 1000, "stopDate": stop_ms,
                "input": "{\"batchId\":\"E1-b\",\"distributionId\":\"E1\",\"flushAt\":\"2026-11-25T10:00:00.000Z\"}",
                "error": if status == "SUCCEEDED" { Value::Null } else { json!("NoSuchDistribution") },
                "cause": if status == "SUCCEEDED" { Value::Null } else { json!("E1 does not exist") }
            }
        })
    }

    #[tokio::test]
    async fn a_failed_batch_execution_marks_the_batch_failed() {
        let (store, metrics) = (MemoryStore::new(), Metrics::recording("prod"));
        let rec = record(
            &store,
            BATCH_SM,
            &metrics,
            &status_change(BATCH_SM, "E1-b", "FAILED", 1_000_000),
        )
        .await
        .unwrap();
        assert_eq!(rec.kind, "batch");
        let batch = store.batch("E1-b").unwrap();
        assert_eq!(batch.batch.status, BatchStatus::Failed);
        // Step Functions' error and its cause, as DynamoDB records them (lifecycle.rs).
        assert_eq!(
            batch.last_error.as_deref(),
            Some("NoSuchDistribution: E1 does not exist")
        );
        let lines = metrics.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (&lines[0]["DistributionId"], &lines[0]["BatchesFailed"]),
            (&json!("E1"), &json!(1))
        );
        assert_eq!(
            lines[0]["_aws"]["Timestamp"], 1_000_000,
            "the execution's stop time"
        );
    }

    #[tokio::test]
    async fn a_late_failure_never_overrides_a_newer_success() {
        let (store, metrics) = (MemoryStore::new(), Metrics::recording("prod"));
        record(
            &store,
            BATCH_SM,
            &metrics,
            &status_change(BATCH_SM, "E1-b", "SUCCEEDED", 2_000_000),
        )
        .await
        .unwrap();
        record(
            &store,
            BATCH_SM,
            &metrics,
            &status_change(BATCH_SM, "E1-b", "FAILED", 1_000_000),
        )
        .await
        .unwrap();
        assert_ne!(
            store.batch("E1-b").unwrap().batch.status,
            BatchStatus::Failed
        );
    }

    #[tokio::test]
    async fn a_failed_object_changed_execution_is_recorded_and_cleared_by_its_redrive() {
        let (store, metrics) = (MemoryStore::new(), Metrics::recording("prod"));
        let rec = record(
            &store,
            BATCH_SM,
            &metrics,
            &status_change(EVENT_SM, "ev-1", "FAILED", 1_000),
        )
        .await
        .unwrap();
        assert_eq!(rec.kind, "event");
        assert_eq!(store.failed_events().len(), 1);
        record(
            &store,
            BATCH_SM,
            &metrics,
            &status_change(EVENT_SM, "ev-1", "SUCCEEDED", 2_000),
        )
        .await
        .unwrap();
        assert!(store.failed_events().is_empty());
        let lines = metrics.lines();
        assert_eq!(lines.len(), 1, "the redrive's success counts nothing");
        assert_eq!(lines[0]["EventsFailed"], 1);
        assert_eq!(
            lines[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Stack"]])
        );
    }

    #[tokio::test]
    async fn a_batch_whose_events_dedupe_recorded_is_not_recorded_again() {
        let (store, metrics) = (MemoryStore::new(), Metrics::recording("prod"));
        let mut event = status_change(EVENT_SM, "batch-1", "FAILED", 1_000);
        event["detail"]["error"] = json!(EVENTS_FAILED_ERROR);
        let rec = record(&store, BATCH_SM, &metrics, &event).await.unwrap();
        assert_eq!(rec.kind, "events");
        assert!(store.failed_events().is_empty());
        assert!(metrics.lines().is_empty(), "dedupe counted them");
    }

    #[tokio::test]
    async fn a_malformed_status_event_is_a_named_error() {
        let (store, metrics) = (MemoryStore::new(), Metrics::recording("prod"));
        for bad in [
            json!({}),
            json!({"detail": {"status": "FAILED"}}),
            json!({"detail": 3}),
        ] {
            assert_eq!(
                record(&store, BATCH_SM, &metrics, &bad)
                    .await
                    .unwrap_err()
                    .name(),
                "InvalidEvent",
                "{bad}"
            );
        }
    }
}
