//! Manual invalidations through the pipeline (docs/design.md §9): a request for paths,
//! prefixes or cache tags on one distribution, from `cfinv invalidate` (an EventBridge event
//! later: the source check is here for it),
//! checked against bounds, recorded in the audit table (accepted or refused, with who asked and
//! why), and joined to the distribution's open batch by the join protocol (`join.rs`), so it is
//! batched, kept within the in-progress limits and billed like any change.

use std::future::Future;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Result;
use crate::collect::PathChange;
use crate::event::ChangeKind;
use crate::path::{encode_path, is_valid_path};
use crate::tags::{TagError, tag_item};

/// The event `source` the event path will accept by default (docs/design.md §9).
pub const EVENT_SOURCE: &str = "cf-invalidator.manual";

/// What is asked: the `detail` of the event, and what `cfinv invalidate` sends.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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

/// The bounds: items per request, per distribution-hour, and who may ask by event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualLimits {
    pub max_paths_per_request: usize,
    /// Per distribution, per clock hour (UTC).
    pub max_paths_per_hour: usize,
    /// Event sources allowed to ask, and the account they must come from.
    pub sources: Vec<String>,
    pub account: Option<String>,
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
    /// Adds `count` to the distribution's manual paths of the hour starting `hour`, unless that
    /// would pass `limit`: `false` then, and nothing added.
    fn reserve_manual_paths(
        &self,
        distribution_id: &str,
        hour: OffsetDateTime,
        count: usize,
        limit: usize,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn record_request(&self, record: &RequestRecord) -> impl Future<Output = Result<()>> + Send;
}

/// A request that passed every bound: the path changes to join, each saying who asked and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub request_id: String,
    pub changes: Vec<PathChange>,
}

/// The request's id: unique per request, readable in the audit.
pub fn new_request_id(now: OffsetDateTime) -> String {
    // A batch id's form (letters, digits, `-`), for a distribution named "M".
    crate::model::new_batch_id("M", now)
}

/// Checks a request against the bounds, in order: source, distribution, the request itself,
/// its size, the hour's budget (reserved only when everything else passed). A refusal is
/// recorded before it is returned; an admitted request is recorded by [`record_admitted`] once
/// it joined.
pub async fn admit<S: ManualStore>(
    store: &S,
    request: &ManualRequest,
    requester: &Requester,
    source: Option<(&str, &str)>,
    distributions: &[String],
    limits: &ManualLimits,
    now: OffsetDateTime,
) -> Result<std::result::Result<Admitted, Refusal>> {
    let request_id = new_request_id(now);
    let checked = check(request, source, distributions, limits);
    let checked = match checked {
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
                    items.len(),
                    limits.max_paths_per_hour,
                )
                .await?;
            if fits {
                Ok(items)
            } else {
                Err(Refusal::HourlyLimit {
                    distribution_id: request.distribution_id.clone(),
                    count: items.len(),
                    limit: limits.max_paths_per_hour,
                })
            }
        }
        Err(refusal) => Err(refusal),
    };
    match checked {
        Ok(items) => {
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
            Ok(Ok(Admitted {
                request_id,
                changes,
            }))
        }
        Err(refusal) => {
            tracing::warn!(request = %request_id, distribution = %request.distribution_id, by = %requester.identity, %refusal, "manual request refused");
            store
                .record_request(&RequestRecord {
                    request_id,
                    distribution_id: request.distribution_id.clone(),
                    requested_by: requester.clone(),
                    reason: request.reason.clone(),
                    items: request_items_for_audit(request),
                    at: now,
                    outcome: Err(refusal.clone()),
                })
                .await?;
            Ok(Err(refusal))
        }
    }
}

/// Records an admitted request with the batches it joined.
pub async fn record_admitted<S: ManualStore>(
    store: &S,
    admitted: &Admitted,
    request: &ManualRequest,
    requester: &Requester,
    batches: Vec<String>,
    now: OffsetDateTime,
) -> Result<()> {
    tracing::info!(request = %admitted.request_id, distribution = %request.distribution_id, by = %requester.identity, paths = admitted.changes.len(), "manual request joined");
    store
        .record_request(&RequestRecord {
            request_id: admitted.request_id.clone(),
            distribution_id: request.distribution_id.clone(),
            requested_by: requester.clone(),
            reason: request.reason.clone(),
            items: admitted.changes.iter().map(|c| c.path.clone()).collect(),
            at: now,
            outcome: Ok(batches),
        })
        .await
}

/// The source must be allowed and the account the expected one; then the request's own checks.
fn check(
    request: &ManualRequest,
    source: Option<(&str, &str)>,
    distributions: &[String],
    limits: &ManualLimits,
) -> std::result::Result<Vec<String>, Refusal> {
    if let Some((source, account)) = source {
        let allowed = limits.sources.iter().any(|s| s == source)
            && limits.account.as_deref().is_none_or(|a| a == account);
        if !allowed {
            return Err(Refusal::UnexpectedSource {
                event_source: source.to_owned(),
                account: account.to_owned(),
            });
        }
    }
    if !distributions.contains(&request.distribution_id) {
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
        Requester {
            identity: "arn:aws:iam::123456789012:user/ops".into(),
            channel: Channel::Cli,
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-11-25 10:17:03 UTC);

    async fn run(
        store: &MemoryStore,
        r: &ManualRequest,
        source: Option<(&str, &str)>,
    ) -> std::result::Result<Admitted, Refusal> {
        admit(store, r, &cli(), source, &["E1".into()], &limits(), NOW)
            .await
            .unwrap()
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
        let admitted = run(&store, &request(&["/a", "/b"]), None).await.unwrap();
        assert_eq!(admitted.changes.len(), 2);
        let c = &admitted.changes[0];
        assert_eq!(c.change, ChangeKind::Manual);
        let why = c.reason.as_deref().unwrap();
        assert!(why.contains(&admitted.request_id), "{why}");
        assert!(
            why.ends_with("by arn:aws:iam::123456789012:user/ops: deploy 42"),
            "{why}"
        );
        assert!(
            store.requests().is_empty(),
            "recorded once joined, by record_admitted"
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
    async fn the_budget_is_per_clock_hour() {
        let store = MemoryStore::new();
        run(&store, &request(&["/a", "/b", "/c"]), None)
            .await
            .unwrap();
        let later = admit(
            &store,
            &request(&["/d", "/e"]),
            &cli(),
            None,
            &["E1".into()],
            &limits(),
            NOW + time::Duration::hours(1),
        )
        .await
        .unwrap();
        assert!(later.is_ok());
    }
}
