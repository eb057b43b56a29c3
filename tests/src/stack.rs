//! The stack handle: what `stack.json` describes, SDK clients pointed at the stack, the lanes
//! tests own, and the S3 changes a test makes.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use cfinv_core::path::encode_path;
use serde::Deserialize;

use crate::Invalidation;

#[derive(Debug, Clone, Deserialize)]
pub struct StackInfo {
    pub endpoint_url: String,
    pub region: String,
    pub bucket: String,
    pub distribution_ids: Vec<String>,
    pub table: String,
    pub state_machines: BTreeMap<String, String>,
    /// Queue URLs by logical id (the ingest queue, the dead-letter queues).
    #[serde(default)]
    pub queues: BTreeMap<String, String>,
    pub control_url: String,
    /// The functions' logs (one file per function) and the stack's own.
    pub logs_dir: PathBuf,
    #[serde(default)]
    pub functions: BTreeMap<String, String>,
    /// Each distribution's viewer endpoint (`http://127.0.0.1:PORT`), by distribution id.
    #[serde(default)]
    pub edges: BTreeMap<String, String>,
    /// The distributions configured for one case each (local/deploy.py `PROFILES`), by id.
    #[serde(default)]
    pub distribution_profiles: BTreeMap<String, String>,
    /// The stack's `Routes`; empty when it routes by discovery (`local up --discover`).
    #[serde(default)]
    pub routes: Vec<serde_json::Value>,
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
    /// The SDK configuration the clients below share, for a client of another service.
    pub conf: aws_config::SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub cloudfront: aws_sdk_cloudfront::Client,
    pub sfn: aws_sdk_sfn::Client,
    /// Invalidations already read with GetInvalidation, by id: their paths, caller reference
    /// and creation time never change, so a poll reads only new ones (ten lanes polling every
    /// invalidation every few seconds were a large share of the one emulator's load).
    pub(crate) seen_invalidations: std::sync::Mutex<HashMap<String, Invalidation>>,
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
            conf,
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

    /// The distribution of a profile (local/deploy.py `PROFILES`) as a lane whose keys start
    /// with `prefix`; its case needs a stack that routes by discovery.
    pub fn profile(&self, name: &str, prefix: &str) -> Lane {
        assert!(
            self.info.routes.is_empty(),
            "profile {name} needs a stack routing by discovery: start it with `local up --discover`"
        );
        let (index, distribution_id) = self
            .info
            .distribution_ids
            .iter()
            .enumerate()
            .find(|(_, id)| {
                self.info.distribution_profiles.get(*id).map(String::as_str) == Some(name)
            })
            .unwrap_or_else(|| panic!("stack.json lists no distribution of profile {name}"));
        Lane {
            index,
            distribution_id: distribution_id.clone(),
            prefix: prefix.to_owned(),
        }
    }

    pub fn state_machine(&self, logical_id: &str) -> &str {
        self.info
            .state_machines
            .get(logical_id)
            .unwrap_or_else(|| panic!("stack.json names no state machine {logical_id}"))
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
    /// (zero: as fast as the stack takes them); change `i` puts [`change_body`]`(i, key)`.
    /// Returns (CloudFront path, time the change was acknowledged) for each.
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
                .enumerate()
                .map(|(i, change)| {
                    let (s3, bucket, change) =
                        (self.s3.clone(), self.info.bucket.clone(), change.clone());
                    let body = change_body(n * parallel + i, change.key());
                    tokio::spawn(async move {
                        let sent = match &change {
                            Change::Put(key) => s3
                                .put_object()
                                .bucket(bucket)
                                .key(key)
                                .body(body.into_bytes().into())
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

/// What [`Stack::apply`] writes for its `index`-th change: each version of an object differs,
/// so a viewer can tell a stale copy from a fresh one.
pub fn change_body(index: usize, key: &str) -> String {
    format!("change {index} of {key}")
}

/// The stack file the tests use: `CFINV_STACK`, else `.local/stack.json` at the workspace root.
pub fn stack_file() -> PathBuf {
    std::env::var_os("CFINV_STACK")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/stack.json"))
}

/// Seconds since the epoch, as the local CloudFront's clock counts them.
pub fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}
