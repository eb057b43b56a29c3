//! create-invalidation: closes a batch, plans the cheapest valid path set, stores the plan, and
//! submits one CreateInvalidation per chunk.
//!
//! Idempotent end to end: the close is conditional, the plan is committed once and replayed as
//! stored on every retry or redrive, and each chunk's `CallerReference` is `<batchId>#<n>`, so
//! CloudFront itself returns the existing invalidation when a retry repeats a request.
//!
//! With `DISCOVERY_BUCKET` set (the stack's `Routes` is empty), the batch's paths are made
//! against the bucket's root, and the plan follows the distribution's configuration, read once
//! per batch before the plan is committed and stored with it (`functions/core/src/
//! distribution.rs`, docs/design.md §3): a replay or redrive replays the stored plan and never
//! reads the configuration again.

use cfinv_core::cdn::Cdn;
use cfinv_core::cdn::fast_poll_seconds;
use cfinv_core::distribution::DistributionConfigs;
use cfinv_core::metrics::{BATCHES_SUBMITTED, Metrics, PATHS_BILLED, PATHS_PLANNED};
use cfinv_core::model::{BatchRef, Clock};
use cfinv_core::plan::{PlanOptions, plan};
use cfinv_core::schema::keys;
use cfinv_core::setup::{env_number, env_optional};
use cfinv_core::store::SubmitStore;
use cfinv_core::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone)]
pub struct Settings {
    pub plan: PlanOptions,
    /// `PollSeconds`: the first poll comes after the shorter of it and the fast polls' wait.
    pub poll_seconds: u64,
    /// The bucket whose paths are mapped through each distribution's configuration; `None`
    /// when the hand-written routes already mapped them.
    pub discovery_bucket: Option<String>,
}

impl Settings {
    /// `COLLAPSE_THRESHOLD` (default: the planner's), `POLL_SECONDS` (default 60) and
    /// `DISCOVERY_BUCKET` (empty: off).
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
            discovery_bucket: env_optional("DISCOVERY_BUCKET"),
        })
    }

    /// How long the state machine waits before the first poll (`waitSeconds` in the output):
    /// the start of poll-status's fast polls (`functions/core/src/cdn.rs`).
    pub fn first_wait_seconds(&self) -> u64 {
        fast_poll_seconds(self.poll_seconds)
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
pub async fn submit<S: SubmitStore, C: Cdn, D: DistributionConfigs>(
    store: &S,
    cdn: &C,
    configs: &D,
    clock: &dyn Clock,
    settings: &Settings,
    metrics: &Metrics,
    input: SubmitInput,
) -> Result<SubmitOutput> {
    match submit_batch(store, cdn, configs, clock, settings, metrics, &input).await {
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

async fn submit_batch<S: SubmitStore, C: Cdn, D: DistributionConfigs>(
    store: &S,
    cdn: &C,
    configs: &D,
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
                return Ok(nothing_submitted(
                    batch.batch_id,
                    batch.distribution_id,
                    settings,
                ));
            }
            let (paths, basis) = match &settings.discovery_bucket {
                Some(bucket) => {
                    let view = configs.distribution_view(&batch.distribution_id).await?;
                    let (paths, basis) = view.apply(bucket, &received.paths);
                    for skipped in &basis.skipped {
                        tracing::info!(batch = %batch.batch_id, path = %skipped.path, reason = %skipped.reason, "not invalidated on this distribution");
                    }
                    (paths, Some(basis))
                }
                None => (received.paths.clone(), None),
            };
            let planned = plan(paths, &settings.plan);
            tracing::info!(
                batch = %batch.batch_id,
                received = received.paths.len(),
                events = received.events,
                skipped = basis.as_ref().map_or(0, |b| b.skipped_total),
                planned = planned.billed_paths(),
                chunks = planned.chunks.len(),
                "planned"
            );
            planned_paths = Some(received.paths.len());
            store
                .commit_plan(
                    &batch.batch_id,
                    &planned,
                    &received,
                    basis.as_ref(),
                    clock.now(),
                )
                .await?
        }
    };
    if chunks.is_empty() {
        // The distribution serves none of the batch's paths; the reasons are in the plan's basis.
        tracing::info!(batch = %batch.batch_id, "no path of the batch is served by the distribution: marked EMPTY");
        store.mark_empty(&batch.batch_id, clock.now()).await?;
        return Ok(nothing_submitted(
            batch.batch_id,
            batch.distribution_id,
            settings,
        ));
    }

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
        wait_seconds: settings.first_wait_seconds(),
    })
}

fn nothing_submitted(
    batch_id: String,
    distribution_id: String,
    settings: &Settings,
) -> SubmitOutput {
    SubmitOutput {
        batch_id,
        distribution_id,
        invalidation_ids: Vec::new(),
        billed_paths: 0,
        wait_seconds: settings.first_wait_seconds(),
    }
}

#[cfg(test)]
mod tests {
    use cfinv_core::collect::PathChange;
    use cfinv_core::distribution::{Behavior, DistributionView, Origin};
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
        discovery_bucket: None,
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

    /// `submit` with the fake CDN as the distribution configurations too.
    async fn submit_to(
        store: &MemoryStore,
        cdn: &FakeCdn,
        settings: &Settings,
        input: SubmitInput,
    ) -> Result<SubmitOutput> {
        submit(store, cdn, cdn, &SystemClock, settings, &metrics(), input).await
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
        let out = submit_to(&store, &cdn, &SETTINGS, input).await.unwrap();
        assert_eq!(out.invalidation_ids, ["I1"]);
        // The first poll comes with the fast polls (5 s), not after PollSeconds (7 here).
        assert_eq!((out.billed_paths, out.wait_seconds), (2, 5));
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
        submit(&store, &cdn, &cdn, &SystemClock, &SETTINGS, &metrics, input)
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
            &cdn,
            &SystemClock,
            &SETTINGS,
            &metrics,
            input.clone(),
        )
        .await
        .unwrap_err();
        assert!(metrics.lines().is_empty());
        submit(&store, &cdn, &cdn, &SystemClock, &SETTINGS, &metrics, input)
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
        submit_to(&store, &cdn, &SETTINGS, input.clone())
            .await
            .unwrap();
        // Step Functions retries (or an operator redrives) the same task.
        let again = submit_to(&store, &cdn, &SETTINGS, input).await.unwrap();
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
        let err = submit_to(&store, &cdn, &SETTINGS, input.clone())
            .await
            .unwrap_err();
        assert_eq!(err.name(), "ServiceUnavailable");
        // The retry repeats the same CallerReference: CloudFront returns the existing one.
        let out = submit_to(&store, &cdn, &SETTINGS, input).await.unwrap();
        assert_eq!(out.invalidation_ids, ["I1"]);
        assert_eq!(cdn.invalidations().len(), 1);
        assert_eq!(cdn.create_calls(), 2);
    }

    #[tokio::test]
    async fn the_stored_plan_is_replayed_even_when_settings_changed() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let input = open_batch(&store, &paths(12, "img")).await;
        cdn.fail_next([Error::Throttling("rate".into())]);
        let err = submit_to(&store, &cdn, &SETTINGS, input.clone())
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
        let out = submit_to(&store, &cdn, &no_collapse, input).await.unwrap();
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
        let out = submit_to(&store, &cdn, &EXACT, input).await.unwrap();
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
            &cdn,
            &SystemClock,
            &EXACT,
            &metrics(),
            input.clone(),
        )
        .await;
        assert_eq!(first.unwrap_err().name(), "TooManyInvalidationsInProgress");
        let out = submit_to(&store, &cdn, &EXACT, input).await.unwrap();
        assert_eq!(out.invalidation_ids.len(), 2);
        assert_eq!(cdn.invalidations().len(), 2);
    }

    #[tokio::test]
    async fn an_empty_batch_submits_nothing_and_is_not_an_error() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let input = open_batch(&store, &[]).await;
        let out = submit_to(&store, &cdn, &SETTINGS, input).await.unwrap();
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

    /// Discovery on: a distribution serving the bucket under `/live`, query strings in the
    /// cache key of `/qs/*`, `/api/*` sent to another origin, `home.html` at the root.
    fn discovering() -> (Settings, DistributionView) {
        let view = DistributionView {
            distribution_id: "E1".into(),
            origins: vec![
                Origin {
                    id: "s3".into(),
                    domain_name: "site.s3.eu-west-1.amazonaws.com".into(),
                    origin_path: "/live".into(),
                },
                Origin {
                    id: "app".into(),
                    domain_name: "app.example.com".into(),
                    origin_path: String::new(),
                },
            ],
            behaviors: vec![
                Behavior::new("/qs/*", "s3", None, true),
                Behavior::new("/api/*", "app", None, false),
                Behavior::new("*", "s3", None, false),
            ],
            default_root_object: Some("home.html".into()),
            cache_tag_header: None,
        };
        let settings = Settings {
            discovery_bucket: Some("site".into()),
            ..SETTINGS
        };
        (settings, view)
    }

    #[tokio::test]
    async fn the_plan_follows_the_distribution_and_stores_what_it_read() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let (settings, view) = discovering();
        cdn.set_distribution(view.clone());
        let batch = [
            "/live/qs/a.js",
            "/live/home.html",
            "/live/api/x",
            "/draft/b.html",
        ];
        let input = open_batch(&store, &batch.map(String::from)).await;
        let out = submit_to(&store, &cdn, &settings, input).await.unwrap();
        assert_eq!(
            cdn.invalidations(),
            [(
                "E1-b#0".to_owned(),
                vec![
                    "/".to_owned(),
                    "/home.html".to_owned(),
                    "/qs/a.js*".to_owned()
                ]
            )]
        );
        assert_eq!(out.billed_paths, 3);
        let basis = store.batch("E1-b").unwrap().basis.unwrap();
        assert_eq!(basis.distribution, view);
        assert_eq!(basis.skipped_total, 2);
        let reasons: Vec<(&str, &str)> = basis
            .skipped
            .iter()
            .map(|s| (s.path.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(reasons[0].0, "/draft/b.html");
        assert!(
            reasons[0].1.contains("outside the origin path"),
            "{reasons:?}"
        );
        assert_eq!(reasons[1].0, "/live/api/x");
        assert!(
            reasons[1].1.contains("not the bucket's origin"),
            "{reasons:?}"
        );
    }

    #[tokio::test]
    async fn a_redrive_replays_the_stored_plan_even_when_the_distribution_changed() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let (settings, mut view) = discovering();
        cdn.set_distribution(view.clone());
        let input = open_batch(&store, &["/live/qs/a.js".into(), "/live/b.css".into()]).await;
        cdn.fail_next([Error::AccessDenied("no".into())]);
        let err = submit_to(&store, &cdn, &settings, input.clone())
            .await
            .unwrap_err();
        assert_eq!(err.name(), "AccessDenied");
        // Before the redrive, someone drops the origin path and the query strings.
        view.origins[0].origin_path = String::new();
        view.behaviors[0].query_strings = false;
        cdn.set_distribution(view);
        submit_to(&store, &cdn, &settings, input).await.unwrap();
        assert_eq!(
            cdn.invalidations(),
            [(
                "E1-b#0".to_owned(),
                vec!["/b.css".to_owned(), "/qs/a.js*".to_owned()]
            )]
        );
        assert_eq!(
            cdn.config_reads(),
            1,
            "the redrive did not read the configuration again"
        );
    }

    #[tokio::test]
    async fn a_batch_the_distribution_does_not_serve_ends_empty_with_its_reasons() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let (settings, view) = discovering();
        cdn.set_distribution(view);
        let input = open_batch(&store, &["/live/api/x".into()]).await;
        let out = submit_to(&store, &cdn, &settings, input.clone())
            .await
            .unwrap();
        assert!(out.invalidation_ids.is_empty());
        assert_eq!(cdn.create_calls(), 0);
        let stored = store.batch("E1-b").unwrap();
        assert_eq!(stored.batch.status, BatchStatus::Empty);
        assert_eq!(stored.basis.unwrap().skipped[0].path, "/live/api/x");
        // A replay ends the same way, from the stored (empty) plan.
        let again = submit_to(&store, &cdn, &settings, input).await.unwrap();
        assert!(again.invalidation_ids.is_empty());
        assert_eq!(cdn.config_reads(), 1);
    }

    #[tokio::test]
    async fn an_unreadable_configuration_fails_the_task_by_name() {
        let (store, cdn) = (MemoryStore::new(), FakeCdn::default());
        let (settings, _) = discovering();
        let input = open_batch(&store, &["/live/a".into()]).await;
        let err = submit_to(&store, &cdn, &settings, input).await.unwrap_err();
        assert_eq!(err.name(), "NoSuchDistribution");
        assert!(
            store.batch("E1-b").unwrap().batch.plan.is_none(),
            "nothing committed"
        );
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
