//! dedupe: puts each path into the open batch of its distribution, so a burst of S3 changes
//! becomes one invalidation, and names every batch whose flush must run.
//!
//! The join needs no transaction on the hot batch item (DESIGN.md §4): put the path item into
//! batch b, then read b strongly consistently. If b is still OPEN the path is in: the closer
//! flips b after that read and only then reads b's paths. If b is closed, move on to the next
//! batch. A pointer older than debounce + grace is rotated (conditionally, so racing joiners
//! agree) and its stale batch's flush is asked for again.

use std::time::Duration;

use cfinv_core::collect::PathChange;
use cfinv_core::model::{BatchRef, BatchStatus, Clock, FlushRequest, OpenPointer, new_batch_id};
use cfinv_core::store::BatchStore;
use cfinv_core::{Error, Result};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Joins retried in a row before giving up (each retry means another writer won a race).
const MAX_ATTEMPTS: usize = 8;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub debounce: Duration,
    pub grace: Duration,
}

impl Settings {
    fn is_stale(&self, pointer: &OpenPointer, now: OffsetDateTime) -> bool {
        now - pointer.opened_at > self.debounce + self.grace
    }
}

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

pub async fn enqueue<S: BatchStore>(
    store: &S,
    clock: &dyn Clock,
    settings: Settings,
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
        join(store, clock, settings, distribution, &changes, &mut flushes).await?;
    }
    Ok(EnqueueOutput { flushes })
}

async fn join<S: BatchStore>(
    store: &S,
    clock: &dyn Clock,
    settings: Settings,
    distribution_id: &str,
    changes: &[&PathChange],
    flushes: &mut Vec<FlushRequest>,
) -> Result<()> {
    let batch_ref = |batch_id: &str| BatchRef {
        batch_id: batch_id.to_owned(),
        distribution_id: distribution_id.to_owned(),
    };
    for _ in 0..MAX_ATTEMPTS {
        let now = clock.now();
        let current = store.get_pointer(distribution_id).await?;
        let pointer = match current {
            Some(p) if !settings.is_stale(&p, now) => p,
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
            return Ok(());
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

fn push_once(flushes: &mut Vec<FlushRequest>, request: FlushRequest) {
    if !flushes.contains(&request) {
        flushes.push(request);
    }
}
