//! sweep: restarts the flush of every batch left OPEN past debounce + grace.
//!
//! A flush can fail to start (the object-changed execution died after opening the batch).
//! Joiners rotate such a batch when they see it, but a quiet distribution has no joiners, so this
//! scheduled sweep asks for every stale batch's flush again. The request is idempotent by name;
//! if that execution already ended, the batch is left for the outcome recorder and an operator.

use cfinv_core::Result;
use cfinv_core::model::{Clock, FlushRequest, OpenWindow};
use cfinv_core::store::SweepStore;
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

#[derive(Debug, Clone)]
pub struct Settings {
    pub window: OpenWindow,
    /// The `Stack` dimension of the metric.
    pub stack: String,
}

impl Settings {
    /// The open window's variables and `STACK_NAME`.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            window: OpenWindow::from_env()?,
            stack: std::env::var("STACK_NAME").unwrap_or_default(),
        })
    }
}

/// One scheduled run: the sweep, then its metric line on stdout.
pub async fn run<S: SweepStore, W: Workflow>(
    store: &S,
    workflow: &W,
    clock: &dyn Clock,
    settings: &Settings,
) -> Result<SweepReport> {
    let report = sweep(store, workflow, clock, settings.window).await?;
    let now_millis = (clock.now().unix_timestamp_nanos() / 1_000_000) as i64;
    println!("{}", metric_line(&settings.stack, &report, now_millis));
    Ok(report)
}

/// Batches past their open window are stale.
pub async fn sweep<S: SweepStore, W: Workflow>(
    store: &S,
    workflow: &W,
    clock: &dyn Clock,
    window: OpenWindow,
) -> Result<SweepReport> {
    let now = clock.now();
    let stale = store.open_batches_before(window.stale_before(now)).await?;
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
            .start_flush(&FlushRequest::new(
                batch.clone(),
                opened_at,
                window.debounce,
            ))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cfinv_core::store::JoinStore;
    use std::sync::Mutex;

    use cfinv_core::memory::MemoryStore;
    use cfinv_core::model::{BatchRef, SystemClock};
    use time::OffsetDateTime;

    use super::*;

    #[derive(Default)]
    struct RecordingWorkflow {
        started: Mutex<Vec<FlushRequest>>,
        ended: Vec<String>,
    }
    impl Workflow for RecordingWorkflow {
        async fn start_flush(&self, request: &FlushRequest) -> Result<FlushStart> {
            if self.ended.contains(&request.batch.batch_id) {
                return Ok(FlushStart::AlreadyExists);
            }
            self.started.lock().unwrap().push(request.clone());
            Ok(FlushStart::Started)
        }
    }

    #[tokio::test]
    async fn only_batches_past_debounce_and_grace_are_flushed_again() {
        let store = MemoryStore::new();
        let now = OffsetDateTime::now_utc();
        for (id, age) in [("E1-old", 200), ("E1-ended", 300), ("E1-young", 10)] {
            let b = BatchRef {
                batch_id: id.into(),
                distribution_id: "E1".into(),
            };
            store
                .create_batch(&b, now - time::Duration::seconds(age))
                .await
                .unwrap();
        }
        let workflow = RecordingWorkflow {
            ended: vec!["E1-ended".into()],
            ..Default::default()
        };
        let report = sweep(
            &store,
            &workflow,
            &SystemClock,
            OpenWindow {
                debounce: Duration::from_secs(30),
                grace: Duration::from_secs(60),
            },
        )
        .await
        .unwrap();
        assert_eq!(report.stale, 2);
        assert_eq!(report.started, ["E1-old"]);
        assert_eq!(report.already_ended, ["E1-ended"]);
        assert!(
            (300..305).contains(&report.oldest_age_seconds),
            "{}",
            report.oldest_age_seconds
        );
        let started = workflow.started.lock().unwrap();
        assert_eq!(started[0].batch.batch_id, "E1-old");
    }

    #[test]
    fn the_metric_line_is_embedded_metric_format() {
        let report = SweepReport {
            oldest_age_seconds: 42,
            ..Default::default()
        };
        let line: serde_json::Value =
            serde_json::from_str(&metric_line("prod", &report, 1_700_000_000_000)).unwrap();
        assert_eq!(line["OldestOpenBatchAgeSeconds"], 42);
        assert_eq!(line["Stack"], "prod");
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "OldestOpenBatchAgeSeconds"
        );
    }
}
