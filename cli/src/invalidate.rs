//! `cfinv invalidate`: a manual invalidation through the pipeline (docs/design.md §9). The
//! request is checked and recorded by `functions/core/src/manual.rs` (who asked: the caller's
//! STS identity; why: `--reason`), its paths join the distribution's open batch by the join
//! protocol dedupe runs (`functions/core/src/join.rs`), and the batch's flush is asked for
//! like any other, so the request is batched, kept within CloudFront's in-progress limits,
//! billed once and audited.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use cfinv_core::join::Settings;
use cfinv_core::manual::{Ask, ManualLimits, ManualRequest, Requester, new_request_id, submit};
use cfinv_core::metrics::Metrics;
use cfinv_core::model::{BatchStatus, FlushRequest, SystemClock};
use cfinv_core::workflow::{StepFunctions, Workflow};
use clap::Args;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::queries::AuditTable;
use crate::report::Answer;
use crate::{Error, Result, error_chain};

/// The batch machine's logical id in the template (stack.json `state_machines`).
const BATCH_MACHINE: &str = "InvalidateBatchStateMachine";

#[derive(Debug, Args)]
pub struct InvalidateArgs {
    /// The distribution to invalidate on.
    #[arg(long, short, value_name = "ID")]
    pub distribution: String,
    /// Invalidation paths as CloudFront sees them (encoded: /img/a%20b.png).
    #[arg(required_unless_present_any = ["prefix", "tag"])]
    pub paths: Vec<String>,
    /// A directory (/dir/), invalidated as /dir/*; repeatable.
    #[arg(long, value_name = "DIR")]
    pub prefix: Vec<String>,
    /// A cache tag, invalidated as #TAG; repeatable.
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Allow /* (the whole distribution).
    #[arg(long)]
    pub all: bool,
    /// Why: kept in the audit trail with who asked.
    #[arg(long)]
    pub reason: Option<String>,
    /// Follow the batch until its invalidations are Completed.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long, value_name = "DURATION", value_parser = crate::span::parse_duration, default_value = "30m")]
    pub timeout: Duration,
    /// The stack's InvalidateBatchStateMachineArn output (default: the local stack's).
    #[arg(long, value_name = "ARN")]
    pub batch_machine: Option<String>,
    #[command(flatten)]
    pub stack: StackSettings,
}

/// The stack's settings the request must follow (default: the local stack's parameters, else
/// the template's defaults). The CLI's caller can write the table anyway: these bound mistakes,
/// the event path bounds whoever may put events on the bus.
#[derive(Debug, Args)]
pub struct StackSettings {
    #[arg(long, value_name = "SECONDS")]
    pub debounce_seconds: Option<u64>,
    #[arg(long, value_name = "SECONDS")]
    pub grace_seconds: Option<u64>,
    /// ManualMaxPaths.
    #[arg(long, value_name = "N")]
    pub max_paths: Option<usize>,
    /// ManualMaxPathsPerHour.
    #[arg(long, value_name = "N")]
    pub max_paths_per_hour: Option<usize>,
    #[arg(long, default_value_t = 90, value_name = "DAYS", value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_days: u64,
}

/// What `cfinv invalidate` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invalidated {
    pub request_id: String,
    pub distribution_id: String,
    pub requested_by: String,
    pub items: Vec<String>,
    pub batch_ids: Vec<String>,
    /// With --wait: the batches' final status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl Answer for Invalidated {
    fn text(&self) -> String {
        let mut text = format!(
            "request {} by {} on {}: {}\n",
            self.request_id,
            self.requested_by,
            self.distribution_id,
            self.items.join(" ")
        );
        for b in &self.batch_ids {
            text.push_str(&format!("batch {b}\n"));
        }
        if let Some(status) = &self.status {
            text.push_str(&format!("{status}\n"));
        }
        text
    }
}

/// The local stack's `stack.json` fields this command reads.
#[derive(Debug, Default, Deserialize)]
struct StackExtras {
    #[serde(default)]
    state_machines: BTreeMap<String, String>,
    #[serde(default)]
    settings: StackSettingsFile,
}

#[derive(Debug, Default, Deserialize)]
struct StackSettingsFile {
    #[serde(default)]
    parameters: BTreeMap<String, serde_json::Value>,
}

impl StackExtras {
    fn read(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("{} is not a stack file: {e}", path.display())))
    }

    fn parameter<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        let text = match self.settings.parameters.get(name) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => return default,
        };
        text.parse().unwrap_or(default)
    }
}

/// Checks, joins and records the request (core's `submit`); starts the flush; with `--wait`,
/// follows it.
pub async fn invalidate(
    table: &AuditTable,
    distributions: &[String],
    stack_file: Option<&Path>,
    a: &InvalidateArgs,
    now: OffsetDateTime,
) -> Result<Invalidated> {
    let extras = StackExtras::read(stack_file)?;
    let machine = a
        .batch_machine
        .clone()
        .or_else(|| extras.state_machines.get(BATCH_MACHINE).cloned())
        .ok_or_else(|| {
            Error::Usage(
                "pass --batch-machine (the stack output InvalidateBatchStateMachineArn)".into(),
            )
        })?;
    let settings = Settings {
        debounce: Duration::from_secs(
            a.stack
                .debounce_seconds
                .unwrap_or_else(|| extras.parameter("DebounceSeconds", 30)),
        ),
        grace: Duration::from_secs(
            a.stack
                .grace_seconds
                .unwrap_or_else(|| extras.parameter("GraceSeconds", 60)),
        ),
    };
    // Outside a stack file the table cannot list its distributions: the one given stands.
    let known = if distributions.is_empty() {
        vec![a.distribution.clone()]
    } else {
        distributions.to_vec()
    };
    let limits = ManualLimits {
        distributions: known,
        max_paths_per_request: a
            .stack
            .max_paths
            .unwrap_or_else(|| extras.parameter("ManualMaxPaths", ManualLimits::DEFAULT_MAX_PATHS)),
        max_paths_per_hour: a.stack.max_paths_per_hour.unwrap_or_else(|| {
            extras.parameter(
                "ManualMaxPathsPerHour",
                ManualLimits::DEFAULT_MAX_PATHS_PER_HOUR,
            )
        }),
        sources: Vec::new(),
        account: None,
    };
    let ask = Ask {
        request: ManualRequest {
            distribution_id: a.distribution.clone(),
            paths: a.paths.clone(),
            prefixes: a.prefix.clone(),
            tags: a.tag.clone(),
            allow_all: a.all,
            reason: a.reason.clone(),
        },
        requester: Requester::cli(caller_identity(table).await?),
        request_id: new_request_id(now),
    };
    let store = table.store(Duration::from_secs(a.stack.retention_days * 86_400));
    let submitted = submit(
        &store,
        &SystemClock,
        settings,
        &Metrics::silent(),
        &ask,
        &limits,
    )
    .await
    .map_err(|e| Error::Dynamo(e.to_string()))?
    .map_err(|refusal| Error::Usage(format!("refused (recorded in the audit): {refusal}")))?;
    let joined = &submitted.joined;
    let batch_ids: Vec<String> = joined
        .flushes
        .iter()
        .map(|f| f.batch.batch_id.clone())
        .collect();
    for flush in &joined.flushes {
        start_flush(table, &machine, flush).await?;
    }
    let status = if a.wait {
        Some(wait_completed(table, &batch_ids, a.timeout).await?)
    } else {
        None
    };
    Ok(Invalidated {
        request_id: ask.request_id,
        distribution_id: ask.request.distribution_id,
        requested_by: ask.requester.identity,
        items: submitted.items,
        batch_ids,
        status,
    })
}

/// Who is asking: the caller's ARN (`sts:GetCallerIdentity` needs no permission).
async fn caller_identity(table: &AuditTable) -> Result<String> {
    let sts = aws_sdk_sts::Client::new(table.sdk_config());
    let me = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| Error::Usage(format!("cannot tell who you are: {}", error_chain(&e))))?;
    me.arn()
        .map(str::to_owned)
        .ok_or_else(|| Error::Usage("GetCallerIdentity returned no ARN".into()))
}

/// Starts the batch's flush as the sweep does (core's `StepFunctions`): named by the batch, so
/// a flush already asked for (running, or with another joiner's input) is not started twice.
async fn start_flush(table: &AuditTable, machine: &str, flush: &FlushRequest) -> Result<()> {
    let sfn = StepFunctions::new(aws_sdk_sfn::Client::new(table.sdk_config()), machine);
    sfn.start_flush(flush).await.map(drop).map_err(|e| {
        Error::Usage(format!(
            "batch {} holds the paths, but its flush did not start ({e}); the sweep restarts it \
             once it is stale",
            flush.batch.batch_id
        ))
    })
}

/// Polls the batches' items until every one is COMPLETED; FAILED or the deadline is an error.
async fn wait_completed(
    table: &AuditTable,
    batch_ids: &[String],
    timeout: Duration,
) -> Result<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut pending = Vec::new();
        for id in batch_ids {
            let status = table.batch_items(id).await?.map(|items| items.batch.status);
            match status {
                Some(BatchStatus::Completed) => {}
                Some(BatchStatus::Failed) => {
                    return Err(Error::Usage(format!(
                        "batch {id} FAILED: see cfinv audit batch {id}"
                    )));
                }
                other => pending.push(format!("{id} {}", other.map_or("-", |s| s.as_str()))),
            }
        }
        if pending.is_empty() {
            return Ok("Completed".into());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Usage(format!(
                "not Completed after {}s: {}",
                timeout.as_secs(),
                pending.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
