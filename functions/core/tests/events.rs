//! Parsing real event shapes (the AWS user guide's examples and what moto sends) through
//! `parse_event` and the whole of `collect`. Malformed and hostile input: `hostile.rs`.

mod common;

use cfinv_core::collect::{CollectOutput, collect};
use cfinv_core::event::{ChangeKind, KeySource, ObjectChange, parse_event};
use cfinv_core::object_key::KeyEncoding;
use cfinv_core::routes::MappingConfig;
use common::{eventbridge, fixture, paths, record, routes_for, with};
use serde_json::{Value, json};

fn only_change(event: &Value) -> ObjectChange {
    let parsed = parse_event(event).unwrap();
    assert!(parsed.ignored.is_empty(), "{:?}", parsed.ignored);
    let [change] = parsed.changes.as_slice() else {
        panic!("expected one change, got {:?}", parsed.changes)
    };
    change.clone()
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

/// What a lifecycle rule's delete changed for viewers, from the S3 user guide (event.rs quotes
/// it): a delete marker over the current version, or the permanent removal of an unversioned
/// object, is invalidated; the permanent removal of a noncurrent version is not.
#[test]
fn a_lifecycle_rule_expiring_a_noncurrent_version_invalidates_nothing() {
    let deleted = |reason: &str, deletion_type: &str, version: Value| {
        let event = with(
            eventbridge("Object Deleted", json!("old.html")),
            "/detail/reason",
            json!(reason),
        );
        let event = with(event, "/detail/deletion-type", json!(deletion_type));
        with(event, "/detail/object/version-id", version)
    };
    let routes = routes_for("site-bucket");
    let cases = [
        // NoncurrentVersionExpiration (or an expired delete marker removed): nothing to do.
        (
            "Lifecycle Expiration",
            "Permanently Deleted",
            json!("3HL4kqtJvjVBH40Nrjfkd"),
            false,
        ),
        // Expiration in a versioned bucket: a delete marker now hides the object.
        (
            "Lifecycle Expiration",
            "Delete Marker Created",
            json!("3HL4kqtJvjVBH40Nrjfkd"),
            true,
        ),
        // Expiration in an unversioned bucket: the object is gone.
        (
            "Lifecycle Expiration",
            "Permanently Deleted",
            Value::Null,
            true,
        ),
        (
            "Lifecycle Expiration",
            "Permanently Deleted",
            json!("null"),
            true,
        ),
        // Someone deleted a version: it may have been the current one.
        (
            "DeleteObject",
            "Permanently Deleted",
            json!("3HL4kqtJvjVBH40Nrjfkd"),
            true,
        ),
    ];
    for (reason, deletion_type, version, invalidated) in cases {
        let out = collect(&deleted(reason, deletion_type, version.clone()), &routes).unwrap();
        let case = format!("{reason} / {deletion_type} / {version}");
        if invalidated {
            assert_eq!(paths(&out), ["/old.html"], "{case}");
        } else {
            assert!(out.paths.is_empty(), "{case}: {:?}", out.paths);
            assert_eq!(out.ignored.len(), 1, "{case}");
            assert!(
                out.ignored[0].reason.contains("noncurrent version"),
                "{case}"
            );
            assert_eq!(out.ignored[0].key.as_deref(), Some("old.html"));
        }
    }

    // The classic shape says the same with LifecycleExpiration:Delete and a versionId.
    let expired = |version: Value| {
        let event = json!({"Records": [record("LifecycleExpiration:Delete", "old.html")]});
        with(event, "/Records/0/s3/object/versionId", version)
    };
    let out = collect(&expired(json!("3HL4kqtJvjVBH40Nrjfkd")), &routes).unwrap();
    assert!(out.paths.is_empty() && out.ignored.len() == 1, "{out:?}");
    let out = collect(&expired(Value::Null), &routes).unwrap();
    assert_eq!(paths(&out), ["/old.html"]);
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
