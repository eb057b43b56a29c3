//! Harness for the end-to-end tests: the stack that `make e2e` started (described by
//! `.local/stack.json`), SDK clients pointed at it, its control API, and waits with deadlines.
//!
//! Tests share one stack and run in parallel; each test owns one distribution and its key
//! prefix (`d<i>/`, routed by the stack), so faults and counts never cross tests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use cfinv_core::path::encode_path;
use serde::Deserialize;
use serde_json::{Value, json};

pub mod matrix;

#[derive(Debug, Clone, Deserialize)]
pub struct StackInfo {
    pub endpoint_url: String,
    pub region: String,
    pub bucket: String,
    pub distribution_ids: Vec<String>,
    pub table: String,
    pub state_machines: BTreeMap<String, String>,
    pub control_url: String,
    /// The functions' logs (one file per function) and the stack's own.
    pub logs_dir: PathBuf,
    #[serde(default)]
    pub functions: BTreeMap<String, String>,
    pub settings: Settings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub debounce_seconds: f64,
    /// The template's default unless the stack was started with another.
    #[serde(default = "default_grace_seconds")]
    pub grace_seconds: f64,
    pub poll_seconds: f64,
}

fn default_grace_seconds() -> f64 {
    60.0
}

impl StackInfo {
    pub fn debounce(&self) -> Duration {
        Duration::from_secs_f64(self.settings.debounce_seconds)
    }

    /// How long a batch may stay OPEN before the next joiner rotates it (debounce + grace).
    pub fn stale_after(&self) -> Duration {
        self.debounce() + Duration::from_secs_f64(self.settings.grace_seconds)
    }

    /// The longest a healthy pipeline may go without a visible change in what a test watches
    /// (batches, their events, CloudFront calls, coverage): the debounce twice, plus room for
    /// the state machines' longest retry waits (60 s capped backoff, 30 s for
    /// TooManyInvalidationsInProgress) several times over. A wait fails only after this long
    /// without progress, so a slow machine that keeps moving is waited for.
    pub fn quiet_window(&self) -> Duration {
        (self.debounce() * 2).max(Duration::from_secs(60)) + Duration::from_secs(240)
    }
}

pub struct Stack {
    pub info: StackInfo,
    pub s3: aws_sdk_s3::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub cloudfront: aws_sdk_cloudfront::Client,
    pub sfn: aws_sdk_sfn::Client,
    /// Invalidations already read with GetInvalidation, by id: their paths, caller reference
    /// and creation time never change, so a poll reads only new ones (ten lanes polling every
    /// invalidation every few seconds were a large share of the one emulator's load).
    seen_invalidations: std::sync::Mutex<HashMap<String, Invalidation>>,
}

/// One S3 change a test makes.
#[derive(Debug, Clone)]
pub enum Change {
    Put(String),
    Delete(String),
}

impl Change {
    pub fn key(&self) -> &str {
        match self {
            Change::Put(key) | Change::Delete(key) => key,
        }
    }
}

/// A distribution owned by one test, with the key prefix routed to it.
#[derive(Debug, Clone)]
pub struct Lane {
    pub index: usize,
    pub distribution_id: String,
    pub prefix: String,
}

impl Stack {
    /// The stack named by `CFINV_STACK` (default: `.local/stack.json` at the workspace root).
    pub async fn connect() -> Stack {
        let path = stack_file();
        let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "no local stack at {} ({e}): run the end-to-end tests with `make e2e`",
                path.display()
            )
        });
        let info: StackInfo = serde_json::from_str(&raw).expect("stack.json is valid");
        // The emulator, one Python process shared by eleven lanes (and, on a busy machine, other
        // jobs), can take seconds to accept a connection: the SDK's 3.1 s connect timeout and
        // three attempts would fail a test's own write, which says nothing about the pipeline.
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&info.endpoint_url)
            .region(Region::new(info.region.clone()))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(60))
                    .build(),
            )
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(10))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "local-stack",
            ))
            .load()
            .await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&conf)
                .force_path_style(true)
                .build(),
        );
        Stack {
            s3,
            ddb: aws_sdk_dynamodb::Client::new(&conf),
            cloudfront: aws_sdk_cloudfront::Client::new(&conf),
            sfn: aws_sdk_sfn::Client::new(&conf),
            info,
            seen_invalidations: Default::default(),
        }
    }

    pub fn lane(&self, index: usize) -> Lane {
        let distribution_id = self
            .info
            .distribution_ids
            .get(index)
            .unwrap_or_else(|| panic!("the stack has no distribution #{index}; start it with more"))
            .clone();
        Lane {
            index,
            distribution_id,
            prefix: format!("d{index}/"),
        }
    }

    pub fn state_machine(&self, logical_id: &str) -> &str {
        self.info
            .state_machines
            .get(logical_id)
            .unwrap_or_else(|| panic!("stack.json names no state machine {logical_id}"))
    }

    /// POST `<control_url>/<command>` with a JSON body; the stack answers JSON.
    pub fn control(&self, command: &str, body: Value) -> Value {
        control_request(&self.info.control_url, command, &body)
    }

    pub async fn put(&self, key: &str, body: &str) {
        self.s3
            .put_object()
            .bucket(&self.info.bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }

    /// Puts `<lane prefix><name>` for each name, one after the other; returns (CloudFront path,
    /// time written) for each.
    pub async fn write(&self, lane: &Lane, names: &[&str]) -> Vec<(String, f64)> {
        let changes: Vec<Change> = names
            .iter()
            .map(|name| Change::Put(format!("{}{name}", lane.prefix)))
            .collect();
        self.apply(&changes, 1, Duration::ZERO).await
    }

    /// Makes `changes` in order, `parallel` at a time, spreading the waves evenly over `spread`
    /// (zero: as fast as the stack takes them). Returns (CloudFront path, time the change was
    /// acknowledged) for each.
    pub async fn apply(
        &self,
        changes: &[Change],
        parallel: usize,
        spread: Duration,
    ) -> Vec<(String, f64)> {
        let waves = changes.len().div_ceil(parallel).max(1);
        let gap = spread / u32::try_from(waves).expect("fewer than 4 billion waves");
        let started = Instant::now();
        let mut writes = Vec::with_capacity(changes.len());
        for (n, wave) in changes.chunks(parallel).enumerate() {
            let due = gap * u32::try_from(n).expect("wave index fits");
            tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
            let tasks: Vec<_> = wave
                .iter()
                .map(|change| {
                    let (s3, bucket, change) =
                        (self.s3.clone(), self.info.bucket.clone(), change.clone());
                    tokio::spawn(async move {
                        let sent = match &change {
                            Change::Put(key) => s3
                                .put_object()
                                .bucket(bucket)
                                .key(key)
                                .body(b"v".to_vec().into())
                                .send()
                                .await
                                .map(drop)
                                .map_err(|e| format!("{e:?}")),
                            Change::Delete(key) => s3
                                .delete_object()
                                .bucket(bucket)
                                .key(key)
                                .send()
                                .await
                                .map(drop)
                                .map_err(|e| format!("{e:?}")),
                        };
                        sent.unwrap_or_else(|e| panic!("{change:?}: {e}"));
                        (encode_path(change.key()), now_epoch())
                    })
                })
                .collect();
            for task in tasks {
                writes.push(task.await.expect("change task"));
            }
        }
        writes
    }

    pub async fn delete(&self, key: &str) {
        self.s3
            .delete_object()
            .bucket(&self.info.bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("delete {key}: {e:?}"));
    }
}

/// The stack file the tests use: `CFINV_STACK`, else `.local/stack.json` at the workspace root.
pub fn stack_file() -> PathBuf {
    std::env::var_os("CFINV_STACK")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/stack.json"))
}

/// Polls `check` until it yields a value or the deadline passes (then panics with `what`).
/// For waits on the stack's own pace (not on the pipeline's), e.g. a control call's effect.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_until(timeout, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// No single wait runs longer than this, however much progress it sees (CI's whole run is
/// bounded at 90 minutes).
const WAIT_CAP: Duration = Duration::from_secs(40 * 60);

/// Polls `check` until it yields `Ok`. `Err` carries what it saw; the wait gives up (with an
/// `Err` saying how long it ran, how long nothing moved and what it saw last) only when that has
/// not changed for `quiet` (see [`StackInfo::quiet_window`]), so its deadline follows the work
/// in flight instead of a guess at this machine's speed.
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

/// Polls `check` until it yields a value (`Some`) or the deadline passes (`None`).
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    // Quick at first, then at most every 2 s: many tests poll the one emulator at once.
    let mut pause = Duration::from_millis(250);
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(2));
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

/// A minimal HTTP/1.1 JSON POST (the control API is on loopback; no client crate needed).
fn control_request(base: &str, command: &str, body: &Value) -> Value {
    let rest = base
        .strip_prefix("http://")
        .expect("control_url is http://host:port/path");
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let path = format!("/{}/{command}", path.trim_end_matches('/')).replace("//", "/");
    let payload = body.to_string();
    let mut stream =
        TcpStream::connect(host).unwrap_or_else(|e| panic!("control API at {host}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    )
    .expect("write control request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read control response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(
        head.starts_with("HTTP/1.1 2") || head.starts_with("HTTP/1.0 2"),
        "control {command}: {head}\n{body}"
    );
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return serde_json::from_str(&dechunk(body)).unwrap_or(json!(null));
    }
    serde_json::from_str(body).unwrap_or(json!(null))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// Batches in one line: counts by status and the events they planned, then the unfinished ones
/// by id (with their last error).
pub fn describe(batches: &[BTreeMap<String, String>]) -> String {
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut events = 0;
    let mut unfinished = Vec::new();
    for b in batches {
        let status = b.get("status").map_or("?", String::as_str);
        *by_status.entry(status).or_default() += 1;
        events += b
            .get("eventsReceived")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        if status != "COMPLETED" {
            let error = b
                .get("lastError")
                .map(|e| format!(", {}", e.chars().take(80).collect::<String>()))
                .unwrap_or_default();
            unfinished.push(format!("{} {status}{error}", b["batchId"]));
        }
    }
    format!(
        "{} batches {by_status:?} planning {events} events; unfinished: [{}]",
        batches.len(),
        unfinished.join("; ")
    )
}

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

    /// Holds the lane's distribution at its in-progress limit (every CreateInvalidation answered
    /// `TooManyInvalidationsInProgress`) until the returned fault is cleared or `seconds` pass.
    pub fn hold_limit(&self, lane: &Lane, seconds: u64) -> Value {
        self.control(
            "cloudfront/hold-limit",
            json!({"distribution_id": lane.distribution_id, "seconds": seconds}),
        )
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

    /// Executions still running for the lane: object-changed ones (their input holds the lane's
    /// keys), where a task retry may still add a path to a batch, and batch ones (their input
    /// names the distribution), e.g. the flush of a batch whose opener died, not listed until
    /// it closes.
    pub fn running_for(&self, lane: &Lane) -> u64 {
        [
            format!("\"{}", lane.prefix),
            format!("\"{}\"", lane.distribution_id),
        ]
        .into_iter()
        .map(|marker| {
            self.control("sfn/running", json!({ "contains": marker }))["running"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum()
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

    /// Every item of the failures index (`byStatus`, `statusPk = FAILED`): batches and events.
    pub async fn failed_items(&self) -> Vec<HashMap<String, AttributeValue>> {
        let query = self
            .ddb
            .query()
            .table_name(&self.info.table)
            .index_name("byStatus")
            .key_condition_expression("statusPk = :f")
            .expression_attribute_values(":f", AttributeValue::S("FAILED".into()));
        query_all(query, "query byStatus").await
    }

    /// Every CreateInvalidation request the lane's distribution received.
    pub fn calls(&self, lane: &Lane) -> Vec<Call> {
        let got = self.control(
            "cloudfront/calls",
            json!({"distribution_id": lane.distribution_id}),
        );
        serde_json::from_value(got["calls"].clone()).expect("calls")
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

    /// The lane's batches in one line, for a wait's report (see [`describe`]).
    pub async fn describe_batches(&self, lane: &Lane) -> String {
        describe(&self.batches(lane).await)
    }

    /// The batch items of a distribution (byDistribution index), oldest first.
    pub async fn batches(&self, lane: &Lane) -> Vec<BTreeMap<String, String>> {
        let query = self
            .ddb
            .query()
            .table_name(&self.info.table)
            .index_name("byDistribution")
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(
                ":pk",
                AttributeValue::S(format!("DIST#{}", lane.distribution_id)),
            );
        let items = query_all(query, "query byDistribution").await;
        items.iter().map(text_item).collect()
    }

    /// The ids of the lane's batches now, to tell a test's own batches from earlier runs'.
    pub async fn batch_ids(&self, lane: &Lane) -> BTreeSet<String> {
        let batches = self.batches(lane).await;
        batches.into_iter().map(|b| b["batchId"].clone()).collect()
    }

    /// The id of a batch of the lane in `status` that is not one of `earlier`.
    pub async fn new_batch_in(
        &self,
        lane: &Lane,
        earlier: &BTreeSet<String>,
        status: &str,
    ) -> Option<String> {
        self.batches(lane)
            .await
            .into_iter()
            .find(|b| {
                b.get("status").map(String::as_str) == Some(status)
                    && !earlier.contains(&b["batchId"])
            })
            .map(|b| b["batchId"].clone())
    }

    /// A batch's item (`BATCH#<id>` / `META`), read strongly consistently, as text values.
    pub async fn batch_item(&self, batch_id: &str) -> Option<BTreeMap<String, String>> {
        use cfinv_core::schema::keys;
        let out = self
            .ddb
            .get_item()
            .table_name(&self.info.table)
            .consistent_read(true)
            .key("PK", AttributeValue::S(keys::batch_pk(batch_id)))
            .key("SK", AttributeValue::S(keys::META.into()))
            .send()
            .await
            .expect("GetItem of a batch");
        out.item().map(text_item)
    }

    /// The keys whose paths have joined the lane's OPEN batches so far.
    pub async fn joined_keys(&self, lane: &Lane) -> BTreeSet<String> {
        let mut joined = BTreeSet::new();
        for batch in self.batches(lane).await {
            if batch.get("status").map(String::as_str) == Some("OPEN") {
                let paths = self.path_items(&batch["batchId"]).await;
                joined.extend(paths.into_iter().filter_map(|mut p| p.remove("key")));
            }
        }
        joined
    }

    /// A batch's path items (`BATCH#<id>` / `PATH#...`), read strongly consistently, as text.
    pub async fn path_items(&self, batch_id: &str) -> Vec<BTreeMap<String, String>> {
        use cfinv_core::schema::keys;
        let query = self
            .ddb
            .query()
            .table_name(&self.info.table)
            .consistent_read(true)
            .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::batch_pk(batch_id)))
            .expression_attribute_values(":prefix", AttributeValue::S(keys::PATH_PREFIX.into()));
        let items = query_all(query, "read a batch's paths").await;
        items.iter().map(text_item).collect()
    }

    /// Holds the lane's flushes: its create-invalidation invocations wait (a `lambda_hold`
    /// fault), so a batch that opens stays OPEN however slowly this machine carries events to
    /// it. Returns the fault, for [`Stack::release`].
    pub fn hold_flushes(&self, lane: &Lane) -> Value {
        self.control(
            "faults/set",
            json!({"kind": "lambda_hold", "function": "CreateInvalidationFunction", "contains": lane.distribution_id}),
        )
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

    /// Clears a fault (a hold lets its invocations go on).
    pub fn release(&self, fault: &Value) {
        self.control("faults/clear", json!({"id": fault["id"]}));
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

    /// Where the changes whose S3 event names `marker` went: the events, their deliveries to
    /// Step Functions (and dead letters) and the executions whose input names it, with status,
    /// error and cause.
    pub fn trace(&self, marker: &str) -> Value {
        self.control("trace", json!({ "contains": marker }))
    }

    /// The ARN of the batch machine's execution named `batch_id` (executions are named after
    /// their batch).
    pub fn batch_execution_arn(&self, batch_id: &str) -> String {
        format!(
            "{}:{batch_id}",
            self.state_machine("InvalidateBatchStateMachine")
                .replace(":stateMachine:", ":execution:")
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

    /// Status of the batch machine's execution named `batch_id`.
    pub async fn batch_execution_status(&self, batch_id: &str) -> Option<String> {
        let out = self
            .sfn
            .describe_execution()
            .execution_arn(self.batch_execution_arn(batch_id))
            .send()
            .await
            .ok()?;
        Some(out.status().as_str().to_owned())
    }

    /// The state a failed batch execution failed in: the last state it entered.
    pub async fn failed_state(&self, batch_id: &str) -> Option<String> {
        let history = self
            .sfn
            .get_execution_history()
            .execution_arn(self.batch_execution_arn(batch_id))
            .max_results(1000)
            .send()
            .await
            .ok()?;
        history
            .events()
            .iter()
            .filter_map(|e| Some((e.id(), e.state_entered_event_details()?)))
            .max_by_key(|(id, _)| *id)
            .map(|(_, d)| d.name().to_owned())
    }

    /// Redrives the failed execution of a batch (what an operator does from the console).
    pub async fn redrive_batch(&self, batch_id: &str) {
        self.sfn
            .redrive_execution()
            .execution_arn(self.batch_execution_arn(batch_id))
            .send()
            .await
            .unwrap_or_else(|e| panic!("RedriveExecution {batch_id}: {e:?}"));
    }
}

/// An item's attributes as text (strings and numbers as they are, the rest in debug form).
/// Every item `query` finds, page after page.
async fn query_all(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    what: &str,
) -> Vec<HashMap<String, AttributeValue>> {
    let mut pages = query.into_paginator().send();
    let mut items = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| panic!("{what}: {e:?}"));
        items.extend(page.items.unwrap_or_default());
    }
    items
}

fn text_item(item: &HashMap<String, AttributeValue>) -> BTreeMap<String, String> {
    item.iter()
        .map(|(k, v)| {
            let text = match v {
                AttributeValue::S(s) => s.clone(),
                AttributeValue::N(n) => n.clone(),
                other => format!("{other:?}"),
            };
            (k.clone(), text)
        })
        .collect()
}

/// Whether CloudFront path `p` (possibly a trailing-`*` wildcard) invalidates `path`.
pub fn covers(p: &str, path: &str) -> bool {
    match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => p == path,
    }
}

/// Seconds since the epoch, as the local CloudFront's clock counts them.
pub fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

impl Stack {
    /// Writes, through the real DynamoDB adapter, what an opener that died before its flush
    /// started leaves behind: the pointer, the OPEN batch (opened a minute longer ago than a
    /// batch may stay open, so the next joiner rotates it) and one path.
    /// Returns the batch id and the staged (path, time).
    pub async fn stage_dead_opener(&self, lane: &Lane, name: &str) -> (String, (String, f64)) {
        use cfinv_core::collect::PathChange;
        use cfinv_core::event::ChangeKind;
        use cfinv_core::store::JoinStore;

        let (store, batch, opened_at) = self.stage_stale_pointer(lane).await;
        store.create_batch(&batch, opened_at).await.unwrap();
        let key = format!("{}{name}", lane.prefix);
        let change = PathChange {
            distribution_id: lane.distribution_id.clone(),
            path: format!("/{key}"),
            bucket: self.info.bucket.clone(),
            key,
            version_id: None,
            etag: None,
            sequencer: None,
            event_time: None,
            event_id: Some(format!("staged-{name}")),
            change: ChangeKind::Created,
            reason: None,
        };
        store
            .put_path(&batch.batch_id, &change, opened_at)
            .await
            .unwrap();
        (batch.batch_id, (change.path, now_epoch()))
    }

    /// What an opener that died right after its pointer swap leaves behind: a pointer, old
    /// enough to be rotated, to a batch that has no item and no path. Returns the batch id.
    pub async fn stage_orphan_pointer(&self, lane: &Lane) -> String {
        self.stage_stale_pointer(lane).await.1.batch_id
    }

    /// Points the lane's distribution at a new batch opened a minute longer ago than a batch
    /// may stay open, through the real DynamoDB adapter.
    async fn stage_stale_pointer(
        &self,
        lane: &Lane,
    ) -> (
        cfinv_core::dynamo::DynamoStore,
        cfinv_core::model::BatchRef,
        time::OffsetDateTime,
    ) {
        use cfinv_core::dynamo::DynamoStore;
        use cfinv_core::model::{BatchRef, OpenPointer, new_batch_id};
        use cfinv_core::store::PointerStore;

        let store = DynamoStore::new(
            self.ddb.clone(),
            &self.info.table,
            Duration::from_secs(86_400),
        );
        let age = self.info.stale_after() + Duration::from_secs(60);
        let opened_at = time::OffsetDateTime::now_utc() - age;
        let batch = BatchRef {
            batch_id: new_batch_id(&lane.distribution_id, opened_at),
            distribution_id: lane.distribution_id.clone(),
        };
        let pointer = OpenPointer {
            batch_id: batch.batch_id.clone(),
            opened_at,
        };
        let current = store
            .get_pointer(&lane.distribution_id)
            .await
            .unwrap()
            .map(|p| p.batch_id);
        assert!(
            store
                .swap_pointer(&lane.distribution_id, &pointer, current.as_deref())
                .await
                .unwrap()
        );
        (store, batch, opened_at)
    }
}
