//! Any bytes -> JSON (when they parse) -> `collect` (all of collect-keys' handler but its log
//! lines), under each key encoding.
//! It must not panic; an error must be one the event can cause (`InvalidEvent`, `InvalidKey`);
//! every path must be a valid CloudFront path of a valid key; and no key may be dropped without
//! an ignored entry (the check `functions/core/tests/hostile.rs` runs, from the same file).
#![no_main]

use std::sync::LazyLock;

use cfinv_core::collect::collect;
use cfinv_core::object_key::{KeyEncoding, MAX_KEY_BYTES};
use cfinv_core::path::is_valid_path;
use cfinv_core::routes::{MappingConfig, Route};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "../../functions/core/tests/common/mod.rs"]
mod common;

/// The buckets of the fixtures and the hostile cases, one with two overlapping routes.
static CONFIGS: LazyLock<Vec<MappingConfig>> = LazyLock::new(|| {
    let route = |bucket: &str, key_prefix: &str, id: &str, origin_path: &str| Route {
        bucket: bucket.into(),
        key_prefix: key_prefix.into(),
        distribution_id: id.into(),
        origin_path: origin_path.into(),
        query_strings: false,
    };
    let routes = vec![
        route("site-bucket", "", "E1", ""),
        route("site-bucket", "docs/", "E2", "/docs"),
        route("DOC-EXAMPLE-BUCKET1", "", "E3", ""),
        route("amzn-s3-demo-bucket", "", "E4", "images"),
    ];
    [KeyEncoding::Auto, KeyEncoding::Raw, KeyEncoding::Form]
        .into_iter()
        .map(|key_encoding| MappingConfig {
            routes: routes.clone(),
            index_document: Some("index.html".into()),
            key_encoding,
            exclude: vec!["*.map".into(), "tmp/*".into()],
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for cfg in CONFIGS.iter() {
        match collect(&event, cfg) {
            Err(e) => assert!(
                matches!(e.name(), "InvalidEvent" | "InvalidKey"),
                "{:?}: {e}",
                cfg.key_encoding
            ),
            Ok(out) => {
                for p in &out.paths {
                    assert!(is_valid_path(&p.path), "{p:?}");
                    assert!(!p.key.is_empty() && p.key.len() <= MAX_KEY_BYTES, "{p:?}");
                }
                common::assert_nothing_dropped("fuzz", &event, cfg, &out);
            }
        }
    }
});
