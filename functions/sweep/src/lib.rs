//! sweep: restarts the flush of every batch left OPEN past debounce + grace.
//!
//! A flush can fail to start (the object-changed execution died after opening the batch).
//! Joiners rotate such a batch when they see it, but a quiet distribution has no joiners, so this
//! scheduled sweep asks for every stale batch's flush again. The request is idempotent by name;
//! if that execution already ended, the batch is left for the outcome recorder and an operator.

use cfinv_core::Result;
use cfinv_core::metrics::{Metrics, OLDEST_OPEN_BATCH_AGE_SECONDS};
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

/// One scheduled run: the sweep, then the age of the oldest stale batch as a metric (the
/// stale-batch alarm's, per stack: a 0 every run keeps the alarm's data current).
pub async fn run<S: SweepStore, W: Workflow>(
    store: &S,
    workflow: &W,
    clock: &dyn Clock,
    window: OpenWindow,
    metrics: &Metrics,
) -> Result<SweepReport> {
    let report = sweep(store, workflow, clock, window).await?;
    metrics.publish(
        clock.now(),
        &[],
        &[(
            OLDEST_OPEN_BATCH_AGE_SECONDS,
            report.oldest_age_seconds.max(0) as u64,
        )],
    );
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

    #[tokio::test]
    async fn a_run_publishes_the_oldest_stale_age_for_the_alarm() {
        let store = MemoryStore::new();
        let now = OffsetDateTime::now_utc();
        let batch = BatchRef {
            batch_id: "E1-old".into(),
            distribution_id: "E1".into(),
        };
        store
            .create_batch(&batch, now - time::Duration::seconds(200))
            .await
            .unwrap();
        let metrics = Metrics::recording("prod");
        let window = OpenWindow {
            debounce: Duration::from_secs(30),
            grace: Duration::from_secs(60),
        };
        run(
            &store,
            &RecordingWorkflow::default(),
            &SystemClock,
            window,
            &metrics,
        )
        .await
        .unwrap();
        let lines = metrics.lines();
        assert_eq!(lines.len(), 1);
        // The alarm in template.yaml names exactly this namespace, metric and dimension.
        let directive = &lines[0]["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "CfInvalidator");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Stack"]]));
        assert_eq!(directive["Metrics"][0]["Name"], "OldestOpenBatchAgeSeconds");
        assert_eq!(directive["Metrics"][0]["Unit"], "Seconds");
        assert_eq!(lines[0]["Stack"], "prod");
        let age = lines[0]["OldestOpenBatchAgeSeconds"].as_u64().unwrap();
        assert!((200..205).contains(&age), "{age}");
    }
}
