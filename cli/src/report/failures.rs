//! Q3: failed batches and events, and batches stuck in a state.

use super::*;

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
