//! The stack's control API (faults, holds, traces, running executions): a minimal HTTP client
//! for it and the calls the tests make through it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Lane, Stack};

impl Stack {
    /// POST `<control_url>/<command>` with a JSON body; the stack answers JSON.
    pub fn control(&self, command: &str, body: Value) -> Value {
        control_request(&self.info.control_url, command, &body)
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

    /// Clears a fault (a hold lets its invocations go on).
    pub fn release(&self, fault: &Value) {
        self.control("faults/clear", json!({"id": fault["id"]}));
    }

    /// Holds the lane's distribution at its in-progress limit (every CreateInvalidation answered
    /// `TooManyInvalidationsInProgress`) until the returned fault is cleared or `seconds` pass.
    pub fn hold_limit(&self, lane: &Lane, seconds: u64) -> Value {
        self.control(
            "cloudfront/hold-limit",
            json!({"distribution_id": lane.distribution_id, "seconds": seconds}),
        )
    }

    /// Where the changes whose S3 event names `marker` went: the events, their deliveries to
    /// Step Functions (and dead letters) and the executions whose input names it, with status,
    /// error and cause.
    pub fn trace(&self, marker: &str) -> Value {
        self.control("trace", json!({ "contains": marker }))
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
