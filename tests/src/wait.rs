//! Waits whose deadline follows the stack's progress rather than a guess at this machine's
//! speed, and the panics that say where a stalled wait's changes went.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Invalidation, Lane, Stack, describe};

/// No single wait runs longer than this, however much progress it sees (CI's whole run is
/// bounded at 90 minutes).
const WAIT_CAP: Duration = Duration::from_secs(40 * 60);

/// Polls `check` until it yields `Ok`. `Err` carries what it saw; the wait gives up (with an
/// `Err` saying how long it ran, how long nothing moved and what it saw last) only when that has
/// not changed for `quiet` (see [`StackInfo::quiet_window`](crate::StackInfo::quiet_window)),
/// so its deadline follows the work in flight instead of a guess at this machine's speed.
pub async fn poll_progress<T, F, Fut>(quiet: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let mut last_change = started;
    let mut seen = String::new();
    let mut pause = Duration::from_millis(250);
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(now_seen) if now_seen != seen => {
                seen = now_seen;
                last_change = Instant::now();
            }
            Err(_) => {}
        }
        let stalled = last_change.elapsed();
        if stalled >= quiet || started.elapsed() >= WAIT_CAP {
            return Err(format!(
                "after {:.0?}, nothing had changed for {stalled:.0?} (allowed: {quiet:.0?}); last seen: {seen}",
                started.elapsed()
            ));
        }
        tokio::time::sleep(pause).await;
        // Up to 10 s apart: a lane's listing is a query on an index, which moto answers by
        // reading the whole table, and a dozen lanes polling it every few seconds held the one
        // emulator process back noticeably.
        pause = (pause * 3 / 2).min(Duration::from_secs(10));
    }
}

impl Stack {
    /// Waits until `check` yields a value, for as long as the stack makes progress (see
    /// [`Stack::wait_on`]).
    pub async fn wait_lane<T, F, Fut>(&self, lane: &Lane, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        self.wait_on(lane, what, || {
            let checked = check();
            async move {
                checked
                    .await
                    .ok_or_else(|| format!("{} CreateInvalidation calls", self.calls(lane).len()))
            }
        })
        .await
    }

    /// Waits until `check` yields `Ok`; its `Err` says what it saw. The deadline follows the
    /// work: the wait fails only when neither what `check` saw nor the stack's activity (Lambda
    /// invocations, all lanes) has changed for a quiet window, so a slow machine that keeps
    /// moving is waited for. The panic shows what was seen last and the lane's batches.
    pub async fn wait_on<T, F, Fut>(&self, lane: &Lane, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        match self.try_wait_on(check).await {
            Ok(v) => v,
            Err(stalled) => panic!(
                "gave up waiting for {what} on {}: {stalled}; {}",
                lane.distribution_id,
                self.describe_batches(lane).await
            ),
        }
    }

    /// [`Stack::wait_on`] without the panic: `Err` says for how long nothing moved and what was
    /// seen last.
    pub async fn try_wait_on<T, F, Fut>(&self, mut check: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        poll_progress(self.info.quiet_window(), || {
            let checked = check();
            async move {
                checked
                    .await
                    .map_err(|seen| format!("{seen}; stack activity {}", self.activity()))
            }
        })
        .await
    }

    /// Lambda invocations the stack has run so far, all lanes: it grows while anything moves
    /// through the pipeline (events joining batches included, which a lane's listing does not
    /// show until a batch is planned). The periodic ones are left out: the sweep's schedule and
    /// the polls of a batch another test keeps in progress for an hour would count as progress
    /// forever, and a stalled lane would wait for the cap instead of its quiet window.
    pub fn activity(&self) -> u64 {
        let stats = self.control("lambda/stats", json!({}));
        stats["functions"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|f| {
                        !matches!(
                            f["logical_id"].as_str(),
                            Some("SweepFunction" | "PollStatusFunction")
                        )
                    })
                    .filter_map(|f| f["invocations"].as_u64())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Waits until the lane's distribution has answered a CreateInvalidation with `outcome`
    /// (`created`, `existing` or an error code), for as long as the stack makes progress.
    pub async fn wait_for_call(&self, lane: &Lane, outcome: &str) {
        let what = format!("a CreateInvalidation {outcome}");
        self.wait_on(lane, &what, || async {
            let calls = self.calls(lane);
            if calls.iter().any(|c| c.outcome == outcome) {
                return Ok(());
            }
            Err(format!("{} CreateInvalidation calls", calls.len()))
        })
        .await;
    }

    /// Waits until each (path, written-at) is covered by a Completed invalidation created
    /// after the write; returns the lane's invalidations then. Fails only when the stack stops
    /// making progress, naming the paths still missing, where the first ones went and the
    /// lane's batches.
    pub async fn wait_covered(&self, lane: &Lane, writes: &[(String, f64)]) -> Vec<Invalidation> {
        let waited = self
            .try_wait_on(|| async {
                let report = self.coverage_report(lane, writes).await;
                if report.missing.is_empty() {
                    return Ok(self.invalidations(lane).await);
                }
                Err(report.to_string())
            })
            .await;
        match waited {
            Ok(invalidations) => invalidations,
            Err(stalled) => {
                let what = format!("{} writes to be invalidated", writes.len());
                let missing = self.coverage_report(lane, writes).await.missing;
                self.give_up(lane, &what, &stalled, &missing).await
            }
        }
    }

    /// The object-changed execution the stack's S3 rule started for the event with `event_id`
    /// (waits for the delivery, for as long as the stack makes progress).
    pub async fn delivered_execution(&self, lane: &Lane, event_id: &Value) -> String {
        self.wait_lane(
            lane,
            "the S3 event's delivery to Step Functions",
            || async {
                let deliveries = self.control("events/deliveries", json!({}));
                deliveries["deliveries"].as_array()?.iter().find_map(|d| {
                    (d["event_id"] == *event_id && d["ok"] == true)
                        .then(|| d["execution_arn"].as_str().map(str::to_owned))
                        .flatten()
                })
            },
        )
        .await
    }

    /// Waits until every key of `keys` has joined one of the lane's OPEN batches, for as long
    /// as more keys keep joining; returns how many joined.
    /// The panic names the hop where each of the first missing keys stopped (see
    /// [`Stack::trace`]).
    pub async fn wait_joined(&self, lane: &Lane, keys: &[String]) -> usize {
        let missing = |joined: &BTreeSet<String>| -> Vec<String> {
            keys.iter()
                .filter(|k| !joined.contains(*k))
                .cloned()
                .collect()
        };
        let waited = self
            .try_wait_on(|| async {
                let joined = self.joined_keys(lane).await;
                let missing = missing(&joined);
                if missing.is_empty() {
                    return Ok(joined.len());
                }
                Err(format!(
                    "{} of {} keys joined, missing e.g. {:?}",
                    keys.len() - missing.len(),
                    keys.len(),
                    &missing[..missing.len().min(5)]
                ))
            })
            .await;
        match waited {
            Ok(n) => n,
            Err(stalled) => {
                let what = format!("{} keys to join a batch", keys.len());
                let missing = missing(&self.joined_keys(lane).await);
                self.give_up(lane, &what, &stalled, &missing).await
            }
        }
    }

    /// Panics for a wait on `lane` that stalled, with the lane's batches and where the first
    /// few `missing` keys (or paths) went (see [`Stack::trace`]).
    async fn give_up(&self, lane: &Lane, what: &str, stalled: &str, missing: &[String]) -> ! {
        let traces: Vec<Value> = missing
            .iter()
            .take(3)
            .map(|k| json!({ "key": k, "trace": self.trace(k.trim_start_matches('/')) }))
            .collect();
        panic!(
            "gave up waiting for {what} on {}: {stalled}; {}; where the first missing went: {}",
            lane.distribution_id,
            self.describe_batches(lane).await,
            Value::from(traces)
        )
    }

    /// Waits until every batch of the lane is COMPLETED; false (and why on stderr) if the lane
    /// stopped making progress first.
    pub async fn batches_completed(&self, lane: &Lane) -> bool {
        let waited = self
            .try_wait_on(|| async {
                let batches = self.batches(lane).await;
                if batches
                    .iter()
                    .all(|b| b.get("status").map(String::as_str) == Some("COMPLETED"))
                {
                    return Ok(());
                }
                Err(describe(&batches))
            })
            .await;
        waited
            .map_err(|why| eprintln!("{}: not every batch COMPLETED: {why}", lane.distribution_id))
            .is_ok()
    }
}
