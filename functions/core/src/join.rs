//! The join protocol: puts each path into the open batch of its distribution, so a burst of
//! changes becomes one invalidation, and names every batch whose flush must run. dedupe runs it
//! for S3 changes, `cfinv invalidate` for manual requests (`cli/src/invalidate.rs`).
//!
//! The join needs no transaction on the hot batch item (docs/design.md §4): put the path item into
//! batch b, then read b strongly consistently. If b is still OPEN the path is in: the closer
//! flips b after that read and only then reads b's paths. If b is closed, move on to the next
//! batch. A pointer older than debounce + grace is rotated (conditionally, so racing joiners
//! agree) and its stale batch's flush is asked for again.

use crate::collect::PathChange;
use crate::metrics::{BATCHES_OPENED, Metrics, PATHS_RECEIVED};
use crate::model::{BatchRef, BatchStatus, Clock, FlushRequest, OpenPointer, new_batch_id};
use crate::store::JoinStore;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Joins retried in a row before giving up (each retry means another writer won a race).
const MAX_ATTEMPTS: usize = 8;

/// The batch's open window.
pub use crate::model::OpenWindow as Settings;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnqueueInput {
    pub paths: Vec<PathChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnqueueOutput {
    /// Every batch whose flush execution must be asked for: the ones joined and any stale one.
    pub flushes: Vec<FlushRequest>,
}

/// Joins every path to its distribution's open batch; per distribution, publishes the paths
/// joined and whether this join opened the batch.
pub async fn enqueue<S: JoinStore>(
    store: &S,
    clock: &dyn Clock,
    settings: Settings,
    metrics: &Metrics,
    input: EnqueueInput,
) -> Result<EnqueueOutput> {
    let mut flushes = Vec::new();
    let mut distributions: Vec<&str> = input
        .paths
        .iter()
        .map(|p| p.distribution_id.as_str())
        .collect();
    distributions.sort_unstable();
    distributions.dedup();
    for distribution in distributions {
        let changes: Vec<&PathChange> = input
            .paths
            .iter()
            .filter(|p| p.distribution_id == distribution)
            .collect();
        let opened = join(store, clock, settings, distribution, &changes, &mut flushes).await?;
        metrics.publish_for(
            distribution,
            clock.now(),
            &[
                (BATCHES_OPENED, u64::from(opened)),
                (PATHS_RECEIVED, changes.len() as u64),
            ],
        );
    }
    Ok(EnqueueOutput { flushes })
}

/// Joins `changes` to the open batch; `true` when this join opened that batch.
async fn join<S: JoinStore>(
    store: &S,
    clock: &dyn Clock,
    settings: Settings,
    distribution_id: &str,
    changes: &[&PathChange],
    flushes: &mut Vec<FlushRequest>,
) -> Result<bool> {
    let batch_ref = |batch_id: &str| BatchRef {
        batch_id: batch_id.to_owned(),
        distribution_id: distribution_id.to_owned(),
    };
    let mut opened = None;
    for _ in 0..MAX_ATTEMPTS {
        let now = clock.now();
        let current = store.get_pointer(distribution_id).await?;
        let pointer = match current {
            Some(p) if !settings.is_stale(p.opened_at, now) => p,
            stale_or_none => {
                let replacing = stale_or_none.as_ref().map(|p| p.batch_id.as_str());
                let fresh = OpenPointer {
                    batch_id: new_batch_id(distribution_id, now),
                    opened_at: now,
                };
                if !store
                    .swap_pointer(distribution_id, &fresh, replacing)
                    .await?
                {
                    continue; // another joiner opened or rotated first: use theirs
                }
                if let Some(stale) = &stale_or_none {
                    tracing::warn!(batch = %stale.batch_id, distribution = distribution_id, "stale open batch rotated; asking for its flush again");
                    push_once(
                        flushes,
                        FlushRequest::new(
                            batch_ref(&stale.batch_id),
                            stale.opened_at,
                            settings.debounce,
                        ),
                    );
                }
                tracing::info!(batch = %fresh.batch_id, distribution = distribution_id, "opened batch");
                store.create_batch(&batch_ref(&fresh.batch_id), now).await?;
                opened = Some(fresh.batch_id.clone());
                fresh
            }
        };
        for change in changes {
            store.put_path(&pointer.batch_id, change, now).await?;
        }
        let batch = match store.get_batch(&pointer.batch_id).await? {
            Some(b) => b,
            None => {
                // The opener died between pointer and batch item: finish its work.
                store
                    .create_batch(&batch_ref(&pointer.batch_id), pointer.opened_at)
                    .await?;
                match store.get_batch(&pointer.batch_id).await? {
                    Some(b) => b,
                    None => continue,
                }
            }
        };
        if batch.status == BatchStatus::Open {
            tracing::info!(batch = %pointer.batch_id, distribution = distribution_id, paths = changes.len(), "joined batch");
            push_once(
                flushes,
                FlushRequest::new(
                    batch_ref(&pointer.batch_id),
                    pointer.opened_at,
                    settings.debounce,
                ),
            );
            return Ok(opened.as_deref() == Some(pointer.batch_id.as_str()));
        }
        // Closed (or failed) under us: help retire the pointer and try the next batch.
        store
            .delete_pointer(distribution_id, &pointer.batch_id)
            .await?;
    }
    Err(Error::StoreUnavailable(format!(
        "could not join a batch of {distribution_id} after {MAX_ATTEMPTS} attempts"
    )))
}

/// Adds `request` unless the same flush is already asked for.
pub fn push_once(flushes: &mut Vec<FlushRequest>, request: FlushRequest) {
    if !flushes.contains(&request) {
        flushes.push(request);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::memory::{ManualClock, MemoryStore};
    use crate::store::{PointerStore, SubmitStore};
    use time::macros::datetime;

    use super::*;

    fn clock() -> ManualClock {
        ManualClock::at(datetime!(2026-11-25 10:00 UTC))
    }

    const SETTINGS: Settings = Settings {
        debounce: Duration::from_secs(30),
        grace: Duration::from_secs(60),
    };

    fn change(dist: &str, path: &str, event: &str) -> PathChange {
        PathChange::created(dist, path, path.trim_start_matches('/'), event)
    }

    async fn enqueue_ok(
        store: &MemoryStore,
        clock: &ManualClock,
        changes: &[PathChange],
    ) -> EnqueueOutput {
        let input = EnqueueInput {
            paths: changes.to_vec(),
        };
        enqueue(store, clock, SETTINGS, &Metrics::recording("test"), input)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_first_change_opens_a_batch_and_the_next_joins_it() {
        let (store, clock) = (MemoryStore::new(), clock());
        let first = enqueue_ok(&store, &clock, &[change("E1", "/a", "ev1")]).await;
        clock.advance(5);
        let second = enqueue_ok(&store, &clock, &[change("E1", "/b", "ev2")]).await;
        assert_eq!(first.flushes.len(), 1);
        // Same batch, same flush request (same input): StartExecution stays idempotent.
        assert_eq!(first.flushes, second.flushes);
        let batch = &first.flushes[0];
        assert_eq!(
            batch.flush_at, "2026-11-25T10:00:30.000Z",
            "debounce counts from the opening"
        );
        assert_eq!(store.paths_of(&batch.batch.batch_id), ["/a", "/b"]);
    }

    #[tokio::test]
    async fn each_join_publishes_its_paths_and_whether_it_opened_the_batch() {
        let (store, clock) = (MemoryStore::new(), clock());
        let metrics = Metrics::recording("prod");
        let changes = |paths: &[(&str, &str)]| EnqueueInput {
            paths: paths.iter().map(|(d, p)| change(d, p, "ev")).collect(),
        };
        let first = changes(&[("E1", "/a"), ("E1", "/b"), ("E2", "/a")]);
        enqueue(&store, &clock, SETTINGS, &metrics, first)
            .await
            .unwrap();
        enqueue(&store, &clock, SETTINGS, &metrics, changes(&[("E1", "/c")]))
            .await
            .unwrap();
        let figures: Vec<_> = metrics
            .lines()
            .iter()
            .map(|l| {
                assert_eq!(l["Stack"], "prod");
                assert_eq!(
                    l["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Unit"],
                    "Count"
                );
                (
                    l["DistributionId"].as_str().unwrap().to_owned(),
                    l["BatchesOpened"].as_u64().unwrap(),
                    l["PathsReceived"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            figures,
            [
                ("E1".to_owned(), 1, 2),
                ("E2".to_owned(), 1, 1),
                ("E1".to_owned(), 0, 1)
            ]
        );
    }

    #[tokio::test]
    async fn each_distribution_gets_its_own_batch() {
        let (store, clock) = (MemoryStore::new(), clock());
        let out = enqueue_ok(
            &store,
            &clock,
            &[change("E1", "/a", "ev"), change("E2", "/a", "ev")],
        )
        .await;
        let dists: Vec<_> = out
            .flushes
            .iter()
            .map(|f| f.batch.distribution_id.as_str())
            .collect();
        assert_eq!(dists, ["E1", "E2"]);
        assert_ne!(out.flushes[0].batch.batch_id, out.flushes[1].batch.batch_id);
    }

    #[tokio::test]
    async fn a_duplicate_delivery_adds_nothing_new() {
        let (store, clock) = (MemoryStore::new(), clock());
        let a = enqueue_ok(&store, &clock, &[change("E1", "/a", "ev1")]).await;
        let b = enqueue_ok(&store, &clock, &[change("E1", "/a", "ev1")]).await;
        assert_eq!(a, b);
        assert_eq!(store.batches().len(), 1);
        let paths = store
            .batch_paths(&a.flushes[0].batch.batch_id)
            .await
            .unwrap();
        assert_eq!((paths.paths.len(), paths.events), (1, 1));
    }

    #[tokio::test]
    async fn a_hot_key_keeps_a_bounded_set_of_event_ids_and_counts_the_rest() {
        use crate::model::MAX_EVENT_IDS_PER_PATH;
        let (store, clock) = (MemoryStore::new(), clock());
        let writes = MAX_EVENT_IDS_PER_PATH + 5;
        let mut batch = None;
        for i in 0..writes {
            let out = enqueue_ok(&store, &clock, &[change("E1", "/hot", &format!("ev{i}"))]).await;
            batch = Some(out.flushes[0].batch.batch_id.clone());
        }
        // A redelivery of a kept event still adds nothing.
        enqueue_ok(&store, &clock, &[change("E1", "/hot", "ev0")]).await;
        let paths = store.batch_paths(&batch.unwrap()).await.unwrap();
        assert_eq!((paths.paths.len(), paths.events), (1, writes));
    }

    #[tokio::test]
    async fn a_close_racing_the_join_never_loses_the_path() {
        // The closer flips the batch between our put and our read: we must move on to a new
        // batch and land the path there too.
        let (store, clock) = (MemoryStore::new(), clock());
        let first = enqueue_ok(&store, &clock, &[change("E1", "/a", "ev1")]).await;
        let closed = first.flushes[0].batch.batch_id.clone();
        let target = closed.clone();
        store.set_hook(move |s, op| {
            if op == "get_batch" && s.batch(&target).is_some_and(|b| !b.closed) {
                s.set_status(&target, BatchStatus::Closed);
            }
        });
        let second = enqueue_ok(&store, &clock, &[change("E1", "/b", "ev2")]).await;
        store.clear_hook();
        let joined = &second.flushes[0].batch.batch_id;
        assert_ne!(joined, &closed, "joined a fresh batch");
        assert_eq!(store.paths_of(joined), ["/b"]);
        assert_eq!(store.pointer("E1").unwrap().batch_id, *joined);
    }

    #[tokio::test]
    async fn a_stale_open_batch_is_rotated_and_its_flush_asked_for_again() {
        let (store, clock) = (MemoryStore::new(), clock());
        let first = enqueue_ok(&store, &clock, &[change("E1", "/a", "ev1")]).await;
        clock.advance(91); // past debounce (30) + grace (60): its flush never closed it
        let second = enqueue_ok(&store, &clock, &[change("E1", "/b", "ev2")]).await;
        assert_eq!(second.flushes.len(), 2);
        assert_eq!(
            second.flushes[0], first.flushes[0],
            "the stale batch's flush, with its original input"
        );
        let fresh = &second.flushes[1].batch.batch_id;
        assert_eq!(
            store.paths_of(fresh),
            ["/b"],
            "the new path did not join the stale batch"
        );
        assert_eq!(store.paths_of(&first.flushes[0].batch.batch_id), ["/a"]);
    }

    #[tokio::test]
    async fn racing_openers_agree_on_one_batch() {
        // Another joiner opens a batch between our pointer read and our conditional put.
        let (store, clock) = (MemoryStore::new(), clock());
        let theirs = OpenPointer {
            batch_id: "E1-theirs".into(),
            opened_at: clock.now(),
        };
        let staged = theirs.clone();
        store.set_hook(move |s, op| {
            if op == "swap_pointer" && s.pointer("E1").is_none() {
                assert!(block_on(s.swap_pointer("E1", &staged, None)).unwrap());
                block_on(s.create_batch(
                    &BatchRef {
                        batch_id: "E1-theirs".into(),
                        distribution_id: "E1".into(),
                    },
                    staged.opened_at,
                ))
                .unwrap();
            }
        });
        let out = enqueue_ok(&store, &clock, &[change("E1", "/a", "ev1")]).await;
        store.clear_hook();
        assert_eq!(out.flushes[0].batch.batch_id, theirs.batch_id);
        assert_eq!(store.batches().len(), 1);
    }

    #[tokio::test]
    async fn a_retried_dedupe_whose_first_attempt_opened_the_batch_still_asks_for_the_flush() {
        let (store, clock) = (MemoryStore::new(), clock());
        let first = enqueue_ok(&store, &clock, &[change("E1", "/a", "ev1")]).await;
        // The first attempt's response was lost (timeout); Step Functions retries the task.
        let retry = enqueue_ok(&store, &clock, &[change("E1", "/a", "ev1")]).await;
        assert_eq!(retry.flushes, first.flushes);
    }

    #[tokio::test]
    async fn an_opener_that_died_before_writing_the_batch_is_finished_by_the_next_joiner() {
        let (store, clock) = (MemoryStore::new(), clock());
        let orphan = OpenPointer {
            batch_id: "E1-orphan".into(),
            opened_at: clock.now(),
        };
        store.swap_pointer("E1", &orphan, None).await.unwrap();
        let out = enqueue_ok(&store, &clock, &[change("E1", "/a", "ev1")]).await;
        assert_eq!(out.flushes[0].batch.batch_id, "E1-orphan");
        assert_eq!(
            store.batch("E1-orphan").unwrap().batch.status,
            BatchStatus::Open
        );
    }

    /// Drives a store future to completion inside a synchronous hook (the memory store never
    /// awaits anything).
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}
