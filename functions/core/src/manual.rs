//! Manual invalidations through the pipeline (docs/design.md §9): a request for paths,
//! prefixes or cache tags on one distribution, from `cfinv invalidate` or an EventBridge event
//! (`detail-type: Invalidation Requested`, passed through collect-keys), checked against bounds, recorded in the audit table
//! (accepted or refused, with who asked and why), and joined to the distribution's open batch by
//! the join protocol (`join.rs`), so it is batched, kept within the in-progress limits and
//! billed like any change.

use std::future::Future;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::collect::PathChange;
use crate::event::ChangeKind;
use crate::join::{EnqueueInput, EnqueueOutput, Settings, enqueue};
use crate::metrics::Metrics;
use crate::model::Clock;
use crate::path::{encode_path, is_valid_path};
use crate::store::JoinStore;
use crate::tags::{TagError, tag_item};
use crate::{Error, Result};

/// The event `source` allowed by default (the template's `ManualEventSources`).
pub const EVENT_SOURCE: &str = "cf-invalidator.manual";
/// The event's `detail-type` the stack's rule matches.
pub const EVENT_DETAIL_TYPE: &str = "Invalidation Requested";

/// What is asked: the `detail` of the event, and what `cfinv invalidate` sends.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManualRequest {
    pub distribution_id: String,
    /// Invalidation paths as CloudFront sees them (encoded: `/img/a%20b.png`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Directories (`/dir/`), each invalidated as `/dir/*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// Cache tags, each invalidated as `#tag`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Must be set for `/*`: the whole distribution.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_all: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Who asked, and through which door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    /// The caller's identity: an IAM ARN (CLI), or `<account>/<source>` (event).
    pub identity: String,
    pub channel: Channel,
    /// An event's `source` and `account`, checked against `ManualEventSources`.
    pub event: Option<(String, String)>,
}

impl Requester {
    pub fn cli(arn: impl Into<String>) -> Self {
        Requester {
            identity: arn.into(),
            channel: Channel::Cli,
            event: None,
        }
    }

    /// Whoever put the event: EventBridge sets `account` (the sender's) and `source` is the
    /// sender's word, so both are checked, neither alone names a principal.
    pub fn event(source: &str, account: &str) -> Self {
        Requester {
            identity: format!("{account}/{source}"),
            channel: Channel::Event,
            event: Some((source.to_owned(), account.to_owned())),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Cli,
    Event,
}

string_forms!(Channel, crate::Error::StoreError, "channel" {
    Cli => "cli",
    Event => "event",
});

/// One request to admit: what, who, and the id it is recorded under.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub request: ManualRequest,
    pub requester: Requester,
    /// The CLI's: [`new_request_id`]; an event's: its EventBridge id, so a redelivery or a
    /// redrive rewrites the same record.
    pub request_id: String,
}

impl Ask {
    /// The audit record of this request with `items` (as joined, or as asked when refused).
    fn record(
        &self,
        items: Vec<String>,
        at: OffsetDateTime,
        outcome: std::result::Result<Vec<String>, Refusal>,
    ) -> RequestRecord {
        RequestRecord {
            request_id: self.request_id.clone(),
            distribution_id: self.request.distribution_id.clone(),
            requested_by: self.requester.clone(),
            reason: self.request.reason.clone(),
            items,
            at,
            outcome,
        }
    }
}

/// The bounds: the stack's distributions, items per request and per distribution-hour, and who
/// may ask by event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualLimits {
    pub distributions: Vec<String>,
    pub max_paths_per_request: usize,
    /// Per distribution, per clock hour (UTC).
    pub max_paths_per_hour: usize,
    /// Event sources allowed to ask, and the account they must come from.
    pub sources: Vec<String>,
    pub account: Option<String>,
}

impl ManualLimits {
    /// The template's defaults for `ManualMaxPaths` and `ManualMaxPathsPerHour`.
    pub const DEFAULT_MAX_PATHS: usize = 100;
    pub const DEFAULT_MAX_PATHS_PER_HOUR: usize = 1000;

    /// dedupe's environment: `DISTRIBUTION_IDS`, `MANUAL_MAX_PATHS`,
    /// `MANUAL_MAX_PATHS_PER_HOUR`, `MANUAL_EVENT_SOURCES` (comma list) and `ACCOUNT_ID` (the
    /// only account whose events may ask).
    pub fn from_env() -> Result<Self> {
        use crate::setup::{env_number, env_required};
        let list = |name: &str| -> Result<Vec<String>> {
            Ok(env_required(name)?
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect())
        };
        Ok(ManualLimits {
            distributions: list("DISTRIBUTION_IDS")?,
            max_paths_per_request: env_number("MANUAL_MAX_PATHS", Self::DEFAULT_MAX_PATHS)?,
            max_paths_per_hour: env_number(
                "MANUAL_MAX_PATHS_PER_HOUR",
                Self::DEFAULT_MAX_PATHS_PER_HOUR,
            )?,
            sources: list("MANUAL_EVENT_SOURCES")?,
            account: Some(env_required("ACCOUNT_ID")?),
        })
    }
}

/// Why a request was refused: recorded, nothing invalidated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request names no path, prefix or tag")]
    Nothing,
    #[error("{count} paths in one request; at most {limit} (ManualMaxPaths)")]
    TooManyPaths { count: usize, limit: usize },
    #[error(
        "{count} more paths would exceed {limit} manual paths this hour on {distribution_id} \
         (ManualMaxPathsPerHour)"
    )]
    HourlyLimit {
        distribution_id: String,
        count: usize,
        limit: usize,
    },
    #[error("/* invalidates the whole distribution: set allowAll (cfinv invalidate --all)")]
    WholeDistribution,
    #[error("{0:?} is not an encoded invalidation path (suggested: {1:?})")]
    InvalidPath(String, String),
    #[error("{0:?} is not a directory: it starts and ends with /")]
    InvalidPrefix(String),
    #[error(transparent)]
    InvalidTag(#[from] TagError),
    #[error(
        "events from source {event_source:?} of account {account:?} may not ask (ManualEventSources)"
    )]
    UnexpectedSource {
        event_source: String,
        account: String,
    },
    #[error("{0} is not a distribution of this stack")]
    UnknownDistribution(String),
    #[error("the event's detail is not a request: {0}")]
    Malformed(String),
}

impl ManualRequest {
    /// The invalidation items asked for, checked and encoded, each once.
    pub fn items(&self) -> std::result::Result<Vec<String>, Refusal> {
        let mut items = Vec::new();
        for p in &self.paths {
            if !is_valid_path(p) {
                let suggested = encode_path(p.strip_prefix('/').unwrap_or(p));
                return Err(Refusal::InvalidPath(p.clone(), suggested));
            }
            items.push(p.clone());
        }
        for prefix in &self.prefixes {
            let wildcard = format!("{prefix}*");
            if !prefix.ends_with('/') || !is_valid_path(&wildcard) {
                return Err(Refusal::InvalidPrefix(prefix.clone()));
            }
            items.push(wildcard);
        }
        for tag in &self.tags {
            items.push(tag_item(tag)?);
        }
        if items.iter().any(|i| i == "/*") && !self.allow_all {
            return Err(Refusal::WholeDistribution);
        }
        items.sort_unstable();
        items.dedup();
        if items.is_empty() {
            return Err(Refusal::Nothing);
        }
        Ok(items)
    }
}

/// The audit record of one request (`REQUEST#<id>` / `META`).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub request_id: String,
    pub distribution_id: String,
    pub requested_by: Requester,
    pub reason: Option<String>,
    pub items: Vec<String>,
    pub at: OffsetDateTime,
    /// The batches joined, or why nothing was.
    pub outcome: std::result::Result<Vec<String>, Refusal>,
}

/// What admission needs from the table: the hourly budget and the request records.
pub trait ManualStore: Send + Sync {
    /// Adds `count` to the distribution's manual paths of the hour starting `hour` for request
    /// `request_id`, unless that would pass `limit`: `false` then, and nothing added. A request
    /// that already reserved in that hour (a redelivered event, a retried or redriven dedupe)
    /// is `true` and adds nothing: it is charged once.
    fn reserve_manual_paths(
        &self,
        distribution_id: &str,
        hour: OffsetDateTime,
        request_id: &str,
        count: usize,
        limit: usize,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn record_request(&self, record: &RequestRecord) -> impl Future<Output = Result<()>> + Send;
}

/// An id for a CLI request: unique per request, readable in the audit.
pub fn new_request_id(now: OffsetDateTime) -> String {
    // A batch id's form (letters, digits, `-`), for a distribution named "M".
    crate::model::new_batch_id("M", now)
}

/// Checks a request against the bounds, in order: source, distribution, the request itself,
/// its size, the hour's budget (reserved only when everything else passed). Admitted, it is
/// the path changes to join, each saying who asked and why; a refusal is recorded before it is
/// returned. An admitted request is recorded by [`submit`] once it joined.
pub async fn admit<S: ManualStore>(
    store: &S,
    ask: &Ask,
    limits: &ManualLimits,
    now: OffsetDateTime,
) -> Result<std::result::Result<Vec<PathChange>, Refusal>> {
    let Ask {
        request,
        requester,
        request_id,
    } = ask;
    let refusal = match check(request, requester, limits) {
        Err(refusal) => refusal,
        Ok(items) => {
            let hour = now
                .replace_minute(0)
                .and_then(|t| t.replace_second(0))
                .and_then(|t| t.replace_nanosecond(0))
                .expect("the top of an hour is a time");
            let fits = store
                .reserve_manual_paths(
                    &request.distribution_id,
                    hour,
                    request_id,
                    items.len(),
                    limits.max_paths_per_hour,
                )
                .await?;
            if fits {
                let why = format!(
                    "manual request {request_id} by {}{}",
                    requester.identity,
                    request
                        .reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                );
                let changes = items
                    .into_iter()
                    .map(|path| PathChange {
                        distribution_id: request.distribution_id.clone(),
                        path,
                        bucket: String::new(),
                        key: String::new(),
                        version_id: None,
                        etag: None,
                        sequencer: None,
                        event_time: Some(crate::model::timestamp(now)),
                        event_id: Some(request_id.clone()),
                        change: ChangeKind::Manual,
                        reason: Some(why.clone()),
                    })
                    .collect();
                return Ok(Ok(changes));
            }
            Refusal::HourlyLimit {
                distribution_id: request.distribution_id.clone(),
                count: items.len(),
                limit: limits.max_paths_per_hour,
            }
        }
    };
    refuse(store, ask, request_items_for_audit(request), &refusal, now).await?;
    Ok(Err(refusal))
}

/// Records a refusal: who asked, why, what (as asked), and the refusal. Nothing is joined.
async fn refuse<S: ManualStore>(
    store: &S,
    ask: &Ask,
    items: Vec<String>,
    refusal: &Refusal,
    now: OffsetDateTime,
) -> Result<()> {
    tracing::warn!(request = %ask.request_id, distribution = %ask.request.distribution_id, by = %ask.requester.identity, %refusal, "manual request refused");
    store
        .record_request(&ask.record(items, now, Err(refusal.clone())))
        .await
}

/// What an accepted request became.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub items: Vec<String>,
    /// The batches joined: their flushes must be started (by name, as dedupe's StartFlushes).
    pub joined: EnqueueOutput,
}

/// Admits the request, joins its items to the distribution's open batch and records it with the
/// batches joined: the one sequence the CLI and the event path share.
pub async fn submit<S: ManualStore + JoinStore>(
    store: &S,
    clock: &dyn Clock,
    settings: Settings,
    metrics: &Metrics,
    ask: &Ask,
    limits: &ManualLimits,
) -> Result<std::result::Result<Submitted, Refusal>> {
    let now = clock.now();
    let changes = match admit(store, ask, limits, now).await? {
        Ok(changes) => changes,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let items: Vec<String> = changes.iter().map(|c| c.path.clone()).collect();
    let joined = enqueue(
        store,
        clock,
        settings,
        metrics,
        EnqueueInput { paths: changes },
    )
    .await?;
    let batches = joined
        .flushes
        .iter()
        .map(|f| f.batch.batch_id.clone())
        .collect();
    tracing::info!(request = %ask.request_id, distribution = %ask.request.distribution_id, by = %ask.requester.identity, paths = items.len(), "manual request joined");
    store
        .record_request(&ask.record(items.clone(), now, Ok(batches)))
        .await?;
    Ok(Ok(Submitted { items, joined }))
}

/// A request as collect-keys hands it to dedupe: the EventBridge event's `detail` (unparsed: a
/// malformed one is refused and recorded, not lost), `source`, `account` and `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManualEvent {
    pub request: serde_json::Value,
    pub source: String,
    pub account: String,
    pub event_id: String,
}

impl ManualEvent {
    /// The request an EventBridge event of detail-type [`EVENT_DETAIL_TYPE`] carries; `None`
    /// for any other event. EventBridge always sets `source`, `account` and `id`: an envelope
    /// without them is no event and is an `InvalidEvent`.
    pub fn from_envelope(event: &serde_json::Value) -> Result<Option<Self>> {
        if event["detail-type"] != EVENT_DETAIL_TYPE {
            return Ok(None);
        }
        let field = |name: &str| {
            event[name].as_str().map(str::to_owned).ok_or_else(|| {
                Error::InvalidEvent(format!("{EVENT_DETAIL_TYPE} event without {name}"))
            })
        };
        Ok(Some(ManualEvent {
            request: event["detail"].clone(),
            source: field("source")?,
            account: field("account")?,
            event_id: field("id")?,
        }))
    }
}

/// The event path: submits the request; a refusal is recorded, then returned as the named error
/// `ManualRequestRefused`, so the execution fails visibly (and a redrive, say once the hour's
/// budget has room, asks again under the same request id).
pub async fn submit_event<S: ManualStore + JoinStore>(
    store: &S,
    clock: &dyn Clock,
    settings: Settings,
    metrics: &Metrics,
    event: ManualEvent,
    limits: &ManualLimits,
) -> Result<EnqueueOutput> {
    let (request, malformed) = match serde_json::from_value::<ManualRequest>(event.request.clone())
    {
        Ok(request) => (request, None),
        Err(e) => (
            ManualRequest {
                // What can be read of a malformed detail, for the record.
                distribution_id: event.request["distributionId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                ..ManualRequest::default()
            },
            Some(Refusal::Malformed(e.to_string())),
        ),
    };
    let ask = Ask {
        request,
        requester: Requester::event(&event.source, &event.account),
        request_id: event.event_id.clone(),
    };
    let outcome = match malformed {
        None => submit(store, clock, settings, metrics, &ask, limits).await?,
        Some(refusal) => {
            refuse(store, &ask, Vec::new(), &refusal, clock.now()).await?;
            Err(refusal)
        }
    };
    match outcome {
        Ok(submitted) => Ok(submitted.joined),
        Err(refusal) => Err(Error::ManualRequestRefused(format!(
            "request {} (recorded in the audit): {refusal}",
            event.event_id
        ))),
    }
}

/// The source must be allowed and the account the expected one; then the request's own checks.
fn check(
    request: &ManualRequest,
    requester: &Requester,
    limits: &ManualLimits,
) -> std::result::Result<Vec<String>, Refusal> {
    if let Some((source, account)) = &requester.event {
        let allowed = limits.sources.iter().any(|s| s == source)
            && limits.account.as_deref().is_none_or(|a| a == account);
        if !allowed {
            return Err(Refusal::UnexpectedSource {
                event_source: source.clone(),
                account: account.clone(),
            });
        }
    }
    if !limits.distributions.contains(&request.distribution_id) {
        return Err(Refusal::UnknownDistribution(
            request.distribution_id.clone(),
        ));
    }
    let items = request.items()?;
    if items.len() > limits.max_paths_per_request {
        return Err(Refusal::TooManyPaths {
            count: items.len(),
            limit: limits.max_paths_per_request,
        });
    }
    Ok(items)
}

/// A refused request's items as asked (bounded: a refused request may be huge).
fn request_items_for_audit(request: &ManualRequest) -> Vec<String> {
    const KEPT: usize = 100;
    let prefixes = request.prefixes.iter().map(|p| format!("{p}*"));
    let tags = request
        .tags
        .iter()
        .map(|t| format!("#{}", t.trim_start_matches('#')));
    request
        .paths
        .iter()
        .cloned()
        .chain(prefixes)
        .chain(tags)
        .take(KEPT)
        .collect()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::memory::MemoryStore;

    fn limits() -> ManualLimits {
        ManualLimits {
            distributions: vec!["E1".into()],
            max_paths_per_request: 3,
            max_paths_per_hour: 4,
            sources: vec![EVENT_SOURCE.into()],
            account: Some("123456789012".into()),
        }
    }

    fn request(paths: &[&str]) -> ManualRequest {
        ManualRequest {
            distribution_id: "E1".into(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            reason: Some("deploy 42".into()),
            ..ManualRequest::default()
        }
    }

    fn cli() -> Requester {
        Requester::cli("arn:aws:iam::123456789012:user/ops")
    }

    const NOW: OffsetDateTime = datetime!(2026-11-25 10:17:03 UTC);

    fn ask(r: &ManualRequest, source: Option<(&str, &str)>) -> Ask {
        Ask {
            request: r.clone(),
            requester: source.map_or_else(cli, |(s, a)| Requester::event(s, a)),
            request_id: new_request_id(NOW),
        }
    }

    async fn run(
        store: &MemoryStore,
        r: &ManualRequest,
        source: Option<(&str, &str)>,
    ) -> std::result::Result<Vec<PathChange>, Refusal> {
        admit(store, &ask(r, source), &limits(), NOW).await.unwrap()
    }

    #[test]
    fn paths_prefixes_and_tags_become_checked_items() {
        let r = ManualRequest {
            prefixes: vec!["/docs/".into()],
            tags: vec!["Sale".into()],
            ..request(&["/a%20b.html", "/a%20b.html"])
        };
        assert_eq!(r.items().unwrap(), ["#sale", "/a%20b.html", "/docs/*"]);
        assert_eq!(
            request(&["/a b.html"]).items(),
            Err(Refusal::InvalidPath(
                "/a b.html".into(),
                "/a%20b.html".into()
            ))
        );
        let dir = ManualRequest {
            prefixes: vec!["/docs".into()],
            ..request(&[])
        };
        assert!(matches!(dir.items(), Err(Refusal::InvalidPrefix(_))));
        assert_eq!(request(&[]).items(), Err(Refusal::Nothing));
        assert_eq!(request(&["/*"]).items(), Err(Refusal::WholeDistribution));
        let root = ManualRequest {
            prefixes: vec!["/".into()],
            ..request(&[])
        };
        assert_eq!(root.items(), Err(Refusal::WholeDistribution));
        let all = ManualRequest {
            allow_all: true,
            ..root
        };
        assert_eq!(all.items().unwrap(), ["/*"]);
    }

    #[tokio::test]
    async fn an_admitted_request_says_who_asked_and_why_on_every_path() {
        let store = MemoryStore::new();
        let asked = ask(&request(&["/a", "/b"]), None);
        let changes = admit(&store, &asked, &limits(), NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(changes.len(), 2);
        let c = &changes[0];
        assert_eq!(c.change, ChangeKind::Manual);
        let why = c.reason.as_deref().unwrap();
        assert!(why.contains(&asked.request_id), "{why}");
        assert!(
            why.ends_with("by arn:aws:iam::123456789012:user/ops: deploy 42"),
            "{why}"
        );
        assert!(
            store.requests().is_empty(),
            "recorded once joined, by submit"
        );
    }

    #[tokio::test]
    async fn each_bound_refuses_and_records_the_refusal() {
        let store = MemoryStore::new();
        let over = run(&store, &request(&["/a", "/b", "/c", "/d"]), None).await;
        assert_eq!(over, Err(Refusal::TooManyPaths { count: 4, limit: 3 }));
        run(&store, &request(&["/a", "/b", "/c"]), None)
            .await
            .unwrap();
        let hourly = run(&store, &request(&["/d", "/e"]), None).await;
        assert!(
            matches!(
                hourly,
                Err(Refusal::HourlyLimit {
                    count: 2,
                    limit: 4,
                    ..
                })
            ),
            "{hourly:?}"
        );
        run(&store, &request(&["/d"]), None).await.unwrap();
        let stranger = run(
            &store,
            &request(&["/a"]),
            Some(("someone.else", "123456789012")),
        )
        .await;
        assert!(matches!(stranger, Err(Refusal::UnexpectedSource { .. })));
        let other_account = run(
            &store,
            &request(&["/a"]),
            Some((EVENT_SOURCE, "999999999999")),
        )
        .await;
        assert!(matches!(
            other_account,
            Err(Refusal::UnexpectedSource { .. })
        ));
        let other = ManualRequest {
            distribution_id: "E9".into(),
            ..request(&["/a"])
        };
        assert_eq!(
            run(&store, &other, None).await,
            Err(Refusal::UnknownDistribution("E9".into()))
        );
        let refused: Vec<_> = store
            .requests()
            .into_iter()
            .filter(|r| r.outcome.is_err())
            .collect();
        assert_eq!(refused.len(), 5);
        assert!(
            refused
                .iter()
                .all(|r| r.reason.as_deref() == Some("deploy 42"))
        );
        assert_eq!(store.manual_paths("E1", datetime!(2026-11-25 10:00 UTC)), 4);
    }

    #[tokio::test]
    async fn a_request_asked_again_is_charged_once() {
        // A redelivered event or a retried dedupe admits the same request (same id) again.
        let store = MemoryStore::new();
        let asked = ask(&request(&["/a", "/b", "/c"]), None);
        for _ in 0..2 {
            let admitted = admit(&store, &asked, &limits(), NOW).await.unwrap();
            assert_eq!(admitted.map(|c| c.len()), Ok(3));
        }
        assert_eq!(store.manual_paths("E1", datetime!(2026-11-25 10:00 UTC)), 3);
        let next = run(&store, &request(&["/d", "/e"]), None).await;
        assert!(matches!(next, Err(Refusal::HourlyLimit { .. })), "{next:?}");
    }

    #[tokio::test]
    async fn the_budget_is_per_clock_hour() {
        let store = MemoryStore::new();
        run(&store, &request(&["/a", "/b", "/c"]), None)
            .await
            .unwrap();
        let later = admit(
            &store,
            &ask(&request(&["/d", "/e"]), None),
            &limits(),
            NOW + time::Duration::hours(1),
        )
        .await
        .unwrap();
        assert!(later.is_ok());
    }

    fn event(detail: serde_json::Value, source: &str) -> ManualEvent {
        ManualEvent {
            request: detail,
            source: source.into(),
            account: "123456789012".into(),
            event_id: "6f1a3c2e-0b7d-4d55-9a61-2f0c8e4b7a10".into(),
        }
    }

    async fn submit_at(store: &MemoryStore, e: ManualEvent) -> Result<crate::join::EnqueueOutput> {
        let clock = crate::memory::ManualClock::at(NOW);
        let settings = Settings {
            debounce: std::time::Duration::from_secs(30),
            grace: std::time::Duration::from_secs(60),
        };
        submit_event(store, &clock, settings, &Metrics::silent(), e, &limits()).await
    }

    #[tokio::test]
    async fn an_event_request_joins_a_batch_and_is_recorded_under_its_event_id() {
        let store = MemoryStore::new();
        let detail = serde_json::json!({"distributionId": "E1", "paths": ["/a"], "tags": ["Sale"], "reason": "deploy 42"});
        let out = submit_at(&store, event(detail, EVENT_SOURCE))
            .await
            .unwrap();
        assert_eq!(out.flushes.len(), 1);
        let batch = &out.flushes[0].batch.batch_id;
        assert_eq!(store.paths_of(batch), ["#sale", "/a"]);
        let [record] = &store.requests()[..] else {
            panic!("one record: {:?}", store.requests())
        };
        assert_eq!(record.request_id, "6f1a3c2e-0b7d-4d55-9a61-2f0c8e4b7a10");
        assert_eq!(
            record.requested_by,
            Requester::event(EVENT_SOURCE, "123456789012")
        );
        assert_eq!(
            record.requested_by.identity,
            "123456789012/cf-invalidator.manual"
        );
        assert_eq!(record.outcome, Ok(vec![batch.clone()]));
    }

    #[tokio::test]
    async fn a_refused_or_malformed_event_is_recorded_and_fails_by_name() {
        let store = MemoryStore::new();
        let stranger = event(
            serde_json::json!({"distributionId": "E1", "paths": ["/a"]}),
            "someone.else",
        );
        let err = submit_at(&store, stranger).await.unwrap_err();
        assert_eq!(err.name(), "ManualRequestRefused");
        assert!(err.to_string().contains("someone.else"), "{err}");
        let malformed = event(
            serde_json::json!({"distributionId": "E1", "path": "/a"}),
            EVENT_SOURCE,
        );
        let err = submit_at(&store, malformed).await.unwrap_err();
        assert_eq!(err.name(), "ManualRequestRefused");
        let records = store.requests();
        assert_eq!(records.len(), 2);
        assert!(matches!(
            records[0].outcome,
            Err(Refusal::UnexpectedSource { .. })
        ));
        assert!(matches!(records[1].outcome, Err(Refusal::Malformed(_))));
        assert_eq!(records[1].distribution_id, "E1");
        assert_eq!(
            store.manual_paths("E1", datetime!(2026-11-25 10:00 UTC)),
            0,
            "nothing reserved"
        );
        assert!(store.pointer("E1").is_none(), "nothing joined");
    }
}
