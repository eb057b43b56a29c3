//! `cfinv`: operator tools for cf-invalidator. `cfinv audit ...` answers the operators'
//! questions from the audit table, with DynamoDB Query only (never Scan), paginated.

pub mod args;
pub mod config;
pub mod discover;
pub mod invalidate;
pub mod ops;
pub mod queries;
pub mod records;
pub mod replay;
pub mod report;
pub mod span;
pub mod table;

use cfinv_core::path::encode_path;
use time::OffsetDateTime;

use crate::args::{
    Audit, BatchArgs, BatchesArgs, Cli, Command, FailedArgs, MonthArgs, PathArgs, RangeArgs,
    RequestsArgs, StuckArgs,
};
use crate::config::Target;
use crate::queries::AuditTable;
use crate::report::{
    Answer, BatchDetail, BatchList, DistributionTotals, Failures, InvalidationRef, MonthTotals,
    PathHistory, PathVisit, RequestList, Stuck, Totals,
};
use crate::span::{At, YearMonth};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("table {table} not found in region {region}{endpoint}")]
    TableNotFound {
        table: String,
        region: String,
        endpoint: String,
    },
    #[error("cannot reach DynamoDB at {endpoint}{hint}")]
    Unreachable { endpoint: String, hint: String },
    #[error("DynamoDB: {0}")]
    Dynamo(String),
    #[error("{0}")]
    Http(String),
    #[error("unexpected item: {0}")]
    BadItem(String),
    #[error("no batch {batch_id} in table {table}")]
    NoSuchBatch { batch_id: String, table: String },
    #[error(
        "distribution {distribution_id} has no batch in table {table}: it is not one of the \
         stack's DistributionIds, or nothing has been invalidated on it yet"
    )]
    UnknownDistribution {
        distribution_id: String,
        table: String,
    },
    #[error(
        "canary timed out after {seconds}s (--timeout) waiting for the {version} write of {waiting} \
         key(s) to reach a COMPLETED batch, e.g. {example}: `cfinv audit stuck` shows where \
         its batch waits"
    )]
    CanaryTimeout {
        seconds: u64,
        version: &'static str,
        waiting: usize,
        example: String,
    },
    #[error(
        "no distribution has an origin serving bucket {bucket} (its S3 REST or website \
         endpoint): create one, or check the bucket name and the account"
    )]
    NoDistributionServes { bucket: String },
    #[error("CloudFront: {0}")]
    CloudFront(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its sources on one line (the SDK's own Debug output is pages long).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        // Some layers repeat their source's message.
        if !text.ends_with(&next) {
            text = format!("{text}: {next}");
        }
        source = s.source();
    }
    text
}

/// What a command prints, and whether it found everything well (the exit status).
pub struct Outcome {
    pub text: String,
    pub success: bool,
}

/// Runs the command.
pub async fn run(cli: &Cli) -> Result<Outcome> {
    let now = OffsetDateTime::now_utc();
    let json = cli.json;
    let verdict = |text: String, success: bool| Ok(Outcome { text, success });
    match &cli.command {
        Command::Doctor(a) => {
            let d = ops::Deployment::connect(&cli.target, a.stack_name.as_deref()).await?;
            let opts = ops::doctor::DoctorOptions {
                distributions: &a.distribution,
                stale_after: a.stale_after,
            };
            let diagnosis = ops::doctor::run(&d, &opts, now).await?;
            verdict(output(&diagnosis, json)?, diagnosis.ok)
        }
        Command::Canary(a) => {
            let d = ops::Deployment::connect(&cli.target, a.stack_name.as_deref()).await?;
            let edge = d
                .table
                .target()
                .stack
                .as_ref()
                .and_then(|s| s.edges.get(&a.distribution).cloned());
            let opts = ops::canary::CanaryOptions {
                distribution_id: &a.distribution,
                domain: a.domain.as_deref(),
                prefix: &a.prefix,
                timeout: a.timeout,
                edge: edge.as_deref(),
            };
            let report = ops::canary::run(&d, &opts).await?;
            verdict(output(&report, json)?, report.ok)
        }
        _ => verdict(answer(cli, now).await?, true),
    }
}

/// The audit questions and replay.
async fn answer(cli: &Cli, now: OffsetDateTime) -> Result<String> {
    // Each command checks what its arguments and the stack file decide before connecting.
    let json = cli.json;
    let question = match &cli.command {
        Command::Audit(question) => question,
        Command::Discover(a) => {
            let target = Target::load_for_stack(&cli.target)?;
            return output(&discover::discover(target, &a.bucket).await?, json);
        }
        Command::Replay(a) => {
            let table = AuditTable::connect(Target::load(&cli.target)?).await?;
            let retention = std::time::Duration::from_secs(a.retention_days * 86_400);
            return output(
                &replay::replay(&table, &a.batch_id, retention, now).await?,
                json,
            );
        }
        Command::Doctor(_) | Command::Canary(_) => unreachable!("run answers these"),
        Command::Invalidate(a) => {
            let target = Target::load(&cli.target)?;
            let stack = target.stack.clone();
            let table = AuditTable::connect(target).await?;
            let (file, distributions) = match &stack {
                Some(s) => (Some(s.path.as_path()), s.distribution_ids.as_slice()),
                None => (None, &[][..]),
            };
            let done = invalidate::invalidate(&table, distributions, file, a, now).await?;
            return output(&done, json);
        }
    };
    let target = Target::load(&cli.target)?;
    match question {
        Audit::Path(a) => output(&path_history(target, a).await?, json),
        Audit::Batches(a) => output(&batches(target, a, now).await?, json),
        Audit::Failed(a) => output(&failures(target, a, now).await?, json),
        Audit::Stuck(a) => output(&stuck(target, a, now).await?, json),
        Audit::Batch(a) => output(&batch(target, a).await?, json),
        Audit::Month(a) => output(&month(target, a, now).await?, json),
        Audit::Requests(a) => output(&requests(target, a, now).await?, json),
    }
}

fn output(answer: &impl Answer, json: bool) -> Result<String> {
    if !json {
        return Ok(answer.text());
    }
    let mut text = serde_json::to_string_pretty(answer).expect("answers have string keys only");
    text.push('\n');
    Ok(text)
}

async fn path_history(target: Target, a: &PathArgs) -> Result<PathHistory> {
    let distribution_id = target.one_distribution(a.distribution.as_deref())?;
    let table = AuditTable::connect(target).await?;
    // Stored paths are encoded: an S3 key is encoded the way the functions encode it.
    let path = match (&a.path, &a.key) {
        (_, Some(key)) => encode_path(key),
        (Some(path), None) => path.clone(),
        (None, None) => unreachable!("clap requires a PATH or --key"),
    };
    let mut history = Vec::new();
    // One item per batch the path was in, so each batch is read once.
    for change in table.path_history(&distribution_id, &path).await? {
        let planned = table.planned(&change.batch_id).await?;
        history.push(PathVisit {
            invalidation: planned
                .as_ref()
                .and_then(|p| InvalidationRef::find(&p.chunks, &change.path)),
            batch_status: planned.map(|p| p.batch.status),
            change,
        });
    }
    Ok(PathHistory {
        distribution_id,
        path,
        history,
    })
}

async fn batches(target: Target, a: &BatchesArgs, now: OffsetDateTime) -> Result<BatchList> {
    let distribution_id = target.one_distribution(a.distribution.as_deref())?;
    let (from, to) = time_range(&a.range, now)?;
    let table = AuditTable::connect(target).await?;
    let batches = table.batches(&distribution_id, from, to).await?;
    // None in the range is an answer; none ever is most likely a mistyped id.
    if batches.is_empty() && !table.knows_distribution(&distribution_id).await? {
        return Err(Error::UnknownDistribution {
            distribution_id,
            table: table.target().table.clone(),
        });
    }
    Ok(BatchList {
        distribution_id,
        from: At(from),
        to: to.map(At),
        total: Totals::of(&batches),
        batches,
    })
}

async fn failures(target: Target, a: &FailedArgs, now: OffsetDateTime) -> Result<Failures> {
    let table = AuditTable::connect(target).await?;
    let since = a.since.map(|d| now - d);
    let (batches, events) = table.failed(since).await?;
    Ok(Failures {
        since: since.map(At),
        batches,
        events,
    })
}

async fn stuck(target: Target, a: &StuckArgs, now: OffsetDateTime) -> Result<Stuck> {
    let table = AuditTable::connect(target).await?;
    Ok(Stuck {
        as_of: At(now),
        older_than_seconds: a.older_than.as_secs(),
        batches: table.stuck(now - a.older_than).await?,
    })
}

async fn batch(target: Target, a: &BatchArgs) -> Result<BatchDetail> {
    let table = AuditTable::connect(target).await?;
    let items = table
        .batch_items(&a.batch_id)
        .await?
        .ok_or_else(|| Error::NoSuchBatch {
            batch_id: a.batch_id.clone(),
            table: table.target().table.clone(),
        })?;
    Ok(BatchDetail::new(
        items.batch,
        items.plan_basis,
        items.chunks,
        items.paths,
    ))
}

/// `batches` and `requests` without a range: the last day.
const DEFAULT_SINCE: std::time::Duration = std::time::Duration::from_secs(86_400);

/// `--since` back from now (default: the last day), or `--from` [`--to`]. A range that ends
/// before it starts finds nothing: most likely its flags were swapped.
fn time_range(
    range: &RangeArgs,
    now: OffsetDateTime,
) -> Result<(OffsetDateTime, Option<OffsetDateTime>)> {
    let (from, to) = match (range.since, range.from) {
        (_, Some(from)) => (from, range.to),
        (since, None) => (now - since.unwrap_or(DEFAULT_SINCE), None),
    };
    if let Some(to) = to.filter(|to| *to < from) {
        return Err(Error::Usage(format!(
            "--to {} is before --from {}: nothing can be found in that range",
            At(to),
            At(from)
        )));
    }
    Ok((from, to))
}

async fn month(target: Target, a: &MonthArgs, now: OffsetDateTime) -> Result<MonthTotals> {
    let ids = target.distributions(&a.distribution)?;
    let table = AuditTable::connect(target).await?;
    let month = a.month.unwrap_or_else(|| YearMonth::of(now));
    let (from, to) = month.range();
    let mut distributions = Vec::new();
    for distribution_id in ids {
        let batches = table.batches(&distribution_id, from, Some(to)).await?;
        distributions.push(DistributionTotals {
            distribution_id,
            totals: Totals::of(&batches),
        });
    }
    Ok(MonthTotals::new(month, distributions))
}

async fn requests(target: Target, a: &RequestsArgs, now: OffsetDateTime) -> Result<RequestList> {
    let (from, to) = time_range(&a.range, now)?;
    let table = AuditTable::connect(target).await?;
    let mut requests = table.requests(from, to).await?;
    // Filtered here rather than by a FilterExpression: DynamoDB reads (and bills) the same
    // items either way, and the partition is small (requests are bounded per hour).
    let distribution_id = a.distribution.clone();
    requests.retain(|r| r.matches(distribution_id.as_deref(), a.refused));
    Ok(RequestList {
        from: At(from),
        to: to.map(At),
        distribution_id,
        refused_only: a.refused,
        requests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[tokio::test]
    async fn an_inverted_range_is_an_error_before_any_aws_call() {
        let target = ["cfinv", "--table", "t", "--region", "us-east-1", "audit"];
        for (question, expected) in [
            (
                &[
                    "batches",
                    "-d",
                    "E1",
                    "--from",
                    "2026-11-30T08:00:00Z",
                    "--to",
                    "2026-11-30T07:00:00Z",
                ][..],
                "is before --from",
            ),
            (
                &[
                    "requests",
                    "--from",
                    "2026-11-30T08:00:00Z",
                    "--to",
                    "2026-11-30T07:00:00Z",
                ][..],
                "is before --from",
            ),
        ] {
            let cli = Cli::parse_from(target.iter().chain(question));
            let Err(err) = run(&cli).await else {
                panic!("an inverted range must fail: {question:?}")
            };
            assert!(matches!(err, Error::Usage(_)), "{err}");
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn an_error_chain_is_one_line_without_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("loading credentials")]
        struct Outer(#[source] std::io::Error);
        let inner = std::io::Error::other("IMDS is disabled");
        assert_eq!(
            error_chain(&Outer(inner)),
            "loading credentials: IMDS is disabled"
        );
    }
}
