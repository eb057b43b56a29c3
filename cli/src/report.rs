//! The answers to the operators' questions: built from records, serialized for `--json`, and
//! rendered as aligned tables otherwise. Everything here is pure.

use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use cfinv_core::model::{BatchStatus, parse_timestamp};
use cfinv_core::schema::ChunkStatus;

use crate::records::{BatchRecord, ChunkRecord, FailedEvent, PathRecord};
use crate::span::{At, YearMonth, between, human};
use crate::table::{Table, clip};

/// An answer prints as text for people and as JSON for scripts.
pub trait Answer: Serialize {
    fn text(&self) -> String;
}

/// Errors are clipped in tables; `--json` keeps them whole.
const ERROR_WIDTH: usize = 80;
/// CloudFront: the first 1,000 paths a month are free (per account), then $0.005 a path.
const FREE_PATHS: u64 = 1000;
const USD_PER_PATH: f64 = 0.005;

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// An error with a Lambda error's JSON cause (`Name: {"errorType":..,"errorMessage":..}`, as
/// Step Functions reports it) shortened to `Name: message`.
fn readable(error: &str) -> String {
    error
        .split_once(": ")
        .and_then(|(name, cause)| {
            let cause: serde_json::Value = serde_json::from_str(cause).ok()?;
            Some(format!("{name}: {}", cause.get("errorMessage")?.as_str()?))
        })
        .unwrap_or_else(|| error.to_owned())
}

/// An error for a table cell: readable, one line, clipped.
fn error_cell(error: Option<&str>) -> String {
    error.map_or_else(|| "-".into(), |e| clip(&readable(e), ERROR_WIDTH))
}

/// An S3 event time (RFC 3339 as S3 wrote it) in the CLI's format.
fn event_time(raw: Option<&str>) -> String {
    match raw {
        Some(raw) => parse_timestamp(raw).map_or_else(|| raw.to_owned(), |t| At(t).to_string()),
        None => "-".into(),
    }
}

// ---- Q1: a path's history ----

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathHistory {
    pub distribution_id: String,
    pub path: String,
    /// Newest first: one entry per batch the path was in.
    pub history: Vec<PathVisit>,
}

/// One batch a path was in: the stored path item, where its batch got, and the invalidation
/// that covers it (not `cfinv_core::collect::PathChange`, the change a batch is fed with).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PathVisit {
    #[serde(flatten)]
    pub change: PathRecord,
    pub batch_status: Option<BatchStatus>,
    pub invalidation: Option<InvalidationRef>,
}

/// The invalidation request that covers a path.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvalidationRef {
    pub chunk: u32,
    /// `None` until CloudFront accepted the request.
    pub id: Option<String>,
    pub status: Option<ChunkStatus>,
    /// The plan path that invalidates it: the path itself, or a wildcard above it.
    pub via: String,
    pub created_at: Option<At>,
    pub completed_at: Option<At>,
}

impl InvalidationRef {
    /// The chunk of a committed plan that covers `path`.
    pub fn find(chunks: &[ChunkRecord], path: &str) -> Option<Self> {
        chunks.iter().find_map(|c| {
            c.covering(path).map(|via| Self {
                chunk: c.index,
                id: c.invalidation_id.clone(),
                status: c.status,
                via: via.to_owned(),
                created_at: c.created_at,
                completed_at: c.completed_at,
            })
        })
    }
}

impl Answer for PathHistory {
    fn text(&self) -> String {
        if self.history.is_empty() {
            return format!(
                "no history for {} on distribution {} (never changed, or its items expired)\n",
                self.path, self.distribution_id
            );
        }
        let mut t = Table::new(&[
            "SEEN",
            "CHANGE",
            "EVENT TIME",
            "VERSION",
            "ETAG",
            "BATCH",
            "INVALIDATION",
            "STATUS",
            "COMPLETED",
            "VIA",
        ]);
        for h in &self.history {
            let c = &h.change;
            let inv = h.invalidation.as_ref();
            t.row([
                or_dash(c.last_seen_at),
                or_dash(c.change.as_deref()),
                event_time(c.event_time.as_deref()),
                or_dash(c.version_id.as_deref()),
                or_dash(c.etag.as_deref()),
                c.batch_id.clone(),
                or_dash(inv.and_then(|i| i.id.as_deref())),
                or_dash(
                    inv.and_then(|i| i.status.map(ChunkStatus::as_str))
                        .or(h.batch_status.map(BatchStatus::as_str)),
                ),
                or_dash(inv.and_then(|i| i.completed_at)),
                // Blank when the path was invalidated as itself.
                inv.filter(|i| i.via != c.path)
                    .map(|i| i.via.clone())
                    .unwrap_or_default(),
            ]);
        }
        let mut out = format!(
            "{} on {}: {}, newest first\n{}",
            self.path,
            self.distribution_id,
            plural(self.history.len() as u64, "change", "changes"),
            t.render()
        );
        let reasons: std::collections::BTreeSet<&str> = self
            .history
            .iter()
            .filter_map(|h| h.change.reason.as_deref())
            .collect();
        for reason in reasons {
            let _ = writeln!(out, "wildcard: {reason}");
        }
        out
    }
}

// ---- Q2 and Q5: batches and their totals ----

#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub batches: u64,
    pub completed: u64,
    pub failed: u64,
    pub events_received: u64,
    pub paths_received: u64,
    pub paths_planned: u64,
    pub paths_billed: u64,
    /// CreateInvalidation requests of submitted batches.
    pub invalidations: u64,
}

impl Totals {
    pub fn of(batches: &[BatchRecord]) -> Self {
        batches.iter().fold(Self::default(), |mut t, b| {
            t.batches += 1;
            t.completed += u64::from(b.status == BatchStatus::Completed);
            t.failed += u64::from(b.status == BatchStatus::Failed);
            t.events_received += b.events_received.unwrap_or(0);
            t.paths_received += b.paths_received.unwrap_or(0);
            t.paths_planned += b.paths_planned.unwrap_or(0);
            t.paths_billed += b.paths_billed.unwrap_or(0);
            if b.submitted_at.is_some() {
                t.invalidations += b.planned_chunks.unwrap_or(0);
            }
            t
        })
    }

    fn add(&mut self, other: &Totals) {
        self.batches += other.batches;
        self.completed += other.completed;
        self.failed += other.failed;
        self.events_received += other.events_received;
        self.paths_received += other.paths_received;
        self.paths_planned += other.paths_planned;
        self.paths_billed += other.paths_billed;
        self.invalidations += other.invalidations;
    }

    fn summary(&self) -> String {
        format!(
            "{} ({} completed, {} failed): {}, {} received, {} planned, {} billed, {}",
            plural(self.batches, "batch", "batches"),
            self.completed,
            self.failed,
            plural(self.events_received, "event", "events"),
            plural(self.paths_received, "path", "paths"),
            self.paths_planned,
            self.paths_billed,
            plural(self.invalidations, "invalidation", "invalidations"),
        )
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchList {
    pub distribution_id: String,
    pub from: At,
    /// `None`: up to now.
    pub to: Option<At>,
    /// Newest first.
    pub batches: Vec<BatchRecord>,
    pub total: Totals,
}

impl BatchList {
    fn range(&self) -> String {
        match self.to {
            Some(to) => format!("between {} and {}", self.from, to),
            None => format!("since {}", self.from),
        }
    }
}

impl Answer for BatchList {
    fn text(&self) -> String {
        if self.batches.is_empty() {
            return format!(
                "no batches for distribution {} {}\n",
                self.distribution_id,
                self.range()
            );
        }
        let mut t = Table::new(&[
            "OPENED",
            "BATCH",
            "STATUS",
            ">EVENTS",
            ">RECEIVED",
            ">PLANNED",
            ">BILLED",
            ">INVALIDATIONS",
            ">TOOK",
        ]);
        for b in &self.batches {
            t.row([
                or_dash(b.opened_at),
                b.batch_id.clone(),
                b.status.to_string(),
                or_dash(b.events_received),
                or_dash(b.paths_received),
                or_dash(b.paths_planned),
                or_dash(b.paths_billed),
                or_dash(b.submitted_at.and(b.planned_chunks)),
                or_dash(b.took_seconds.map(|s| human(Duration::from_secs_f64(s)))),
            ]);
        }
        format!(
            "batches of {} opened {} (UTC), newest first\n{}total: {}\n",
            self.distribution_id,
            self.range(),
            t.render(),
            self.total.summary()
        )
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DistributionTotals {
    pub distribution_id: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MonthTotals {
    pub month: YearMonth,
    pub from: At,
    pub to: At,
    pub distributions: Vec<DistributionTotals>,
    pub total: Totals,
}

impl MonthTotals {
    pub fn new(month: YearMonth, distributions: Vec<DistributionTotals>) -> Self {
        let (from, to) = month.range();
        let mut total = Totals::default();
        for d in &distributions {
            total.add(&d.totals);
        }
        Self {
            month,
            from: At(from),
            to: At(to),
            distributions,
            total,
        }
    }
}

impl Answer for MonthTotals {
    fn text(&self) -> String {
        let ids: Vec<&str> = self
            .distributions
            .iter()
            .map(|d| d.distribution_id.as_str())
            .collect();
        if self.total.batches == 0 {
            return format!("no batches in {} for {}\n", self.month, ids.join(", "));
        }
        let mut t = Table::new(&[
            "DISTRIBUTION",
            ">BATCHES",
            ">FAILED",
            ">EVENTS",
            ">RECEIVED",
            ">BILLED",
            ">INVALIDATIONS",
        ]);
        let totals = self
            .distributions
            .iter()
            .map(|d| (d.distribution_id.as_str(), &d.totals))
            .chain([("TOTAL", &self.total)]);
        for (id, x) in totals {
            t.row([
                id.to_owned(),
                x.batches.to_string(),
                x.failed.to_string(),
                x.events_received.to_string(),
                x.paths_received.to_string(),
                x.paths_billed.to_string(),
                x.invalidations.to_string(),
            ]);
        }
        let beyond_free = self.total.paths_billed.saturating_sub(FREE_PATHS);
        format!(
            "{} (UTC), batches counted in the month they opened\n{}\
             paths billed beyond the {FREE_PATHS} free a month: {beyond_free} \
             (about ${:.2} at ${USD_PER_PATH} a path; the free paths are per account)\n",
            self.month,
            t.render(),
            beyond_free as f64 * USD_PER_PATH,
        )
    }
}

// ---- Q3: failed and stuck ----

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failures {
    pub since: Option<At>,
    /// Newest first.
    pub batches: Vec<BatchRecord>,
    pub events: Vec<FailedEvent>,
}

impl Answer for Failures {
    fn text(&self) -> String {
        let since = self
            .since
            .map(|s| format!(" since {s}"))
            .unwrap_or_default();
        if self.batches.is_empty() && self.events.is_empty() {
            return format!("no failed batches or object-changed executions{since}\n");
        }
        let mut out = String::new();
        if !self.batches.is_empty() {
            let mut t = Table::new(&[
                "FAILED",
                "BATCH",
                "DISTRIBUTION",
                ">PATHS",
                "ERROR",
                "EXECUTION",
            ]);
            for b in &self.batches {
                t.row([
                    or_dash(b.failed_at),
                    b.batch_id.clone(),
                    b.distribution_id.clone(),
                    or_dash(b.paths_received),
                    error_cell(b.last_error.as_deref()),
                    or_dash(b.execution_arn.as_deref()),
                ]);
            }
            let _ = write!(
                out,
                "failed batches{since} ({}), newest first\n{}",
                self.batches.len(),
                t.render()
            );
        }
        if !self.events.is_empty() {
            let mut t = Table::new(&["FAILED", "OBJECT", "ERROR", "EXECUTION"]);
            for e in &self.events {
                t.row([
                    or_dash(e.failed_at),
                    or_dash(e.object.as_deref()),
                    error_cell(e.error.as_deref()),
                    or_dash(e.execution_arn.as_deref()),
                ]);
            }
            if !out.is_empty() {
                out.push('\n');
            }
            let _ = write!(
                out,
                "failed object-changed executions{since} ({}), newest first\n{}",
                self.events.len(),
                t.render()
            );
        }
        out.push_str(
            "\nafter fixing the cause: aws stepfunctions redrive-execution --execution-arn <EXECUTION>\n",
        );
        out
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stuck {
    pub as_of: At,
    pub older_than_seconds: u64,
    /// Longest-waiting first.
    pub batches: Vec<BatchRecord>,
}

impl Answer for Stuck {
    fn text(&self) -> String {
        let threshold = human(Duration::from_secs(self.older_than_seconds));
        if self.batches.is_empty() {
            return format!("no batch OPEN, CLOSED or SUBMITTED for longer than {threshold}\n");
        }
        let mut t = Table::new(&[
            "SINCE",
            ">FOR",
            "STATUS",
            "BATCH",
            "DISTRIBUTION",
            ">ATTEMPTS",
            "LAST ERROR",
            "EXECUTION",
        ]);
        for b in &self.batches {
            t.row([
                or_dash(b.status_since),
                or_dash(
                    b.status_since
                        .and_then(|s| between(s.0, self.as_of.0))
                        .map(human),
                ),
                b.status.to_string(),
                b.batch_id.clone(),
                b.distribution_id.clone(),
                or_dash(b.attempts),
                error_cell(b.last_error.as_deref()),
                or_dash(b.execution_arn.as_deref()),
            ]);
        }
        format!(
            "batches in the same status for longer than {threshold}, longest first\n{}\
             OPEN: the sweep requests their flush again; SUBMITTED: the batch fails after \
             MaxPollMinutes, then redrive it\n",
            t.render()
        )
    }
}

// ---- Q4: one batch in full ----

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchDetail {
    pub batch: BatchRecord,
    pub timeline: Vec<Moment>,
    /// The chunks of the committed plan, in order.
    pub chunks: Vec<ChunkRecord>,
    /// Sorted by path.
    pub paths: Vec<PathRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    pub at: At,
    pub event: String,
}

impl BatchDetail {
    pub fn new(batch: BatchRecord, chunks: Vec<ChunkRecord>, paths: Vec<PathRecord>) -> Self {
        let timeline = timeline(&batch, &chunks, &paths);
        Self {
            batch,
            timeline,
            chunks,
            paths,
        }
    }
}

/// Every time the items record, in order. Equal times keep the lifecycle's order.
pub fn timeline(batch: &BatchRecord, chunks: &[ChunkRecord], paths: &[PathRecord]) -> Vec<Moment> {
    let mut moments: Vec<(Option<At>, String)> = vec![
        (batch.opened_at, "opened: first path received".into()),
        (
            paths.iter().filter_map(|p| p.last_seen_at).max(),
            format!("last path received ({} in all)", paths.len()),
        ),
        (batch.closed_at, "closed: flush started".into()),
        (
            batch.planned_at,
            format!(
                "planned: {} in {}",
                plural(batch.paths_planned.unwrap_or(0), "path", "paths"),
                plural(batch.planned_chunks.unwrap_or(0), "chunk", "chunks")
            ),
        ),
    ];
    for c in chunks {
        let id = or_dash(c.invalidation_id.as_deref());
        moments.push((
            c.created_at,
            format!("invalidation {id} created (chunk {})", c.index),
        ));
    }
    moments.push((batch.submitted_at, "submitted".into()));
    for c in chunks {
        let id = or_dash(c.invalidation_id.as_deref());
        moments.push((c.completed_at, format!("invalidation {id} completed")));
    }
    moments.push((
        batch.last_error_at,
        format!(
            "error: {}",
            readable(batch.last_error.as_deref().unwrap_or("-"))
        ),
    ));
    moments.push((
        batch.failed_at,
        format!(
            "failed: execution {}",
            or_dash(batch.execution_status.map(|s| s.as_str()))
        ),
    ));
    moments.push((batch.completed_at, "completed".into()));
    let mut out: Vec<Moment> = moments
        .into_iter()
        .filter_map(|(at, event)| at.map(|at| Moment { at, event }))
        .collect();
    out.sort_by_key(|m| m.at);
    out
}

impl Answer for BatchDetail {
    fn text(&self) -> String {
        let b = &self.batch;
        let mut head = Table::new(&["", ""]);
        head.row(["batch", &b.batch_id]);
        head.row(["distribution", &b.distribution_id]);
        let took = b
            .took_seconds
            .map(|s| format!(" (took {})", human(Duration::from_secs_f64(s))))
            .unwrap_or_default();
        head.row(["status".to_owned(), format!("{}{took}", b.status)]);
        head.row(["execution".to_owned(), or_dash(b.execution_arn.as_deref())]);
        if let Some(id) = &b.replayed_by {
            head.row(["replayed as", id]);
        }
        if let Some(id) = &b.replay_of {
            head.row(["replay of", id]);
        }
        head.row([
            "counts".to_owned(),
            format!(
                "{}, {} received, {} planned, {} billed",
                plural(b.events_received.unwrap_or(0), "event", "events"),
                plural(b.paths_received.unwrap_or(0), "path", "paths"),
                or_dash(b.paths_planned),
                or_dash(b.paths_billed),
            ),
        ]);
        if let Some(error) = &b.last_error {
            head.row([
                "error".to_owned(),
                format!(
                    "{} (attempts: {})",
                    error_cell(Some(error)),
                    or_dash(b.attempts)
                ),
            ]);
        }
        let mut out = head.render_rows();

        let opened = b.opened_at;
        let mut t = Table::new(&["TIME", ">AFTER", "EVENT"]);
        for m in &self.timeline {
            let after = opened.and_then(|o| between(o.0, m.at.0)).map(human);
            t.row([
                m.at.to_string(),
                format!("+{}", or_dash(after)),
                clip(&m.event, 2 * ERROR_WIDTH),
            ]);
        }
        let _ = write!(out, "\ntimeline\n{}", t.render());

        match &b.plan_id {
            None => out.push_str("\nno plan yet\n"),
            Some(plan_id) => {
                let mut t = Table::new(&[
                    ">CHUNK",
                    "INVALIDATION",
                    "STATUS",
                    "CREATED",
                    "COMPLETED",
                    ">PATHS",
                    "CALLER REFERENCE",
                ]);
                for c in &self.chunks {
                    t.row([
                        c.index.to_string(),
                        or_dash(c.invalidation_id.as_deref()),
                        or_dash(c.status.map(ChunkStatus::as_str)),
                        or_dash(c.created_at),
                        or_dash(c.completed_at),
                        c.paths.len().to_string(),
                        or_dash(c.caller_reference.as_deref()),
                    ]);
                }
                let mut p = Table::new(&[">CHUNK", "PLANNED PATH"]);
                for c in &self.chunks {
                    for path in &c.paths {
                        p.row([c.index.to_string(), path.clone()]);
                    }
                }
                let _ = write!(
                    out,
                    "\nplan {plan_id}: {}\n{}\n{}",
                    plural(self.chunks.len() as u64, "chunk", "chunks"),
                    t.render(),
                    p.render()
                );
            }
        }

        let mut t = Table::new(&[
            "PATH",
            "CHANGE",
            "EVENT TIME",
            "VERSION",
            "ETAG",
            ">EVENTS",
            "LAST SEEN",
        ]);
        for p in &self.paths {
            t.row([
                p.path.clone(),
                or_dash(p.change.as_deref()),
                event_time(p.event_time.as_deref()),
                or_dash(p.version_id.as_deref()),
                or_dash(p.etag.as_deref()),
                p.event_ids.len().to_string(),
                or_dash(p.last_seen_at),
            ]);
        }
        let _ = write!(
            out,
            "\npaths received ({})\n{}",
            self.paths.len(),
            t.render()
        );
        for p in &self.paths {
            if let Some(reason) = &p.reason {
                let _ = writeln!(out, "{} is a wildcard: {reason}", p.path);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn batch(id: &str, status: &str) -> BatchRecord {
        BatchRecord {
            batch_id: id.into(),
            distribution_id: "E1".into(),
            status: status.parse().unwrap(),
            opened_at: Some(At(datetime!(2026-11-25 10:00 UTC))),
            closed_at: None,
            planned_at: None,
            submitted_at: None,
            completed_at: None,
            failed_at: None,
            status_since: None,
            events_received: Some(3),
            paths_received: Some(3),
            paths_planned: Some(2),
            paths_billed: None,
            planned_chunks: Some(1),
            plan_id: None,
            execution_arn: None,
            execution_status: None,
            attempts: None,
            last_error: None,
            last_error_at: None,
            took_seconds: None,
            replayed_by: None,
            replay_of: None,
        }
    }

    fn completed(id: &str) -> BatchRecord {
        BatchRecord {
            submitted_at: Some(At(datetime!(2026-11-25 10:00:35 UTC))),
            completed_at: Some(At(datetime!(2026-11-25 10:00:41.2 UTC))),
            paths_billed: Some(2),
            took_seconds: Some(41.2),
            ..batch(id, "COMPLETED")
        }
    }

    #[test]
    fn totals_count_only_submitted_requests_as_invalidations() {
        let totals = Totals::of(&[completed("a"), completed("b"), batch("c", "FAILED")]);
        assert_eq!(
            totals,
            Totals {
                batches: 3,
                completed: 2,
                failed: 1,
                events_received: 9,
                paths_received: 9,
                paths_planned: 6,
                paths_billed: 4,
                invalidations: 2,
            }
        );
    }

    #[test]
    fn a_batch_list_renders_aligned_with_totals() {
        let batches = vec![completed("E1-b"), batch("E1-a", "FAILED")];
        let list = BatchList {
            distribution_id: "E1".into(),
            from: At(datetime!(2026-11-25 09:00 UTC)),
            to: None,
            total: Totals::of(&batches),
            batches,
        };
        assert_eq!(
            list.text(),
            "batches of E1 opened since 2026-11-25 09:00:00 (UTC), newest first\n\
             OPENED               BATCH  STATUS     EVENTS  RECEIVED  PLANNED  BILLED  INVALIDATIONS   TOOK\n\
             2026-11-25 10:00:00  E1-b   COMPLETED       3         3        2       2              1  41.2s\n\
             2026-11-25 10:00:00  E1-a   FAILED          3         3        2       -              -      -\n\
             total: 2 batches (1 completed, 1 failed): 6 events, 6 paths received, 4 planned, 2 billed, 1 invalidation\n"
        );
        let empty = BatchList {
            batches: vec![],
            total: Totals::default(),
            to: Some(At(datetime!(2026-11-25 10:00 UTC))),
            ..list
        };
        assert_eq!(
            empty.text(),
            "no batches for distribution E1 between 2026-11-25 09:00:00 and 2026-11-25 10:00:00\n"
        );
    }

    #[test]
    fn month_totals_sum_the_distributions_and_price_beyond_the_free_paths() {
        let month: YearMonth = "2026-11".parse().unwrap();
        let per = |id: &str, billed| DistributionTotals {
            distribution_id: id.into(),
            totals: Totals {
                batches: 1,
                paths_billed: billed,
                ..Totals::default()
            },
        };
        let m = MonthTotals::new(month, vec![per("E1", 900), per("E2", 300)]);
        assert_eq!(m.total.paths_billed, 1200);
        assert_eq!(m.total.batches, 2);
        assert_eq!(m.to, At(datetime!(2026-12-01 00:00 UTC)));
        let text = m.text();
        let total = text.lines().find(|l| l.starts_with("TOTAL")).unwrap();
        assert_eq!(
            total.split_whitespace().collect::<Vec<_>>(),
            ["TOTAL", "2", "0", "0", "0", "1200", "0"]
        );
        assert!(text.contains("free a month: 200 (about $1.00"), "{text}");

        let none = MonthTotals::new(
            month,
            vec![per("E1", 0)]
                .into_iter()
                .map(|mut d| {
                    d.totals = Totals::default();
                    d
                })
                .collect(),
        );
        assert_eq!(none.text(), "no batches in 2026-11 for E1\n");
    }

    #[test]
    fn the_timeline_is_in_time_order_and_skips_what_did_not_happen() {
        let mut b = completed("E1-b");
        b.closed_at = Some(At(datetime!(2026-11-25 10:00:30 UTC)));
        let chunk = ChunkRecord {
            index: 0,
            paths: vec!["/a".into()],
            caller_reference: Some("E1-b#0".into()),
            invalidation_id: Some("I1".into()),
            status: Some(ChunkStatus::Completed),
            created_at: Some(At(datetime!(2026-11-25 10:00:34 UTC))),
            completed_at: Some(At(datetime!(2026-11-25 10:00:41 UTC))),
        };
        let events: Vec<String> = timeline(&b, &[chunk], &[])
            .into_iter()
            .map(|m| m.event)
            .collect();
        assert_eq!(
            events,
            [
                "opened: first path received",
                "closed: flush started",
                "invalidation I1 created (chunk 0)",
                "submitted",
                "invalidation I1 completed",
                "completed"
            ]
        );
    }

    #[test]
    fn failures_list_batches_and_events_with_the_arn_to_redrive() {
        let failed = BatchRecord {
            failed_at: Some(At(datetime!(2026-11-25 10:01 UTC))),
            last_error: Some(format!("AccessDenied: {}", "x".repeat(200))),
            execution_arn: Some("arn:aws:states:us-east-1:1:execution:m:E1-a".into()),
            ..batch("E1-a", "FAILED")
        };
        let text = Failures {
            since: None,
            batches: vec![failed],
            events: vec![],
        }
        .text();
        assert!(
            text.contains("arn:aws:states:us-east-1:1:execution:m:E1-a"),
            "{text}"
        );
        assert!(text.contains("AccessDenied: xxx"), "{text}");
        assert!(
            !text.contains(&"x".repeat(100)),
            "errors are clipped: {text}"
        );
        assert!(text.contains("redrive-execution"), "{text}");
    }

    #[test]
    fn a_lambda_error_cause_reads_as_its_message() {
        assert_eq!(
            readable(
                r#"AccessDenied: {"errorType":"AccessDenied","errorMessage":"access denied"}"#
            ),
            "AccessDenied: access denied"
        );
        assert_eq!(readable("States.Timeout: "), "States.Timeout: ");
        assert_eq!(
            readable("AccessDenied: {\"no\": 1}"),
            "AccessDenied: {\"no\": 1}"
        );
        assert_eq!(error_cell(None), "-");
    }
}
