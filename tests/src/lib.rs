//! Harness for the end-to-end tests: the stack that `make e2e` started (described by
//! `.local/stack.json`), SDK clients pointed at it, its control API, and waits with deadlines.
//!
//! Tests share one stack and run in parallel; each test owns one distribution and its key
//! prefix (`d<i>/`, routed by the stack), so faults and counts never cross tests.
//!
//! The modules are private: tests use the items re-exported here.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

mod batches;
mod control;
pub mod matrix;
mod stack;
mod wait;

pub use batches::describe;
pub use stack::{Change, Lane, Settings, Stack, StackInfo, now_epoch, stack_file};
pub use wait::poll_progress;

/// Calls `call` until it succeeds, for up to a minute: the fault tests make CloudFront fail
/// for the whole lane, the tests' own reads included.
async fn retrying<T, E, F, Fut>(what: &str, mut call: F) -> T
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match call().await {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what}: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Which writes of a lane are not yet covered by a Completed invalidation made after them.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub writes: usize,
    pub missing: Vec<String>,
    /// CreateInvalidation calls the distribution received (any outcome).
    pub calls: usize,
    pub invalidations: usize,
    pub completed: usize,
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sample: Vec<&str> = self.missing.iter().take(5).map(String::as_str).collect();
        write!(
            f,
            "{} of {} writes covered, missing e.g. {sample:?}; {} CreateInvalidation calls, {} of {} invalidations Completed",
            self.writes - self.missing.len(),
            self.writes,
            self.calls,
            self.completed,
            self.invalidations
        )
    }
}

/// An invalidation as CloudFront reports it (through the real API).
#[derive(Debug, Clone)]
pub struct Invalidation {
    pub id: String,
    pub status: String,
    pub created_epoch: f64,
    pub paths: Vec<String>,
    pub caller_reference: String,
}

/// A CreateInvalidation request as the local CloudFront saw it (accepted or not).
#[derive(Debug, Clone, Deserialize)]
pub struct Call {
    pub time: f64,
    pub caller_reference: String,
    pub outcome: String,
    #[serde(default)]
    pub invalidation_id: Option<String>,
    #[serde(default)]
    pub billed_paths: usize,
    #[serde(default)]
    pub paths: Vec<String>,
}

impl Stack {
    /// Every invalidation of the lane's distribution: ListInvalidations (for the statuses), and
    /// GetInvalidation for the ones not read before.
    pub async fn invalidations(&self, lane: &Lane) -> Vec<Invalidation> {
        let mut out = Vec::new();
        for summary in self.invalidation_summaries(lane).await {
            let known = self
                .seen_invalidations
                .lock()
                .unwrap()
                .get(summary.id())
                .cloned();
            if let Some(known) = known {
                out.push(Invalidation {
                    status: summary.status().to_owned(),
                    ..known
                });
                continue;
            }
            let got = retrying("GetInvalidation", || {
                self.cloudfront
                    .get_invalidation()
                    .distribution_id(&lane.distribution_id)
                    .id(summary.id())
                    .send()
            })
            .await;
            let inv = got.invalidation().expect("invalidation");
            let batch = inv.invalidation_batch().expect("batch");
            let read = Invalidation {
                id: inv.id().to_owned(),
                status: inv.status().to_owned(),
                created_epoch: inv.create_time().as_secs_f64(),
                paths: batch
                    .paths()
                    .and_then(|p| p.items.clone())
                    .unwrap_or_default(),
                caller_reference: batch.caller_reference().to_owned(),
            };
            self.seen_invalidations
                .lock()
                .unwrap()
                .insert(read.id.clone(), read.clone());
            out.push(read);
        }
        out
    }

    /// ListInvalidations of the lane's distribution: ids and statuses.
    async fn invalidation_summaries(
        &self,
        lane: &Lane,
    ) -> Vec<aws_sdk_cloudfront::types::InvalidationSummary> {
        let list = retrying("ListInvalidations", || {
            self.cloudfront
                .list_invalidations()
                .distribution_id(&lane.distribution_id)
                .max_items(1000)
                .send()
        })
        .await;
        list.invalidation_list()
            .map(|l| l.items().to_vec())
            .unwrap_or_default()
    }

    /// Every CreateInvalidation request the lane's distribution received.
    pub fn calls(&self, lane: &Lane) -> Vec<Call> {
        let got = self.control(
            "cloudfront/calls",
            json!({"distribution_id": lane.distribution_id}),
        );
        serde_json::from_value(got["calls"].clone()).expect("calls")
    }

    /// How many of `writes` (path, written-at) are covered by a Completed invalidation created
    /// after the write.
    pub async fn coverage(&self, lane: &Lane, writes: &[(String, f64)]) -> usize {
        let report = self.coverage_report(lane, writes).await;
        writes.len() - report.missing.len()
    }

    /// Which of `writes` are not yet covered by a Completed invalidation created after them.
    /// Two requests however many invalidations: the statuses from one ListInvalidations, the
    /// paths and creation times from the emulator's call log (CloudFront's CreateTime has
    /// whole seconds only, too coarse to order against a write).
    pub async fn coverage_report(&self, lane: &Lane, writes: &[(String, f64)]) -> Coverage {
        let summaries = self.invalidation_summaries(lane).await;
        let completed: Vec<&str> = summaries
            .iter()
            .filter(|i| i.status() == "Completed")
            .map(|i| i.id())
            .collect();
        let calls = self.calls(lane);
        let done: Vec<&Call> = calls
            .iter()
            .filter(|c| {
                c.outcome == "created"
                    && c.invalidation_id
                        .as_deref()
                        .is_some_and(|id| completed.contains(&id))
            })
            .collect();
        let missing = writes
            .iter()
            .filter(|(path, at)| {
                !done
                    .iter()
                    .any(|c| c.time > *at && c.paths.iter().any(|p| covers(p, path)))
            })
            .map(|(path, _)| path.clone())
            .collect();
        Coverage {
            writes: writes.len(),
            missing,
            calls: calls.len(),
            invalidations: summaries.len(),
            completed: completed.len(),
        }
    }
}

/// Whether CloudFront path `p` (possibly a trailing-`*` wildcard) invalidates `path`.
pub fn covers(p: &str, path: &str) -> bool {
    match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => p == path,
    }
}

impl Stack {
    /// Writes, through the real DynamoDB adapter, what an opener that died before its flush
    /// started leaves behind: the pointer, the OPEN batch (opened a minute longer ago than a
    /// batch may stay open, so the next joiner rotates it) and one path.
    /// Returns the batch id and the staged (path, time).
    pub async fn stage_dead_opener(&self, lane: &Lane, name: &str) -> (String, (String, f64)) {
        use cfinv_core::collect::PathChange;
        use cfinv_core::event::ChangeKind;
        use cfinv_core::store::JoinStore;

        let (store, batch, opened_at) = self.stage_stale_pointer(lane).await;
        store.create_batch(&batch, opened_at).await.unwrap();
        let key = format!("{}{name}", lane.prefix);
        let change = PathChange {
            distribution_id: lane.distribution_id.clone(),
            path: format!("/{key}"),
            bucket: self.info.bucket.clone(),
            key,
            version_id: None,
            etag: None,
            sequencer: None,
            event_time: None,
            event_id: Some(format!("staged-{name}")),
            change: ChangeKind::Created,
            reason: None,
        };
        store
            .put_path(&batch.batch_id, &change, opened_at)
            .await
            .unwrap();
        (batch.batch_id, (change.path, now_epoch()))
    }

    /// What an opener that died right after its pointer swap leaves behind: a pointer, old
    /// enough to be rotated, to a batch that has no item and no path. Returns the batch id.
    pub async fn stage_orphan_pointer(&self, lane: &Lane) -> String {
        self.stage_stale_pointer(lane).await.1.batch_id
    }

    /// Points the lane's distribution at a new batch opened a minute longer ago than a batch
    /// may stay open, through the real DynamoDB adapter.
    async fn stage_stale_pointer(
        &self,
        lane: &Lane,
    ) -> (
        cfinv_core::dynamo::DynamoStore,
        cfinv_core::model::BatchRef,
        time::OffsetDateTime,
    ) {
        use cfinv_core::dynamo::DynamoStore;
        use cfinv_core::model::{BatchRef, OpenPointer, new_batch_id};
        use cfinv_core::store::PointerStore;

        let store = DynamoStore::new(
            self.ddb.clone(),
            &self.info.table,
            Duration::from_secs(86_400),
        );
        let age = self.info.stale_after() + Duration::from_secs(60);
        let opened_at = time::OffsetDateTime::now_utc() - age;
        let batch = BatchRef {
            batch_id: new_batch_id(&lane.distribution_id, opened_at),
            distribution_id: lane.distribution_id.clone(),
        };
        let pointer = OpenPointer {
            batch_id: batch.batch_id.clone(),
            opened_at,
        };
        let current = store
            .get_pointer(&lane.distribution_id)
            .await
            .unwrap()
            .map(|p| p.batch_id);
        assert!(
            store
                .swap_pointer(&lane.distribution_id, &pointer, current.as_deref())
                .await
                .unwrap()
        );
        (store, batch, opened_at)
    }
}
