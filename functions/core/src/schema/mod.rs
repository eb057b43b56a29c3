//! The audit table's schema, in one place (docs/design.md §4): attribute names, keys, index
//! names and the string forms stored in them. The DynamoDB adapter, the CLI and the end-to-end
//! tests read and write the table through these names; `template.yaml` declares the same keys
//! and indexes. The names on the wire are fixed (deployed tables and the local stack use
//! them), so the constants give them readable Rust names rather than renaming them.

#[cfg(feature = "dynamodb")]
pub mod item;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::model::{parse_timestamp, timestamp};

/// The `byDistribution` index: the batches of a distribution, by opening time.
pub const BY_DISTRIBUTION: &str = "byDistribution";
/// Partition key of `byDistribution`: [`keys::dist_pk`] of the batch's distribution.
pub const BY_DISTRIBUTION_PK: &str = "gsi1pk";
/// Sort key of `byDistribution`: [`keys::index_sk`] of the batch's opening time.
pub const BY_DISTRIBUTION_SK: &str = "gsi1sk";

/// The `byPath` index: the history of one path on one distribution.
pub const BY_PATH: &str = "byPath";
/// Partition key of `byPath`: [`keys::path_index_pk`].
pub const BY_PATH_PK: &str = "gsi2pk";
/// Sort key of `byPath`: [`keys::index_sk`] of when the path was last seen in the batch.
pub const BY_PATH_SK: &str = "gsi2sk";

/// The sparse `byStatus` index: every batch not yet COMPLETED (nor EMPTY) and every failed
/// event, by status and since when (see `lifecycle.rs` for who enters and leaves it).
pub const BY_STATUS: &str = "byStatus";
/// Partition key of `byStatus`: the batch status ([`crate::model::BatchStatus::as_str`]).
pub const BY_STATUS_PK: &str = "statusPk";
/// Sort key of `byStatus`: [`keys::index_sk`] of the time the item entered its status.
pub const BY_STATUS_SK: &str = "statusSk";

/// Attribute names. Several (`status`, `path`, `key`, `type`, `bucket`, `change`) are
/// DynamoDB reserved words: expressions name them through `#` placeholders.
pub mod attr {
    /// The table's partition key.
    pub const PK: &str = "PK";
    /// The table's sort key.
    pub const SK: &str = "SK";
    /// [`super::ItemType`]: what a batch or failed-event item is, for readers of `byStatus`.
    pub const TYPE: &str = "type";
    /// When DynamoDB's TTL deletes the item (epoch seconds).
    pub const EXPIRES_AT: &str = "expiresAt";

    // The open-batch pointer and the batch item.
    pub const BATCH_ID: &str = "batchId";
    pub const DISTRIBUTION_ID: &str = "distributionId";
    /// A batch's [`crate::model::BatchStatus`], a chunk's [`super::ChunkStatus`], a failed
    /// event's FAILED.
    pub const STATUS: &str = "status";
    pub const OPENED_AT: &str = "openedAt";
    pub const CLOSED_AT: &str = "closedAt";
    pub const PLANNED_AT: &str = "plannedAt";
    pub const SUBMITTED_AT: &str = "submittedAt";
    /// On a batch: when it completed; on a chunk: when CloudFront finished it.
    pub const COMPLETED_AT: &str = "completedAt";
    pub const FAILED_AT: &str = "failedAt";
    pub const EMPTY_AT: &str = "emptyAt";
    pub const PLAN_ID: &str = "planId";
    pub const PLANNED_CHUNKS: &str = "plannedChunks";
    /// The distribution configuration a plan was made from and the paths it left out, as JSON
    /// ([`crate::distribution::PlanBasis`]).
    pub const PLAN_BASIS: &str = "planBasis";
    pub const PATHS_RECEIVED: &str = "pathsReceived";
    pub const EVENTS_RECEIVED: &str = "eventsReceived";
    pub const PATHS_PLANNED: &str = "pathsPlanned";
    pub const PATHS_BILLED: &str = "pathsBilled";
    pub const POLL_EPOCH: &str = "pollEpoch";
    pub const POLL_SINCE: &str = "pollSince";
    pub const EXECUTION_ARN: &str = "executionArn";
    /// The [`crate::model::ExecutionStatus`] of the latest outcome recorded.
    pub const EXECUTION_STATUS: &str = "executionStatus";
    pub const OUTCOME_AT: &str = "outcomeAt";
    /// See `lifecycle.rs` for what it says.
    pub const LAST_ERROR: &str = "lastError";
    pub const LAST_ERROR_AT: &str = "lastErrorAt";
    /// Task errors recorded on the batch.
    pub const ATTEMPTS: &str = "attempts";
    /// `cfinv replay`: the batch that replays this FAILED one, and the one a replay replays.
    pub const REPLAYED_BY: &str = "replayedBy";
    pub const REPLAY_OF: &str = "replayOf";

    // The path item.
    pub const PATH: &str = "path";
    pub const BUCKET: &str = "bucket";
    pub const KEY: &str = "key";
    /// [`crate::event::ChangeKind`].
    pub const CHANGE: &str = "change";
    pub const VERSION_ID: &str = "versionId";
    pub const ETAG: &str = "etag";
    pub const SEQUENCER: &str = "sequencer";
    pub const EVENT_TIME: &str = "eventTime";
    pub const REASON: &str = "reason";
    /// At most [`crate::model::MAX_EVENT_IDS_PER_PATH`] event ids; more are counted in
    /// [`MORE_EVENTS`].
    pub const EVENT_IDS: &str = "eventIds";
    pub const MORE_EVENTS: &str = "moreEvents";
    pub const FIRST_SEEN_AT: &str = "firstSeenAt";
    pub const LAST_SEEN_AT: &str = "lastSeenAt";

    // The plan chunk.
    pub const PATHS: &str = "paths";
    pub const CALLER_REFERENCE: &str = "callerReference";
    pub const INVALIDATION_ID: &str = "invalidationId";
    pub const CREATED_AT: &str = "createdAt";

    // The failed event.
    /// The object-changed execution's input: the S3 event.
    pub const INPUT: &str = "input";

    // The manual request (`functions/core/src/manual.rs`) and its hourly budget.
    pub const REQUEST_ID: &str = "requestId";
    pub const REQUESTED_BY: &str = "requestedBy";
    pub const CHANNEL: &str = "channel";
    pub const REQUEST_REASON: &str = "requestReason";
    /// The request's items as asked (refused) or as joined (accepted).
    pub const ITEMS: &str = "items";
    /// `ACCEPTED` or `REFUSED`.
    pub const OUTCOME: &str = "outcome";
    pub const REFUSAL: &str = "refusal";
    pub const BATCH_IDS: &str = "batchIds";
    pub const REQUESTED_AT: &str = "requestedAt";
    /// Manual paths reserved in one hour.
    pub const MANUAL_PATHS: &str = "manualPaths";
    /// The requests that hour's manual paths were reserved for (each is charged once).
    pub const REQUEST_IDS: &str = "requestIds";

    // An object's last seen cache tags (`functions/core/src/object_tags.rs`); `BUCKET`, `KEY`,
    // `LAST_SEEN_AT` as on a path item.
    pub const TAGS: &str = "tags";
}

/// What an item is, where one index holds two kinds (`byStatus`: batches and failed events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemType {
    Batch,
    /// A failed object-changed execution.
    Event,
    /// A manual invalidation request, accepted or refused.
    Request,
    /// An object's last seen cache tags.
    ObjectTags,
}

string_forms!(ItemType, crate::Error::StoreError, "item type" {
    Batch => "batch",
    Event => "event",
    Request => "request",
    ObjectTags => "objectTags",
});

/// A plan chunk's status: planned, then CloudFront's own words for the invalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ChunkStatus {
    #[serde(rename = "PLANNED")]
    Planned,
    InProgress,
    Completed,
}

string_forms!(ChunkStatus, crate::Error::StoreError, "chunk status" {
    Planned => "PLANNED",
    InProgress => "InProgress",
    Completed => "Completed",
});

/// Inputs and error texts are kept well below the 400 KB item limit.
pub const MAX_TEXT: usize = 16 * 1024;

/// `text`, cut to [`MAX_TEXT`] bytes (on a character boundary, marked with `…`).
pub fn bounded(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

pub mod keys {
    //! Table keys. Paths can be 4,000 characters but sort keys only 1,024 bytes, so path items
    //! are keyed by the SHA-256 of the path.
    use super::*;

    /// Sort key of a batch item and of a failed event.
    pub const META: &str = "META";
    /// Sort key of a distribution's open-batch pointer.
    pub const OPEN: &str = "OPEN";
    pub const PATH_PREFIX: &str = "PATH#";
    pub const PLAN_PREFIX: &str = "PLAN#";
    const EXEC_PREFIX: &str = "EXEC#";

    pub fn dist_pk(distribution_id: &str) -> String {
        format!("DIST#{distribution_id}")
    }
    pub fn batch_pk(batch_id: &str) -> String {
        format!("BATCH#{batch_id}")
    }
    /// Partition key of the failed event of an execution.
    pub fn exec_pk(execution_name: &str) -> String {
        format!("{EXEC_PREFIX}{execution_name}")
    }
    /// The execution name in a failed event's partition key.
    pub fn exec_name(pk: &str) -> &str {
        pk.strip_prefix(EXEC_PREFIX).unwrap_or(pk)
    }
    /// Partition key of a manual request.
    pub fn request_pk(request_id: &str) -> String {
        format!("REQUEST#{request_id}")
    }
    /// Partition key of a distribution's manual budget; the sort key is the hour.
    pub fn manual_budget_pk(distribution_id: &str) -> String {
        format!("MANUAL#{distribution_id}")
    }
    /// `byDistribution` partition of every manual request (few: they are bounded per hour).
    pub const MANUAL_REQUESTS: &str = "MANUAL";
    /// Partition key of an object's last seen cache tags (`object_tags.rs`).
    pub fn object_pk(bucket: &str, key: &str) -> String {
        format!("OBJECT#{bucket}#{key}")
    }
    pub const TAGS: &str = "TAGS";
    pub fn path_hash(path: &str) -> String {
        Sha256::digest(path.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
    pub fn path_sk(path: &str) -> String {
        format!("{PATH_PREFIX}{}", path_hash(path))
    }
    pub fn plan_prefix(plan_id: &str) -> String {
        format!("{PLAN_PREFIX}{plan_id}#")
    }
    pub fn plan_sk(plan_id: &str, index: u32) -> String {
        format!("{PLAN_PREFIX}{plan_id}#{index:04}")
    }
    /// The plan id and chunk index of a chunk's sort key.
    pub fn parse_plan_sk(sk: &str) -> Option<(&str, u32)> {
        let (plan_id, index) = sk.strip_prefix(PLAN_PREFIX)?.rsplit_once('#')?;
        Some((plan_id, index.parse().ok()?))
    }
    /// Partition key of the `byPath` index: one partition per (distribution, path).
    pub fn path_index_pk(distribution_id: &str, path: &str) -> String {
        format!("PATH#{distribution_id}#{}", path_hash(path))
    }
    /// An index sort key, `<time>#<id>`: time-ordered, unique per item. A bare time sorts
    /// before every item of that time, so it bounds a range query.
    pub fn index_sk(at: OffsetDateTime, id: &str) -> String {
        format!("{}#{id}", timestamp(at))
    }
    /// The time of an [`index_sk`].
    pub fn index_sk_time(sk: &str) -> Option<OffsetDateTime> {
        sk.split_once('#').and_then(|(t, _)| parse_timestamp(t))
    }
    /// `CallerReference` of chunk `n`: derived from the batch, never from the clock, so every
    /// retry and redrive of the same chunk names the same invalidation.
    pub fn caller_reference(batch_id: &str, index: u32) -> String {
        format!("{batch_id}#{index}")
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn path_keys_fit_dynamodb_sort_key_limit_for_the_longest_path() {
        let long = format!("/{}", "%E2%82%AC".repeat(444));
        assert!(keys::path_sk(&long).len() < 1024);
        assert_eq!(keys::path_sk("/a"), keys::path_sk("/a"));
        assert_ne!(keys::path_sk("/a"), keys::path_sk("/A"));
    }

    #[test]
    fn keys_read_back_what_they_were_built_from() {
        let at = datetime!(2026-11-25 03:04:05.5 UTC);
        let sk = keys::index_sk(at, "E1-b");
        assert_eq!(sk, "2026-11-25T03:04:05.500Z#E1-b");
        assert_eq!(keys::index_sk_time(&sk), Some(at));
        assert_eq!(
            keys::parse_plan_sk(&keys::plan_sk("p1", 3)),
            Some(("p1", 3))
        );
        assert_eq!(keys::parse_plan_sk("PATH#p1#0003"), None);
        assert_eq!(keys::exec_name(&keys::exec_pk("abc")), "abc");
    }

    #[test]
    fn statuses_have_one_string_form_each() {
        use crate::event::ChangeKind;
        use crate::model::{BatchStatus, ExecutionStatus};
        for s in [
            "OPEN",
            "CLOSED",
            "SUBMITTED",
            "COMPLETED",
            "FAILED",
            "EMPTY",
        ] {
            assert_eq!(s.parse::<BatchStatus>().unwrap().as_str(), s);
        }
        for s in ["PLANNED", "InProgress", "Completed"] {
            assert_eq!(s.parse::<ChunkStatus>().unwrap().as_str(), s);
        }
        for s in ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"] {
            assert_eq!(s.parse::<ExecutionStatus>().unwrap().as_str(), s);
        }
        for s in ["Created", "Deleted"] {
            assert_eq!(s.parse::<ChangeKind>().unwrap().as_str(), s);
        }
        for s in ["batch", "event"] {
            assert_eq!(s.parse::<ItemType>().unwrap().as_str(), s);
        }
        assert!("Open".parse::<BatchStatus>().is_err());
        // serde agrees with as_str, so task inputs and the table say the same.
        assert_eq!(
            serde_json::to_value(BatchStatus::Submitted).unwrap(),
            "SUBMITTED"
        );
        assert_eq!(
            serde_json::to_value(ExecutionStatus::TimedOut).unwrap(),
            "TIMED_OUT"
        );
        assert_eq!(
            serde_json::to_value(ChunkStatus::Planned).unwrap(),
            "PLANNED"
        );
    }

    #[test]
    fn long_texts_are_bounded_on_a_character_boundary() {
        let text = "€".repeat(MAX_TEXT);
        let cut = bounded(&text);
        assert!(cut.len() <= MAX_TEXT + '…'.len_utf8() && cut.ends_with('…'));
        assert_eq!(bounded("short"), "short");
    }
}
