//! What CloudFront did for a lane: its invalidations, the CreateInvalidation calls the local
//! CloudFront logged, and which writes they cover.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;

use crate::{Lane, Stack};

/// Which writes of a lane are not yet covered by a Completed invalidation made after them.
#[derive(Debug, Clone)]
pub struct Coverage {
    pub writes: usize,
    pub missing: Vec<String>,
    /// CreateInvalidation calls the distribution received (any outcome).
    pub calls: usize,
    pub invalidations: usize,
    pub completed: usize,
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sample: Vec<&str> = self.missing.iter().take(5).map(String::as_str).collect();
        write!(
            f,
            "{} of {} writes covered, missing e.g. {sample:?}; {} CreateInvalidation calls, {} of {} invalidations Completed",
            self.writes - self.missing.len(),
            self.writes,
            self.calls,
            self.completed,
            self.invalidations
        )
    }
}

/// An invalidation as CloudFront reports it (through the real API).
#[derive(Debug, Clone)]
pub struct Invalidation {
    pub id: String,
    pub status: String,
    pub created_epoch: f64,
    pub paths: Vec<String>,
    pub caller_reference: String,
}

/// A CreateInvalidation request as the local CloudFront saw it (accepted or not).
#[derive(Debug, Clone, Deserialize)]
pub struct Call {
    pub time: f64,
    pub caller_reference: String,
    pub outcome: String,
    #[serde(default)]
    pub invalidation_id: Option<String>,
    #[serde(default)]
    pub billed_paths: usize,
    #[serde(default)]
    pub paths: Vec<String>,
}

impl Stack {
    /// Every invalidation of the lane's distribution: ListInvalidations (for the statuses), and
    /// GetInvalidation for the ones not read before.
    pub async fn invalidations(&self, lane: &Lane) -> Vec<Invalidation> {
        let mut out = Vec::new();
        for summary in self.invalidation_summaries(lane).await {
            let known = self
                .seen_invalidations
                .lock()
                .unwrap()
                .get(summary.id())
                .cloned();
            if let Some(known) = known {
                out.push(Invalidation {
                    status: summary.status().to_owned(),
                    ..known
                });
                continue;
            }
            let got = retrying("GetInvalidation", || {
                self.cloudfront
                    .get_invalidation()
                    .distribution_id(&lane.distribution_id)
                    .id(summary.id())
                    .send()
            })
            .await;
            let inv = got.invalidation().expect("invalidation");
            let batch = inv.invalidation_batch().expect("batch");
            let read = Invalidation {
                id: inv.id().to_owned(),
                status: inv.status().to_owned(),
                created_epoch: inv.create_time().as_secs_f64(),
                paths: batch
                    .paths()
                    .and_then(|p| p.items.clone())
                    .unwrap_or_default(),
                caller_reference: batch.caller_reference().to_owned(),
            };
            self.seen_invalidations
                .lock()
                .unwrap()
                .insert(read.id.clone(), read.clone());
            out.push(read);
        }
        out
    }

    /// ListInvalidations of the lane's distribution: ids and statuses.
    async fn invalidation_summaries(
        &self,
        lane: &Lane,
    ) -> Vec<aws_sdk_cloudfront::types::InvalidationSummary> {
        let list = retrying("ListInvalidations", || {
            self.cloudfront
                .list_invalidations()
                .distribution_id(&lane.distribution_id)
                .max_items(1000)
                .send()
        })
        .await;
        list.invalidation_list()
            .map(|l| l.items().to_vec())
            .unwrap_or_default()
    }

    /// Every CreateInvalidation request the lane's distribution received.
    pub fn calls(&self, lane: &Lane) -> Vec<Call> {
        let got = self.control(
            "cloudfront/calls",
            json!({"distribution_id": lane.distribution_id}),
        );
        serde_json::from_value(got["calls"].clone()).expect("calls")
    }

    /// How many of `writes` (path, written-at) are covered by a Completed invalidation created
    /// after the write.
    pub async fn coverage(&self, lane: &Lane, writes: &[(String, f64)]) -> usize {
        let report = self.coverage_report(lane, writes).await;
        writes.len() - report.missing.len()
    }

    /// Which of `writes` are not yet covered by a Completed invalidation created after them.
    /// Two requests however many invalidations: the statuses from one ListInvalidations, the
    /// paths and creation times from the emulator's call log (CloudFront's CreateTime has
    /// whole seconds only, too coarse to order against a write).
    pub async fn coverage_report(&self, lane: &Lane, writes: &[(String, f64)]) -> Coverage {
        let summaries = self.invalidation_summaries(lane).await;
        let completed: Vec<&str> = summaries
            .iter()
            .filter(|i| i.status() == "Completed")
            .map(|i| i.id())
            .collect();
        let calls = self.calls(lane);
        let done: Vec<&Call> = calls
            .iter()
            .filter(|c| {
                c.outcome == "created"
                    && c.invalidation_id
                        .as_deref()
                        .is_some_and(|id| completed.contains(&id))
            })
            .collect();
        let missing = writes
            .iter()
            .filter(|(path, at)| {
                !done
                    .iter()
                    .any(|c| c.time > *at && c.paths.iter().any(|p| covers(p, path)))
            })
            .map(|(path, _)| path.clone())
            .collect();
        Coverage {
            writes: writes.len(),
            missing,
            calls: calls.len(),
            invalidations: summaries.len(),
            completed: completed.len(),
        }
    }
}

/// Whether CloudFront path `p` (possibly a trailing-`*` wildcard) invalidates `path`.
pub fn covers(p: &str, path: &str) -> bool {
    match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => p == path,
    }
}

/// Calls `call` until it succeeds, for up to a minute: the fault tests make CloudFront fail
/// for the whole lane, the tests' own reads included.
async fn retrying<T, E, F, Fut>(what: &str, mut call: F) -> T
where
    E: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match call().await {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what}: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}
