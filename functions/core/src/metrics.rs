//! The functions' figures as CloudWatch metrics, in Embedded Metric Format (EMF): one JSON line
//! on stdout, which Lambda sends to CloudWatch Logs, which extracts the metrics. No API call, no
//! permission, no SDK crate.
//!
//! Limits this builder enforces (a line past them would be dropped by CloudWatch, so it is an
//! error here, logged by [`Metrics::publish`]):
//! - EMF specification ("Specification: Embedded metric format", CloudWatch user guide): a
//!   directive's `Metrics` array holds at most 100 metric definitions and a dimension set at most
//!   30 dimension keys; `Timestamp` is milliseconds since the epoch.
//! - CloudWatch API reference, `Dimension`: "Dimension values must contain only ASCII characters
//!   and must include at least one non-whitespace character", at most 1,024 characters.
//!
//! The dashboard in `template.yaml` graphs these names; `local/tests/test_template_dashboard.py`
//! reads them from this file, so a renamed metric fails that test instead of leaving an empty
//! graph.

use time::OffsetDateTime;

/// The namespace of every metric the functions publish (the stale-batch alarm and the dashboard
/// name it too).
pub const NAMESPACE: &str = "CfInvalidator";

/// The dimension every line carries: the CloudFormation stack, so two stacks in one account
/// keep their figures apart.
pub const STACK: &str = "Stack";
/// The dimension of per-distribution figures.
pub const DISTRIBUTION: &str = "DistributionId";

const MAX_METRICS: usize = 100;
const MAX_DIMENSIONS: usize = 30;
const MAX_DIMENSION_VALUE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
}

const fn count(name: &'static str) -> Metric {
    Metric {
        name,
        unit: Unit::Count,
    }
}

const fn seconds(name: &'static str) -> Metric {
    Metric {
        name,
        unit: Unit::Seconds,
    }
}

/// dedupe: a joiner opened a new batch.
pub const BATCHES_OPENED: Metric = count("BatchesOpened");
/// dedupe: path changes joined to a batch (a path written twice counts twice).
pub const PATHS_RECEIVED: Metric = count("PathsReceived");
/// create-invalidation: a batch's invalidations were all created.
pub const BATCHES_SUBMITTED: Metric = count("BatchesSubmitted");
/// create-invalidation: distinct paths a new plan covers (the planner's input).
pub const PATHS_PLANNED: Metric = count("PathsPlanned");
/// create-invalidation: paths in the submitted requests, what CloudFront bills.
pub const PATHS_BILLED: Metric = count("PathsBilled");
/// poll-status: a batch's invalidations all reached `Completed`.
pub const BATCHES_COMPLETED: Metric = count("BatchesCompleted");
/// poll-status: from a batch's opening (to the second, from its id) to its completion.
pub const OPEN_TO_COMPLETED_SECONDS: Metric = seconds("OpenToCompletedSeconds");
/// record-outcome: a batch execution failed, timed out or was aborted.
pub const BATCHES_FAILED: Metric = count("BatchesFailed");
/// record-outcome: an object-changed execution failed (its S3 change reached no batch).
pub const EVENTS_FAILED: Metric = count("EventsFailed");
/// sweep: age of the oldest batch still OPEN past debounce + grace (0 when none).
pub const OLDEST_OPEN_BATCH_AGE_SECONDS: Metric = seconds("OldestOpenBatchAgeSeconds");

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MetricError {
    #[error("{0} metrics in one line; EMF allows {MAX_METRICS}")]
    TooManyMetrics(usize),
    #[error("{0} dimensions in one line; EMF allows {MAX_DIMENSIONS}")]
    TooManyDimensions(usize),
    #[error(
        "dimension {key} = {value:?}: a value must be 1 to {MAX_DIMENSION_VALUE} ASCII characters, not all whitespace"
    )]
    InvalidDimensionValue { key: String, value: String },
}

/// One EMF line: `dimensions` (name, value) apply to every metric in `values`.
pub fn render(
    now: OffsetDateTime,
    dimensions: &[(&str, &str)],
    values: &[(Metric, u64)],
) -> Result<String, MetricError> {
    if values.len() > MAX_METRICS {
        return Err(MetricError::TooManyMetrics(values.len()));
    }
    if dimensions.len() > MAX_DIMENSIONS {
        return Err(MetricError::TooManyDimensions(dimensions.len()));
    }
    let mut root = serde_json::Map::new();
    for (key, value) in dimensions {
        let valid = !value.trim().is_empty()
            && value.len() <= MAX_DIMENSION_VALUE
            && value.chars().all(|c| c.is_ascii() && !c.is_ascii_control());
        if !valid {
            return Err(MetricError::InvalidDimensionValue {
                key: (*key).to_owned(),
                value: (*value).to_owned(),
            });
        }
        root.insert((*key).to_owned(), (*value).into());
    }
    for (metric, value) in values {
        root.insert(metric.name.to_owned(), (*value).into());
    }
    let keys: Vec<&str> = dimensions.iter().map(|(key, _)| *key).collect();
    let definitions: Vec<serde_json::Value> = values
        .iter()
        .map(|(metric, _)| serde_json::json!({"Name": metric.name, "Unit": metric.unit.as_str()}))
        .collect();
    root.insert(
        "_aws".to_owned(),
        serde_json::json!({
            "Timestamp": (now.unix_timestamp_nanos() / 1_000_000) as i64,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [keys],
                "Metrics": definitions,
            }],
        }),
    );
    Ok(serde_json::Value::Object(root).to_string())
}

/// Where a function's metric lines go: stdout in Lambda, nowhere for `cfinv` (its stdout is
/// the operator's, and CloudWatch reads no EMF there), a list in unit tests.
#[derive(Debug)]
pub struct Metrics {
    stack: String,
    sink: Sink,
}

#[derive(Debug)]
enum Sink {
    Stdout,
    Silent,
    #[cfg(any(test, feature = "memory"))]
    Recording(std::sync::Mutex<Vec<String>>),
}

impl Metrics {
    /// Lines on stdout, with the `Stack` dimension from `STACK_NAME` (the template sets it).
    pub fn from_env() -> crate::Result<Self> {
        Ok(Self::stdout(crate::setup::env_required("STACK_NAME")?))
    }

    pub fn stdout(stack: impl Into<String>) -> Self {
        Self {
            stack: stack.into(),
            sink: Sink::Stdout,
        }
    }

    /// Publishes nothing: for code shared with the functions that runs outside Lambda.
    pub fn silent() -> Self {
        Self {
            stack: String::new(),
            sink: Sink::Silent,
        }
    }

    /// Keeps the lines for [`Metrics::lines`] instead of printing them.
    #[cfg(any(test, feature = "memory"))]
    pub fn recording(stack: impl Into<String>) -> Self {
        Self {
            stack: stack.into(),
            sink: Sink::Recording(std::sync::Mutex::new(Vec::new())),
        }
    }

    /// The lines published so far, parsed (a recording sink only).
    #[cfg(any(test, feature = "memory"))]
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let Sink::Recording(recorded) = &self.sink else {
            panic!("a recording Metrics");
        };
        let recorded = recorded.lock().expect("metrics lock");
        recorded
            .iter()
            .map(|l| serde_json::from_str(l).expect("an EMF line is JSON"))
            .collect()
    }

    /// A per-distribution line.
    pub fn publish_for(
        &self,
        distribution_id: &str,
        now: OffsetDateTime,
        values: &[(Metric, u64)],
    ) {
        self.publish(now, &[(DISTRIBUTION, distribution_id)], values);
    }

    /// A line with `Stack` and `dimensions`. A line CloudWatch would reject is logged as an
    /// error instead: a figure is never worth failing an invalidation for.
    pub fn publish(
        &self,
        now: OffsetDateTime,
        dimensions: &[(&str, &str)],
        values: &[(Metric, u64)],
    ) {
        if matches!(self.sink, Sink::Silent) {
            return;
        }
        let mut all = Vec::with_capacity(dimensions.len() + 1);
        all.push((STACK, self.stack.as_str()));
        all.extend_from_slice(dimensions);
        match render(now, &all, values) {
            Ok(line) => self.write(line),
            Err(error) => tracing::error!(%error, "metric line not published"),
        }
    }

    fn write(&self, line: String) {
        match &self.sink {
            Sink::Stdout => println!("{line}"),
            Sink::Silent => {}
            #[cfg(any(test, feature = "memory"))]
            Sink::Recording(recorded) => recorded.lock().expect("metrics lock").push(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn at() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
    }

    #[test]
    fn a_line_is_an_emf_document_with_its_dimensions_and_values() {
        let line = render(
            at(),
            &[(STACK, "prod"), (DISTRIBUTION, "E1")],
            &[(PATHS_BILLED, 3), (OPEN_TO_COMPLETED_SECONDS, 42)],
        )
        .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert!(!line.contains('\n'), "one log line");
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "CfInvalidator");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["Stack", "DistributionId"]])
        );
        assert_eq!(
            directive["Metrics"],
            serde_json::json!([
                {"Name": "PathsBilled", "Unit": "Count"},
                {"Name": "OpenToCompletedSeconds", "Unit": "Seconds"},
            ])
        );
        // Every dimension and metric the directive names is a member of the root: the spec's
        // target members.
        assert_eq!(v["Stack"], "prod");
        assert_eq!(v["DistributionId"], "E1");
        assert_eq!(v["PathsBilled"], 3);
        assert_eq!(v["OpenToCompletedSeconds"], 42);
    }

    #[test]
    fn lines_cloudwatch_would_drop_are_errors() {
        let many = vec![(PATHS_BILLED, 1); 101];
        assert_eq!(
            render(at(), &[], &many),
            Err(MetricError::TooManyMetrics(101))
        );
        let dims = vec![(STACK, "s"); 31];
        assert_eq!(
            render(at(), &dims, &[(PATHS_BILLED, 1)]),
            Err(MetricError::TooManyDimensions(31))
        );
        for bad in ["", "  ", "caf\u{e9}", "a\nb"] {
            assert!(
                matches!(
                    render(at(), &[(STACK, bad)], &[(PATHS_BILLED, 1)]),
                    Err(MetricError::InvalidDimensionValue { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(render(at(), &[(STACK, &"x".repeat(1025))], &[]).is_err());
        assert!(render(at(), &[(STACK, &"x".repeat(1024))], &[]).is_ok());
    }

    #[test]
    fn publish_adds_the_stack_and_drops_only_an_invalid_line() {
        let metrics = Metrics::recording("prod");
        metrics.publish_for("E1", at(), &[(BATCHES_OPENED, 1)]);
        metrics.publish_for("", at(), &[(BATCHES_OPENED, 1)]);
        let lines = metrics.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["Stack"], "prod");
        assert_eq!(lines[0]["DistributionId"], "E1");
        assert_eq!(lines[0]["BatchesOpened"], 1);
    }
}
