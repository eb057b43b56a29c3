//! Harness for the end-to-end tests: the stack that `make e2e` started (described by
//! `.local/stack.json`), SDK clients pointed at it, its control API, and waits with deadlines.
//!
//! Tests share one stack and run in parallel; each test owns one distribution and its key
//! prefix (`d<i>/`, routed by the stack), so faults and counts never cross tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Deserialize)]
pub struct StackInfo {
    pub endpoint_url: String,
    pub region: String,
    pub bucket: String,
    pub distribution_ids: Vec<String>,
    pub table: String,
    pub state_machines: BTreeMap<String, String>,
    pub control_url: String,
    #[serde(default)]
    pub functions: BTreeMap<String, String>,
}

pub struct Stack {
    pub info: StackInfo,
    pub s3: aws_sdk_s3::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub cloudfront: aws_sdk_cloudfront::Client,
    pub sfn: aws_sdk_sfn::Client,
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
        let path = std::env::var_os("CFINV_STACK")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/stack.json")
            });
        let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "no local stack at {} ({e}): run the end-to-end tests with `make e2e`",
                path.display()
            )
        });
        let info: StackInfo = serde_json::from_str(&raw).expect("stack.json is valid");
        let conf = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&info.endpoint_url)
            .region(Region::new(info.region.clone()))
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

/// Polls `check` until it yields a value or the deadline passes (then panics with `what`).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
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
