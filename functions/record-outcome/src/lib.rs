//! record-outcome: turns Step Functions "Execution Status Change" events into audit records.
//!
//! This is the safety net that catches what no task can report itself: timeouts, crashes,
//! aborted executions. A failed batch execution marks its batch FAILED (and a later success of
//! the redriven execution clears it); a failed object-changed execution is recorded on its own,
//! with the S3 event it carried, so no change disappears before it reached a batch.

use cfinv_core::model::{BatchRef, parse_timestamp};
use cfinv_core::store::{BatchStore, Outcome};
use cfinv_core::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusChange {
    execution_arn: String,
    state_machine_arn: String,
    status: String,
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
    pub status: String,
    pub execution_arn: String,
}

pub async fn record<S: BatchStore>(
    store: &S,
    batch_machine_arn: &str,
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
        status: change.status.clone(),
        execution_arn: change.execution_arn.clone(),
        error: change.error.clone(),
        cause: change.cause.clone(),
        at,
    };
    let kind = if change.state_machine_arn == batch_machine_arn {
        let input = change.input.as_deref().unwrap_or("{}");
        let batch: BatchRef = serde_json::from_str(input).map_err(|e| {
            Error::InvalidEvent(format!("batch execution input is not a batch: {e}"))
        })?;
        store.record_outcome(&batch, &outcome).await?;
        "batch"
    } else {
        store
            .record_failed_event(&outcome, change.input.as_deref().unwrap_or(""))
            .await?;
        "event"
    };
    tracing::info!(kind, status = %change.status, execution = %change.execution_arn, error = ?change.error, "outcome recorded");
    Ok(Recorded {
        kind,
        status: change.status,
        execution_arn: change.execution_arn,
    })
}
