//! Manual invalidations through the pipeline (`cfinv invalidate`, docs/design.md §9): requests
//! over each bound are refused with nothing invalidated, and one within them completes and
//! shows in the audit as manual, with who asked and why. Lane 27 is this file's; nothing writes
//! to its prefix, so every invalidation on it is this test's.

use e2e::Stack;
use serde_json::json;

use crate::cli::cfinv;

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_invalidation_is_bounded_batched_completed_and_audited() {
    let stack = Stack::connect().await;
    let lane = stack.lane(27);
    let dist = lane.distribution_id.as_str();
    let invalidations = || {
        stack.control("cloudfront/invalidations", json!({"distribution_id": dist}))["invalidations"]
            .as_array()
            .expect("a list")
            .clone()
    };
    let before = invalidations().len();
    let refused = |args: &[&str]| {
        let run = cfinv(&[&["invalidate", "-d", dist], args].concat());
        assert_ne!(run.code, 0, "accepted: {}", run.stdout);
        assert!(
            run.stderr.contains("refused (recorded in the audit)"),
            "{}",
            run.stderr
        );
        run.stderr
    };
    assert!(refused(&["/*"]).contains("--all"));
    assert!(refused(&["/a", "/b", "/c", "--max-paths", "2"]).contains("at most 2"));
    assert!(refused(&["/x1", "--max-paths-per-hour", "0"]).contains("this hour"));
    assert!(refused(&["/a b.html"]).contains("/a%20b.html"));
    assert!(refused(&["--tag", "a,b"]).contains("comma"));

    let path = format!("/{}manual/page.html", lane.prefix);
    let prefix = format!("/{}manual/assets/", lane.prefix);
    let done = cfinv(&[
        "invalidate",
        "-d",
        dist,
        &path,
        "--prefix",
        &prefix,
        "--wait",
        "--reason",
        "release 7",
        "--json",
    ])
    .json();
    assert_eq!(done["status"], "Completed", "{done}");
    assert!(
        done["requestedBy"]
            .as_str()
            .is_some_and(|who| who.starts_with("arn:")),
        "{done}"
    );
    let after = invalidations();
    assert_eq!(
        after.len(),
        before + 1,
        "one invalidation, none for the refused: {after:?}"
    );
    let mut paths: Vec<&str> = after[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, [format!("{prefix}*"), path.clone()]);
    assert_eq!(after[0]["status"], "Completed");

    let batch_id = done["batchIds"][0].as_str().expect("a batch id");
    let request_id = done["requestId"].as_str().expect("a request id");
    let audit = cfinv(&["audit", "batch", batch_id]).ok();
    assert!(
        audit.contains(&format!("manual request {request_id} by arn:"))
            && audit.contains("release 7"),
        "{audit}"
    );
}
