//! The fault matrix's workload and its scorecard: what a lane's changes became, measured against
//! the invariants of docs/design.md §2, and one row of the report table per fault.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::{Change, Freshness, Lane, Stack, describe, percentile};

/// How many changes each fault case makes: `E2E_FAULT_WRITES`, at least 300 (the floor).
pub fn writes_per_fault() -> usize {
    std::env::var("E2E_FAULT_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// `n` changes under the lane's prefix: two thirds new keys over six directories (every
/// seventh with a space, every seventh with Hangul: characters that must be percent-encoded;
/// every seventh with `~`, which CloudFront cannot invalidate, so its key is covered by the
/// wildcard of what precedes the `~`, `draft-<i>*`, which covers no other kind of key), then
/// overwrites of a fifth of them and deletes of others, so a change can land in a batch after
/// the one holding its key's first write.
pub fn mixed_workload(lane: &Lane, n: usize) -> Vec<Change> {
    let creates = n * 2 / 3;
    let overwrites = n / 5;
    let deletes = n - creates - overwrites;
    let keys: Vec<String> = (0..creates)
        .map(|i| {
            let name = match i % 7 {
                0 => format!("page {i}.html"),
                3 => format!("서울-{i}.html"),
                5 => format!("draft-{i}~(old).txt"),
                _ => format!("f{i}.css"),
            };
            format!("{}w/{}/{name}", lane.prefix, i % 6)
        })
        .collect();
    // Overwrites take keys 0, 3, 6, ..., deletes 1, 4, 7, ...: never the same key twice.
    let pick = |i: usize, offset: usize| keys[(i * 3 + offset) % creates].clone();
    let mut changes: Vec<Change> = keys.iter().cloned().map(Change::Put).collect();
    changes.extend((0..overwrites).map(|i| Change::Put(pick(i, 0))));
    changes.extend((0..deletes).map(|i| Change::Delete(pick(i, 1))));
    changes
}

/// What a lane's changes became, read back from CloudFront, the table and Step Functions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub fault: String,
    /// S3 changes made (and expected paths).
    pub writes: usize,
    /// Changes covered by a Completed invalidation created after them.
    pub covered: usize,
    pub batches: usize,
    pub completed: usize,
    /// Batches FAILED in the table.
    pub failed: usize,
    /// FAILED batches with their error recorded, in the failures index, and a failed execution.
    pub failed_visible: usize,
    /// Object-changed executions that failed (recorded as events in the failures index).
    pub failed_events: usize,
    /// CreateInvalidation calls CloudFront accepted as new.
    pub invalidations: usize,
    /// Chunks the batches' committed plans hold: what `invalidations` must equal.
    pub planned_chunks: usize,
    /// Invalidations beyond a batch's plan, or matching no batch (invariant 2: must be 0).
    pub duplicates: usize,
    /// CreateInvalidation calls answered with an error (the fault at work).
    pub rejected_calls: usize,
    /// CreateInvalidation calls answered with the existing invalidation (a replayed request).
    pub replayed_calls: usize,
    /// Watched keys read through the edge once the lane settled, and the stale ones among them
    /// (invariant 1 as a viewer sees it: must be 0).
    pub fresh_reads: usize,
    pub stale_reads: usize,
    /// Seconds from a watched change to its first fresh read through the edge: median, p95.
    pub to_fresh_p50: Option<f64>,
    pub to_fresh_p95: Option<f64>,
    /// From the first change to the last check.
    pub seconds: f64,
    pub note: String,
}

impl Outcome {
    /// Adds to the row's note (a stall noted by `settle` stays).
    pub fn add_note(&mut self, note: String) {
        if note.is_empty() {
            return;
        }
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(&note);
    }

    /// What the lane's viewers saw (call it once the lane settled).
    pub fn add_freshness(&mut self, seen: &Freshness) {
        self.fresh_reads = seen.reads;
        self.stale_reads = seen.stale.len();
        self.to_fresh_p50 = percentile(&seen.to_fresh, 0.5);
        self.to_fresh_p95 = percentile(&seen.to_fresh, 0.95);
        if !seen.stale.is_empty() {
            self.add_note(format!("stale: {}", seen.stale.join(", ")));
        }
    }

    pub fn coverage_percent(&self) -> f64 {
        if self.writes == 0 {
            return 100.0;
        }
        100.0 * self.covered as f64 / self.writes as f64
    }

    /// Writes this row to `target/fault-matrix/<lane>.json` (`CFINV_FAULT_REPORT` overrides the
    /// folder), for `fault-table` to print; then the test asserts.
    pub fn record(&self, lane: &Lane) {
        let dir = std::env::var_os("CFINV_FAULT_REPORT")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fault-matrix")
            });
        std::fs::create_dir_all(&dir).expect("create the fault report folder");
        let row = serde_json::to_string_pretty(self).expect("outcome is JSON");
        std::fs::write(dir.join(format!("lane-{:02}.json", lane.index)), row)
            .expect("write the fault report row");
    }

    /// Invariants 1 and 2 with nothing left failed: every change invalidated after it was made,
    /// no invalidation paid twice, every batch COMPLETED.
    pub fn assert_recovered(&self) {
        self.assert_recovered_with_failed_events(0);
    }

    /// As [`Outcome::assert_recovered`], with exactly `failed_events` events recorded as failed
    /// (poison events the lane sent on purpose).
    pub fn assert_recovered_with_failed_events(&self, failed_events: usize) {
        assert_eq!(self.covered, self.writes, "coverage: {self:#?}");
        assert_eq!(self.duplicates, 0, "duplicate invalidations: {self:#?}");
        assert_eq!(
            self.stale_reads, 0,
            "stale reads through the edge: {self:#?}"
        );
        assert_eq!(self.invalidations, self.planned_chunks, "{self:#?}");
        assert_eq!(
            self.completed, self.batches,
            "unfinished batches: {self:#?}"
        );
        assert_eq!(
            self.failed_events, failed_events,
            "failed object-changed events: {self:#?}"
        );
    }
}

impl Stack {
    /// Waits until every write is covered and every batch of the lane has finished (COMPLETED
    /// or FAILED), or until the lane stops making progress, then scores the lane. Never panics
    /// on a stall: the numbers are the report, the caller asserts (a stall is in the note).
    pub async fn settle(
        &self,
        lane: &Lane,
        fault: &str,
        writes: &[(String, f64)],
        started: Instant,
    ) -> Outcome {
        let settled = self
            .try_wait_on(|| async {
                let batches = self.batches(lane).await;
                let finished = batches.iter().all(|b| {
                    matches!(
                        b.get("status").map(String::as_str),
                        Some("COMPLETED" | "FAILED")
                    )
                });
                let report = self.coverage_report(lane, writes).await;
                // A task retry of an event already covered can still open a batch: the lane is
                // settled when none of its events is in flight either.
                let running = if finished && report.missing.is_empty() {
                    match self.running_for(lane) {
                        0 => return Ok(()),
                        n => format!("; {n} of its events still in flight"),
                    }
                } else {
                    String::new()
                };
                Err(format!("{report}; {}{running}", describe(&batches)))
            })
            .await;
        let mut outcome = self.score(lane, fault, writes, started).await;
        if let Err(stalled) = settled {
            eprintln!(
                "{}: {fault} did not settle: {stalled}",
                lane.distribution_id
            );
            outcome.add_note("stalled".into());
        }
        outcome
    }

    /// The lane's numbers now.
    pub async fn score(
        &self,
        lane: &Lane,
        fault: &str,
        writes: &[(String, f64)],
        started: Instant,
    ) -> Outcome {
        let covered = self.coverage(lane, writes).await;
        let batches: Vec<_> = self
            .batches(lane)
            .await
            .into_iter()
            .filter(|b| b.get("type").is_none_or(|t| t == "batch"))
            .collect();
        let calls = self.calls(lane);
        let mut created: BTreeMap<String, usize> = BTreeMap::new();
        for call in calls.iter().filter(|c| c.outcome == "created") {
            *created.entry(call.caller_reference.clone()).or_default() += 1;
        }
        let mut outcome = Outcome {
            fault: fault.to_owned(),
            writes: writes.len(),
            covered,
            batches: batches.len(),
            invalidations: created.values().sum(),
            rejected_calls: calls
                .iter()
                .filter(|c| c.outcome != "created" && c.outcome != "existing")
                .count(),
            replayed_calls: calls.iter().filter(|c| c.outcome == "existing").count(),
            failed_events: self.failed_events(lane).await,
            ..Outcome::default()
        };
        let mut attributed = 0;
        for batch in &batches {
            let status = batch.get("status").map(String::as_str);
            let planned: usize = batch
                .get("plannedChunks")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let prefix = format!("{}#", batch["batchId"]);
            let made: usize = created
                .iter()
                .filter(|(reference, _)| reference.starts_with(&prefix))
                .map(|(_, n)| n)
                .sum();
            attributed += made;
            outcome.planned_chunks += planned;
            outcome.duplicates += made.saturating_sub(planned);
            match status {
                Some("COMPLETED") => outcome.completed += 1,
                Some("FAILED") => {
                    outcome.failed += 1;
                    let recorded = batch.get("lastError").is_some_and(|e| !e.is_empty())
                        && batch.get("statusPk").map(String::as_str) == Some("FAILED");
                    let execution = self.batch_execution_status(&batch["batchId"]).await;
                    if recorded
                        && matches!(
                            execution.as_deref(),
                            Some("FAILED" | "TIMED_OUT" | "ABORTED")
                        )
                    {
                        outcome.failed_visible += 1;
                    }
                }
                _ => {}
            }
        }
        // An invalidation no batch planned is a duplicate too.
        outcome.duplicates += outcome.invalidations - attributed;
        outcome.seconds = started.elapsed().as_secs_f64();
        outcome
    }

    /// Failed object-changed executions recorded for the lane's keys (events in byStatus FAILED).
    async fn failed_events(&self, lane: &Lane) -> usize {
        let marker = format!("\"{}", lane.prefix);
        let text = |item: &std::collections::HashMap<String, AttributeValue>, field: &str| {
            item.get(field)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        self.failed_items()
            .await
            .iter()
            .filter(|item| text(item, "type") == "event" && text(item, "input").contains(&marker))
            .count()
    }
}

/// The report table (markdown) from the rows `Outcome::record` wrote, in lane order.
pub fn table(rows: &[Outcome]) -> String {
    let mut out = String::from(
        "| fault | writes | coverage | batches | invalidations | duplicates | rejected calls | replayed calls | failures visible | stale reads | write to fresh read (p50 / p95) | time |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let failures = if r.failed == 0 && r.failed_events == 0 {
            "none failed".to_owned()
        } else {
            format!(
                "{}/{} failed batches{}",
                r.failed_visible,
                r.failed,
                if r.failed_events > 0 {
                    format!(", {} failed events", r.failed_events)
                } else {
                    String::new()
                }
            )
        };
        let note = if r.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.note)
        };
        let seconds = |s: Option<f64>| s.map_or("-".to_owned(), |s| format!("{s:.0} s"));
        let to_fresh = format!("{} / {}", seconds(r.to_fresh_p50), seconds(r.to_fresh_p95));
        out.push_str(&format!(
            "| {}{note} | {} | {:.1}% | {} | {} | {} | {} | {} | {failures} | {} of {} | {to_fresh} | {:.0} s |\n",
            r.fault,
            r.writes,
            r.coverage_percent(),
            r.batches,
            r.invalidations,
            r.duplicates,
            r.rejected_calls,
            r.replayed_calls,
            r.stale_reads,
            r.fresh_reads,
            r.seconds,
        ));
    }
    out
}
