//! The command line: `cfinv audit <question> ...`, one subcommand per operator question.

use std::path::PathBuf;
use std::time::Duration;

use cfinv_core::path::is_valid_path;
use clap::{Args, Parser, Subcommand};
use time::OffsetDateTime;

use crate::span::{YearMonth, parse_duration, parse_time};

#[derive(Debug, Parser)]
#[command(name = "cfinv", version, about = "Operator tools for cf-invalidator")]
pub struct Cli {
    /// Print JSON (for scripts) instead of aligned tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answer questions from the audit table (DynamoDB Query only, never Scan).
    #[command(subcommand)]
    Audit(Audit),
    /// Submit a FAILED batch's stored paths again as a new batch (new caller references), and
    /// start its execution: for a failure Step Functions can no longer redrive (14 days on).
    /// Needs dynamodb:Query/PutItem/UpdateItem on the table and states:StartExecution.
    Replay(ReplayArgs),
    /// Check that a deployed stack is wired: bucket notifications and Region, distributions
    /// and their origins, rules, dead-letter queues, alarm subscription, failed or stale
    /// batches. One line per check with its fix; exits non-zero when any fails.
    Doctor(DoctorArgs),
    /// Prove freshness on a distribution: write tricky keys under a prefix, prime them through
    /// the distribution, overwrite them, wait for their batch, fetch them again; report each
    /// key fresh or stale, and how the events encoded keys. Deletes its keys at the end; exits
    /// non-zero on any stale key.
    Canary(CanaryArgs),
    /// List the distributions with an origin serving a bucket (S3 REST or website endpoints,
    /// with or without OAC/OAI), their origin paths and the behaviors routing to them, and
    /// print the `DistributionIds` and `Routes` values for `sam deploy --parameter-overrides`.
    /// Read-only: needs cloudfront:ListDistributions.
    Discover(DiscoverArgs),
    /// Invalidate paths, a directory or cache tags on a distribution through the pipeline:
    /// joined to its open batch, bounded, and audited as manual with who asked and why.
    /// Needs dynamodb:Query/PutItem/UpdateItem/GetItem on the table and
    /// states:StartExecution on the batch machine.
    Invalidate(crate::invalidate::InvalidateArgs),
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The CloudFormation stack (default: the local stack file's).
    #[arg(long)]
    pub stack_name: Option<String>,
    /// Check only this distribution (repeatable; default: every one of DistributionIds).
    /// Failed and stale batches are then those of these distributions only.
    #[arg(long, short, value_name = "ID")]
    pub distribution: Vec<String>,
    /// A batch in the same status for longer than this is stale (the stale-batch alarm's).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "15m")]
    pub stale_after: Duration,
}

#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// The CloudFormation stack (default: the local stack file's).
    #[arg(long)]
    pub stack_name: Option<String>,
    /// The distribution to check.
    #[arg(long, short, value_name = "ID")]
    pub distribution: String,
    /// Its domain (default: from GetDistribution; a local stack's edge when it has one).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Where the canary's keys go; the stack's routes must send it to the distribution.
    #[arg(long, default_value = "_cfinv-canary/")]
    pub prefix: String,
    /// Give up after this long: two batches, each debounced and invalidated by CloudFront.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30m")]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The S3 bucket the stack will watch (its BucketName).
    #[arg(long)]
    pub bucket: String,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The FAILED batch, e.g. from `cfinv audit failed`.
    pub batch_id: String,
    /// How long the new batch's audit items are kept (the stack's RetentionDays).
    #[arg(long, default_value_t = 90, value_name = "DAYS", value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_days: u64,
}

/// Where the audit table is. Flags win over the stack file's values.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Audit table")]
pub struct TargetArgs {
    /// The audit table (the stack output `TableName`).
    #[arg(long, global = true, env = "CFINV_TABLE")]
    pub table: Option<String>,
    /// AWS region (default: the AWS environment or profile).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// DynamoDB endpoint, for a local or emulated DynamoDB.
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// A local stack's stack.json: table, region, endpoint and distributions, with dummy
    /// credentials. Default: .local/stack.json when it exists and no --table is given.
    #[arg(long, global = true, env = "CFINV_STACK")]
    pub stack: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Audit {
    /// History of one path on a distribution, newest first: each change, its S3 event, its
    /// invalidation and whether it completed.
    Path(PathArgs),
    /// Batches of a distribution in a time range: counts, billed paths, time to Completed.
    Batches(BatchesArgs),
    /// Failed batches and failed object-changed executions, with the execution ARN to redrive.
    Failed(FailedArgs),
    /// Batches OPEN, CLOSED or SUBMITTED for longer than expected.
    Stuck(StuckArgs),
    /// One batch in full: its paths, its plan, its invalidations and its timeline.
    Batch(BatchArgs),
    /// Totals for a month per distribution: batches, events, paths billed, invalidations.
    Month(MonthArgs),
    /// Manual invalidation requests (`cfinv invalidate`, "Invalidation Requested" events),
    /// newest first: who asked, on which distribution, for what and why, and the batches that
    /// took them or why they were refused. Needs dynamodb:Query on the table's byDistribution
    /// index.
    Requests(RequestsArgs),
}

#[derive(Debug, Args)]
pub struct PathArgs {
    /// The invalidation path as CloudFront sees it (encoded), e.g. /img/a%20b.png.
    #[arg(required_unless_present = "key", conflicts_with = "key", value_parser = parse_path)]
    pub path: Option<String>,
    /// An S3 key instead of a path: encoded as the functions encode it (no origin path).
    #[arg(long)]
    pub key: Option<String>,
    /// Distribution id (default: the stack's only distribution).
    #[arg(long, short, value_name = "ID")]
    pub distribution: Option<String>,
}

/// Stored paths are encoded: a path that is not would never be found.
fn parse_path(text: &str) -> Result<String, String> {
    if is_valid_path(text) {
        return Ok(text.to_owned());
    }
    Err(format!(
        "not a CloudFront invalidation path (it starts with /, and spaces, non-ASCII and the \
         like are %-encoded); for an S3 key use --key {:?}",
        text.strip_prefix('/').unwrap_or(text)
    ))
}

#[derive(Debug, Args)]
pub struct BatchesArgs {
    /// Distribution id (default: the stack's only distribution).
    #[arg(long, short, value_name = "ID")]
    pub distribution: Option<String>,
    #[command(flatten)]
    pub range: RangeArgs,
}

/// A time range (of batch openings, of requests): `--since` back from now, or `--from` [`--to`].
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// In the last DURATION (90s, 30m, 1h, 2d, 1h30m). Default: 24h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true, conflicts_with_all = ["from", "to"])]
    pub since: Option<Duration>,
    /// At or after this time (RFC 3339, e.g. 2026-11-25T10:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: Option<OffsetDateTime>,
    /// Before this time (RFC 3339). Default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "from")]
    pub to: Option<OffsetDateTime>,
}

#[derive(Debug, Args)]
pub struct FailedArgs {
    /// Only failures of the last DURATION (default: all that the table still holds).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true)]
    pub since: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct StuckArgs {
    /// In their status for longer than DURATION. The default matches the stale-batch alarm.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, allow_hyphen_values = true, default_value = "15m")]
    pub older_than: Duration,
}

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// The batch id (also the name of its invalidate-batch execution).
    pub batch_id: String,
}

#[derive(Debug, Args)]
pub struct MonthArgs {
    /// The month, YYYY-MM, in UTC (default: the current month).
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<YearMonth>,
    /// Distribution id; repeat for several (default: every distribution of the stack). The
    /// table cannot list its distributions without a Scan, so outside a stack this is required.
    #[arg(long, short, value_name = "ID")]
    pub distribution: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RequestsArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Only the requests on this distribution.
    #[arg(long, short, value_name = "ID")]
    pub distribution: Option<String>,
    /// Only the refused requests.
    #[arg(long)]
    pub refused: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_must_be_encoded_and_an_unencoded_one_suggests_key() {
        assert_eq!(parse_path("/img/a%20b.png").unwrap(), "/img/a%20b.png");
        let err = parse_path("/img/a b.png").unwrap_err();
        assert!(err.contains("--key \"img/a b.png\""), "{err}");
        assert!(parse_path("img/a.png").is_err());
    }

    #[test]
    fn a_negative_duration_is_named_as_such_not_taken_for_an_option() {
        for args in [
            ["cfinv", "audit", "stuck", "--older-than", "-5m"],
            ["cfinv", "audit", "batches", "--since", "-1h"],
            ["cfinv", "audit", "failed", "--since", "-2d"],
            ["cfinv", "audit", "requests", "--since", "-3h"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err().to_string();
            assert!(err.contains("not negative"), "{args:?}: {err}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
