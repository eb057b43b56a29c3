//! The table, as each function sees it: one trait per role (dedupe joins, create-invalidation
//! submits, poll-status polls, record-outcome records, the sweep sweeps), so a function's bound
//! names only what it may do. The DynamoDB adapter (`dynamo/`) and the in-memory store
//! (`memory/`) implement every role; the join and close protocols built on them live in the
//! functions that own them.

#[cfg(test)]
pub(crate) mod scenarios;

use std::future::Future;

use time::OffsetDateTime;

use crate::Result;
use crate::collect::PathChange;
use crate::distribution::PlanBasis;
use crate::model::{Batch, BatchRef, Chunk, ExecutionStatus, OpenPointer};
use crate::plan::Plan;

/// What the batch's path items add up to, read after the close.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchPaths {
    pub paths: Vec<String>,
    /// Distinct S3 events (by event id) that contributed paths.
    pub events: usize,
}

/// How an execution of the batch machine ended, as reported by EventBridge.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: ExecutionStatus,
    pub execution_arn: String,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub at: OffsetDateTime,
}

/// The open-batch pointer of each distribution (dedupe joins through it; create-invalidation
/// clears it when it closes the batch).
pub trait PointerStore: Send + Sync {
    /// The open-batch pointer of a distribution (strongly consistent).
    fn get_pointer(
        &self,
        distribution_id: &str,
    ) -> impl Future<Output = Result<Option<OpenPointer>>> + Send;

    /// Points the distribution at a new batch, only if it still points at `replacing` (or at
    /// nothing when `None`). `false` when another writer won the race.
    fn swap_pointer(
        &self,
        distribution_id: &str,
        new: &OpenPointer,
        replacing: Option<&str>,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Removes the pointer if it still names `batch_id`; a lost race is not an error.
    fn delete_pointer(
        &self,
        distribution_id: &str,
        batch_id: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What dedupe needs to join a batch (and `cfinv replay` to write one).
pub trait JoinStore: PointerStore + Send + Sync {
    /// Creates the OPEN batch item unless it exists (idempotent: any joiner may call it).
    fn create_batch(
        &self,
        batch: &BatchRef,
        opened_at: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The batch item (strongly consistent).
    fn get_batch(&self, batch_id: &str) -> impl Future<Output = Result<Option<Batch>>> + Send;

    /// Records one path of one S3 event in the batch (idempotent per event id).
    fn put_path(
        &self,
        batch_id: &str,
        change: &PathChange,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The committed plan and a task's last error: read by create-invalidation and poll-status.
pub trait PlanStore: Send + Sync {
    /// The committed plan's chunks, in order.
    fn load_plan(&self, batch_id: &str) -> impl Future<Output = Result<Vec<Chunk>>> + Send;

    /// Writes a task's error to the batch item (the execution may still retry).
    fn record_error(
        &self,
        batch_id: &str,
        error: &crate::Error,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What create-invalidation needs: close the batch, commit its plan, record what was submitted.
pub trait SubmitStore: PointerStore + PlanStore + Send + Sync {
    /// OPEN -> CLOSED (a batch closed before stays as it is). Returns the batch after the close.
    fn close_batch(
        &self,
        batch: &BatchRef,
        now: OffsetDateTime,
        execution_arn: &str,
    ) -> impl Future<Output = Result<Batch>> + Send;

    /// Every path of the batch: a strongly consistent, paginated query of the base table.
    fn batch_paths(&self, batch_id: &str) -> impl Future<Output = Result<BatchPaths>> + Send;

    /// Stores `plan`, with the distribution configuration it was made from (`basis`, when it
    /// was read), unless a plan is already committed, and returns the committed one: a retry or
    /// redrive always replays the first plan.
    fn commit_plan(
        &self,
        batch_id: &str,
        plan: &Plan,
        received: &BatchPaths,
        basis: Option<&PlanBasis>,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Chunk>>> + Send;

    fn record_invalidation(
        &self,
        batch_id: &str,
        chunk: u32,
        invalidation_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send;

    fn mark_submitted(
        &self,
        batch_id: &str,
        billed: usize,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Closes out a batch that closed with no path, or whose committed plan has no chunk (its
    /// distribution serves none of its paths): EMPTY, out of the distribution's listing and the
    /// failures index (nothing billed). A batch with a plan to submit stays as it is.
    fn mark_empty(
        &self,
        batch_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What poll-status needs: the poll window and completions.
pub trait PollStore: PlanStore + Send + Sync {
    /// Starts a new poll window when the execution was redriven (`epoch` = RedriveCount).
    /// Returns the start of the current window.
    fn poll_window(
        &self,
        batch_id: &str,
        epoch: u32,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<OffsetDateTime>> + Send;

    fn mark_chunk_completed(
        &self,
        batch_id: &str,
        chunk: u32,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send;

    fn mark_completed(
        &self,
        batch_id: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What record-outcome needs: executions' outcomes.
pub trait OutcomeStore: Send + Sync {
    /// Applies an execution outcome unless a newer one was applied already.
    fn record_outcome(
        &self,
        batch: &BatchRef,
        outcome: &Outcome,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Records a failed event under `name`: the S3 change (or manual request) it carried is
    /// visible in the failures index even though it never reached a batch. A failed
    /// object-changed execution is named by the execution ([`crate::model::execution_name`]);
    /// one event of a batch that failed alone, by `<execution name>/<event id>`.
    fn record_failed_event(
        &self,
        name: &str,
        outcome: &Outcome,
        input: &str,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// What the sweep needs: batches left open.
pub trait SweepStore: Send + Sync {
    /// OPEN batches opened before `before` (with their opening time), oldest first.
    fn open_batches_before(
        &self,
        before: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<(BatchRef, OffsetDateTime)>>> + Send;
}
