//! The batch and audit data model shared by every function (docs/design.md §4).
//!
//! One DynamoDB table, single-table design: its names and keys are in `schema/`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Lifecycle of a batch (what each change does to the item: `lifecycle.rs`). FAILED is set by
/// the outcome recorder and left when the redriven execution completes the batch, so it can
/// follow any of the others. EMPTY is final: the batch closed with no
/// path (its opener died after opening it, and the retried join landed in another batch), so
/// nothing was planned or billed, and it leaves the distribution's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BatchStatus {
    Open,
    Closed,
    Submitted,
    Completed,
    Failed,
    Empty,
}

string_forms!(BatchStatus, crate::Error::StoreError, "batch status" {
    Open => "OPEN",
    Closed => "CLOSED",
    Submitted => "SUBMITTED",
    Completed => "COMPLETED",
    Failed => "FAILED",
    Empty => "EMPTY",
});

/// How a Step Functions execution ended (the `status` of its "Execution Status Change" event).
/// Only SUCCEEDED is a success: a batch or event whose execution ended any other way failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
    PendingRedrive,
}

string_forms!(ExecutionStatus, crate::Error::InvalidEvent, "execution status" {
    Running => "RUNNING",
    Succeeded => "SUCCEEDED",
    Failed => "FAILED",
    TimedOut => "TIMED_OUT",
    Aborted => "ABORTED",
    PendingRedrive => "PENDING_REDRIVE",
});

impl ExecutionStatus {
    pub fn succeeded(self) -> bool {
        self == ExecutionStatus::Succeeded
    }
}

/// Identifies a batch in task inputs and outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRef {
    pub batch_id: String,
    pub distribution_id: String,
}

/// A request for a batch's flush execution: the batch plus the time its debounce ends. The
/// debounce is fixed from the batch's opening, not sliding, so continuous writes cannot starve
/// a flush; and every request for the same batch carries the same input, which keeps
/// `StartExecution` (named by the batch id) idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlushRequest {
    #[serde(flatten)]
    pub batch: BatchRef,
    pub flush_at: String,
}

impl FlushRequest {
    pub fn new(batch: BatchRef, opened_at: OffsetDateTime, debounce: std::time::Duration) -> Self {
        Self {
            batch,
            flush_at: timestamp(opened_at + debounce),
        }
    }
}

/// How long a batch stays OPEN: `debounce` to gather a burst (its flush waits that long after
/// the opening), then `grace` for the flush to start. Past both, joiners rotate the batch and
/// the sweep asks for its flush again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenWindow {
    pub debounce: std::time::Duration,
    pub grace: std::time::Duration,
}

impl OpenWindow {
    /// `DEBOUNCE_SECONDS` (default 30) and `GRACE_SECONDS` (default 60).
    pub fn from_env() -> crate::Result<Self> {
        use crate::setup::env_number;
        Ok(Self {
            debounce: std::time::Duration::from_secs(env_number("DEBOUNCE_SECONDS", 30)?),
            grace: std::time::Duration::from_secs(env_number("GRACE_SECONDS", 60)?),
        })
    }

    /// Batches opened before this are stale at `now`.
    pub fn stale_before(&self, now: OffsetDateTime) -> OffsetDateTime {
        now - (self.debounce + self.grace)
    }

    pub fn is_stale(&self, opened_at: OffsetDateTime, now: OffsetDateTime) -> bool {
        opened_at < self.stale_before(now)
    }
}

/// The open-batch pointer of a distribution (`DIST#<id>` / `OPEN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPointer {
    pub batch_id: String,
    pub opened_at: OffsetDateTime,
}

/// The batch item (`BATCH#<id>` / `META`): counts, never lists, so it stays far below 400 KB.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub batch_id: String,
    pub distribution_id: String,
    pub status: BatchStatus,
    pub opened_at: OffsetDateTime,
    /// The committed plan (its id and chunk count); `None` until then.
    pub plan: Option<PlanRef>,
    pub submitted_at: Option<OffsetDateTime>,
    /// The Step Functions redrive epoch the poll deadline was last reset for.
    pub poll_epoch: Option<u32>,
    pub poll_since: Option<OffsetDateTime>,
}

impl Batch {
    /// A batch just opened.
    pub fn opened(batch: &BatchRef, opened_at: OffsetDateTime) -> Self {
        Batch {
            batch_id: batch.batch_id.clone(),
            distribution_id: batch.distribution_id.clone(),
            status: BatchStatus::Open,
            opened_at,
            plan: None,
            submitted_at: None,
            poll_epoch: None,
            poll_since: None,
        }
    }
}

impl From<Batch> for BatchRef {
    fn from(batch: Batch) -> Self {
        BatchRef {
            batch_id: batch.batch_id,
            distribution_id: batch.distribution_id,
        }
    }
}

/// Which plan of a batch is the committed one. Chunks are keyed by plan id, so an attempt that
/// lost the commit race can never overwrite the committed plan's chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRef {
    pub plan_id: String,
    pub chunks: u32,
}

/// One CreateInvalidation request of a stored plan (`BATCH#<id>` / `PLAN#<planId>#<n>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub plan_id: String,
    pub index: u32,
    pub paths: Vec<String>,
    pub invalidation_id: Option<String>,
    pub completed: bool,
}

impl Chunk {
    /// The chunks of a fresh plan, none submitted yet.
    pub fn planned(plan_id: &str, plan: &crate::plan::Plan) -> Vec<Chunk> {
        plan.chunks
            .iter()
            .enumerate()
            .map(|(i, paths)| Chunk {
                plan_id: plan_id.to_owned(),
                index: i as u32,
                paths: paths.clone(),
                invalidation_id: None,
                completed: false,
            })
            .collect()
    }
}

/// Time source, injected so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A new batch id: `<distributionId>-<UTC time>-<8 random hex>`. It names the flush execution,
/// so it stays within Step Functions' 80 characters and uses only letters, digits and `-`.
pub fn new_batch_id(distribution_id: &str, now: OffsetDateTime) -> String {
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{distribution_id}-{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}",
        now.year(),
        now.month() as u8,
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        &random[random.len() - 8..]
    )
}

/// Event ids a path item keeps (about 4 KB of a 400 KB item). A key written again and again
/// within one batch would otherwise grow its set past DynamoDB's item limit; beyond this many,
/// further events are only counted (`moreEvents`), so a duplicate delivery among them may be
/// counted twice: `eventsReceived` is then an upper bound.
pub const MAX_EVENT_IDS_PER_PATH: usize = 100;

/// When a batch was opened, to the second, read back from its id (see [`new_batch_id`]): what
/// a close records when the opener died before writing the batch item.
pub fn batch_opened_at(batch_id: &str) -> Option<OffsetDateTime> {
    let (head, _random) = batch_id.rsplit_once('-')?;
    let (_distribution, stamp) = head.rsplit_once('-')?;
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(stamp, &format)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// RFC 3339 in UTC with exactly three fractional digits: fixed width, so it sorts as a string,
/// which the time-range indexes need.
pub fn timestamp(t: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}

/// An execution's name: the last `:`-separated part of its ARN.
pub fn execution_name(execution_arn: &str) -> &str {
    execution_arn.rsplit(':').next().unwrap_or(execution_arn)
}

pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn batch_id_is_a_valid_execution_name() {
        let id = new_batch_id("E2QWRUHAPOMQZL", datetime!(2026-11-25 03:04:05 UTC));
        assert!(id.starts_with("E2QWRUHAPOMQZL-20261125T030405Z-"), "{id}");
        assert!(id.len() <= 80);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_ne!(
            id,
            new_batch_id("E2QWRUHAPOMQZL", datetime!(2026-11-25 03:04:05 UTC))
        );
        assert_eq!(
            batch_opened_at(&id),
            Some(datetime!(2026-11-25 03:04:05 UTC))
        );
        assert_eq!(batch_opened_at("E1-not-a-time"), None);
    }

    #[test]
    fn timestamps_sort_as_strings() {
        let a = timestamp(datetime!(2026-11-25 03:04:05.1234 UTC));
        let b = timestamp(datetime!(2026-11-25 03:04:05.9 UTC));
        assert_eq!(
            timestamp(datetime!(2026-11-25 03:04:05 UTC)),
            "2026-11-25T03:04:05.000Z"
        );
        assert_eq!(a, "2026-11-25T03:04:05.123Z");
        assert!(a < b);
        assert_eq!(parse_timestamp(&a).map(|t| t.millisecond()), Some(123));
    }
}
