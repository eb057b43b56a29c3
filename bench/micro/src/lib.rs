//! Workloads for the criterion benchmarks in `benches/` (run by `make bench`).

use cfinv_core::routes::MappingConfig;
use serde_json::{Value, json};

pub const BUCKET: &str = "site-bucket";

/// One EventBridge "Object Created" event per key, shaped as S3 sends them, keys spread over
/// 50 directories under the route's prefix `site/`. Every tenth key holds a space and every
/// tenth (offset by five) non-ASCII text, so the percent-encoding path is measured too.
pub fn events(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let key = match i % 10 {
                0 => format!("site/dir{:02}/red flower {i}.jpg", i % 50),
                5 => format!("site/dir{:02}/서울-{i}.html", i % 50),
                _ => format!("site/dir{:02}/page-{i:05}.html", i % 50),
            };
            json!({
                "version": "0",
                "id": format!("00000000-0000-0000-0000-{i:012}"),
                "detail-type": "Object Created",
                "source": "aws.s3",
                "account": "123456789012",
                "time": "2025-01-01T00:00:00Z",
                "region": "us-east-1",
                "resources": [format!("arn:aws:s3:::{BUCKET}")],
                "detail": {
                    "version": "0",
                    "bucket": {"name": BUCKET},
                    "object": {
                        "key": key,
                        "size": 5,
                        "etag": "b1946ac92492d2347c6235b4d2611184",
                        "sequencer": format!("{i:018X}"),
                    },
                    "request-id": "N4N7GDK58NMKJ12R",
                    "requester": "123456789012",
                    "source-ip-address": "1.2.3.4",
                    "reason": "PutObject",
                },
            })
        })
        .collect()
}

/// The template's single-bucket configuration: every key under `site/` to one distribution,
/// index documents on, `KeyEncoding=auto`.
pub fn mapping_config() -> MappingConfig {
    MappingConfig::from_lookup(|name| match name {
        "BUCKET_NAME" => Some(BUCKET.to_owned()),
        "DISTRIBUTION_IDS" => Some("E2EXAMPLE".to_owned()),
        "KEY_PREFIX" => Some("site/".to_owned()),
        _ => None,
    })
    .expect("a valid mapping configuration")
}

/// `n` distinct paths: directories of 100 files each, spread over 20 top-level directories
/// (100,000 paths: 1,000 directories).
pub fn batch_paths(n: usize) -> Vec<String> {
    let dirs = n.div_ceil(100).max(1);
    (0..n)
        .map(|i| format!("/top{:02}/dir{:04}/file-{i:06}.html", i % 20, i % dirs))
        .collect()
}
