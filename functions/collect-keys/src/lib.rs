//! collect-keys: one S3 event in, the CloudFront paths to invalidate out (per distribution).
//! Pure: no AWS calls, so it needs no SDK at all.

use cfinv_core::Result;
use cfinv_core::collect::{CollectOutput, collect};
use cfinv_core::routes::MappingConfig;
use serde_json::Value;

/// Maps the event, logging each path and each ignored key with its reason.
pub fn handle(event: &Value, config: &MappingConfig) -> Result<CollectOutput> {
    let out = collect(event, config)?;
    for ignored in &out.ignored {
        tracing::info!(
            bucket = ignored.bucket.as_deref(),
            key = ignored.key.as_deref(),
            reason = %ignored.reason,
            "ignored"
        );
    }
    for p in &out.paths {
        tracing::info!(distribution = %p.distribution_id, path = %p.path, key = %p.key, "path");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> MappingConfig {
        MappingConfig::from_lookup(|k| match k {
            "BUCKET_NAME" => Some("site".into()),
            "DISTRIBUTION_IDS" => Some("E1,E2".into()),
            _ => None,
        })
        .unwrap()
    }

    fn event(bucket: &str, key: &str) -> Value {
        json!({"version": "0", "id": "1", "detail-type": "Object Created", "source": "aws.s3",
               "time": "2026-11-25T00:00:00Z", "region": "us-east-1",
               "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1, "etag": "x", "sequencer": "01"},
                          "reason": "PutObject"}})
    }

    #[test]
    fn one_key_fans_out_to_every_distribution() {
        let out = handle(&event("site", "img/a b.png"), &config()).unwrap();
        let got: Vec<_> = out
            .paths
            .iter()
            .map(|p| (p.distribution_id.as_str(), p.path.as_str()))
            .collect();
        assert_eq!(got, [("E1", "/img/a%20b.png"), ("E2", "/img/a%20b.png")]);
    }

    #[test]
    fn an_unknown_bucket_is_ignored_with_a_reason() {
        let out = handle(&event("other", "a.png"), &config()).unwrap();
        assert!(out.paths.is_empty());
        assert_eq!(out.ignored.len(), 1);
        assert!(!out.ignored[0].reason.is_empty());
    }

    #[test]
    fn a_bad_configuration_is_a_named_error() {
        // cfinv_core::setup::serve answers every event with it.
        let err = MappingConfig::from_lookup(|_| None).unwrap_err();
        assert_eq!(err.name(), "InvalidConfig");
    }
}
