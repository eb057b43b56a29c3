//! End-to-end: the `cfinv` binary as the tests run it, and its answers to bad arguments and to
//! what it cannot find (no pipeline run needed; `audit.rs` runs the pipeline its audit reads).
//!
//! The binary is the release build the local stack is started with (`make build`, which `make up`
//! and `make e2e` run), the one a user runs.

use std::path::PathBuf;
use std::process::Command;

use e2e::{Stack, stack_file};
use serde_json::Value;

pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "stderr: {}\nstdout: {}",
            self.stderr, self.stdout
        );
        self.stdout
    }

    pub(crate) fn json(self) -> Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

/// The CLI of `make build`: test executables live in `<target>/<profile>/deps`, the CLI in
/// `<target>/release`.
fn cfinv_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let bin = exe
        .ancestors()
        .nth(3)
        .expect("a target directory")
        .join("release")
        .join(format!("cfinv{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} does not exist: build it with `make build` (make up and make e2e do)",
        bin.display()
    );
    bin
}

/// Runs `cfinv <args>` with no stack but the one the arguments name, from a directory without
/// `.local/stack.json`.
fn cfinv_bare(args: &[&str]) -> Run {
    let out = Command::new(cfinv_binary())
        .args(args)
        .env_remove("CFINV_STACK")
        .env_remove("CFINV_TABLE")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run cfinv");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cfinv --stack <the test stack> <args>`.
pub(crate) fn cfinv(args: &[&str]) -> Run {
    let stack = stack_file();
    let mut all = vec!["--stack", stack.to_str().expect("a UTF-8 stack path")];
    all.extend_from_slice(args);
    cfinv_bare(&all)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_get_a_clear_message() {
    // Nothing to find: a friendly answer, exit 0.
    let stack = Stack::connect().await;
    let empty = cfinv(&["audit", "path", "/nothing.html", "-d", "ENOSUCH"]).ok();
    assert!(empty.starts_with("no history for /nothing.html"), "{empty}");

    // Usage errors (clap): exit 2 with the reason.
    for (args, message) in [
        (
            &["audit", "batches", "-d", "E", "--since", "1x"][..],
            "invalid duration \"1x\"",
        ),
        (
            &["audit", "stuck", "--older-than", "soon"],
            "invalid duration \"soon\"",
        ),
        (
            &["audit", "batches", "-d", "E", "--from", "yesterday"],
            "expected RFC 3339",
        ),
        (
            &[
                "audit",
                "batches",
                "-d",
                "E",
                "--since",
                "1h",
                "--from",
                "2026-01-01T00:00:00Z",
            ],
            "cannot be used with",
        ),
        (&["audit", "month", "--month", "2026-13"], "invalid month"),
        (&["audit", "path", "-d", "E"], "required"),
        (
            &["audit", "path", "/a b.png", "-d", "E"],
            "for an S3 key use --key \"a b.png\"",
        ),
    ] {
        let run = cfinv(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }

    // Errors found by the CLI: exit 1, one line.
    for (run, message) in [
        (
            cfinv(&["audit", "batch", "ENOSUCH-batch"]),
            format!("no batch ENOSUCH-batch in table {}", stack.info.table),
        ),
        (
            cfinv(&["audit", "batches", "-d", "ENOSUCH", "--since", "1h"]),
            format!(
                "distribution ENOSUCH has no batch in table {}",
                stack.info.table
            ),
        ),
        (
            cfinv(&["--table", "nope", "audit", "failed"]),
            format!("table nope not found in region {}", stack.info.region),
        ),
        (
            cfinv(&["audit", "batches"]),
            format!(
                "pass --distribution: the stack has {}",
                stack.info.distribution_ids.len() - stack.info.distribution_profiles.len()
            ),
        ),
        (
            cfinv_bare(&["--table", "t", "--region", "us-east-1", "audit", "month"]),
            "pass --distribution <ID> (repeatable)".to_owned(),
        ),
        (
            cfinv_bare(&["audit", "failed"]),
            "no table: pass --table".to_owned(),
        ),
    ] {
        assert_eq!(run.code, 1, "{message}: {}", run.stderr);
        assert!(
            run.stderr.starts_with("cfinv: ") && run.stderr.contains(&message),
            "{message}: {}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    }
}
