//! sweep: restarts the flush of every batch left OPEN past debounce + grace.
//!
//! A flush can fail to start (the object-changed execution died after opening the batch).
//! Joiners rotate such a batch when they see it, but a quiet distribution has no joiners, so this
//! scheduled sweep asks for every stale batch's flush again. The request is idempotent by name;
//! if that execution already ended, the batch is left for the outcome recorder and an operator.

use std::time::Duration;

use cfinv_core::Result;
use cfinv_core::model::{Clock, FlushRequest};
use cfinv_core::store::BatchStore;
use cfinv_core::workflow::{FlushStart, Workflow};
use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepReport {
    pub stale: usize,
    /// Age of the oldest stale batch (0 when there is none): the stale-batch alarm's metric.
    pub oldest_age_seconds: i64,
    pub started: Vec<String>,
    /// Stale batches whose flush execution already exists and has ended: look at it.
    pub already_ended: Vec<String>,
}

/// Batches opened more than `debounce + grace` ago are stale.
pub async fn sweep<S: BatchStore, W: Workflow>(
    store: &S,
    workflow: &W,
    clock: &dyn Clock,
    debounce: Duration,
    grace: Duration,
) -> Result<SweepReport> {
    let now = clock.now();
    let stale = store.open_batches_before(now - (debounce + grace)).await?;
    let mut report = SweepReport {
        stale: stale.len(),
        oldest_age_seconds: stale
            .iter()
            .map(|(_, opened)| (now - *opened).whole_seconds())
            .max()
            .unwrap_or(0),
        ..SweepReport::default()
    };
    for (batch, opened_at) in stale {
        match workflow
            .start_flush(&FlushRequest::new(batch.clone(), opened_at, debounce))
            .await?
        {
            FlushStart::Started => {
                tracing::warn!(batch = %batch.batch_id, "stale open batch: flush started");
                report.started.push(batch.batch_id);
            }
            FlushStart::AlreadyExists => {
                tracing::error!(batch = %batch.batch_id, "stale open batch whose flush already ended: redrive it");
                report.already_ended.push(batch.batch_id);
            }
        }
    }
    Ok(report)
}

/// The report as a CloudWatch Embedded Metric Format line: printed to stdout, it becomes the
/// `OldestOpenBatchAgeSeconds` metric with no extra API call or permission.
pub fn metric_line(stack: &str, report: &SweepReport, now_millis: i64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now_millis,
            "CloudWatchMetrics": [{
                "Namespace": "CfInvalidator",
                "Dimensions": [["Stack"]],
                "Metrics": [{"Name": "OldestOpenBatchAgeSeconds", "Unit": "Seconds"}]
            }]
        },
        "Stack": stack,
        "OldestOpenBatchAgeSeconds": report.oldest_age_seconds
    })
    .to_string()
}
