//! One suite of store scenarios for every store: the in-memory store the functions' unit
//! tests use must behave as the DynamoDB adapter does, status changes and their index entries
//! included (`lifecycle.rs`). Each scenario is generic over the store roles plus [`Inspect`],
//! which reads what the roles do not return (`lastError`, the index entries).
//!
//! `memory_store` runs the suite on every `cargo test`; `dynamo/scenarios.rs` runs it against
//! a DynamoDB-compatible endpoint when asked to.

use std::future::Future;

use time::OffsetDateTime;
use time::macros::datetime;

use crate::collect::PathChange;
use crate::model::{BatchRef, BatchStatus, ExecutionStatus, MAX_EVENT_IDS_PER_PATH, OpenPointer};
use crate::plan::Plan;
use crate::store::{JoinStore, Outcome, OutcomeStore, PollStore, SubmitStore, SweepStore};
use crate::{Error, Result};

/// What the audit reads of a batch item beyond [`crate::model::Batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Audited {
    pub status: BatchStatus,
    pub opened_at: OffsetDateTime,
    pub last_error: Option<String>,
    pub attempts: u32,
    /// Its `byStatus` entry: status and since when.
    pub waiting: Option<(BatchStatus, OffsetDateTime)>,
    pub listed: bool,
    pub failed_at: Option<OffsetDateTime>,
}

/// What the audit reads of a failed event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditedEvent {
    pub last_error: String,
    /// In the failures index (`byStatus` under FAILED).
    pub failed: bool,
}

/// Reads a store the way the audit does.
pub trait Inspect {
    fn audited(&self, batch_id: &str) -> impl Future<Output = Result<Option<Audited>>>;
    fn audited_event(
        &self,
        execution_name: &str,
    ) -> impl Future<Output = Result<Option<AuditedEvent>>>;
}

/// Every role, and a way to look.
pub trait Store: JoinStore + SubmitStore + PollStore + OutcomeStore + SweepStore + Inspect {}

impl<S: JoinStore + SubmitStore + PollStore + OutcomeStore + SweepStore + Inspect> Store for S {}

const T0: OffsetDateTime = datetime!(2026-11-25 03:04:05.250 UTC);

fn at(seconds: i64) -> OffsetDateTime {
    T0 + time::Duration::seconds(seconds)
}

/// A batch of its own per scenario, so scenarios can share a table. `E<n>` names the
/// distribution; the id carries `T0` to the second, as `new_batch_id` makes it.
fn batch(scenario: &str, tag: &str) -> BatchRef {
    let distribution_id = format!("E{scenario}{}", uuid::Uuid::now_v7().simple());
    BatchRef {
        batch_id: format!("{distribution_id}-20261125T030405Z-{tag}"),
        distribution_id,
    }
}

fn change(batch: &BatchRef, path: &str, event_id: &str) -> PathChange {
    let key = path.trim_start_matches('/');
    PathChange {
        etag: Some("e".into()),
        ..PathChange::created(&batch.distribution_id, path, key, event_id)
    }
}

fn outcome(
    status: ExecutionStatus,
    execution: &str,
    error: Option<&str>,
    at: OffsetDateTime,
) -> Outcome {
    Outcome {
        status,
        execution_arn: format!("arn:aws:states:us-east-1:1:execution:machine:{execution}"),
        error: error.map(Into::into),
        cause: error.map(|_| "it broke".into()),
        at,
    }
}

async fn audited(store: &impl Store, batch: &BatchRef) -> Audited {
    store.audited(&batch.batch_id).await.unwrap().unwrap()
}

async fn open_before(store: &impl Store, batch: &BatchRef, before: OffsetDateTime) -> bool {
    store
        .open_batches_before(before)
        .await
        .unwrap()
        .iter()
        .any(|(b, _)| b == batch)
}

pub async fn run(store: &impl Store) {
    pointers_move_only_from_what_they_replace(store).await;
    a_batch_waits_in_each_status_until_it_completes(store).await;
    a_failed_execution_fails_its_batch_until_it_completes(store).await;
    a_batch_its_opener_never_wrote_still_closes_and_fails(store).await;
    an_empty_batch_leaves_the_listing_and_the_failures_index(store).await;
    a_hot_path_keeps_counting_events_past_its_id_set(store).await;
    a_failed_event_stays_in_the_failures_index_until_a_newer_success(store).await;
}

async fn pointers_move_only_from_what_they_replace(store: &impl Store) {
    let b = batch("1", "a");
    let d = b.distribution_id.as_str();
    let first = OpenPointer {
        batch_id: b.batch_id.clone(),
        opened_at: T0,
    };
    let second = OpenPointer {
        batch_id: format!("{}-next", b.batch_id),
        opened_at: at(60),
    };
    assert_eq!(store.get_pointer(d).await.unwrap(), None);
    assert!(store.swap_pointer(d, &first, None).await.unwrap());
    assert!(!store.swap_pointer(d, &second, None).await.unwrap());
    assert!(!store.swap_pointer(d, &second, Some("other")).await.unwrap());
    assert!(
        store
            .swap_pointer(d, &second, Some(&first.batch_id))
            .await
            .unwrap()
    );
    store.delete_pointer(d, &first.batch_id).await.unwrap();
    assert_eq!(store.get_pointer(d).await.unwrap(), Some(second.clone()));
    store.delete_pointer(d, &second.batch_id).await.unwrap();
    assert_eq!(store.get_pointer(d).await.unwrap(), None);
}

async fn a_batch_waits_in_each_status_until_it_completes(store: &impl Store) {
    let b = batch("2", "a");
    store.create_batch(&b, T0).await.unwrap();
    store.create_batch(&b, at(1)).await.unwrap();
    let opened = audited(store, &b).await;
    assert_eq!(
        opened,
        Audited {
            status: BatchStatus::Open,
            opened_at: T0,
            last_error: None,
            attempts: 0,
            waiting: Some((BatchStatus::Open, T0)),
            listed: true,
            failed_at: None,
        }
    );
    assert!(open_before(store, &b, at(1)).await);
    assert!(!open_before(store, &b, T0).await);

    for (path, event) in [("/a", "ev-1"), ("/b", "ev-2"), ("/a", "ev-1")] {
        store
            .put_path(&b.batch_id, &change(&b, path, event), at(2))
            .await
            .unwrap();
    }
    let received = store.batch_paths(&b.batch_id).await.unwrap();
    let mut paths = received.paths.clone();
    paths.sort();
    assert_eq!(
        (paths, received.events),
        (vec!["/a".into(), "/b".into()], 2)
    );

    let closed = store.close_batch(&b, at(10), "arn").await.unwrap();
    assert_eq!((closed.status, closed.opened_at), (BatchStatus::Closed, T0));
    let again = store.close_batch(&b, at(11), "arn").await.unwrap();
    assert_eq!(again, closed, "a second close changes nothing");
    assert_eq!(
        audited(store, &b).await.waiting,
        Some((BatchStatus::Closed, at(10)))
    );
    assert!(!open_before(store, &b, at(100)).await);

    let first = Plan {
        chunks: vec![vec!["/a".into()], vec!["/b".into()]],
    };
    let chunks = store
        .commit_plan(&b.batch_id, &first, &received, None, at(12))
        .await
        .unwrap();
    let other = Plan {
        chunks: vec![vec!["/*".into()]],
    };
    let replayed = store
        .commit_plan(&b.batch_id, &other, &received, None, at(13))
        .await
        .unwrap();
    assert_eq!(replayed, chunks, "the first plan stays committed");
    assert_eq!(store.load_plan(&b.batch_id).await.unwrap(), chunks);

    store
        .record_invalidation(&b.batch_id, 0, "I1", at(14))
        .await
        .unwrap();
    store.mark_submitted(&b.batch_id, 2, at(15)).await.unwrap();
    let submitted = store.get_batch(&b.batch_id).await.unwrap().unwrap();
    assert_eq!(
        (submitted.status, submitted.submitted_at),
        (BatchStatus::Submitted, Some(at(15)))
    );
    assert_eq!(
        audited(store, &b).await.waiting,
        Some((BatchStatus::Submitted, at(15)))
    );

    assert_eq!(
        store.poll_window(&b.batch_id, 0, at(16)).await.unwrap(),
        at(16)
    );
    assert_eq!(
        store.poll_window(&b.batch_id, 0, at(17)).await.unwrap(),
        at(16)
    );
    assert_eq!(
        store.poll_window(&b.batch_id, 1, at(18)).await.unwrap(),
        at(18)
    );

    store
        .mark_chunk_completed(&b.batch_id, 0, at(19))
        .await
        .unwrap();
    let progress: Vec<_> = store
        .load_plan(&b.batch_id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.invalidation_id, c.completed))
        .collect();
    assert_eq!(progress, vec![(Some("I1".into()), true), (None, false)]);

    store.mark_completed(&b.batch_id, at(20)).await.unwrap();
    let done = audited(store, &b).await;
    assert_eq!(
        (done.status, done.waiting, done.listed, done.failed_at),
        (BatchStatus::Completed, None, true, None)
    );
    // A completed batch stays completed: a late submit or failure changes nothing.
    store.mark_submitted(&b.batch_id, 2, at(21)).await.unwrap();
    store
        .record_outcome(
            &b,
            &outcome(ExecutionStatus::Failed, "late", Some("Late"), at(22)),
        )
        .await
        .unwrap();
    assert_eq!(audited(store, &b).await, done);
}

async fn a_failed_execution_fails_its_batch_until_it_completes(store: &impl Store) {
    let b = batch("3", "a");
    store.create_batch(&b, T0).await.unwrap();
    store
        .record_error(&b.batch_id, &Error::StoreUnavailable("slow".into()), at(1))
        .await
        .unwrap();
    let retried = audited(store, &b).await;
    assert_eq!(
        (retried.last_error.as_deref(), retried.attempts),
        (Some("StoreUnavailable: store unavailable: slow"), 1)
    );

    let failure = outcome(
        ExecutionStatus::Failed,
        "x",
        Some("NoSuchDistribution"),
        at(5),
    );
    store.record_outcome(&b, &failure).await.unwrap();
    let failed = audited(store, &b).await;
    assert_eq!(
        failed,
        Audited {
            status: BatchStatus::Failed,
            opened_at: T0,
            last_error: Some("NoSuchDistribution: it broke".into()),
            attempts: 1,
            waiting: Some((BatchStatus::Failed, at(5))),
            listed: true,
            failed_at: Some(at(5)),
        }
    );
    // An older outcome arriving late changes nothing; a newer success does not clear the
    // failure either: the batch completing does.
    let older = outcome(ExecutionStatus::TimedOut, "x", None, at(3));
    store.record_outcome(&b, &older).await.unwrap();
    assert_eq!(audited(store, &b).await, failed);
    let success = outcome(ExecutionStatus::Succeeded, "x", None, at(6));
    store.record_outcome(&b, &success).await.unwrap();
    assert_eq!(audited(store, &b).await, failed);

    store.mark_completed(&b.batch_id, at(7)).await.unwrap();
    let done = audited(store, &b).await;
    assert_eq!(
        (done.status, done.waiting, done.failed_at),
        (BatchStatus::Completed, None, None)
    );
}

async fn a_batch_its_opener_never_wrote_still_closes_and_fails(store: &impl Store) {
    let opened_by_id = datetime!(2026-11-25 03:04:05 UTC);
    let closed = batch("4", "a");
    let batch_after_close = store.close_batch(&closed, at(60), "arn").await.unwrap();
    assert_eq!(
        (batch_after_close.status, batch_after_close.opened_at),
        (BatchStatus::Closed, opened_by_id)
    );
    let seen = audited(store, &closed).await;
    assert_eq!(
        (seen.waiting, seen.listed),
        (Some((BatchStatus::Closed, at(60))), true)
    );

    let failed = batch("4", "b");
    let failure = outcome(ExecutionStatus::Aborted, "y", None, at(60));
    store.record_outcome(&failed, &failure).await.unwrap();
    let seen = audited(store, &failed).await;
    assert_eq!(
        (seen.status, seen.opened_at, seen.listed, seen.waiting),
        (
            BatchStatus::Failed,
            opened_by_id,
            true,
            Some((BatchStatus::Failed, at(60)))
        )
    );
    assert_eq!(seen.last_error.as_deref(), Some("execution ABORTED"));
}

async fn an_empty_batch_leaves_the_listing_and_the_failures_index(store: &impl Store) {
    let b = batch("5", "a");
    store.create_batch(&b, T0).await.unwrap();
    let failure = outcome(ExecutionStatus::Failed, "z", Some("Lost"), at(1));
    store.record_outcome(&b, &failure).await.unwrap();
    store.close_batch(&b, at(2), "arn").await.unwrap();
    store.mark_empty(&b.batch_id, at(3)).await.unwrap();
    let empty = audited(store, &b).await;
    assert_eq!(
        (empty.status, empty.waiting, empty.listed, empty.failed_at),
        (BatchStatus::Empty, None, false, None)
    );

    // A batch with a plan is never marked empty.
    let planned = batch("5", "b");
    store.create_batch(&planned, T0).await.unwrap();
    store.close_batch(&planned, at(2), "arn").await.unwrap();
    let plan = Plan {
        chunks: vec![vec!["/a".into()]],
    };
    let received = crate::store::BatchPaths {
        paths: vec!["/a".into()],
        events: 1,
    };
    store
        .commit_plan(&planned.batch_id, &plan, &received, None, at(3))
        .await
        .unwrap();
    store.mark_empty(&planned.batch_id, at(4)).await.unwrap();
    assert_eq!(audited(store, &planned).await.status, BatchStatus::Closed);
}

async fn a_hot_path_keeps_counting_events_past_its_id_set(store: &impl Store) {
    let b = batch("6", "a");
    store.create_batch(&b, T0).await.unwrap();
    for i in 0..=MAX_EVENT_IDS_PER_PATH {
        store
            .put_path(&b.batch_id, &change(&b, "/hot", &format!("ev-{i}")), at(1))
            .await
            .unwrap();
    }
    // A duplicate delivery of a kept event adds nothing.
    store
        .put_path(&b.batch_id, &change(&b, "/hot", "ev-0"), at(2))
        .await
        .unwrap();
    let received = store.batch_paths(&b.batch_id).await.unwrap();
    assert_eq!(
        (received.paths, received.events),
        (vec!["/hot".to_owned()], MAX_EVENT_IDS_PER_PATH + 1)
    );
}

async fn a_failed_event_stays_in_the_failures_index_until_a_newer_success(store: &impl Store) {
    let name = format!("ev-{}", uuid::Uuid::now_v7().simple());
    let failure = outcome(ExecutionStatus::Failed, &name, Some("InvalidEvent"), at(5));
    store
        .record_failed_event(&name, &failure, "{}")
        .await
        .unwrap();
    let failed = AuditedEvent {
        last_error: "InvalidEvent: it broke".into(),
        failed: true,
    };
    let event = || async { store.audited_event(&name).await.unwrap().unwrap() };
    assert_eq!(event().await, failed);
    let older = outcome(ExecutionStatus::Succeeded, &name, None, at(4));
    store
        .record_failed_event(&name, &older, "{}")
        .await
        .unwrap();
    assert_eq!(event().await, failed);
    let redriven = outcome(ExecutionStatus::Succeeded, &name, None, at(6));
    store
        .record_failed_event(&name, &redriven, "{}")
        .await
        .unwrap();
    assert!(!event().await.failed);
}

mod memory {
    use super::*;
    use crate::memory::MemoryStore;

    impl Inspect for MemoryStore {
        async fn audited(&self, batch_id: &str) -> Result<Option<Audited>> {
            Ok(self.batch(batch_id).map(|b| Audited {
                status: b.batch.status,
                opened_at: b.batch.opened_at,
                last_error: b.last_error,
                attempts: b.attempts,
                waiting: b.waiting,
                listed: b.listed,
                failed_at: b.failed_at,
            }))
        }

        async fn audited_event(&self, execution_name: &str) -> Result<Option<AuditedEvent>> {
            Ok(self.event(execution_name).map(|e| AuditedEvent {
                last_error: e.last_error,
                failed: e.failed,
            }))
        }
    }

    #[tokio::test]
    async fn memory_store() {
        run(&MemoryStore::new()).await;
    }
}
