//! The state machines and the Rust error type agree: every error name a `Retry` or `Catch` in
//! `statemachine/*.asl.json` matches is one the functions raise (or one of AWS's own), and
//! every transient error a task can raise is retried.

use std::collections::BTreeSet;
use std::path::Path;

use cfinv_core::Error;
use serde_json::Value;

/// Every variant, each classified: `Some(true)` a transient error a state machine must retry,
/// `Some(false)` a permanent one (the execution fails, visibly, and is redriven after a fix),
/// `None` raised only outside the state machines. The match is exhaustive, so a new variant
/// does not compile until it is classified here.
fn every_error() -> Vec<(Error, Option<bool>)> {
    let s = String::new;
    [
        Error::InvalidEvent(s()),
        Error::InvalidKey(s()),
        Error::InvalidConfig(s()),
        Error::InvalidInput(s()),
        Error::Throttling(s()),
        Error::ServiceUnavailable(s()),
        Error::TooManyInvalidationsInProgress(s()),
        Error::NoSuchDistribution(s()),
        Error::AccessDenied(s()),
        Error::InvalidationBatchAlreadyExists(s()),
        Error::CloudFrontRejected(s()),
        Error::StoreUnavailable(s()),
        Error::StoreError(s()),
        Error::WorkflowError(s()),
        Error::InvalidationNotCompleted(s()),
        Error::ManualRequestRefused(s()),
    ]
    .into_iter()
    .map(|e| {
        let class = match e {
            Error::Throttling(_)
            | Error::ServiceUnavailable(_)
            | Error::TooManyInvalidationsInProgress(_)
            | Error::StoreUnavailable(_) => Some(true),
            Error::InvalidEvent(_)
            | Error::InvalidKey(_)
            | Error::InvalidConfig(_)
            | Error::InvalidInput(_)
            | Error::NoSuchDistribution(_)
            | Error::AccessDenied(_)
            | Error::InvalidationBatchAlreadyExists(_)
            | Error::CloudFrontRejected(_)
            | Error::StoreError(_)
            | Error::InvalidationNotCompleted(_)
            | Error::ManualRequestRefused(_) => Some(false),
            // Only the sweep (an EventBridge schedule, no state machine) starts executions.
            Error::WorkflowError(_) => None,
        };
        (e, class)
    })
    .collect()
}

/// AWS's own error names (Step Functions, the Lambda service and runtime, service integrations).
fn is_aws_error(name: &str) -> bool {
    [
        "States.",
        "Lambda.",
        "Runtime.",
        "Sandbox.",
        "StepFunctions.",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// (machine file, "Retry" | "Catch", error name) of every matcher, nested states included.
fn matchers() -> Vec<(String, &'static str, String)> {
    fn walk(file: &str, states: &Value, out: &mut Vec<(String, &'static str, String)>) {
        for state in states.as_object().expect("States is an object").values() {
            for kind in ["Retry", "Catch"] {
                for rule in state[kind].as_array().into_iter().flatten() {
                    for name in rule["ErrorEquals"].as_array().expect("ErrorEquals") {
                        out.push((file.to_owned(), kind, name.as_str().unwrap().to_owned()));
                    }
                }
            }
            for branch in state["Branches"].as_array().into_iter().flatten() {
                walk(file, &branch["States"], out);
            }
            for key in ["ItemProcessor", "Iterator"] {
                if state[key].is_object() {
                    walk(file, &state[key]["States"], out);
                }
            }
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../statemachine");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("statemachine/") {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".asl.json") {
            let machine: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            walk(&file, &machine["States"], &mut out);
        }
    }
    assert!(
        !out.is_empty(),
        "no Retry or Catch found under {}",
        dir.display()
    );
    out
}

#[test]
fn every_error_a_state_machine_matches_is_one_the_functions_raise() {
    let ours: BTreeSet<&str> = every_error().iter().map(|(e, _)| e.name()).collect();
    let unknown: Vec<_> = matchers()
        .into_iter()
        .filter(|(_, _, name)| !is_aws_error(name) && !ours.contains(name.as_str()))
        .collect();
    assert!(unknown.is_empty(), "matched but never raised: {unknown:?}");
}

#[test]
fn every_transient_error_is_retried_and_no_permanent_one_is() {
    let retried: BTreeSet<String> = matchers()
        .into_iter()
        .filter(|(_, kind, _)| *kind == "Retry")
        .map(|(_, _, name)| name)
        .collect();
    for (error, class) in every_error() {
        match class {
            Some(true) => assert!(
                retried.contains(error.name()),
                "{} is not retried",
                error.name()
            ),
            Some(false) => assert!(
                !retried.contains(error.name()),
                "{} is permanent but retried",
                error.name()
            ),
            None => {}
        }
    }
}
