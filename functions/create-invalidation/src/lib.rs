//! create-invalidation: closes a batch, plans the cheapest valid path set, stores the plan, and
//! submits one CreateInvalidation per chunk.
//!
//! Idempotent end to end: the close is conditional, the plan is committed once and replayed as
//! stored on every retry or redrive, and each chunk's `CallerReference` is `<batchId>#<n>`, so
//! CloudFront itself returns the existing invalidation when a retry repeats a request.

use cfinv_core::cdn::Cdn;
use cfinv_core::metrics::{BATCHES_SUBMITTED, Metrics, PATHS_BILLED, PATHS_PLANNED};
use cfinv_core::model::{BatchRef, Clock};
use cfinv_core::plan::{PlanOptions, plan};
use cfinv_core::schema::keys;
use cfinv_core::setup::env_number;
use cfinv_core::store::SubmitStore;
use cfinv_core::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub plan: PlanOptions,
    /// How long the state machine waits before the first poll (`waitSeconds` in the output).
    pub poll_seconds: u64,
}

impl Settings {
    /// `COLLAPSE_THRESHOLD` (default: the planner's) and `POLL_SECONDS` (default 60).
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            plan: PlanOptions {
                collapse_threshold: env_number(
                    "COLLAPSE_THRESHOLD",
                    PlanOptions::default().collapse_threshold,
                )?,
                ..PlanOptions::default()
            },
            poll_seconds: env_number("POLL_SECONDS", 60)?,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitInput {
    #[serde(flatten)]
    pub batch: BatchRef,
    /// `$$.Execution.Id`, recorded on the batch so the audit trail links to the console.
    #[serde(default)]
    pub execution_arn: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitOutput {
    pub batch_id: String,
    pub distribution_id: String,
    pub invalidation_ids: Vec<String>,
    pub billed_paths: usize,
    pub wait_seconds: u64,
}

/// Submits the batch; on failure the error is written to the batch item before it is returned.
pub async fn submit<S: SubmitStore, C: Cdn>(
    store: &S,
    cdn: &C,
    clock: &dyn Clock,
    settings: &Settings,
    metrics: &Metrics,
    input: SubmitInput,
) -> Result<SubmitOutput> {
    match submit_batch(store, cdn, clock, settings, metrics, &input).await {
        Ok(out) => Ok(out),
        Err(error) => {
            tracing::error!(batch = %input.batch.batch_id, error = %error, kind = error.name(), "submit failed");
            if let Err(e) = store
                .record_error(&input.batch.batch_id, &error, clock.now())
                .await
            {
                tracing::error!(batch = %input.batch.batch_id, error = %e, "could not record the error on the batch");
            }
            Err(error)
        }
    }
}

async fn submit_batch<S: SubmitStore, C: Cdn>(
    store: &S,
    cdn: &C,
    clock: &dyn Clock,
    settings: &Settings,
    metrics: &Metrics,
    input: &SubmitInput,
) -> Result<SubmitOutput> {
    let SubmitInput {
        batch: batch_ref,
        execution_arn,
    } = input;
    let batch = store
        .close_batch(batch_ref, clock.now(), execution_arn)
        .await?;
    if batch.distribution_id != batch_ref.distribution_id {
        return Err(Error::InvalidInput(format!(
            "batch {} belongs to {}, not {}",
            batch.batch_id, batch.distribution_id, batch_ref.distribution_id
        )));
    }
    store
        .delete_pointer(&batch.distribution_id, &batch.batch_id)
        .await?;

    // Distinct paths planned, known only to the invocation that made the plan (a replay reads
    // the stored chunks, which hold what is billed).
    let mut planned_paths = None;
    let chunks = match batch.plan {
        Some(_) => store.load_plan(&batch.batch_id).await?,
        None => {
            let received = store.batch_paths(&batch.batch_id).await?;
            if received.paths.is_empty() {
                // Its opener died after opening it; the retried join landed in another batch.
                tracing::warn!(batch = %batch.batch_id, "batch closed with no path: marked EMPTY, nothing to invalidate");
                store.mark_empty(&batch.batch_id, clock.now()).await?;
                return Ok(SubmitOutput {
                    batch_id: batch.batch_id,
                    distribution_id: batch.distribution_id,
                    invalidation_ids: Vec::new(),
                    billed_paths: 0,
                    wait_seconds: settings.poll_seconds,
                });
            }
            let planned = plan(received.paths.iter().cloned(), &settings.plan);
            tracing::info!(
                batch = %batch.batch_id,
                received = received.paths.len(),
                events = received.events,
                planned = planned.billed_paths(),
                chunks = planned.chunks.len(),
                "planned"
            );
            planned_paths = Some(received.paths.len());
            store
                .commit_plan(&batch.batch_id, &planned, &received, clock.now())
                .await?
        }
    };

    let mut invalidation_ids = Vec::with_capacity(chunks.len());
    for chunk in &chunks {
        let id = match &chunk.invalidation_id {
            Some(id) => id.clone(),
            None => {
                let reference = keys::caller_reference(&batch.batch_id, chunk.index);
                let id = cdn
                    .create_invalidation(&batch.distribution_id, &reference, &chunk.paths)
                    .await?;
                tracing::info!(batch = %batch.batch_id, invalidation = %id, caller_reference = %reference, paths = chunk.paths.len(), "invalidation created");
                store
                    .record_invalidation(&batch.batch_id, chunk.index, &id, clock.now())
                    .await?;
                id
            }
        };
        invalidation_ids.push(id);
    }
    let billed_paths = chunks.iter().map(|c| c.paths.len()).sum();
    store
        .mark_submitted(&batch.batch_id, billed_paths, clock.now())
        .await?;
    let mut figures = vec![(BATCHES_SUBMITTED, 1), (PATHS_BILLED, billed_paths as u64)];
    figures.extend(planned_paths.map(|n| (PATHS_PLANNED, n as u64)));
    metrics.publish_for(&batch.distribution_id, clock.now(), &figures);
    Ok(SubmitOutput {
        batch_id: batch.batch_id,
        distribution_id: batch.distribution_id,
        invalidation_ids,
        billed_paths,
        wait_seconds: settings.poll_seconds,
    })
}

#[cfg(test)]
mod tests {
    use cfinv_core::collect::PathChange;
    use cfinv_core::event::ChangeKind;
    use cfinv_core::memory::{FakeCdn, MemoryStore};
    use cfinv_core::model::{BatchStatus, SystemClock};
    use cfinv_core::store::JoinStore;
    use time::OffsetDateTime;

    use super::*;

    const SETTINGS: Settings = Settings {
        plan: PlanOptions {
            collapse_threshold: 10,
            max_paths_per_request: 3000,
            max_wildcards: 15,
            max_chunk_bytes: 300_000,
        },
        poll_seconds: 7,
    };

    async fn open_batch(store: &MemoryStore, paths: &[String]) -> SubmitInput {
        let batch = BatchRef {
            batch_id: "E1-b".into(),
            distribution_id: "E1".into(),
        };
        store
            .create_batch(&batch, OffsetDateTime::now_utc())
            .await
            .unwrap();
        for (i, p) in paths.iter().enumerate() {
            let change = PathChange {
                distribution_id: "E1".into(),
                path: p.clone(),
                bucket: "site".into(),
                key: p[1..].into(),
                version_id: None,
                etag: None,
                sequencer: None,
                event_time: None,
                event_id: Some(format!("ev{i}")),
                change: ChangeKind::Created,
                reason: None,
            };
            store
                .put_path("E1-b", &change, OffsetDateTime::now_utc())
                .await
                .unwrap();
        }
        SubmitInput {
            batch,
            execution_arn: "arn:exec".into(),
        }
    }

    fn metrics() -> Metrics {
        Metrics::recording("test")
    }

    /// Collapsing off: exact paths only.
    const EXACT: Settings = Settings {
        plan: PlanOptions {
            collapse_threshold: 0,
            ..SETTINGS.plan
        },
        ..SETTINGS
    };

    fn paths(n: usize, dir: &str) -> Vec<String> {
        (0..n).map(|i| format!("/{dir}/f{i:05}.html")).collect()
    }

    #[tokio::test]
    async fn submits_the_planned_paths_once_and_records_them() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let input = open_batch(&store, &["/a.png".into(), "/b%20c.png".into()]).await;
        let out = submit(&store, &cdn, &SystemClock, &SETTINGS, &metrics(), input)
            .await
            .unwrap();
        assert_eq!(out.invalidation_ids, ["I1"]);
        assert_eq!((out.billed_paths, out.wait_seconds), (2, 7));
        assert_eq!(
            cdn.invalidations(),
            [(
                "E1-b#0".to_owned(),
                vec!["/a.png".to_owned(), "/b%20c.png".to_owned()]
            )]
        );
        let stored = store.batch("E1-b").unwrap();
        assert_eq!(stored.batch.status, BatchStatus::Submitted);
        assert_eq!(stored.billed, Some(2));
    }

    #[tokio::test]
    async fn a_submitted_batch_publishes_its_planned_and_billed_paths() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let input = open_batch(&store, &paths(12, "img")).await;
        let metrics = metrics();
        submit(&store, &cdn, &SystemClock, &SETTINGS, &metrics, input)
            .await
            .unwrap();
        let lines = metrics.lines();
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["DistributionId"], "E1");
        assert_eq!(
            (
                line["BatchesSubmitted"].as_u64(),
                line["PathsPlanned"].as_u64(),
                line["PathsBilled"].as_u64()
            ),
            (Some(1), Some(12), Some(1)),
            "12 paths under /img/ collapse to /img/*"
        );
        let names: Vec<_> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["BatchesSubmitted", "PathsBilled", "PathsPlanned"]);
    }

    #[tokio::test]
    async fn a_failed_submit_publishes_nothing_and_its_replay_no_planned_paths() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let input = open_batch(&store, &paths(2, "img")).await;
        let metrics = metrics();
        cdn.lose_next_response();
        submit(
            &store,
            &cdn,
            &SystemClock,
            &SETTINGS,
            &metrics,
            input.clone(),
        )
        .await
        .unwrap_err();
        assert!(metrics.lines().is_empty());
        submit(&store, &cdn, &SystemClock, &SETTINGS, &metrics, input)
            .await
            .unwrap();
        let lines = metrics.lines();
        assert_eq!(lines[0]["PathsBilled"], 2);
        assert!(lines[0].get("PathsPlanned").is_none(), "{}", lines[0]);
    }

    #[tokio::test]
    async fn a_retry_after_a_lost_response_creates_no_second_invalidation() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let input = open_batch(&store, &paths(3, "img")).await;
        submit(
            &store,
            &cdn,
            &SystemClock,
            &SETTINGS,
            &metrics(),
            input.clone(),
        )
        .await
        .unwrap();
        // Step Functions retries (or an operator redrives) the same task.
        let again = submit(&store, &cdn, &SystemClock, &SETTINGS, &metrics(), input)
            .await
            .unwrap();
        assert_eq!(again.invalidation_ids, ["I1"]);
        assert_eq!(cdn.invalidations().len(), 1);
        assert_eq!(
            cdn.create_calls(),
            1,
            "a recorded invalidation is not requested again"
        );
    }

    #[tokio::test]
    async fn an_accepted_request_whose_response_was_lost_is_not_paid_twice() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let input = open_batch(&store, &paths(2, "img")).await;
        cdn.lose_next_response();
        let err = submit(
            &store,
            &cdn,
            &SystemClock,
            &SETTINGS,
            &metrics(),
            input.clone(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.name(), "ServiceUnavailable");
        // The retry repeats the same CallerReference: CloudFront returns the existing one.
        let out = submit(&store, &cdn, &SystemClock, &SETTINGS, &metrics(), input)
            .await
            .unwrap();
        assert_eq!(out.invalidation_ids, ["I1"]);
        assert_eq!(cdn.invalidations().len(), 1);
        assert_eq!(cdn.create_calls(), 2);
    }

    #[tokio::test]
    async fn the_stored_plan_is_replayed_even_when_settings_changed() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let input = open_batch(&store, &paths(12, "img")).await;
        cdn.fail_next([Error::Throttling("rate".into())]);
        let err = submit(
            &store,
            &cdn,
            &SystemClock,
            &SETTINGS,
            &metrics(),
            input.clone(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.name(), "Throttling");
        assert!(
            store
                .batch("E1-b")
                .unwrap()
                .last_error
                .unwrap()
                .starts_with("Throttling"),
            "error written to the batch"
        );
        // The operator turns collapsing off before the retry: the batch keeps its committed plan.
        let no_collapse = Settings {
            plan: PlanOptions {
                collapse_threshold: 0,
                ..SETTINGS.plan
            },
            ..SETTINGS
        };
        let out = submit(&store, &cdn, &SystemClock, &no_collapse, &metrics(), input)
            .await
            .unwrap();
        assert_eq!(
            cdn.invalidations(),
            [("E1-b#0".to_owned(), vec!["/img/*".to_owned()])]
        );
        assert_eq!(out.billed_paths, 1);
    }

    #[tokio::test]
    async fn more_than_3000_exact_paths_are_split_into_chunks_with_their_own_references() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let input = open_batch(&store, &paths(3001, "img")).await;
        let out = submit(&store, &cdn, &SystemClock, &EXACT, &metrics(), input)
            .await
            .unwrap();
        let refs: Vec<_> = cdn
            .invalidations()
            .into_iter()
            .map(|(r, p)| (r, p.len()))
            .collect();
        assert_eq!(
            refs,
            [("E1-b#0".to_owned(), 3000), ("E1-b#1".to_owned(), 1)]
        );
        assert_eq!(out.billed_paths, 3001);
    }

    #[tokio::test]
    async fn too_many_in_progress_on_the_second_chunk_keeps_the_first() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let input = open_batch(&store, &paths(3001, "img")).await;
        // Chunk 0 goes through, chunk 1 hits the in-progress limit.
        let first = submit(
            &store,
            &Limited {
                cdn: &cdn,
                allow: 1,
            },
            &SystemClock,
            &EXACT,
            &metrics(),
            input.clone(),
        )
        .await;
        assert_eq!(first.unwrap_err().name(), "TooManyInvalidationsInProgress");
        let out = submit(&store, &cdn, &SystemClock, &EXACT, &metrics(), input)
            .await
            .unwrap();
        assert_eq!(out.invalidation_ids.len(), 2);
        assert_eq!(cdn.invalidations().len(), 2);
    }

    #[tokio::test]
    async fn an_empty_batch_submits_nothing_and_is_not_an_error() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let input = open_batch(&store, &[]).await;
        let out = submit(&store, &cdn, &SystemClock, &SETTINGS, &metrics(), input)
            .await
            .unwrap();
        assert!(out.invalidation_ids.is_empty());
        assert_eq!(cdn.create_calls(), 0);
        let batch = store.batch("E1-b").unwrap();
        assert_eq!(
            batch.batch.status,
            BatchStatus::Empty,
            "not a COMPLETED batch"
        );
        assert!(batch.batch.plan.is_none(), "nothing planned or billed");
    }

    /// CloudFront that accepts `allow` requests, then answers TooManyInvalidationsInProgress.
    struct Limited<'a> {
        cdn: &'a FakeCdn,
        allow: usize,
    }
    impl Cdn for Limited<'_> {
        async fn create_invalidation(&self, d: &str, r: &str, p: &[String]) -> Result<String> {
            if self.cdn.create_calls() >= self.allow {
                return Err(Error::TooManyInvalidationsInProgress(d.to_owned()));
            }
            self.cdn.create_invalidation(d, r, p).await
        }
        async fn invalidation_status(
            &self,
            d: &str,
            i: &str,
        ) -> Result<cfinv_core::cdn::InvalidationStatus> {
            self.cdn.invalidation_status(d, i).await
        }
    }
}
