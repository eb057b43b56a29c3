//! Malformed and hostile events through `collect` (what collect-keys runs). Each one fails with
//! a named error (the enum variant Lambda reports as `errorType`) or is ignored with a stated
//! reason; none panics, and none loses a valid key: an event either fails as a whole, or every
//! key it names is in the output, as paths or as an ignored entry.
//!
//! The same events seed the fuzz corpus (`fuzz/corpus/event`); see `write_fuzz_seeds`.
//! One file on purpose: it is a catalogue, read top to bottom, and the seeds come from all of it.

mod common;

use std::collections::HashSet;
use std::path::Path;

use cfinv_core::collect::collect;
use cfinv_core::routes::MappingConfig;
use common::{
    assert_nothing_dropped, config, eventbridge, fixture, record, routes_for, with, without,
};
use serde_json::{Value, json};

enum Expect {
    /// An error of this name (the `errorType`) whose message contains the text.
    Error(&'static str, &'static str),
    /// No paths, and exactly one ignored entry, with this reason.
    Ignored(&'static str),
    /// Exactly these paths, and ignored entries with exactly these reasons.
    Paths(Vec<String>, &'static [&'static str]),
}

fn kept(paths: &[&str], ignored: &'static [&'static str]) -> Expect {
    Expect::Paths(paths.iter().map(|p| (*p).to_owned()).collect(), ignored)
}

/// Routes bucket `site-bucket` to one distribution, `*.map` excluded, `index.html` indexes.
fn site() -> MappingConfig {
    config(&[
        ("BUCKET_NAME", "site-bucket"),
        ("DISTRIBUTION_IDS", "E1ABC"),
        ("EXCLUDE", "*.map"),
    ])
}

fn notification(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

/// A notification of the one `record` with the value at `pointer` (in the record) set.
fn one_with(record: Value, pointer: &str, value: Value) -> Value {
    notification(vec![with(record, pointer, value)])
}

/// A classic notification of about 256 KB (the EventBridge and Step Functions payload limit):
/// 826 records `ObjectCreated:Put` of distinct 200-byte keys, then one of `last`; and the paths
/// of the 826.
fn big_notification(last: &str) -> (Value, Vec<String>) {
    let keys: Vec<String> = (0..826)
        .map(|i| format!("big/{i:04}/{}", "x".repeat(191)))
        .collect();
    let mut records: Vec<Value> = keys
        .iter()
        .map(|k| record("ObjectCreated:Put", k))
        .collect();
    records.push(record("ObjectCreated:Put", last));
    let paths = keys.iter().map(|k| format!("/{k}")).collect();
    (notification(records), paths)
}

fn cases() -> Vec<(&'static str, Value, Expect)> {
    use Expect::{Error as E, Ignored as I};
    let ok = eventbridge("Object Created", json!("a.html"));
    let put = |key: &str| record("ObjectCreated:Put", key);
    let one = |key: &str| notification(vec![put(key)]);
    let (big, mut big_paths) = big_notification("big/last.html");
    big_paths.push("/big/last.html".to_owned());
    let (big_bad, _) = big_notification("big/100%.html");
    let k1024 = "k".repeat(1024);
    let a1024 = "A".repeat(1024);
    vec![
        // Not an S3 event at all.
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
            "a number",
            json!(42),
            E("InvalidEvent", "got a number (42)"),
        ),
        (
            "a boolean",
            json!(true),
            E("InvalidEvent", "got a boolean (true)"),
        ),
        (
            "empty object",
            json!({}),
            E("InvalidEvent", "neither an EventBridge event"),
        ),
        (
            "misspelt Records",
            json!({"records": [put("a.html")]}),
            E("InvalidEvent", "neither an EventBridge event"),
        ),
        // The EventBridge envelope.
        (
            "other source",
            with(ok.clone(), "/source", json!("aws.ec2")),
            E("InvalidEvent", "source is \"aws.ec2\""),
        ),
        (
            "no source",
            without(ok.clone(), "", "source"),
            E("InvalidEvent", "source is missing"),
        ),
        (
            "source a number",
            with(ok.clone(), "/source", json!(3)),
            E("InvalidEvent", "source must be a string, got a number (3)"),
        ),
        (
            "no detail-type",
            without(ok.clone(), "", "detail-type"),
            E("InvalidEvent", "detail-type is missing"),
        ),
        (
            "detail-type an array",
            with(ok.clone(), "/detail-type", json!(["Object Created"])),
            E("InvalidEvent", "detail-type must be a string, got an array"),
        ),
        (
            "restore completed",
            eventbridge("Object Restore Completed", json!("a.html")),
            I("detail-type \"Object Restore Completed\" is not an object change"),
        ),
        (
            "tags added",
            eventbridge("Object Tags Added", json!("a.html")),
            I("detail-type \"Object Tags Added\" is not an object change"),
        ),
        (
            "empty detail-type",
            eventbridge("", json!("a.html")),
            I("detail-type \"\" is not an object change"),
        ),
        (
            "detail-type in other case",
            eventbridge("object created", json!("a.html")),
            I("detail-type \"object created\" is not an object change"),
        ),
        (
            "missing detail",
            without(ok.clone(), "", "detail"),
            E("InvalidEvent", "detail is missing"),
        ),
        (
            "detail a string",
            with(ok.clone(), "/detail", json!("x")),
            E("InvalidEvent", "detail must be an object, got a string"),
        ),
        (
            "missing bucket",
            without(ok.clone(), "/detail", "bucket"),
            E("InvalidEvent", "detail.bucket is missing"),
        ),
        (
            "bucket an array",
            with(ok.clone(), "/detail/bucket", json!(["site-bucket"])),
            E(
                "InvalidEvent",
                "detail.bucket must be an object, got an array",
            ),
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
            "object null",
            with(ok.clone(), "/detail/object", Value::Null),
            E("InvalidEvent", "detail.object is missing"),
        ),
        (
            "missing key",
            without(ok.clone(), "/detail/object", "key"),
            E("InvalidEvent", "detail.object.key is missing"),
        ),
        (
            "key as number",
            eventbridge("Object Created", json!(42)),
            E(
                "InvalidEvent",
                "detail.object.key must be a string, got a number",
            ),
        ),
        (
            "key as object",
            eventbridge("Object Created", json!({"S": "a.html"})),
            E(
                "InvalidEvent",
                "detail.object.key must be a string, got an object",
            ),
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
            E(
                "InvalidEvent",
                "detail.object.size must be a non-negative integer",
            ),
        ),
        (
            "fractional size",
            with(ok.clone(), "/detail/object/size", json!(1.5)),
            E(
                "InvalidEvent",
                "detail.object.size must be a non-negative integer",
            ),
        ),
        (
            "etag as number",
            with(ok.clone(), "/detail/object/etag", json!(1)),
            E("InvalidEvent", "detail.object.etag must be a string"),
        ),
        (
            "version-id as object",
            with(ok.clone(), "/detail/object/version-id", json!({})),
            E("InvalidEvent", "detail.object.version-id must be a string"),
        ),
        (
            "time as bool",
            with(ok.clone(), "/time", json!(true)),
            E("InvalidEvent", "time must be a time"),
        ),
        (
            "time past any date",
            with(ok.clone(), "/time", json!(1e40)),
            E("InvalidEvent", "time must be a time"),
        ),
        (
            "time before any date",
            with(ok.clone(), "/time", json!(-1e40)),
            E("InvalidEvent", "time must be a time"),
        ),
        (
            "time a string but no time",
            with(ok.clone(), "/time", json!("yesterday")),
            E("InvalidEvent", "time must be a time"),
        ),
        (
            "time without its zone",
            with(ok.clone(), "/time", json!("2021-11-12T00:00:00")),
            E("InvalidEvent", "time must be a time"),
        ),
        // The notification envelope.
        (
            "Records: []",
            json!({"Records": []}),
            I("the event has no records"),
        ),
        (
            "Records null",
            json!({"Records": null}),
            E("InvalidEvent", "Records is missing"),
        ),
        (
            "Records not an array",
            json!({"Records": {}}),
            E("InvalidEvent", "Records must be an array, got an object"),
        ),
        (
            "record not an object",
            json!({"Records": [1]}),
            E("InvalidEvent", "Records[0] must be an object, got a number"),
        ),
        (
            "record from SQS",
            one_with(put("a"), "/eventSource", json!("aws:sqs")),
            E("InvalidEvent", "Records[0].eventSource is \"aws:sqs\""),
        ),
        (
            "record without eventName",
            notification(vec![without(put("a"), "", "eventName")]),
            E("InvalidEvent", "Records[0].eventName is missing"),
        ),
        (
            "record eventTime no time",
            one_with(put("a"), "/eventTime", json!("12/11/2021")),
            E("InvalidEvent", "Records[0].eventTime must be a time"),
        ),
        (
            "record without s3",
            notification(vec![without(put("a"), "", "s3")]),
            E("InvalidEvent", "Records[0].s3 is missing"),
        ),
        (
            "record bucket an array",
            one_with(put("a"), "/s3/bucket", json!([])),
            E(
                "InvalidEvent",
                "Records[0].s3.bucket must be an object, got an array",
            ),
        ),
        (
            "record key a number",
            one_with(put("a"), "/s3/object/key", json!(1)),
            E(
                "InvalidEvent",
                "Records[0].s3.object.key must be a string, got a number",
            ),
        ),
        (
            "responseElements a string",
            one_with(put("a"), "/responseElements", json!("r")),
            E(
                "InvalidEvent",
                "Records[0].responseElements must be an object",
            ),
        ),
        (
            "restore record",
            notification(vec![record("ObjectRestore:Completed", "a")]),
            I("eventName \"ObjectRestore:Completed\" is not an object change"),
        ),
        (
            "lifecycle transition",
            notification(vec![record("LifecycleTransition", "a")]),
            I("eventName \"LifecycleTransition\" is not an object change"),
        ),
        (
            "replication",
            notification(vec![record("Replication:OperationFailedReplication", "a")]),
            I("eventName \"Replication:OperationFailedReplication\" is not an object change"),
        ),
        (
            "s3:TestEvent",
            json!({
                "Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2024-01-01T00:00:00Z",
                "Bucket": "site-bucket", "RequestId": "r", "HostId": "h"
            }),
            I("s3:TestEvent: S3 sends it when notifications are configured; it names no object"),
        ),
        // Keys: length.
        (
            "empty key",
            eventbridge("Object Created", json!("")),
            E("InvalidKey", "the key is empty"),
        ),
        (
            "empty record key",
            one(""),
            E("InvalidKey", "the key is empty"),
        ),
        (
            "1,024-byte key",
            eventbridge("Object Created", json!(k1024)),
            kept(&[&format!("/{k1024}")], &[]),
        ),
        (
            "1,025-byte key",
            eventbridge("Object Created", json!("k".repeat(1025))),
            E(
                "InvalidKey",
                "the key is 1025 bytes long, S3 allows at most 1024",
            ),
        ),
        (
            "record key of 1,024 bytes once decoded",
            one(&"%41".repeat(1024)),
            kept(&[&format!("/{a1024}")], &[]),
        ),
        (
            "record key of 1,025 bytes once decoded",
            one(&"%41".repeat(1025)),
            E("InvalidKey", "the key is 1025 bytes long"),
        ),
        // Keys: control and invisible characters are legal in S3 and get encoded.
        (
            "NUL, DEL, CR and newline in a key",
            eventbridge("Object Created", json!("a\u{0}b\u{7f}c\r\nd")),
            kept(&["/a%00b%7Fc%0D%0Ad"], &[]),
        ),
        (
            "form-encoded control characters",
            one("%00%01%1F%7F%0A"),
            kept(&["/%00%01%1F%7F%0A"], &[]),
        ),
        (
            "BOM and right-to-left override",
            eventbridge("Object Created", json!("\u{feff}\u{202e}lmth.exe")),
            kept(&["/%EF%BB%BF%E2%80%AElmth.exe"], &[]),
        ),
        // Keys: percent-encoding.
        (
            "invalid percent-encoding in a record",
            one("100%.html"),
            E("InvalidKey", "invalid percent-encoding at byte 3"),
        ),
        (
            "truncated percent-encoding",
            one("a%4"),
            E("InvalidKey", "invalid percent-encoding at byte 1"),
        ),
        (
            "non-hex percent-encoding",
            one("%g0.html"),
            E("InvalidKey", "invalid percent-encoding at byte 0"),
        ),
        (
            "signed percent-encoding",
            one("%+1"),
            E("InvalidKey", "invalid percent-encoding at byte 0"),
        ),
        (
            "non-UTF-8 percent-encoding in a record",
            notification(vec![record("ObjectRemoved:Delete", "%C3%28")]),
            E("InvalidKey", "does not decode to UTF-8"),
        ),
        (
            "overlong '/' (C0 AF)",
            one("a%C0%AFb"),
            E("InvalidKey", "does not decode to UTF-8"),
        ),
        (
            "overlong NUL (C0 80)",
            one("%C0%80"),
            E("InvalidKey", "does not decode to UTF-8"),
        ),
        (
            "UTF-16 surrogate (ED A0 80)",
            one("%ED%A0%80"),
            E("InvalidKey", "does not decode to UTF-8"),
        ),
        (
            "past U+10FFFF (F4 90 80 80)",
            one("%F4%90%80%80"),
            E("InvalidKey", "does not decode to UTF-8"),
        ),
        (
            "EventBridge key that is not form-encoded keeps its raw reading",
            eventbridge("Object Created", json!("100%.html")),
            kept(&["/100%25.html"], &[]),
        ),
        (
            "EventBridge key with overlong percent-encoding keeps its raw reading",
            eventbridge("Object Created", json!("a%C0%AF")),
            kept(&["/a%25C0%25AF"], &[]),
        ),
        // Buckets.
        (
            "bucket nobody routes",
            with(ok.clone(), "/detail/bucket/name", json!("other")),
            I("no route for bucket \"other\""),
        ),
        (
            "bucket nobody routes, with a key S3 cannot have",
            one_with(put("%zz"), "/s3/bucket/name", json!("other")),
            I("no route for bucket \"other\""),
        ),
        (
            "bucket name with a newline",
            with(ok.clone(), "/detail/bucket/name", json!("site-bucket\n")),
            I("no route for bucket \"site-bucket\\n\""),
        ),
        // Several records: valid keys are never lost next to bad ones.
        (
            "duplicate records",
            notification(vec![put("a.html"), put("a.html")]),
            kept(&["/a.html"], &[]),
        ),
        (
            "created then deleted",
            notification(vec![
                put("a.html"),
                record("ObjectRemoved:Delete", "a.html"),
            ]),
            kept(&["/a.html"], &[]),
        ),
        (
            "valid record next to another bucket's",
            notification(vec![
                put("a.html"),
                with(put("b.html"), "/s3/bucket/name", json!("other")),
            ]),
            kept(&["/a.html"], &["no route for bucket \"other\""]),
        ),
        (
            "valid record next to a restore",
            notification(vec![record("ObjectRestore:Post", "b.html"), put("a.html")]),
            kept(
                &["/a.html"],
                &["eventName \"ObjectRestore:Post\" is not an object change"],
            ),
        ),
        (
            "valid record next to an excluded key",
            notification(vec![put("a.html"), put("a.js.map")]),
            kept(&["/a.html"], &["excluded by pattern \"*.map\""]),
        ),
        (
            "valid record next to a key S3 cannot have: the whole event fails",
            notification(vec![put("a.html"), put("%zz")]),
            E("InvalidKey", "invalid percent-encoding"),
        ),
        (
            "valid record next to a mistyped one: the whole event fails",
            notification(vec![
                put("a.html"),
                with(put("b"), "/s3/object/key", json!(["b"])),
            ]),
            E(
                "InvalidEvent",
                "Records[1].s3.object.key must be a string, got an array",
            ),
        ),
        (
            "valid record next to a non-object: the whole event fails",
            notification(vec![put("a.html"), json!("b.html")]),
            E("InvalidEvent", "Records[1] must be an object, got a string"),
        ),
        (
            "second record without key",
            notification(vec![put("a"), without(put("b"), "/s3/object", "key")]),
            E("InvalidEvent", "Records[1].s3.object.key is missing"),
        ),
        ("256 KB event", big, Expect::Paths(big_paths, &[])),
        (
            "256 KB event whose last key S3 cannot have",
            big_bad,
            E(
                "InvalidKey",
                "invalid percent-encoding at byte 7 of key \"big/100%.html\"",
            ),
        ),
    ]
}

#[test]
fn malformed_and_hostile_events_fail_by_name_or_are_ignored_with_a_reason() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut names = HashSet::new();
    let cfg = site();
    for (name, event, expect) in cases {
        assert!(names.insert(name), "{name}: twice");
        let got = collect(&event, &cfg);
        if let Ok(out) = &got {
            assert_nothing_dropped(name, &event, &cfg, out);
        }
        match (expect, got) {
            (Expect::Error(variant, text), Err(e)) => {
                assert_eq!(e.name(), variant, "{name}: {e}");
                assert!(e.to_string().contains(text), "{name}: {e:?} lacks {text:?}");
            }
            (Expect::Ignored(reason), Ok(out)) => {
                assert!(out.paths.is_empty(), "{name}: {:?}", out.paths);
                let reasons: Vec<&str> = out.ignored.iter().map(|i| i.reason.as_str()).collect();
                assert_eq!(reasons, [reason], "{name}");
            }
            (Expect::Paths(paths, reasons), Ok(out)) => {
                assert_eq!(common::paths(&out), paths, "{name}");
                let got: Vec<&str> = out.ignored.iter().map(|i| i.reason.as_str()).collect();
                assert_eq!(got, reasons, "{name}");
            }
            (_, got) => panic!("{name}: unexpected {got:?}"),
        }
    }
}

#[test]
fn the_big_events_are_about_256_kb() {
    for last in ["big/last.html", "big/100%.html"] {
        let len = big_notification(last).0.to_string().len();
        assert!((250 * 1024..=256 * 1024).contains(&len), "{len} bytes");
    }
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
        json!(1e300),
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

/// Writes the fuzz targets' seed corpus: the fixtures and these cases (under 8 KiB) as events
/// in `fuzz/corpus/event`, and the keys they carry, with the reading mode their source implies,
/// in `fuzz/corpus/path` (see `fuzz/fuzz_targets/path.rs` for the format). Run by hand when the
/// cases change: `cargo test -p cfinv-core --test hostile -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes fuzz/corpus"]
fn write_fuzz_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let write = |target: &str, name: String, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let fixtures = common::fixture_path("");
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap().to_string_lossy();
            write(
                "event",
                format!("fixture-{name}"),
                &std::fs::read(&path).unwrap(),
            );
        }
    }
    let mut keys = vec![
        (0x00, "a+b%20c.txt".to_owned()),
        (0x00, "docs/index.html".to_owned()),
        (0x00, "a**".to_owned()),
        (0x01, "*".to_owned()),
        (0x02, "%ED%95%9C%EA%B8%80/%F0%9F%98%80.png".to_owned()),
    ];
    for (name, event, _) in cases() {
        let text = event.to_string();
        if text.len() <= 8 * 1024 {
            write(
                "event",
                format!("hostile-{}.json", slug(name)),
                text.as_bytes(),
            );
        }
        for (pointer, selector) in [
            ("/detail/object/key", 0x00),
            ("/Records/0/s3/object/key", 0x80),
        ] {
            if let Some(Value::String(key)) = event.pointer(pointer) {
                keys.push((selector, key.clone()));
            }
        }
    }
    keys.sort();
    keys.dedup();
    for (i, (selector, key)) in keys.iter().enumerate() {
        let mut bytes = vec![*selector];
        bytes.extend_from_slice(key.as_bytes());
        write("path", format!("key-{i:03}"), &bytes);
    }
}

/// `Records: []` -> `records`: lower-case letters and digits, runs of anything else as one `-`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}
