//! collect-keys: one S3 event -> the paths to invalidate in each distribution.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::{ChangeKind, Ignored, ObjectChange, parse_event};
use crate::object_key::key_readings;
use crate::path::is_valid_path;
use crate::routes::MappingConfig;
use crate::{Error, Result};

/// One path to invalidate in one distribution, with the change that caused it (for the audit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathChange {
    pub distribution_id: String,
    pub path: String,
    pub bucket: String,
    /// The decoded object key.
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sequencer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub event_id: Option<String>,
    pub change: ChangeKind,
    /// Why the path is a wildcard rather than the object's own path, kept in the audit (a
    /// wildcard is billed as one path but invalidates more, and counts against the 15 in
    /// progress); `None` when the path names the object.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

#[cfg(test)]
impl PathChange {
    /// The tests' path change: a created object's `path` on `distribution_id`, from event
    /// `event_id`, nothing else known.
    pub(crate) fn created(distribution_id: &str, path: &str, key: &str, event_id: &str) -> Self {
        PathChange {
            distribution_id: distribution_id.into(),
            path: path.into(),
            bucket: "site".into(),
            key: key.into(),
            version_id: None,
            etag: None,
            sequencer: None,
            event_time: None,
            event_id: Some(event_id.into()),
            change: ChangeKind::Created,
            reason: None,
        }
    }
}

/// The task output: paths sorted by distribution then path, each pair once; and what was skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CollectOutput {
    pub paths: Vec<PathChange>,
    pub ignored: Vec<Ignored>,
    /// A manual request event, passed through to dedupe as it came (docs/design.md §9).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub manual: Option<crate::manual::ManualEvent>,
}

/// Maps an S3 event to paths. Unknown buckets, keys outside every route and excluded keys are
/// ignored with a reason; malformed events and keys S3 cannot have are errors.
///
/// When one event names the same path twice (several records, or two readings of a key that
/// map alike), the last change wins.
pub fn collect(event: &serde_json::Value, cfg: &MappingConfig) -> Result<CollectOutput> {
    if let Some(manual) = crate::manual::ManualEvent::from_envelope(event)? {
        return Ok(CollectOutput {
            manual: Some(manual),
            ..CollectOutput::default()
        });
    }
    let parsed = parse_event(event)?;
    let mut ignored = parsed.ignored;
    let mut paths = BTreeMap::new();
    for change in &parsed.changes {
        if !cfg.routes.iter().any(|r| r.bucket == change.bucket) {
            ignored.push(Ignored::new(
                Some(&change.bucket),
                Some(&change.raw_key),
                format!("no route for bucket {:?}", change.bucket),
            ));
            continue;
        }
        for key in key_readings(&change.raw_key, change.source, cfg.key_encoding)? {
            let ignore = |reason: String| Ignored::new(Some(&change.bucket), Some(&key), reason);
            if let Some(pattern) = cfg.excluded_by(&key) {
                ignored.push(ignore(format!("excluded by pattern {pattern:?}")));
                continue;
            }
            let mut matched = false;
            for route in &cfg.routes {
                let Some(relative) = route.relative_key(&change.bucket, &key) else {
                    continue;
                };
                matched = true;
                for path in cfg.paths_for(relative) {
                    let path = route.covering(path);
                    let mut entry = path_change(change, &key, &route.distribution_id, path)?;
                    entry.reason = wildcard_reason(relative, route.query_strings, &entry.path);
                    paths.insert((entry.distribution_id.clone(), entry.path.clone()), entry);
                }
            }
            if !matched {
                ignored.push(ignore(format!(
                    "no route of bucket {:?} covers the key (key prefix / origin path)",
                    change.bucket
                )));
            }
        }
    }
    Ok(CollectOutput {
        paths: paths.into_values().collect(),
        ignored,
        manual: None,
    })
}

/// The error an object-changed execution ends with when events of its batch failed: dedupe
/// recorded each of them, so record-outcome does not record the execution again
/// (statemachine/object-changed.asl.json, state `EventsFailed`).
pub const EVENTS_FAILED_ERROR: &str = "EventsFailed";

/// What collect-keys hands dedupe for one execution's input: the paths of every event, the
/// manual requests, and the events that could not be mapped (docs/design.md §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BatchOutput {
    pub paths: Vec<PathChange>,
    pub ignored: Vec<Ignored>,
    pub manual: Vec<crate::manual::ManualEvent>,
    pub failed: Vec<FailedEvent>,
}

/// An event of a batch that could not be mapped: dedupe records it in the audit as a failed
/// event, and the batch's other events go on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedEvent {
    /// The event's `id`, or its place in the batch when it has none.
    pub event_id: String,
    /// The error's name ([`Error::name`]), as a failed execution's error would read.
    pub error: String,
    pub cause: String,
    /// The event as it came, for the audit and a replay.
    pub event: serde_json::Value,
}

/// Maps an execution's input: a JSON array (the ingest pipe's batch: events, or SQS records
/// whose `body` holds the event as JSON or as a string), or one event. In a batch, an event
/// that fails is returned in `failed` and the others are mapped; one event's error is the
/// execution's, as before batching.
///
/// Every event's paths are kept, in (distribution, path) order: a path several events of the
/// batch name is joined once per event, so each event's id reaches the path item's audit.
pub fn collect_batch(input: &serde_json::Value, cfg: &MappingConfig) -> Result<BatchOutput> {
    let serde_json::Value::Array(items) = input else {
        let mut out = BatchOutput::default();
        out.add(collect(input, cfg)?);
        return Ok(out);
    };
    let mut out = BatchOutput::default();
    for (index, item) in items.iter().enumerate() {
        let (event, mapped) = match record_body(item) {
            Ok(event) => {
                let mapped = collect(&event, cfg);
                (event, mapped)
            }
            Err(e) => (item.clone(), Err(e)),
        };
        match mapped {
            Ok(one) => out.add(one),
            Err(err) => {
                let event_id = event["id"]
                    .as_str()
                    .map_or_else(|| format!("#{index}"), str::to_owned);
                tracing::warn!(event = %event_id, error = err.name(), cause = %err, "event failed; the batch goes on");
                out.failed.push(FailedEvent {
                    event_id,
                    error: err.name().to_owned(),
                    cause: err.to_string(),
                    event,
                });
            }
        }
    }
    out.paths
        .sort_by(|a, b| (&a.distribution_id, &a.path).cmp(&(&b.distribution_id, &b.path)));
    Ok(out)
}

impl BatchOutput {
    fn add(&mut self, one: CollectOutput) {
        self.paths.extend(one.paths);
        self.ignored.extend(one.ignored);
        self.manual.extend(one.manual);
    }
}

/// The event a batch item carries: an SQS record's `body` (parsed when it is a string), or the
/// item itself.
fn record_body(item: &serde_json::Value) -> Result<serde_json::Value> {
    match item {
        serde_json::Value::String(body) => parse_body(body),
        _ if item["eventSource"] == "aws:sqs" => match item.get("body") {
            Some(serde_json::Value::String(body)) => parse_body(body),
            Some(body) => Ok(body.clone()),
            None => Err(Error::InvalidEvent("an SQS record without a body".into())),
        },
        _ => Ok(item.clone()),
    }
}

fn parse_body(body: &str) -> Result<serde_json::Value> {
    serde_json::from_str(body)
        .map_err(|e| Error::InvalidEvent(format!("the message body is not JSON: {e}")))
}

fn path_change(
    change: &ObjectChange,
    key: &str,
    distribution: &str,
    path: String,
) -> Result<PathChange> {
    // encode_path only makes valid paths; this guards the invariant at the boundary, since a
    // path CloudFront rejects would fail the whole batch later.
    if !is_valid_path(&path) {
        return Err(Error::InvalidKey(format!(
            "key {key:?} maps to {path:?}, which is not a valid CloudFront path"
        )));
    }
    Ok(PathChange {
        distribution_id: distribution.to_owned(),
        path,
        bucket: change.bucket.clone(),
        key: key.to_owned(),
        version_id: change.version_id.clone(),
        etag: change.etag.clone(),
        sequencer: change.sequencer.clone(),
        event_time: change.event_time.clone(),
        event_id: change.event_id.clone(),
        change: change.kind,
        reason: None,
    })
}

/// Why `path`, made for `relative_key` on a route (whose cache key holds query strings or
/// not), is a wildcard; `None` when it is not one.
fn wildcard_reason(relative_key: &str, query_strings: bool, path: &str) -> Option<String> {
    if !path.ends_with('*') {
        return None;
    }
    Some(
        if relative_key.contains('~') {
            "the key holds '~', which CloudFront does not accept in an invalidation path: \
             the wildcard ending before its first '~' covers it"
        } else if query_strings {
            "the distribution caches query strings: the wildcard covers every variant"
        } else {
            "the path ends in '*', which CloudFront reads as a wildcard"
        }
        .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object_key::KeyEncoding;
    use crate::routes::Route;
    use serde_json::{Value, json};

    fn route(key_prefix: &str, distribution_id: &str, origin_path: &str) -> Route {
        Route {
            bucket: "site".into(),
            key_prefix: key_prefix.into(),
            distribution_id: distribution_id.into(),
            origin_path: origin_path.into(),
            query_strings: false,
        }
    }

    fn config(routes: Vec<Route>, key_encoding: KeyEncoding) -> MappingConfig {
        MappingConfig {
            routes,
            index_document: Some("index.html".into()),
            key_encoding,
            exclude: vec!["*.map".into(), "tmp/*".into()],
        }
    }

    fn eventbridge(key: &str) -> Value {
        json!({
            "id": "ev-1", "source": "aws.s3", "detail-type": "Object Created",
            "time": "2024-01-01T00:00:00Z",
            "detail": {
                "bucket": {"name": "site"},
                "object": {"key": key, "etag": "e1", "sequencer": "01"}
            }
        })
    }

    fn paths_of(out: &CollectOutput) -> Vec<(&str, &str)> {
        out.paths
            .iter()
            .map(|p| (p.distribution_id.as_str(), p.path.as_str()))
            .collect()
    }

    /// Object key (as S3 stores it) -> the paths invalidated, in output order.
    ///
    /// Reasoned from the docs: no emulator can confirm CloudFront's cache keys. Sources: the
    /// CloudFront developer guide, "Invalidating files" (specifying the files to invalidate:
    /// encode non-ASCII and RFC 1738-unsafe characters, nothing else; `*` only at the end;
    /// paths are case-sensitive; at most 4,000 characters), and the S3 user guide, "Naming
    /// Amazon S3 objects" (any UTF-8 up to 1,024 bytes, `/` is just a character, `..` and
    /// empty segments are legal) and "Event message structure" (notification keys are
    /// form-encoded; tested separately). `?` is encoded too (it would start a query string),
    /// a key ending in `*` is invalidated as a wildcard on purpose, an inner `*` is literal,
    /// and a key holding `~` (which no invalidation path may hold) is covered by the wildcard
    /// of what precedes it; see path.rs for the quotes.
    #[test]
    fn keys_map_to_cloudfront_paths() {
        let ascii_max = "a".repeat(1024);
        let korean_max = format!("{}a", "한".repeat(341)); // 1,024 bytes
        let emoji_max = "😀".repeat(256); // 1,024 bytes
        let table: Vec<(&str, Vec<String>)> = vec![
            ("plain.html", vec!["/plain.html".into()]),
            ("red flower.jpg", vec!["/red%20flower.jpg".into()]),
            ("trailing space ", vec!["/trailing%20space%20".into()]),
            ("a+b.jpg", vec!["/a+b.jpg".into()]),
            ("plus+and space", vec!["/plus+and%20space".into()]),
            ("100%.txt", vec!["/100%25.txt".into()]),
            ("a%20b", vec!["/a%2520b".into()]),
            ("notes#1.txt", vec!["/notes%231.txt".into()]),
            ("what?.html", vec!["/what%3F.html".into()]),
            ("~user/home.html", vec!["/*".into()]), // no `~` in a path: the root's wildcard
            ("docs/a~b.html", vec!["/docs/a*".into()]),
            (
                "한글/파일.txt",
                vec!["/%ED%95%9C%EA%B8%80/%ED%8C%8C%EC%9D%BC.txt".into()],
            ),
            ("emoji/😀.png", vec!["/emoji/%F0%9F%98%80.png".into()]),
            ("café.html", vec!["/caf%C3%A9.html".into()]),
            ("cafe\u{301}.html", vec!["/cafe%CC%81.html".into()]), // no Unicode normalisation
            ("a*b.txt", vec!["/a*b.txt".into()]),                  // an inner '*' is literal
            ("prefix*", vec!["/prefix*".into()]), // a trailing '*' is a wildcard, deliberately
            ("a**", vec!["/a**".into()]),
            ("*", vec!["/*".into()]),
            ("../x/./y.txt", vec!["/../x/./y.txt".into()]),
            ("dir/", vec!["/dir/".into()]),
            ("a//b", vec!["/a//b".into()]),
            ("x<y>z.html", vec!["/x%3Cy%3Ez.html".into()]),
            ("\"quoted\".txt", vec!["/%22quoted%22.txt".into()]),
            ("{a}|b.txt", vec!["/%7Ba%7D%7Cb.txt".into()]),
            ("back\\slash^.txt", vec!["/back%5Cslash%5E.txt".into()]),
            ("[1].txt", vec!["/%5B1%5D.txt".into()]),
            ("`tick`.txt", vec!["/%60tick%60.txt".into()]),
            ("tab\there", vec!["/tab%09here".into()]),
            ("nl\nx\u{7f}", vec!["/nl%0Ax%7F".into()]),
            ("nul\u{0}byte", vec!["/nul%00byte".into()]),
            (
                "a&b=c;d$e,f'g(h)i!j@k:l.txt",
                vec!["/a&b=c;d$e,f'g(h)i!j@k:l.txt".into()],
            ),
            ("-_.0.txt", vec!["/-_.0.txt".into()]),
            ("UPPER/Case.HTML", vec!["/UPPER/Case.HTML".into()]),
            (
                "very/deep/nested/dir/tree/file.css",
                vec!["/very/deep/nested/dir/tree/file.css".into()],
            ),
            (&ascii_max, vec![format!("/{ascii_max}")]),
            (&korean_max, vec![format!("/{}a", "%ED%95%9C".repeat(341))]),
            (&emoji_max, vec![format!("/{}", "%F0%9F%98%80".repeat(256))]),
            ("index.html", vec!["/".into(), "/index.html".into()]),
            (
                "docs/index.html",
                vec!["/docs".into(), "/docs/".into(), "/docs/index.html".into()],
            ),
            (
                "my docs/v1/index.html",
                vec![
                    "/my%20docs/v1".into(),
                    "/my%20docs/v1/".into(),
                    "/my%20docs/v1/index.html".into(),
                ],
            ),
            ("docs/index.htm", vec!["/docs/index.htm".into()]),
            ("docs/Index.html", vec!["/docs/Index.html".into()]),
        ];
        assert!(table.len() >= 35);
        let cfg = config(vec![route("", "E1", "")], KeyEncoding::Raw);
        for (key, expected) in &table {
            let out = collect(&eventbridge(key), &cfg).unwrap();
            let got: Vec<&str> = out.paths.iter().map(|p| p.path.as_str()).collect();
            assert_eq!(got, *expected, "key {key:?}");
            assert!(
                out.paths
                    .iter()
                    .all(|p| is_valid_path(&p.path) && p.key == *key)
            );
            assert!(out.ignored.is_empty(), "{key:?}: {:?}", out.ignored);
        }
    }

    #[test]
    fn a_distribution_caching_query_strings_gets_every_variant_invalidated() {
        let with_qs = Route {
            query_strings: true,
            ..route("", "E2", "")
        };
        let cfg = config(vec![route("", "E1", ""), with_qs], KeyEncoding::Raw);
        let out = collect(&eventbridge("docs/index.html"), &cfg).unwrap();
        assert_eq!(
            paths_of(&out),
            [
                ("E1", "/docs"),
                ("E1", "/docs/"),
                ("E1", "/docs/index.html"),
                ("E2", "/docs*"),
                ("E2", "/docs/*"),
                ("E2", "/docs/index.html*"),
            ]
        );
        assert!(out.paths.iter().all(|p| is_valid_path(&p.path)));
        assert!(
            out.paths
                .iter()
                .all(|p| (p.distribution_id == "E2") == p.reason.is_some())
        );
        assert!(
            out.paths[3]
                .reason
                .as_deref()
                .unwrap()
                .contains("query strings")
        );
        // A key already covered by a wildcard keeps it as it is.
        let out = collect(&eventbridge("a/~b.html"), &cfg).unwrap();
        assert_eq!(paths_of(&out), [("E1", "/a/*"), ("E2", "/a/*")]);
    }

    #[test]
    fn the_audit_is_told_why_a_path_is_a_wildcard() {
        let cfg = config(vec![route("", "E1", "")], KeyEncoding::Raw);
        let reason = |key: &str| {
            let out = collect(&eventbridge(key), &cfg).unwrap();
            assert_eq!(out.paths.len(), 1, "{key:?}");
            out.paths[0].reason.clone()
        };
        assert_eq!(reason("img/a.png"), None);
        assert_eq!(reason("img/a*b.png"), None, "an inner '*' is literal");
        let tilde = reason("~alice/a.html").unwrap();
        assert!(tilde.contains("'~'"), "{tilde}");
        let star = reason("img/all*").unwrap();
        assert!(star.contains("ends in '*'"), "{star}");
    }

    #[test]
    fn ambiguous_eventbridge_keys_cover_both_readings_unless_pinned() {
        let event = eventbridge("a+b%20c.txt");
        let auto = collect(
            &event,
            &config(vec![route("", "E1", "")], KeyEncoding::Auto),
        )
        .unwrap();
        assert_eq!(
            paths_of(&auto),
            [("E1", "/a%20b%20c.txt"), ("E1", "/a+b%2520c.txt")]
        );
        let keys: Vec<&str> = auto.paths.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["a b c.txt", "a+b%20c.txt"]);
        let raw = collect(&event, &config(vec![route("", "E1", "")], KeyEncoding::Raw)).unwrap();
        assert_eq!(paths_of(&raw), [("E1", "/a+b%2520c.txt")]);
        let form = collect(
            &event,
            &config(vec![route("", "E1", "")], KeyEncoding::Form),
        )
        .unwrap();
        assert_eq!(paths_of(&form), [("E1", "/a%20b%20c.txt")]);
    }

    #[test]
    fn one_key_can_reach_several_distributions() {
        let cfg = config(
            vec![
                route("", "E1", ""),
                route("site/", "E2", "/site"),
                route("other/", "E3", ""),
            ],
            KeyEncoding::Auto,
        );
        let out = collect(&eventbridge("site/index.html"), &cfg).unwrap();
        assert_eq!(
            paths_of(&out),
            [
                ("E1", "/site"),
                ("E1", "/site/"),
                ("E1", "/site/index.html"),
                ("E2", "/"),
                ("E2", "/index.html"),
            ]
        );
        let change = &out.paths[0];
        assert_eq!(change.etag.as_deref(), Some("e1"));
        assert_eq!(change.sequencer.as_deref(), Some("01"));
        assert_eq!(change.event_id.as_deref(), Some("ev-1"));
        assert_eq!(change.event_time.as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(change.version_id, None);
    }

    #[test]
    fn unrouted_and_excluded_keys_are_ignored_with_a_reason() {
        let cfg = config(vec![route("site/", "E2", "/site")], KeyEncoding::Auto);
        for (key, reason) in [
            (
                "elsewhere/a.html",
                "no route of bucket \"site\" covers the key",
            ),
            ("site/app.js.map", "excluded by pattern \"*.map\""),
            ("tmp/upload.bin", "excluded by pattern \"tmp/*\""),
        ] {
            let out = collect(&eventbridge(key), &cfg).unwrap();
            assert!(out.paths.is_empty(), "{key}");
            assert_eq!(out.ignored.len(), 1, "{key}");
            assert_eq!(out.ignored[0].key.as_deref(), Some(key));
            assert!(
                out.ignored[0].reason.contains(reason),
                "{key}: {:?}",
                out.ignored
            );
        }
    }

    #[test]
    fn notification_records_are_decoded_routed_and_deduplicated() {
        let record = |name: &str, key: &str, seq: &str| {
            json!({"eventSource": "aws:s3", "eventName": name,
                   "responseElements": {"x-amz-request-id": "R1"},
                   "s3": {"bucket": {"name": "site"}, "object": {"key": key, "sequencer": seq}}})
        };
        let event = json!({"Records": [
            record("ObjectCreated:Put", "site/a+b/index.html", "01"),
            record("ObjectRemoved:Delete", "site/a%20b/index.html", "02"),
            record("ObjectCreated:Copy", "site/%E2%9C%93.txt", "03"),
        ]});
        let cfg = config(vec![route("", "E2", "site")], KeyEncoding::Auto);
        let out = collect(&event, &cfg).unwrap();
        assert_eq!(
            paths_of(&out),
            [
                ("E2", "/%E2%9C%93.txt"),
                ("E2", "/a%20b"),
                ("E2", "/a%20b/"),
                ("E2", "/a%20b/index.html")
            ]
        );
        // The same path from two records: the later one wins.
        assert_eq!(out.paths[1].change, ChangeKind::Deleted);
        assert_eq!(out.paths[1].event_id.as_deref(), Some("R1:02"));
        assert_eq!(out.paths[0].key, "site/✓.txt");
    }

    fn with_id(mut event: Value, id: &str) -> Value {
        event["id"] = json!(id);
        event
    }

    #[test]
    fn a_batch_maps_every_event_and_sets_a_bad_one_aside() {
        let cfg = config(vec![route("", "E1", "")], KeyEncoding::Raw);
        let body = with_id(eventbridge("b.png"), "ev-2").to_string();
        let sqs_record = json!({"messageId": "m-1", "receiptHandle": "r", "body": body,
            "attributes": {}, "messageAttributes": {}, "md5OfBody": "x",
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q", "awsRegion": "us-east-1"});
        let mut over_long = with_id(eventbridge(&"k".repeat(1025)), "ev-bad");
        over_long["detail"]["reason"] = json!("PutObject");
        let manual = json!({"id": "ev-m", "detail-type": "Invalidation Requested",
            "source": "cf-invalidator.manual", "account": "1", "detail": {"paths": ["/x"]}});
        let batch = json!([
            with_id(eventbridge("a.png"), "ev-1"),
            sqs_record,
            over_long,
            "not json",
            with_id(eventbridge("a.png"), "ev-3"),
            manual,
            {"id": "ev-4"},
        ]);
        let out = collect_batch(&batch, &cfg).unwrap();
        let paths: Vec<_> = out
            .paths
            .iter()
            .map(|p| (p.path.as_str(), p.event_id.as_deref()))
            .collect();
        assert_eq!(
            paths,
            [
                ("/a.png", Some("ev-1")),
                ("/a.png", Some("ev-3")),
                ("/b.png", Some("ev-2"))
            ],
            "a path named twice is joined for each event, in the batch's order"
        );
        assert_eq!(out.manual.len(), 1);
        assert_eq!(out.manual[0].event_id, "ev-m");
        let failed: Vec<_> = out
            .failed
            .iter()
            .map(|f| (f.event_id.as_str(), f.error.as_str()))
            .collect();
        assert_eq!(
            failed,
            [
                ("ev-bad", "InvalidKey"),
                ("#3", "InvalidEvent"),
                ("ev-4", "InvalidEvent")
            ]
        );
        assert_eq!(
            out.failed[0].event, batch[2],
            "kept as it came, for the audit"
        );
    }

    #[test]
    fn one_event_fails_as_before_batching() {
        let cfg = config(vec![route("", "E1", "")], KeyEncoding::Raw);
        let out = collect_batch(&eventbridge("a.png"), &cfg).unwrap();
        assert_eq!(out.paths.len(), 1);
        assert!(out.failed.is_empty());
        let err = collect_batch(&json!({"id": "x"}), &cfg).unwrap_err();
        assert_eq!(err.name(), "InvalidEvent");
        let serialized = serde_json::to_value(collect_batch(&json!([]), &cfg).unwrap()).unwrap();
        assert_eq!(
            serialized,
            json!({"paths": [], "ignored": [], "manual": [], "failed": []}),
            "every list is present: the state machine reads them by path"
        );
    }
}
