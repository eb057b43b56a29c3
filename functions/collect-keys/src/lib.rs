//! collect-keys: a batch of S3 events (or one) in, the CloudFront paths to invalidate out (per
//! distribution); manual request events pass through to dedupe, and an event that cannot be
//! mapped is set aside for dedupe to record while the others go on. Pure: no AWS calls, so it
//! needs no SDK at all.

use cfinv_core::Result;
use cfinv_core::collect::{BatchOutput, collect_batch};
use cfinv_core::routes::MappingConfig;
use serde_json::Value;

/// Maps the input, logging each path and each ignored key with its reason.
pub fn handle(input: &Value, config: &MappingConfig) -> Result<BatchOutput> {
    let out = collect_batch(input, config)?;
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
    fn a_manual_request_event_passes_through_as_it_came() {
        // A PutEvents entry as EventBridge delivers it (EventBridge user guide, "Amazon
        // EventBridge events": version, id, detail-type, source, account, time, region,
        // resources, detail).
        let manual_event = json!({"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "Invalidation Requested", "source": "cf-invalidator.manual",
            "account": "111122223333", "time": "2026-12-01T06:00:00Z", "region": "us-east-1",
            "resources": [], "detail": {"distributionId": "E1", "paths": ["/a"], "anything": 1}});
        let out = handle(&manual_event, &config()).unwrap();
        assert!(out.paths.is_empty());
        let manual = &out.manual[0];
        assert_eq!(manual.event_id, "6a7e8feb-b491-4cf7-a9f1-bf3703467718");
        assert_eq!(manual.account, "111122223333");
        assert_eq!(manual.source, "cf-invalidator.manual");
        assert_eq!(
            manual.request, manual_event["detail"],
            "unchecked: dedupe admits it"
        );
        let serialized = serde_json::to_value(handle(&manual_event, &config()).unwrap()).unwrap();
        assert_eq!(serialized["manual"][0]["eventId"], manual_event["id"]);
        let mut no_account = manual_event.clone();
        no_account.as_object_mut().unwrap().remove("account");
        assert_eq!(
            handle(&no_account, &config()).unwrap_err().name(),
            "InvalidEvent"
        );
        // An S3 event carries no manual request.
        let s3 = serde_json::to_value(handle(&event("site", "a.png"), &config()).unwrap()).unwrap();
        assert_eq!(s3["manual"], json!([]), "{s3}");
    }

    #[test]
    fn a_bad_configuration_is_a_named_error() {
        // cfinv_core::setup::serve answers every event with it.
        let err = MappingConfig::from_lookup(|_| None).unwrap_err();
        assert_eq!(err.name(), "InvalidConfig");
    }
}
