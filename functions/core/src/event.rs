//! Parsing S3 change events into [`ObjectChange`]s.
//!
//! Two shapes are accepted: the EventBridge event ("Object Created" / "Object Deleted", what
//! the `object-changed` state machine receives) and the classic notification `{"Records": [..]}`
//! (for users migrating from a notification-triggered Lambda). Anything that is an S3 event but
//! not an object change (restores, tagging, `s3:TestEvent`, ...) is *ignored with a reason*, so
//! the execution succeeds and the reason is logged. Anything that is not an S3 event we
//! understand is an [`Error::InvalidEvent`] naming the offending field.
//!
//! Field typing: a required field that is missing, `null` or mistyped is an error. An optional
//! field that is `null` counts as absent (moto sends `"version-id": null` for unversioned
//! buckets); one of the wrong type is an error too, because it means the input is not the
//! document we think it is, and a half-read event would end up in the audit table. The only
//! leniency is where real senders differ: `eTag` next to `etag` (moto), and an EventBridge
//! `time` given as epoch seconds (moto) instead of RFC 3339 (AWS).
//!
//! Why not `aws_lambda_events`' types: deriving from its `S3Event` and EventBridge structs would
//! turn these field-level decisions into serde's generic messages, parse a non-object-change S3
//! event twice (once to learn it is one, once as its own detail type), and reject the senders'
//! differences above. A hand walk over `serde_json::Value` keeps one decision per field.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Error, Result};

/// What happened to the object. Both invalidate the same paths; the audit trail keeps the kind.
/// `Manual` is no object change: a path someone asked for (`functions/core/src/manual.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Created,
    Deleted,
    Manual,
}

// Its form in the audit table's path items (`change`).
string_forms!(ChangeKind, Error::StoreError, "change" {
    Created => "Created",
    Deleted => "Deleted",
    Manual => "Manual",
});

/// Where a key came from, which decides how it may be encoded (see [`crate::object_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// An EventBridge event: no AWS document says whether the key is encoded.
    EventBridge,
    /// A classic `Records[]` notification: the key is form-encoded (space -> `+`).
    Notification,
}

/// One object change, with the key exactly as it appeared in the event (not yet decoded).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectChange {
    pub bucket: String,
    pub raw_key: String,
    pub source: KeySource,
    pub kind: ChangeKind,
    /// EventBridge `detail.reason` (`PutObject`, `Lifecycle Expiration`, ...) or the classic
    /// `eventName` (`ObjectCreated:Put`, ...).
    pub reason: Option<String>,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub sequencer: Option<String>,
    /// RFC 3339, as in the event.
    pub event_time: Option<String>,
    /// EventBridge `id`; for a classic record, which has none, `<x-amz-request-id>:<sequencer>`.
    pub event_id: Option<String>,
    pub size: Option<u64>,
}

/// The object changes of one event, and what in it was deliberately skipped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedEvent {
    pub changes: Vec<ObjectChange>,
    pub ignored: Vec<Ignored>,
}

/// Something in the event that causes no invalidation, and why: logged and returned, never an
/// error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ignored {
    pub bucket: Option<String>,
    /// The decoded key where one was decoded, otherwise the key as it appeared in the event.
    pub key: Option<String>,
    pub reason: String,
}

impl Ignored {
    pub(crate) fn new(bucket: Option<&str>, key: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            bucket: bucket.map(str::to_owned),
            key: key.map(str::to_owned),
            reason: reason.into(),
        }
    }
}

/// Parses an EventBridge S3 event or a classic S3 notification. Never panics.
pub fn parse_event(v: &Value) -> Result<ParsedEvent> {
    let Value::Object(map) = v else {
        return Err(invalid(format!(
            "the event must be a JSON object, got {}",
            describe(v)
        )));
    };
    let event = Obj {
        map,
        at: String::new(),
    };
    if map.contains_key("Records") {
        parse_records(&event)
    } else if map.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        // Sent once when a notification configuration is saved; it names no object.
        let bucket = map.get("Bucket").and_then(Value::as_str);
        Ok(only_ignored(Ignored::new(
            bucket,
            None,
            "s3:TestEvent: S3 sends it when notifications are configured; it names no object",
        )))
    } else if ["source", "detail-type", "detail"]
        .iter()
        .any(|k| map.contains_key(*k))
    {
        parse_eventbridge(&event)
    } else {
        Err(invalid(
            "neither an EventBridge event (source, detail-type, detail) \
             nor an S3 notification (Records)",
        ))
    }
}

fn parse_eventbridge(event: &Obj<'_>) -> Result<ParsedEvent> {
    let source = event.str("source")?;
    if source != "aws.s3" {
        return Err(invalid(format!(
            "source is {source:?}, expected \"aws.s3\""
        )));
    }
    let kind = match event.str("detail-type")? {
        "Object Created" => ChangeKind::Created,
        "Object Deleted" => ChangeKind::Deleted,
        other => {
            return Ok(only_ignored(Ignored::new(
                event.lookup(&["detail", "bucket", "name"]),
                event.lookup(&["detail", "object", "key"]),
                format!("detail-type {other:?} is not an object change"),
            )));
        }
    };
    let detail = event.obj("detail")?;
    let bucket = detail.obj("bucket")?.non_empty_str("name")?;
    let object = detail.obj("object")?;
    let raw_key = object.str("key")?;
    let etag = match object.opt_str("etag")? {
        Some(etag) => Some(etag),
        None => object.opt_str("eTag")?,
    };
    let version_id = object.opt_str("version-id")?;
    if kind == ChangeKind::Deleted
        && detail.opt_str("deletion-type")? == Some("Permanently Deleted")
        && detail.opt_str("reason")? == Some("Lifecycle Expiration")
        && is_version(version_id)
    {
        return Ok(only_ignored(Ignored::new(
            Some(bucket),
            Some(raw_key),
            NONCURRENT_EXPIRED,
        )));
    }
    Ok(ParsedEvent {
        changes: vec![ObjectChange {
            bucket: bucket.to_owned(),
            raw_key: raw_key.to_owned(),
            source: KeySource::EventBridge,
            kind,
            reason: owned(detail.opt_str("reason")?),
            version_id: owned(version_id),
            etag: owned(etag),
            sequencer: owned(object.opt_str("sequencer")?),
            event_time: event.opt_time("time")?,
            event_id: owned(event.opt_str("id")?),
            size: object.opt_u64("size")?,
        }],
        ignored: Vec::new(),
    })
}

fn parse_records(event: &Obj<'_>) -> Result<ParsedEvent> {
    let records = event.array("Records")?;
    if records.is_empty() {
        return Ok(only_ignored(Ignored::new(
            None,
            None,
            "the event has no records",
        )));
    }
    let mut parsed = ParsedEvent::default();
    for (i, record) in records.iter().enumerate() {
        let at = format!("Records[{i}]");
        let Value::Object(map) = record else {
            return Err(invalid(format!(
                "{at} must be an object, got {}",
                describe(record)
            )));
        };
        let record = Obj { map, at };
        if let Some(source) = record.opt_str("eventSource")?
            && source != "aws:s3"
        {
            return Err(invalid(format!(
                "{} is {source:?}, expected \"aws:s3\"",
                record.path("eventSource")
            )));
        }
        let name = record.str("eventName")?;
        let s3 = record.obj("s3")?;
        let bucket = s3.obj("bucket")?.non_empty_str("name")?;
        let object = s3.obj("object")?;
        let raw_key = object.str("key")?;
        let version_id = object.opt_str("versionId")?;
        if name == "LifecycleExpiration:Delete" && is_version(version_id) {
            parsed.ignored.push(Ignored::new(
                Some(bucket),
                Some(raw_key),
                NONCURRENT_EXPIRED,
            ));
            continue;
        }
        let Some(kind) = notification_kind(name) else {
            parsed.ignored.push(Ignored::new(
                Some(bucket),
                Some(raw_key),
                format!("eventName {name:?} is not an object change"),
            ));
            continue;
        };
        let etag = match object.opt_str("eTag")? {
            Some(etag) => Some(etag),
            None => object.opt_str("etag")?,
        };
        let sequencer = object.opt_str("sequencer")?;
        let request_id = match record.opt_obj("responseElements")? {
            Some(response) => response.opt_str("x-amz-request-id")?,
            None => None,
        };
        let event_id = match (request_id, sequencer) {
            (Some(request), Some(seq)) => Some(format!("{request}:{seq}")),
            (request, _) => owned(request),
        };
        parsed.changes.push(ObjectChange {
            bucket: bucket.to_owned(),
            raw_key: raw_key.to_owned(),
            source: KeySource::Notification,
            kind,
            reason: Some(name.to_owned()),
            version_id: owned(version_id),
            etag: owned(etag),
            sequencer: owned(sequencer),
            event_time: record.opt_time("eventTime")?,
            event_id,
            size: object.opt_u64("size")?,
        });
    }
    Ok(parsed)
}

/// Classic event names that change what CloudFront serves. `LifecycleExpiration:*` deletes the
/// object (or puts a delete marker over it) just like `ObjectRemoved:*`; restores, transitions,
/// tagging, ACL and replication events leave the current object as it was.
fn notification_kind(event_name: &str) -> Option<ChangeKind> {
    let family = event_name.split(':').next().unwrap_or_default();
    match family {
        "ObjectCreated" => Some(ChangeKind::Created),
        "ObjectRemoved" | "LifecycleExpiration" => Some(ChangeKind::Deleted),
        _ => None,
    }
}

/// Why a lifecycle's permanent delete of a version is not invalidated. From the S3 user guide:
/// "When an unversioned object is deleted, or a versioned object is permanently deleted, the
/// deletion-type field is set to Permanently Deleted" ("Using EventBridge"); a lifecycle
/// Expiration in a versioning-enabled bucket "adds a delete marker ... This makes the current
/// version noncurrent" (an `Object Deleted` with `Delete Marker Created`, invalidated), while
/// NoncurrentVersionExpiration "permanently deletes the noncurrent object versions" ("Expiring
/// objects"). So a lifecycle permanent delete that names a version removed a noncurrent version
/// (or an expired delete marker), and viewers see no change. In an unversioned bucket the event
/// has no version id (or `null`): that delete removed the object, and is invalidated. A
/// `DeleteObject` of a version is always invalidated: the event does not say whether that
/// version was the current one, and over-invalidating is the safe side.
const NONCURRENT_EXPIRED: &str = "a lifecycle rule permanently deleted a noncurrent version (or an expired delete marker): what CloudFront serves did not change";

/// Whether a version id names a version (unversioned objects have none, or `null`).
fn is_version(version_id: Option<&str>) -> bool {
    version_id.is_some_and(|v| !v.is_empty() && v != "null")
}

fn only_ignored(ignored: Ignored) -> ParsedEvent {
    ParsedEvent {
        changes: Vec::new(),
        ignored: vec![ignored],
    }
}

fn owned(s: Option<&str>) -> Option<String> {
    s.map(str::to_owned)
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidEvent(msg.into())
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(s) => format!("a string ({s:?})"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// A JSON object and where it sits in the event, so that every error names the exact field.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    at: String,
}

impl<'a> Obj<'a> {
    fn path(&self, name: &str) -> String {
        if self.at.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.at)
        }
    }

    /// A nested string, for naming what was ignored; `None` when absent or of another type.
    fn lookup(&self, path: &[&str]) -> Option<&'a str> {
        let (last, parents) = path.split_last()?;
        let mut map = self.map;
        for name in parents {
            map = map.get(*name)?.as_object()?;
        }
        map.get(*last)?.as_str()
    }

    /// The field's value; `null` counts as absent.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn required(&self, name: &str) -> Result<&'a Value> {
        self.get(name)
            .ok_or_else(|| invalid(format!("{} is missing", self.path(name))))
    }

    fn mistyped(&self, name: &str, expected: &str, got: &Value) -> Error {
        invalid(format!(
            "{} must be {expected}, got {}",
            self.path(name),
            describe(got)
        ))
    }

    fn obj(&self, name: &str) -> Result<Obj<'a>> {
        match self.required(name)? {
            Value::Object(map) => Ok(Obj {
                map,
                at: self.path(name),
            }),
            v => Err(self.mistyped(name, "an object", v)),
        }
    }

    fn opt_obj(&self, name: &str) -> Result<Option<Obj<'a>>> {
        self.get(name).map(|_| self.obj(name)).transpose()
    }

    fn array(&self, name: &str) -> Result<&'a Vec<Value>> {
        match self.required(name)? {
            Value::Array(items) => Ok(items),
            v => Err(self.mistyped(name, "an array", v)),
        }
    }

    fn str(&self, name: &str) -> Result<&'a str> {
        match self.required(name)? {
            Value::String(s) => Ok(s),
            v => Err(self.mistyped(name, "a string", v)),
        }
    }

    fn non_empty_str(&self, name: &str) -> Result<&'a str> {
        let s = self.str(name)?;
        if s.is_empty() {
            return Err(invalid(format!("{} is empty", self.path(name))));
        }
        Ok(s)
    }

    fn opt_str(&self, name: &str) -> Result<Option<&'a str>> {
        self.get(name).map(|_| self.str(name)).transpose()
    }

    fn opt_u64(&self, name: &str) -> Result<Option<u64>> {
        self.get(name)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| self.mistyped(name, "a non-negative integer", v))
            })
            .transpose()
    }

    /// An RFC 3339 string as is, or epoch seconds (moto) converted to RFC 3339.
    fn opt_time(&self, name: &str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            // Kept as sent, once it is known to be a time: it goes into the audit trail.
            Some(v @ Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
                .map(|_| Some(s.clone()))
                .map_err(|_| self.mistyped(name, "a time (RFC 3339 or epoch seconds)", v)),
            Some(v @ Value::Number(n)) => {
                // To the microsecond: moto's precision, and an f64 holds no more of an epoch.
                // `as` saturates a huge number at i128::MAX, so the product must be checked.
                let nanos = n
                    .as_f64()
                    .and_then(|secs| ((secs * 1e6).round() as i128).checked_mul(1000));
                nanos
                    .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
                    .and_then(|t| t.format(&Rfc3339).ok())
                    .map(Some)
                    .ok_or_else(|| self.mistyped(name, "a time (RFC 3339 or epoch seconds)", v))
            }
            Some(v) => Err(self.mistyped(name, "a time (RFC 3339 or epoch seconds)", v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn time_of(time: Value) -> Result<Option<String>> {
        let event = json!({
            "source": "aws.s3", "detail-type": "Object Created", "time": time,
            "detail": {"bucket": {"name": "b"}, "object": {"key": "k"}}
        });
        parse_event(&event).map(|parsed| parsed.changes[0].event_time.clone())
    }

    #[test]
    fn epoch_times_are_converted_and_bounded() {
        assert_eq!(
            time_of(json!(1.25)).unwrap().as_deref(),
            Some("1970-01-01T00:00:01.25Z")
        );
        assert_eq!(
            time_of(json!(253_402_300_799u64)).unwrap().as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        // Found by the `event` fuzz target: 1e40 s overflowed i128 nanoseconds (a panic in
        // debug builds, 1969-12-31T23:59:59.999999Z in release ones).
        for time in [
            json!(253_402_300_800u64),
            json!(1e25),
            json!(1e40),
            json!(-1e40),
        ] {
            let err = time_of(time.clone()).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidEvent(m) if m.contains("time must be a time")),
                "{time}: {err}"
            );
        }
    }
}
