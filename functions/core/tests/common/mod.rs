//! Fixtures, event builders and the no-key-dropped check shared by `events.rs`, `hostile.rs`
//! and the `event` fuzz target (`fuzz/`, which includes this file by path: keep it free of
//! dev-dependencies).

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cfinv_core::collect::CollectOutput;
use cfinv_core::event::parse_event;
use cfinv_core::object_key::key_readings;
use cfinv_core::path::is_valid_path;
use cfinv_core::routes::MappingConfig;
use serde_json::{Value, json};

pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Value {
    let path = fixture_path(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn config(vars: &[(&str, &str)]) -> MappingConfig {
    let vars: HashMap<&str, &str> = vars.iter().copied().collect();
    MappingConfig::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap()
}

pub fn routes_for(bucket: &str) -> MappingConfig {
    config(&[("BUCKET_NAME", bucket), ("DISTRIBUTION_IDS", "E1ABC")])
}

pub fn paths(out: &CollectOutput) -> Vec<&str> {
    out.paths.iter().map(|p| p.path.as_str()).collect()
}

/// An EventBridge S3 event for bucket `site-bucket`.
pub fn eventbridge(detail_type: &str, key: Value) -> Value {
    json!({
        "version": "0", "id": "e-1", "detail-type": detail_type, "source": "aws.s3",
        "time": "2024-01-01T00:00:00Z",
        "detail": {"bucket": {"name": "site-bucket"}, "object": {"key": key}, "reason": "PutObject"}
    })
}

/// One classic notification record for bucket `site-bucket` (`key` form-encoded, as S3 sends it).
pub fn record(event_name: &str, key: &str) -> Value {
    json!({
        "eventSource": "aws:s3", "eventName": event_name,
        "s3": {"bucket": {"name": "site-bucket"}, "object": {"key": key}}
    })
}

/// `event` with the value at JSON pointer `pointer` set (added or replaced); `""` replaces all.
pub fn with(mut event: Value, pointer: &str, value: Value) -> Value {
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

/// `event` without `field` of the object at JSON pointer `parent`.
pub fn without(mut event: Value, parent: &str, field: &str) -> Value {
    event
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(field);
    event
}

/// Every change `parse_event` finds is in `out`: each reading of its key has every path its
/// routes give it, or an ignored entry names it (bucket and key). `collect` deduplicates paths,
/// so this looks for paths, not for the key that produced them.
pub fn assert_nothing_dropped(name: &str, event: &Value, cfg: &MappingConfig, out: &CollectOutput) {
    let parsed = parse_event(event).unwrap();
    for ignored in &parsed.ignored {
        assert!(out.ignored.contains(ignored), "{name}: lost {ignored:?}");
    }
    for change in &parsed.changes {
        let named = |key: &str| {
            out.ignored.iter().any(|i| {
                i.bucket.as_deref() == Some(change.bucket.as_str()) && i.key.as_deref() == Some(key)
            })
        };
        if !cfg.routes.iter().any(|r| r.bucket == change.bucket) {
            assert!(named(&change.raw_key), "{name}: lost {change:?}");
            continue;
        }
        for key in key_readings(&change.raw_key, change.source, cfg.key_encoding).unwrap() {
            let expected: Vec<(&str, String)> = cfg
                .routes
                .iter()
                .filter_map(|r| Some((r, r.relative_key(&change.bucket, &key)?)))
                .flat_map(|(r, rel)| {
                    let id = r.distribution_id.as_str();
                    cfg.paths_for(rel).into_iter().map(move |p| (id, p))
                })
                .collect();
            if expected.is_empty() || cfg.excluded_by(&key).is_some() {
                assert!(named(&key), "{name}: lost {key:?}");
                continue;
            }
            for (id, path) in expected {
                assert!(is_valid_path(&path), "{name}: {path:?}");
                assert!(
                    out.paths
                        .iter()
                        .any(|p| p.distribution_id == id && p.path == path),
                    "{name}: lost {path:?} of {key:?}"
                );
            }
        }
    }
}
