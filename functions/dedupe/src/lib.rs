//! dedupe: joins the paths of one object change to the open batch of each distribution, with
//! the join protocol of `functions/core/src/join.rs` (shared with `cfinv invalidate`); with
//! `CACHE_TAG_METADATA` set, also the object's cache tags (`functions/core/src/object_tags.rs`).
//! A manual request that came as an EventBridge event is admitted and joined here too
//! (`functions/core/src/manual.rs`).

use cfinv_core::Result;
use cfinv_core::collect::PathChange;
use cfinv_core::join::{EnqueueInput, EnqueueOutput, Settings, enqueue};
use cfinv_core::manual::{ManualEvent, ManualLimits, ManualStore, submit_event};
use cfinv_core::metrics::Metrics;
use cfinv_core::model::Clock;
use cfinv_core::object_tags::{self, ObjectMetadata, TagStore};
use cfinv_core::setup::env_optional;
use cfinv_core::store::JoinStore;
use serde::Deserialize;

/// The task input: collect-keys' paths of an S3 event, or a manual request event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DedupeInput {
    #[serde(default)]
    pub paths: Vec<PathChange>,
    #[serde(default)]
    pub manual: Option<ManualEvent>,
}

/// dedupe's settings, read once per execution environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub window: Settings,
    pub limits: ManualLimits,
    /// `CACHE_TAG_METADATA`: the S3 metadata key holding an object's cache tags; `None`: off.
    pub cache_tag_metadata: Option<String>,
}

impl Config {
    pub fn from_env() -> Result<Self> {
        Ok(Config {
            window: Settings::from_env()?,
            limits: ManualLimits::from_env()?,
            cache_tag_metadata: env_optional("CACHE_TAG_METADATA"),
        })
    }
}

/// Joins the input's paths (and their objects' tags), or admits and joins a manual request.
pub async fn handle<S, M>(
    store: &S,
    objects: &M,
    clock: &dyn Clock,
    config: &Config,
    metrics: &Metrics,
    input: DedupeInput,
) -> Result<EnqueueOutput>
where
    S: JoinStore + ManualStore + TagStore,
    M: ObjectMetadata,
{
    if let Some(event) = input.manual {
        return submit_event(store, clock, config.window, metrics, event, &config.limits).await;
    }
    let mut paths = input.paths;
    let Some(name) = &config.cache_tag_metadata else {
        return enqueue(store, clock, config.window, metrics, EnqueueInput { paths }).await;
    };
    let tagged = object_tags::add_tags(store, objects, name, &mut paths).await?;
    let out = enqueue(store, clock, config.window, metrics, EnqueueInput { paths }).await?;
    object_tags::keep(store, &tagged, clock.now()).await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use cfinv_core::memory::{ManualClock, MemoryStore};
    use time::macros::datetime;

    use super::*;

    struct Tagged;

    impl ObjectMetadata for Tagged {
        async fn metadata(&self, _: &str, _: &str, _: &str) -> Result<Option<String>> {
            Ok(Some("sale".into()))
        }
    }

    fn config(tags: Option<&str>) -> Config {
        Config {
            window: Settings {
                debounce: std::time::Duration::from_secs(30),
                grace: std::time::Duration::from_secs(60),
            },
            limits: ManualLimits {
                distributions: vec!["E1".into()],
                max_paths_per_request: 10,
                max_paths_per_hour: 10,
                sources: vec![cfinv_core::manual::EVENT_SOURCE.into()],
                account: Some("123456789012".into()),
            },
            cache_tag_metadata: tags.map(str::to_owned),
        }
    }

    fn input(json: serde_json::Value) -> DedupeInput {
        serde_json::from_value(json).unwrap()
    }

    fn created(key: &str) -> serde_json::Value {
        serde_json::json!({"paths": [{"distributionId": "E1", "path": format!("/{key}"), "bucket": "site",
            "key": key, "change": "Created", "eventId": "ev1"}], "ignored": []})
    }

    async fn run(
        store: &MemoryStore,
        config: &Config,
        json: serde_json::Value,
    ) -> Result<EnqueueOutput> {
        let clock = ManualClock::at(datetime!(2026-12-01 06:00 UTC));
        handle(
            store,
            &Tagged,
            &clock,
            config,
            &Metrics::silent(),
            input(json),
        )
        .await
    }

    #[tokio::test]
    async fn tags_join_only_when_the_stack_reads_them() {
        let store = MemoryStore::new();
        let out = run(&store, &config(None), created("a.html")).await.unwrap();
        assert_eq!(store.paths_of(&out.flushes[0].batch.batch_id), ["/a.html"]);
        assert_eq!(store.calls("last_tags"), 0, "no tag is read or kept");

        let store = MemoryStore::new();
        let out = run(&store, &config(Some("cache-tag")), created("a.html"))
            .await
            .unwrap();
        assert_eq!(
            store.paths_of(&out.flushes[0].batch.batch_id),
            ["#sale", "/a.html"]
        );
        assert_eq!(store.calls("keep_tags"), 1);
    }

    #[tokio::test]
    async fn a_manual_event_is_admitted_and_joined() {
        let store = MemoryStore::new();
        let event = serde_json::json!({"paths": [], "manual": {
            "request": {"distributionId": "E1", "paths": ["/x"]},
            "source": "cf-invalidator.manual", "account": "123456789012", "eventId": "e-1"}});
        let out = run(&store, &config(None), event).await.unwrap();
        assert_eq!(store.paths_of(&out.flushes[0].batch.batch_id), ["/x"]);
        let refused = serde_json::json!({"manual": {
            "request": {"distributionId": "E1", "paths": ["/x"]},
            "source": "cf-invalidator.manual", "account": "999999999999", "eventId": "e-2"}});
        let err = run(&store, &config(None), refused).await.unwrap_err();
        assert_eq!(err.name(), "ManualRequestRefused");
        assert_eq!(store.requests().len(), 2);
    }
}
