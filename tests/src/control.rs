//! The stack's control API (faults, holds, traces, running executions) and the calls the
//! tests make through it.

use serde_json::{Value, json};

use crate::{Lane, Stack, http};

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

/// A JSON POST to the control API; it answers JSON.
fn control_request(base: &str, command: &str, body: &Value) -> Value {
    let answer = http::request(
        base,
        "POST",
        &format!("/{command}"),
        Some(&body.to_string()),
    );
    assert!(
        (200..300).contains(&answer.status),
        "control {command}: HTTP {}\n{}",
        answer.status,
        answer.text()
    );
    serde_json::from_slice(&answer.body).unwrap_or(json!(null))
}
