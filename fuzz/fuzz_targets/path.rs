//! One object key through decoding, routing and encoding. Input: a selector byte (its value
//! modulo 3 picks the `KEY_ENCODING`: auto, raw, form; its top bit the source: EventBridge, or a
//! classic notification), then the key as it appears in the event (bytes that are not UTF-8
//! become U+FFFD: an event is JSON, so its keys are UTF-8).
//!
//! Every reading must be a key S3 can have (1 to 1,024 bytes), and every path made from it a
//! valid CloudFront path; the key's own path must percent-decode back to the key exactly, or,
//! for a key holding `~` (which no invalidation path may hold), be a wildcard whose text before
//! the `*` decodes to the part of the key before its first `~`.
#![no_main]

use std::sync::LazyLock;

use cfinv_core::event::KeySource;
use cfinv_core::object_key::{KeyEncoding, MAX_KEY_BYTES, key_readings};
use cfinv_core::path::{encode_path, is_valid_path};
use cfinv_core::routes::{MappingConfig, Route};
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;

/// Routes with no origin path, with one, and with a key prefix; `index.html` indexes.
static CONFIG: LazyLock<MappingConfig> = LazyLock::new(|| {
    let route = |key_prefix: &str, id: &str, origin_path: &str| Route {
        bucket: "b".into(),
        key_prefix: key_prefix.into(),
        distribution_id: id.into(),
        origin_path: origin_path.into(),
        query_strings: false,
    };
    MappingConfig {
        routes: vec![
            route("", "E1", ""),
            route("", "E2", "/site/"),
            route("a", "E3", "a"),
        ],
        index_document: Some("index.html".into()),
        key_encoding: KeyEncoding::Auto,
        exclude: Vec::new(),
    }
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, key)) = data.split_first() else {
        return;
    };
    let mode = [KeyEncoding::Auto, KeyEncoding::Raw, KeyEncoding::Form][usize::from(selector % 3)];
    let source = if selector & 0x80 == 0 {
        KeySource::EventBridge
    } else {
        KeySource::Notification
    };
    let raw = String::from_utf8_lossy(key);
    let Ok(readings) = key_readings(&raw, source, mode) else {
        return;
    };
    assert!(!readings.is_empty(), "{raw:?}");
    for key in &readings {
        assert!(!key.is_empty() && key.len() <= MAX_KEY_BYTES, "{key:?}");
        let own = encode_path(key);
        assert!(is_valid_path(&own), "{key:?} -> {own:?}");
        match key.split_once('~') {
            None => {
                let decoded: Vec<u8> = percent_decode_str(&own[1..]).collect();
                assert_eq!(decoded, key.as_bytes(), "{own:?}");
            }
            Some((before, _)) => {
                let prefix = own[1..].strip_suffix('*').expect("a wildcard");
                let decoded: Vec<u8> = percent_decode_str(prefix).collect();
                assert!(before.as_bytes().starts_with(&decoded), "{key:?} -> {own:?}");
            }
        }
        for route in &CONFIG.routes {
            let Some(relative) = route.relative_key("b", key) else {
                continue;
            };
            for path in CONFIG.paths_for(relative) {
                assert!(is_valid_path(&path), "{key:?} ({route:?}) -> {path:?}");
            }
        }
    }
});
