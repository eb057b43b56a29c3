//! Parsing real event shapes (the AWS user guide's examples and what moto sends), and malformed
//! input, through `parse_event` and the whole of `collect`.

use std::collections::HashMap;
use std::path::Path;

use cfinv_core::collect::{CollectOutput, collect};
use cfinv_core::event::{ChangeKind, KeySource, ObjectChange, parse_event};
use cfinv_core::keys::KeyEncoding;
use cfinv_core::routes::MappingConfig;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn only_change(event: &Value) -> ObjectChange {
    let parsed = parse_event(event).unwrap();
    assert!(parsed.ignored.is_empty(), "{:?}", parsed.ignored);
    let [change] = parsed.changes.as_slice() else {
        panic!("expected one change, got {:?}", parsed.changes)
    };
    change.clone()
}

fn config(vars: &[(&str, &str)]) -> MappingConfig {
    let vars: HashMap<&str, &str> = vars.iter().copied().collect();
    MappingConfig::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap()
}

fn routes_for(bucket: &str) -> MappingConfig {
    config(&[("BUCKET_NAME", bucket), ("DISTRIBUTION_IDS", "E1ABC")])
}

fn paths(out: &CollectOutput) -> Vec<&str> {
    out.paths.iter().map(|p| p.path.as_str()).collect()
}

#[test]
fn eventbridge_object_created_fixture() {
    let change = only_change(&fixture("eventbridge-object-created.json"));
    assert_eq!(
        change,
        ObjectChange {
            bucket: "DOC-EXAMPLE-BUCKET1".into(),
            raw_key: "example-key".into(),
            source: KeySource::EventBridge,
            kind: ChangeKind::Created,
            reason: Some("PutObject".into()),
            version_id: Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e".into()),
            etag: Some("b1946ac92492d2347c6235b4d2611184".into()),
            sequencer: Some("617f08299329d189".into()),
            event_time: Some("2021-11-12T00:00:00Z".into()),
            event_id: Some("17793124-05d4-b198-2fde-7ededc63b103".into()),
            size: Some(5),
        }
    );
}

#[test]
fn eventbridge_object_deleted_fixtures() {
    let deleted = only_change(&fixture("eventbridge-object-deleted.json"));
    assert_eq!(deleted.kind, ChangeKind::Deleted);
    assert_eq!(deleted.reason.as_deref(), Some("DeleteObject"));
    assert_eq!(deleted.size, None);
    assert_eq!(
        deleted.version_id.as_deref(),
        Some("1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF")
    );
    assert_eq!(
        deleted.event_id.as_deref(),
        Some("2ee9cc15-d022-99ea-1fb8-1b1bac4850f9")
    );

    let expired = only_change(&fixture("eventbridge-object-deleted-lifecycle.json"));
    assert_eq!(expired.kind, ChangeKind::Deleted);
    assert_eq!(expired.reason.as_deref(), Some("Lifecycle Expiration"));
    assert_eq!(expired.sequencer.as_deref(), Some("617b398000000000"));

    let out = collect(
        &fixture("eventbridge-object-deleted.json"),
        &routes_for("DOC-EXAMPLE-BUCKET1"),
    )
    .unwrap();
    assert_eq!(paths(&out), ["/example-key"]);
    assert_eq!(out.paths[0].change, ChangeKind::Deleted);
}

#[test]
fn classic_notification_fixture_is_form_decoded() {
    let event = fixture("s3-notification-put.json");
    let change = only_change(&event);
    assert_eq!(change.source, KeySource::Notification);
    assert_eq!(change.raw_key, "images/red+flower.jpg");
    assert_eq!(change.kind, ChangeKind::Created);
    assert_eq!(change.reason.as_deref(), Some("ObjectCreated:Put"));
    assert_eq!(
        change.etag.as_deref(),
        Some("d41d8cd98f00b204e9800998ecf8427e")
    );
    assert_eq!(
        change.version_id.as_deref(),
        Some("096fKKXTRTtl3on89fVO.nfljtsv6qko")
    );
    assert_eq!(
        change.event_time.as_deref(),
        Some("1970-01-01T00:00:00.000Z")
    );
    assert_eq!(
        change.event_id.as_deref(),
        Some("C3D13FE58DE4C810:0055AED6DCD90281E5")
    );
    assert_eq!(change.size, Some(1024));

    let out = collect(&event, &routes_for("amzn-s3-demo-bucket")).unwrap();
    assert_eq!(paths(&out), ["/images/red%20flower.jpg"]);
    assert_eq!(out.paths[0].key, "images/red flower.jpg");
    assert_eq!(out.paths[0].distribution_id, "E1ABC");
    assert!(out.ignored.is_empty());
}

#[test]
fn moto_eventbridge_event() {
    let event = fixture("moto-eventbridge-object-created.json");
    let change = only_change(&event);
    assert_eq!(
        change.etag.as_deref(),
        Some("d41d8cd98f00b204e9800998ecf8427e")
    );
    assert_eq!(change.version_id, None);
    assert_eq!(
        change.event_time.as_deref(),
        Some("2024-11-12T00:00:00.25Z")
    );
    assert_eq!(change.raw_key, "docs/red flower+1.jpg");

    // The key holds '+': Auto also covers the form-decoded reading; pinned Raw does not.
    let out = collect(&event, &routes_for("site-bucket")).unwrap();
    assert_eq!(
        paths(&out),
        ["/docs/red%20flower%201.jpg", "/docs/red%20flower+1.jpg"]
    );
    let raw = MappingConfig {
        key_encoding: KeyEncoding::Raw,
        ..routes_for("site-bucket")
    };
    let out = collect(&event, &raw).unwrap();
    assert_eq!(paths(&out), ["/docs/red%20flower+1.jpg"]);
    assert_eq!(out.paths[0].key, "docs/red flower+1.jpg");
}

#[test]
fn output_round_trips_through_json_in_camel_case() {
    let out = collect(
        &fixture("eventbridge-object-created.json"),
        &routes_for("DOC-EXAMPLE-BUCKET1"),
    )
    .unwrap();
    let v = serde_json::to_value(&out).unwrap();
    assert_eq!(
        v["paths"][0],
        json!({
            "distributionId": "E1ABC", "path": "/example-key", "bucket": "DOC-EXAMPLE-BUCKET1",
            "key": "example-key", "versionId": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            "etag": "b1946ac92492d2347c6235b4d2611184", "sequencer": "617f08299329d189",
            "eventTime": "2021-11-12T00:00:00Z", "eventId": "17793124-05d4-b198-2fde-7ededc63b103",
            "change": "Created"
        })
    );
    assert_eq!(serde_json::from_value::<CollectOutput>(v).unwrap(), out);
}

fn eventbridge(detail_type: &str, key: Value) -> Value {
    json!({
        "version": "0", "id": "e-1", "detail-type": detail_type, "source": "aws.s3",
        "time": "2024-01-01T00:00:00Z",
        "detail": {"bucket": {"name": "site-bucket"}, "object": {"key": key}, "reason": "PutObject"}
    })
}

fn record(event_name: &str, key: &str) -> Value {
    json!({
        "eventSource": "aws:s3", "eventName": event_name,
        "s3": {"bucket": {"name": "site-bucket"}, "object": {"key": key}}
    })
}

fn with(mut event: Value, pointer: &str, value: Value) -> Value {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return value;
    };
    match event.pointer_mut(parent).unwrap() {
        Value::Object(map) => {
            map.insert(last.to_owned(), value);
        }
        Value::Array(items) => items[last.parse::<usize>().unwrap()] = value,
        other => panic!("{pointer}: parent is {other}"),
    }
    event
}

fn without(mut event: Value, parent: &str, field: &str) -> Value {
    event
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(field);
    event
}

enum Expect {
    /// An error of this name whose message contains the text.
    Error(&'static str, &'static str),
    /// No paths, and an ignored entry whose reason contains the text.
    Ignored(&'static str),
}

#[test]
fn malformed_and_irrelevant_events_fail_by_name_or_are_ignored_with_a_reason() {
    use Expect::{Error as E, Ignored as I};
    let ok = eventbridge("Object Created", json!("a.html"));
    let cases: Vec<(&str, Value, Expect)> = vec![
        (
            "not an object",
            json!("hello"),
            E("InvalidEvent", "must be a JSON object, got a string"),
        ),
        (
            "an array",
            json!([ok.clone()]),
            E("InvalidEvent", "got an array"),
        ),
        ("null", Value::Null, E("InvalidEvent", "got null")),
        (
            "empty object",
            json!({}),
            E("InvalidEvent", "neither an EventBridge event"),
        ),
        (
            "other source",
            with(ok.clone(), "/source", json!("aws.ec2")),
            E("InvalidEvent", "source is \"aws.ec2\""),
        ),
        (
            "no detail-type",
            without(ok.clone(), "", "detail-type"),
            E("InvalidEvent", "detail-type is missing"),
        ),
        (
            "missing detail",
            without(ok.clone(), "", "detail"),
            E("InvalidEvent", "detail is missing"),
        ),
        (
            "detail a string",
            with(ok.clone(), "/detail", json!("x")),
            E("InvalidEvent", "detail must be an object"),
        ),
        (
            "missing bucket",
            without(ok.clone(), "/detail", "bucket"),
            E("InvalidEvent", "detail.bucket is missing"),
        ),
        (
            "bucket name number",
            with(ok.clone(), "/detail/bucket/name", json!(7)),
            E(
                "InvalidEvent",
                "detail.bucket.name must be a string, got a number (7)",
            ),
        ),
        (
            "empty bucket name",
            with(ok.clone(), "/detail/bucket/name", json!("")),
            E("InvalidEvent", "detail.bucket.name is empty"),
        ),
        (
            "missing key",
            without(ok.clone(), "/detail/object", "key"),
            E("InvalidEvent", "detail.object.key is missing"),
        ),
        (
            "key as number",
            eventbridge("Object Created", json!(42)),
            E("InvalidEvent", "detail.object.key must be a string"),
        ),
        (
            "key null",
            eventbridge("Object Created", Value::Null),
            E("InvalidEvent", "detail.object.key is missing"),
        ),
        (
            "size as string",
            with(ok.clone(), "/detail/object/size", json!("5")),
            E(
                "InvalidEvent",
                "detail.object.size must be a non-negative integer",
            ),
        ),
        (
            "negative size",
            with(ok.clone(), "/detail/object/size", json!(-1)),
            E("InvalidEvent", "detail.object.size"),
        ),
        (
            "etag as number",
            with(ok.clone(), "/detail/object/etag", json!(1)),
            E("InvalidEvent", "detail.object.etag must be a string"),
        ),
        (
            "time as bool",
            with(ok.clone(), "/time", json!(true)),
            E("InvalidEvent", "time must be a time"),
        ),
        (
            "empty key",
            eventbridge("Object Created", json!("")),
            E("InvalidKey", "empty"),
        ),
        (
            "1,025-byte key",
            eventbridge("Object Created", json!("k".repeat(1025))),
            E("InvalidKey", "1025 bytes"),
        ),
        (
            "restore completed",
            eventbridge("Object Restore Completed", json!("a.html")),
            I("\"Object Restore Completed\" is not an object change"),
        ),
        (
            "tags added",
            eventbridge("Object Tags Added", json!("a.html")),
            I("not an object change"),
        ),
        (
            "bucket nobody routes",
            with(ok.clone(), "/detail/bucket/name", json!("other")),
            I("no route for bucket \"other\""),
        ),
        ("Records: []", json!({"Records": []}), I("no records")),
        (
            "Records not an array",
            json!({"Records": {}}),
            E("InvalidEvent", "Records must be an array"),
        ),
        (
            "record not an object",
            json!({"Records": [1]}),
            E("InvalidEvent", "Records[0] must be an object"),
        ),
        (
            "record from SQS",
            json!({"Records": [
                with(record("ObjectCreated:Put", "a"), "/eventSource", json!("aws:sqs")),
            ]}),
            E("InvalidEvent", "Records[0].eventSource is \"aws:sqs\""),
        ),
        (
            "record without eventName",
            json!({"Records": [without(record("x", "a"), "", "eventName")]}),
            E("InvalidEvent", "Records[0].eventName is missing"),
        ),
        (
            "second record without key",
            json!({"Records": [
                record("ObjectCreated:Put", "a"),
                without(record("ObjectCreated:Put", "b"), "/s3/object", "key"),
            ]}),
            E("InvalidEvent", "Records[1].s3.object.key is missing"),
        ),
        (
            "invalid percent-encoding in a record",
            json!({"Records": [record("ObjectCreated:Put", "100%.html")]}),
            E("InvalidKey", "invalid percent-encoding"),
        ),
        (
            "non-UTF-8 percent-encoding in a record",
            json!({"Records": [record("ObjectRemoved:Delete", "%C3%28")]}),
            E("InvalidKey", "UTF-8"),
        ),
        (
            "restore record",
            json!({"Records": [record("ObjectRestore:Completed", "a")]}),
            I("\"ObjectRestore:Completed\" is not an object change"),
        ),
        (
            "lifecycle transition",
            json!({"Records": [record("LifecycleTransition", "a")]}),
            I("LifecycleTransition"),
        ),
        (
            "replication",
            json!({"Records": [record("Replication:OperationFailedReplication", "a")]}),
            I("not an object change"),
        ),
        (
            "s3:TestEvent",
            json!({
                "Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2024-01-01T00:00:00Z",
                "Bucket": "site-bucket", "RequestId": "r", "HostId": "h"
            }),
            I("s3:TestEvent"),
        ),
    ];
    assert!(cases.len() >= 20);
    let cfg = routes_for("site-bucket");
    for (name, event, expect) in cases {
        let got = collect(&event, &cfg);
        match (expect, got) {
            (E(variant, text), Err(e)) => {
                assert_eq!(e.name(), variant, "{name}: {e}");
                assert!(e.to_string().contains(text), "{name}: {e:?} lacks {text:?}");
            }
            (I(text), Ok(out)) => {
                assert!(out.paths.is_empty(), "{name}: {:?}", out.paths);
                assert!(
                    out.ignored.iter().any(|i| i.reason.contains(text)),
                    "{name}: {:?}",
                    out.ignored
                );
            }
            (_, got) => panic!("{name}: unexpected {got:?}"),
        }
    }
}

#[test]
fn ignored_entries_name_the_bucket_and_key() {
    let event = json!({"Records": [
        record("ObjectRestore:Post", "a+b.html"),
        record("ObjectCreated:Put", "c+d.html"),
    ]});
    let out = collect(&event, &routes_for("site-bucket")).unwrap();
    assert_eq!(paths(&out), ["/c%20d.html"]);
    assert_eq!(out.ignored.len(), 1);
    assert_eq!(out.ignored[0].bucket.as_deref(), Some("site-bucket"));
    assert_eq!(out.ignored[0].key.as_deref(), Some("a+b.html"));

    let restore = eventbridge("Object Restore Completed", json!("x.html"));
    let ignored = &parse_event(&restore).unwrap().ignored[0];
    assert_eq!(
        (ignored.bucket.as_deref(), ignored.key.as_deref()),
        (Some("site-bucket"), Some("x.html"))
    );
}

#[test]
fn lifecycle_expiration_records_are_deletions() {
    let event = json!({"Records": [record("LifecycleExpiration:DeleteMarkerCreated", "old.html")]});
    assert_eq!(only_change(&event).kind, ChangeKind::Deleted);
}

#[test]
fn null_optional_fields_count_as_absent() {
    let event = with(
        eventbridge("Object Deleted", json!("a")),
        "/detail/object",
        json!({"key": "a", "size": null, "version-id": null, "etag": null}),
    );
    let change = only_change(&event);
    assert_eq!(
        (change.size, change.version_id, change.etag),
        (None, None, None)
    );
}

#[test]
fn no_input_panics() {
    // Every subtree of a valid event, and the event with each leaf replaced by values of every
    // JSON type, must parse to Ok or Err.
    let samples = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1.5),
        json!(""),
        json!("%"),
        json!([]),
        json!({}),
    ];
    let cfg = routes_for("DOC-EXAMPLE-BUCKET1");
    for name in [
        "eventbridge-object-created.json",
        "s3-notification-put.json",
        "moto-eventbridge-object-created.json",
    ] {
        let event = fixture(name);
        let mut pointers = Vec::new();
        collect_pointers(&event, String::new(), &mut pointers);
        for pointer in &pointers {
            let _ = collect(event.pointer(pointer).unwrap(), &cfg);
            for sample in &samples {
                let _ = collect(&with(event.clone(), pointer, sample.clone()), &cfg);
            }
        }
    }
}

fn collect_pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| collect_pointers(v, format!("{at}/{k}"), out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| collect_pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}
