//! dedupe: joins the paths of one object change to the open batch of each distribution, with
//! the join protocol of `functions/core/src/join.rs` (shared with `cfinv invalidate`); with
//! `CACHE_TAG_METADATA` set, also the object's cache tags (`functions/core/src/object_tags.rs`).
//! A manual request that came as an EventBridge event is admitted and joined here too
//! (`functions/core/src/manual.rs`), and the events of the batch that collect-keys could not
//! map are recorded as failed events.

use cfinv_core::collect::{FailedEvent, PathChange};
use cfinv_core::join::{EnqueueInput, Settings, enqueue, push_once};
use cfinv_core::manual::{ManualEvent, ManualLimits, ManualStore, submit_event};
use cfinv_core::metrics::{EVENTS_FAILED, Metrics};
use cfinv_core::model::{Clock, ExecutionStatus, FlushRequest, execution_name};
use cfinv_core::object_tags::{self, ObjectMetadata, TagStore};
use cfinv_core::setup::env_optional;
use cfinv_core::store::{JoinStore, Outcome, OutcomeStore};
use cfinv_core::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize};

/// The task input: collect-keys' output for the execution's batch (or one event), and the
/// execution, which names the failed events' audit items.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DedupeInput {
    #[serde(default)]
    pub paths: Vec<PathChange>,
    /// A list; one object is read too (an execution started before batching, redriven).
    #[serde(default, deserialize_with = "one_or_many")]
    pub manual: Vec<ManualEvent>,
    #[serde(default)]
    pub failed: Vec<FailedEvent>,
    #[serde(default)]
    pub execution_arn: Option<String>,
}

/// The task output: every flush to ask for, and the ids of the events recorded as failed (the
/// state machine fails the execution when there are any, so the console shows them).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DedupeOutput {
    pub flushes: Vec<FlushRequest>,
    pub failed: Vec<String>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<ManualEvent>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(ManualEvent),
        Many(Vec<ManualEvent>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(one)) => vec![one],
        Some(OneOrMany::Many(many)) => many,
    })
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

/// Records the batch's failed events, joins its paths (and their objects' tags), and admits
/// and joins its manual requests; a refused request is recorded and counted as failed, the
/// others go on. Every write is idempotent, so a retried task repeats nothing twice.
pub async fn handle<S, M>(
    store: &S,
    objects: &M,
    clock: &dyn Clock,
    config: &Config,
    metrics: &Metrics,
    input: DedupeInput,
) -> Result<DedupeOutput>
where
    S: JoinStore + ManualStore + TagStore + OutcomeStore,
    M: ObjectMetadata,
{
    let execution = input.execution_arn.as_deref().unwrap_or_default();
    let mut failed = Vec::new();
    for event in &input.failed {
        let input = event.event.to_string();
        let (error, cause) = (event.error.clone(), event.cause.clone());
        record(
            store,
            clock,
            execution,
            &event.event_id,
            error,
            cause,
            &input,
        )
        .await?;
        failed.push(event.event_id.clone());
    }
    let mut flushes = if input.paths.is_empty() {
        Vec::new()
    } else {
        join_paths(store, objects, clock, config, metrics, input.paths).await?
    };
    for event in input.manual {
        let (id, as_recorded) = (event.event_id.clone(), serde_json::to_string(&event));
        match submit_event(store, clock, config.window, metrics, event, &config.limits).await {
            Ok(joined) => {
                for flush in joined.flushes {
                    push_once(&mut flushes, flush);
                }
            }
            Err(refused @ Error::ManualRequestRefused(_)) => {
                let (error, cause) = (refused.name().to_owned(), refused.to_string());
                let input = as_recorded.unwrap_or_default();
                record(store, clock, execution, &id, error, cause, &input).await?;
                failed.push(id);
            }
            Err(e) => return Err(e),
        }
    }
    if !failed.is_empty() {
        metrics.publish(clock.now(), &[], &[(EVENTS_FAILED, failed.len() as u64)]);
    }
    Ok(DedupeOutput { flushes, failed })
}

/// One failed event's audit item, named `<execution name>/<event id>`.
async fn record<S: OutcomeStore>(
    store: &S,
    clock: &dyn Clock,
    execution: &str,
    event_id: &str,
    error: String,
    cause: String,
    input: &str,
) -> Result<()> {
    let name = format!("{}/{event_id}", execution_name(execution));
    tracing::warn!(item = %name, error = %error, "failed event recorded");
    let outcome = Outcome {
        status: ExecutionStatus::Failed,
        execution_arn: execution.to_owned(),
        error: Some(error),
        cause: Some(cause),
        at: clock.now(),
    };
    store.record_failed_event(&name, &outcome, input).await
}

async fn join_paths<S, M>(
    store: &S,
    objects: &M,
    clock: &dyn Clock,
    config: &Config,
    metrics: &Metrics,
    mut paths: Vec<PathChange>,
) -> Result<Vec<FlushRequest>>
where
    S: JoinStore + TagStore,
    M: ObjectMetadata,
{
    let Some(name) = &config.cache_tag_metadata else {
        let out = enqueue(store, clock, config.window, metrics, EnqueueInput { paths }).await?;
        return Ok(out.flushes);
    };
    let tagged = object_tags::add_tags(store, objects, name, &mut paths).await?;
    let out = enqueue(store, clock, config.window, metrics, EnqueueInput { paths }).await?;
    object_tags::keep(store, &tagged, clock.now()).await?;
    Ok(out.flushes)
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
    ) -> Result<DedupeOutput> {
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
        let refused = serde_json::json!({"manual": [{
            "request": {"distributionId": "E1", "paths": ["/y"]},
            "source": "cf-invalidator.manual", "account": "999999999999", "eventId": "e-2"}],
            "executionArn": "arn:aws:states:us-east-1:1:execution:object-changed:x1"});
        let out = run(&store, &config(None), refused).await.unwrap();
        assert_eq!(
            out.failed,
            ["e-2"],
            "refused, recorded, and the batch goes on"
        );
        assert_eq!(store.requests().len(), 2);
        assert_eq!(store.failed_events().len(), 1);
        assert!(store.event("x1/e-2").is_some_and(|e| e.failed));
    }

    #[tokio::test]
    async fn a_batch_records_its_failed_events_and_joins_the_rest() {
        let store = MemoryStore::new();
        let mut batch = created("a.html");
        batch["failed"] = serde_json::json!([{"eventId": "ev-bad", "error": "InvalidKey",
            "cause": "invalid key: too long", "event": {"id": "ev-bad"}}]);
        batch["executionArn"] =
            serde_json::json!("arn:aws:states:us-east-1:1:execution:object-changed:x2");
        let metrics = Metrics::recording("test");
        let clock = ManualClock::at(datetime!(2026-12-01 06:00 UTC));
        let out = handle(
            &store,
            &Tagged,
            &clock,
            &config(None),
            &metrics,
            input(batch.clone()),
        )
        .await
        .unwrap();
        assert_eq!(store.paths_of(&out.flushes[0].batch.batch_id), ["/a.html"]);
        assert_eq!(out.failed, ["ev-bad"]);
        assert!(store.event("x2/ev-bad").is_some_and(|e| e.failed));
        assert_eq!(
            metrics.lines()[1]["EventsFailed"],
            1,
            "{:?}",
            metrics.lines()
        );
        // A retried task records the same item, nothing more.
        handle(
            &store,
            &Tagged,
            &clock,
            &config(None),
            &metrics,
            input(batch),
        )
        .await
        .unwrap();
        assert_eq!(store.failed_events().len(), 1);
    }
}
