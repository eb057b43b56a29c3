//! The audit table's items as the CLI reads them (the schema is `cfinv_core::schema`, the
//! writers are in `cfinv_core::dynamo`). Every attribute but the ids and the status is
//! optional: an item reflects how far its batch got.

use std::str::FromStr;

use cfinv_core::distribution::PlanBasis;
use cfinv_core::model::{BatchStatus, ExecutionStatus};
use cfinv_core::schema::item::{self, string_list, string_set};
use cfinv_core::schema::{BY_STATUS_SK, ChunkStatus, ItemType, attr, keys};
use serde::Serialize;
use serde_json::Value;

use crate::span::{At, between};
use crate::{Error, Result};

pub use cfinv_core::schema::item::Item;

/// A batch item (`BATCH#<id>` / `META`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRecord {
    pub batch_id: String,
    pub distribution_id: String,
    pub status: BatchStatus,
    pub opened_at: Option<At>,
    pub closed_at: Option<At>,
    pub planned_at: Option<At>,
    pub submitted_at: Option<At>,
    pub completed_at: Option<At>,
    pub failed_at: Option<At>,
    /// When the batch entered its current status (`statusSk`); none once COMPLETED.
    pub status_since: Option<At>,
    pub events_received: Option<u64>,
    pub paths_received: Option<u64>,
    /// Paths in the plan: what was (or will be) submitted.
    pub paths_planned: Option<u64>,
    /// Paths of the submitted invalidations; set once the batch is SUBMITTED.
    pub paths_billed: Option<u64>,
    pub planned_chunks: Option<u64>,
    pub plan_id: Option<String>,
    pub execution_arn: Option<String>,
    pub execution_status: Option<ExecutionStatus>,
    pub attempts: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<At>,
    /// From the first write (the batch's opening) to Completed.
    pub took_seconds: Option<f64>,
    /// The batch `cfinv replay` submitted this FAILED batch's paths as.
    pub replayed_by: Option<String>,
    /// The FAILED batch whose paths this batch replays.
    pub replay_of: Option<String>,
}

impl BatchRecord {
    pub fn from_item(item: &Item) -> Result<Self> {
        let opened_at = time(item, attr::OPENED_AT);
        let completed_at = time(item, attr::COMPLETED_AT);
        Ok(Self {
            batch_id: required(item, attr::BATCH_ID)?,
            distribution_id: required(item, attr::DISTRIBUTION_ID)?,
            status: parsed(item, attr::STATUS)?,
            opened_at,
            closed_at: time(item, attr::CLOSED_AT),
            planned_at: time(item, attr::PLANNED_AT),
            submitted_at: time(item, attr::SUBMITTED_AT),
            completed_at,
            failed_at: time(item, attr::FAILED_AT),
            status_since: item::text(item, BY_STATUS_SK)
                .and_then(keys::index_sk_time)
                .map(At),
            events_received: count(item, attr::EVENTS_RECEIVED),
            paths_received: count(item, attr::PATHS_RECEIVED),
            paths_planned: count(item, attr::PATHS_PLANNED),
            paths_billed: count(item, attr::PATHS_BILLED),
            planned_chunks: count(item, attr::PLANNED_CHUNKS),
            plan_id: text(item, attr::PLAN_ID),
            execution_arn: text(item, attr::EXECUTION_ARN),
            execution_status: optional(item, attr::EXECUTION_STATUS)?,
            attempts: count(item, attr::ATTEMPTS),
            last_error: text(item, attr::LAST_ERROR),
            last_error_at: time(item, attr::LAST_ERROR_AT),
            took_seconds: opened_at
                .zip(completed_at)
                .and_then(|(o, c)| between(o.0, c.0))
                .map(|d| d.as_secs_f64()),
            replayed_by: text(item, attr::REPLAYED_BY),
            replay_of: text(item, attr::REPLAY_OF),
        })
    }
}

/// What a batch's plan was made from (`planBasis`, stored as JSON on the batch item when
/// create-invalidation planned from the distribution's configuration).
pub fn plan_basis(item: &Item) -> Result<Option<PlanBasis>> {
    item::text(item, attr::PLAN_BASIS)
        .map(|raw| {
            serde_json::from_str(raw).map_err(|e| {
                bad_item(
                    item,
                    format!("has a {} that does not parse: {e}", attr::PLAN_BASIS),
                )
            })
        })
        .transpose()
}

/// A path item (`BATCH#<id>` / `PATH#<sha256>`): one path of a batch and the S3 event that
/// brought it (the latest, if several did).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathRecord {
    pub path: String,
    pub batch_id: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// `Created` or `Deleted`.
    pub change: Option<String>,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub sequencer: Option<String>,
    /// The S3 event's own time, as the event gave it.
    pub event_time: Option<String>,
    pub event_ids: Vec<String>,
    pub first_seen_at: Option<At>,
    pub last_seen_at: Option<At>,
    /// Why the path is a wildcard rather than the object's own path (collect-keys' reason).
    pub reason: Option<String>,
}

impl PathRecord {
    pub fn from_item(item: &Item) -> Result<Self> {
        Ok(Self {
            path: required(item, attr::PATH)?,
            batch_id: required(item, attr::BATCH_ID)?,
            bucket: text(item, attr::BUCKET),
            key: text(item, attr::KEY),
            change: text(item, attr::CHANGE),
            version_id: text(item, attr::VERSION_ID),
            etag: text(item, attr::ETAG),
            sequencer: text(item, attr::SEQUENCER),
            event_time: text(item, attr::EVENT_TIME),
            event_ids: string_set(item, attr::EVENT_IDS).to_vec(),
            first_seen_at: time(item, attr::FIRST_SEEN_AT),
            last_seen_at: time(item, attr::LAST_SEEN_AT),
            reason: text(item, attr::REASON),
        })
    }
}

/// A plan chunk (`BATCH#<id>` / `PLAN#<planId>#<n>`): one CreateInvalidation request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkRecord {
    pub index: u32,
    pub paths: Vec<String>,
    pub caller_reference: Option<String>,
    pub invalidation_id: Option<String>,
    /// `PLANNED`, then CloudFront's `InProgress` and `Completed`.
    pub status: Option<ChunkStatus>,
    pub created_at: Option<At>,
    pub completed_at: Option<At>,
}

impl ChunkRecord {
    pub fn from_item(item: &Item) -> Result<Self> {
        let sk = required(item, attr::SK)?;
        let (_plan_id, index) = keys::parse_plan_sk(&sk)
            .ok_or_else(|| Error::BadItem(format!("plan chunk key {sk} has no index")))?;
        Ok(Self {
            index,
            paths: string_list(item, attr::PATHS).unwrap_or_default(),
            caller_reference: text(item, attr::CALLER_REFERENCE),
            invalidation_id: text(item, attr::INVALIDATION_ID),
            status: optional(item, attr::STATUS)?,
            created_at: time(item, attr::CREATED_AT),
            completed_at: time(item, attr::COMPLETED_AT),
        })
    }

    /// The plan path that invalidates `path`: itself, or a wildcard above it.
    pub fn covering(&self, path: &str) -> Option<&str> {
        let exact = self.paths.iter().find(|p| *p == path);
        exact
            .or_else(|| {
                self.paths.iter().find(|p| {
                    p.strip_suffix('*')
                        .is_some_and(|prefix| path.starts_with(prefix))
                })
            })
            .map(String::as_str)
    }
}

/// A failed object-changed execution (`EXEC#<name>` / `META`, `type = event`): the S3 event it
/// carried never reached a batch.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedEvent {
    pub execution_name: String,
    pub execution_arn: Option<String>,
    pub failed_at: Option<At>,
    pub error: Option<String>,
    /// `s3://bucket/key` of the event, when the input names one.
    pub object: Option<String>,
    /// The execution's input (the S3 event), parsed when it is JSON.
    pub input: Option<Value>,
}

impl FailedEvent {
    pub fn from_item(item: &Item) -> Result<Self> {
        let pk = required(item, attr::PK)?;
        let input = text(item, attr::INPUT)
            .map(|raw| serde_json::from_str(&raw).unwrap_or(Value::String(raw)));
        Ok(Self {
            execution_name: keys::exec_name(&pk).to_owned(),
            execution_arn: text(item, attr::EXECUTION_ARN),
            failed_at: time(item, attr::FAILED_AT),
            error: text(item, attr::LAST_ERROR),
            object: input.as_ref().and_then(s3_object),
            input,
        })
    }
}

/// A manual invalidation request (`REQUEST#<id>` / `META`, `type = request`), accepted or
/// refused, as `functions/core/src/dynamo/manual.rs` records it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub request_id: String,
    pub distribution_id: String,
    pub requested_at: Option<At>,
    /// An IAM ARN (`cli`), or `<account>/<source>` (`event`).
    pub requested_by: Option<String>,
    /// `cli` or `event`.
    pub channel: Option<String>,
    /// As asked (refused) or as joined (accepted).
    pub items: Vec<String>,
    pub outcome: RequestOutcome,
    /// The batches an accepted request joined.
    pub batch_ids: Vec<String>,
    /// Why a request was refused.
    pub refusal: Option<String>,
    pub request_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RequestOutcome {
    Accepted,
    Refused,
}

impl RequestOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "ACCEPTED",
            Self::Refused => "REFUSED",
        }
    }
}

impl FromStr for RequestOutcome {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        [Self::Accepted, Self::Refused]
            .into_iter()
            .find(|o| o.as_str() == text)
            .ok_or(())
    }
}

impl RequestRecord {
    pub fn from_item(item: &Item) -> Result<Self> {
        Ok(Self {
            request_id: required(item, attr::REQUEST_ID)?,
            distribution_id: required(item, attr::DISTRIBUTION_ID)?,
            requested_at: time(item, attr::REQUESTED_AT),
            requested_by: text(item, attr::REQUESTED_BY),
            channel: text(item, attr::CHANNEL),
            items: string_list(item, attr::ITEMS).unwrap_or_default(),
            outcome: parsed(item, attr::OUTCOME)?,
            batch_ids: string_list(item, attr::BATCH_IDS).unwrap_or_default(),
            refusal: text(item, attr::REFUSAL),
            request_reason: text(item, attr::REQUEST_REASON),
        })
    }

    /// Whether it passes `cfinv audit requests`' filters: on `distribution_id` when one is
    /// given, and refused when `refused_only`.
    pub fn matches(&self, distribution_id: Option<&str>, refused_only: bool) -> bool {
        distribution_id.is_none_or(|d| d == self.distribution_id)
            && (!refused_only || self.outcome == RequestOutcome::Refused)
    }
}

/// The object an S3 event names: EventBridge (`detail`) or classic (`Records[0].s3`).
fn s3_object(event: &Value) -> Option<String> {
    let (bucket, key) = match event.get("detail") {
        Some(detail) => (&detail["bucket"]["name"], &detail["object"]["key"]),
        None => {
            let s3 = &event["Records"][0]["s3"];
            (&s3["bucket"]["name"], &s3["object"]["key"])
        }
    };
    Some(format!("s3://{}/{}", bucket.as_str()?, key.as_str()?))
}

pub fn is_failed_event(item: &Item) -> bool {
    item::text(item, attr::TYPE) == Some(ItemType::Event.as_str())
}

fn text(item: &Item, name: &str) -> Option<String> {
    item::text(item, name).map(str::to_owned)
}

fn required(item: &Item, name: &str) -> Result<String> {
    text(item, name).ok_or_else(|| bad_item(item, format!("has no string attribute {name}")))
}

/// An attribute stored in one of the schema's string forms (a status).
fn optional<T: FromStr>(item: &Item, name: &str) -> Result<Option<T>> {
    item::text(item, name)
        .map(|raw| {
            raw.parse()
                .map_err(|_| bad_item(item, format!("has {name} {raw:?}, which is unknown")))
        })
        .transpose()
}

fn parsed<T: FromStr>(item: &Item, name: &str) -> Result<T> {
    optional(item, name)?.ok_or_else(|| bad_item(item, format!("has no string attribute {name}")))
}

fn bad_item(item: &Item, what: String) -> Error {
    let key = |k| item::text(item, k).unwrap_or_default();
    Error::BadItem(format!("item {}/{} {what}", key(attr::PK), key(attr::SK)))
}

fn count(item: &Item, name: &str) -> Option<u64> {
    item::number(item, name)
}

fn time(item: &Item, name: &str) -> Option<At> {
    item::at(item, name).map(At)
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;
    use serde_json::json;

    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn a_batch_item_reads_its_counts_status_time_and_duration() {
        let batch = BatchRecord::from_item(&item(&[
            ("batchId", s("E1-b")),
            ("distributionId", s("E1")),
            ("status", s("COMPLETED")),
            ("openedAt", s("2026-11-25T10:00:00.000Z")),
            ("completedAt", s("2026-11-25T10:00:41.200Z")),
            ("pathsBilled", AttributeValue::N("3".into())),
        ]))
        .unwrap();
        assert_eq!(batch.paths_billed, Some(3));
        assert_eq!(batch.took_seconds, Some(41.2));
        assert_eq!(batch.status_since, None);

        let stuck = BatchRecord::from_item(&item(&[
            ("batchId", s("E1-c")),
            ("distributionId", s("E1")),
            ("status", s("SUBMITTED")),
            ("statusSk", s("2026-11-25T10:01:00.000Z#E1-c")),
        ]))
        .unwrap();
        assert_eq!(
            stuck.status_since.unwrap().to_string(),
            "2026-11-25 10:01:00"
        );
    }

    #[test]
    fn an_item_without_its_ids_is_an_error_naming_its_key() {
        let err =
            BatchRecord::from_item(&item(&[("PK", s("BATCH#x")), ("SK", s("META"))])).unwrap_err();
        assert!(err.to_string().contains("BATCH#x/META"), "{err}");
    }

    #[test]
    fn a_chunk_covers_its_paths_exactly_or_through_a_wildcard() {
        let chunk = ChunkRecord::from_item(&item(&[
            ("SK", s("PLAN#p1#0003")),
            (
                "paths",
                AttributeValue::L(vec![s("/img/*"), s("/a.html"), s("/img/logo.png")]),
            ),
        ]))
        .unwrap();
        assert_eq!(chunk.index, 3);
        assert_eq!(chunk.covering("/img/logo.png"), Some("/img/logo.png"));
        assert_eq!(chunk.covering("/img/x/y.png"), Some("/img/*"));
        assert_eq!(chunk.covering("/a.html"), Some("/a.html"));
        assert_eq!(chunk.covering("/b.html"), None);
    }

    #[test]
    fn a_request_item_reads_its_outcome_and_the_filters_pick_it() {
        let accepted = RequestRecord::from_item(&item(&[
            ("PK", s("REQUEST#r1")),
            ("SK", s("META")),
            ("type", s("request")),
            ("requestId", s("r1")),
            ("distributionId", s("E1")),
            ("requestedBy", s("arn:aws:iam::1:user/ops")),
            ("channel", s("cli")),
            ("items", AttributeValue::L(vec![s("/a.html"), s("/docs/*")])),
            ("outcome", s("ACCEPTED")),
            ("batchIds", AttributeValue::L(vec![s("E1-b")])),
            ("requestReason", s("release 7")),
            ("requestedAt", s("2026-11-25T10:00:00.000Z")),
            ("gsi1pk", s("MANUAL")),
        ]))
        .unwrap();
        assert_eq!(accepted.outcome, RequestOutcome::Accepted);
        assert_eq!(accepted.items, ["/a.html", "/docs/*"]);
        assert_eq!(accepted.batch_ids, ["E1-b"]);
        assert_eq!(accepted.refusal, None);
        assert_eq!(
            accepted.requested_at.unwrap().to_string(),
            "2026-11-25 10:00:00"
        );
        let json = serde_json::to_value(&accepted).unwrap();
        assert_eq!(json["outcome"], "ACCEPTED");
        assert_eq!(json["requestReason"], "release 7");
        assert_eq!(json["batchIds"], json!(["E1-b"]));

        let refused = RequestRecord::from_item(&item(&[
            ("requestId", s("r2")),
            ("distributionId", s("E2")),
            ("channel", s("event")),
            ("outcome", s("REFUSED")),
            ("refusal", s("/* needs --all")),
        ]))
        .unwrap();
        assert!(refused.batch_ids.is_empty() && refused.items.is_empty());
        assert_eq!(refused.refusal.as_deref(), Some("/* needs --all"));

        assert!(accepted.matches(None, false) && accepted.matches(Some("E1"), false));
        assert!(!accepted.matches(Some("E2"), false) && !accepted.matches(None, true));
        assert!(refused.matches(Some("E2"), true) && !refused.matches(Some("E1"), true));

        let err = RequestRecord::from_item(&item(&[
            ("PK", s("REQUEST#r3")),
            ("SK", s("META")),
            ("requestId", s("r3")),
            ("distributionId", s("E1")),
            ("outcome", s("accepted")),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("REQUEST#r3/META"), "{err}");
    }

    #[test]
    fn a_batch_item_reads_its_plan_basis_as_stored_by_create_invalidation() {
        let basis = json!({
            "bucket": "site",
            "distribution": {
                "distributionId": "E1",
                "origins": [{"id": "s3", "domainName": "site.s3.amazonaws.com", "originPath": "/live"}],
                "behaviors": [{"pathPattern": "*", "targetOriginId": "s3", "queryStrings": false}],
                "defaultRootObject": "index.html"
            },
            "skipped": [{"path": "/x", "reason": "outside the origin path of every origin serving the bucket"}],
            "skippedTotal": 1
        });
        let batch = |raw: &str| {
            item(&[
                ("PK", s("BATCH#E1-b")),
                ("SK", s("META")),
                ("planBasis", s(raw)),
            ])
        };
        let read = plan_basis(&batch(&basis.to_string())).unwrap().unwrap();
        assert_eq!(read.bucket, "site");
        assert_eq!(read.distribution.origins[0].origin_path, "/live");
        assert_eq!(read.distribution.cache_tag_header, None);
        assert_eq!(read.skipped_total, 1);
        assert_eq!(serde_json::to_value(&read).unwrap(), basis);

        assert!(plan_basis(&item(&[])).unwrap().is_none());
        let err = plan_basis(&batch("{}")).unwrap_err();
        assert!(
            err.to_string().contains("BATCH#E1-b/META has a planBasis"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_event_names_its_object_from_either_event_shape() {
        let bridge = json!({"detail": {"bucket": {"name": "site"}, "object": {"key": "a b.png"}}});
        assert_eq!(s3_object(&bridge).as_deref(), Some("s3://site/a b.png"));
        let classic =
            json!({"Records": [{"s3": {"bucket": {"name": "site"}, "object": {"key": "x"}}}]});
        assert_eq!(s3_object(&classic).as_deref(), Some("s3://site/x"));
        assert_eq!(s3_object(&json!({"detail": {}})), None);

        let event = FailedEvent::from_item(&item(&[
            ("PK", s("EXEC#abc")),
            ("type", s("event")),
            ("input", s("not json")),
        ]))
        .unwrap();
        assert_eq!(event.execution_name, "abc");
        assert_eq!(event.input, Some(Value::String("not json".into())));
    }
}
