//! Q2 and Q5: a distribution's batches between two times, and the monthly totals.

use super::*;

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

impl Answer for BatchList {
    fn text(&self) -> String {
        if self.batches.is_empty() {
            return format!(
                "no batches for distribution {} {}\n",
                self.distribution_id,
                range(self.from, self.to)
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
            range(self.from, self.to),
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
