//! What a batch's status change does to its item, decided once for both stores (`dynamo/`
//! writes it as update expressions, `memory/` applies it to its state): whether the batch
//! waits in the `byStatus` index, whether it is listed in `byDistribution`, its failure mark,
//! and what `lastError` says (docs/design.md §4).

use time::OffsetDateTime;

use crate::Error;
use crate::model::{BatchStatus, batch_opened_at};
use crate::schema::bounded;
use crate::store::Outcome;

/// What a write does to a batch's place in the distribution's listing (`byDistribution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// A write that may create the item (its opener may have died before writing it) writes
    /// the batch's identity and lists it, unless it is there already.
    Ensure,
    Keep,
    /// Out of the listing: an EMPTY batch planned and billed nothing.
    Leave,
}

/// A change a write makes to an optional attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark<T> {
    Set(T),
    Keep,
    Clear,
}

/// The item-level effects of moving a batch to `status` at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub status: BatchStatus,
    /// `Set(since)`: the batch waits in `byStatus` under `status`, since `since` (what `cfinv
    /// audit stuck`, `failed` and the sweep ask); `Clear`: it is done and leaves the index.
    pub waiting_since: Mark<OffsetDateTime>,
    pub listing: Listing,
    /// `failedAt`: set by a failure, cleared once the batch completes or turns out empty.
    pub failed_at: Mark<OffsetDateTime>,
}

impl Transition {
    pub fn to(status: BatchStatus, at: OffsetDateTime) -> Self {
        let (waiting_since, listing, failed_at) = match status {
            BatchStatus::Open | BatchStatus::Closed => (Mark::Set(at), Listing::Ensure, Mark::Keep),
            BatchStatus::Submitted => (Mark::Set(at), Listing::Keep, Mark::Keep),
            BatchStatus::Failed => (Mark::Set(at), Listing::Ensure, Mark::Set(at)),
            BatchStatus::Completed => (Mark::Clear, Listing::Keep, Mark::Clear),
            BatchStatus::Empty => (Mark::Clear, Listing::Leave, Mark::Clear),
        };
        Self {
            status,
            waiting_since,
            listing,
            failed_at,
        }
    }
}

/// When a batch written by a write that may create its item was opened: from its id (see
/// [`crate::model::new_batch_id`]), else the write's own time.
pub fn opened_at_of(batch_id: &str, at: OffsetDateTime) -> OffsetDateTime {
    batch_opened_at(batch_id).unwrap_or(at)
}

/// `lastError` after a task failed (its execution may still retry): the error's name, which
/// the state machines match on, and its message.
pub fn task_error(error: &Error) -> String {
    bounded(&format!("{}: {error}", error.name()))
}

/// `lastError` after an execution ended, for its batch or its failed event: `None` when it
/// succeeded, which is the only way an execution does not fail (TIMED_OUT and ABORTED fail
/// too). Step Functions' error and cause, whichever it gave.
pub fn execution_error(outcome: &Outcome) -> Option<String> {
    if outcome.status.succeeded() {
        return None;
    }
    let text = match (&outcome.error, &outcome.cause) {
        (Some(e), Some(c)) => format!("{e}: {c}"),
        (Some(e), None) => e.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) => format!("execution {}", outcome.status),
    };
    Some(bounded(&text))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::model::ExecutionStatus;

    const AT: OffsetDateTime = datetime!(2026-11-25 03:04:05 UTC);

    #[test]
    fn a_batch_waits_in_the_status_index_until_it_is_done() {
        for status in [
            BatchStatus::Open,
            BatchStatus::Closed,
            BatchStatus::Submitted,
            BatchStatus::Failed,
        ] {
            assert_eq!(Transition::to(status, AT).waiting_since, Mark::Set(AT));
        }
        for status in [BatchStatus::Completed, BatchStatus::Empty] {
            let t = Transition::to(status, AT);
            assert_eq!((t.waiting_since, t.failed_at), (Mark::Clear, Mark::Clear));
        }
        assert_eq!(
            Transition::to(BatchStatus::Empty, AT).listing,
            Listing::Leave
        );
        assert_eq!(
            Transition::to(BatchStatus::Failed, AT).failed_at,
            Mark::Set(AT)
        );
    }

    #[test]
    fn last_error_says_what_failed() {
        let outcome = |status, error: Option<&str>, cause: Option<&str>| Outcome {
            status,
            execution_arn: "arn".into(),
            error: error.map(Into::into),
            cause: cause.map(Into::into),
            at: AT,
        };
        assert_eq!(
            execution_error(&outcome(ExecutionStatus::Failed, Some("E"), Some("c"))).as_deref(),
            Some("E: c")
        );
        assert_eq!(
            execution_error(&outcome(ExecutionStatus::Failed, None, Some("c"))).as_deref(),
            Some("c")
        );
        assert_eq!(
            execution_error(&outcome(ExecutionStatus::TimedOut, None, None)).as_deref(),
            Some("execution TIMED_OUT")
        );
        assert_eq!(
            execution_error(&outcome(ExecutionStatus::Succeeded, Some("E"), None)),
            None
        );
        assert_eq!(
            task_error(&Error::StoreUnavailable("slow".into())),
            "StoreUnavailable: store unavailable: slow"
        );
        assert_eq!(
            opened_at_of(
                "E1-20261125T030405Z-0a1b2c3d",
                datetime!(2026-11-25 04:00 UTC)
            ),
            AT
        );
    }
}
