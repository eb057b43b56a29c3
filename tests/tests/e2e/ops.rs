//! End-to-end: `cfinv doctor` and `cfinv canary` (README "Deploy to your AWS account", step 5)
//! on the local stack. Lane 24 is doctor's, lane 25 the canary's.
//!
//! Doctor's broken case cannot break the shared stack (the other tests' events would be lost),
//! so it reads a second CloudFormation stack in the same emulator: it shares nothing with the
//! real one but the audit table, and names a bucket without notifications, a distribution that
//! does not exist, one serving another bucket, a disabled rule, a dead-letter queue holding a
//! message and a topic nobody subscribed to. Doctor finds a stack only through DescribeStacks
//! and ListStackResources, then checks each service itself, so it runs the same code here.

use std::time::Duration;

use e2e::{Stack, now_epoch};
use serde_json::{Value, json};

use crate::cli::cfinv;

/// The checks of a `--json` diagnosis, by name: (ok, detail, fix).
fn checks(diagnosis: &Value) -> Vec<(String, bool, String, String)> {
    diagnosis["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {diagnosis}"))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("a check's name").to_owned(),
                c["ok"].as_bool().expect("a check's verdict"),
                c["detail"].as_str().expect("a check's detail").to_owned(),
                c["fix"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_passes_every_check_on_the_healthy_stack() {
    let stack = Stack::connect().await;
    let lane = stack.lane(24);
    let diagnosis = cfinv(&["--json", "doctor", "-d", &lane.distribution_id]).json();
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis:#}");
    let checks = checks(&diagnosis);
    let names: Vec<&str> = checks.iter().map(|c| c.0.as_str()).collect();
    for expected in [
        "notifications",
        "bucket region",
        &format!("distribution {}", lane.distribution_id),
        "rule ObjectChangedRule",
        "rule ManualRequestRule",
        "queue EventsDeadLetterQueue",
        "queue IngestQueue",
        "queue IngestDeadLetterQueue",
        "queue OutcomeFailuresQueue",
        "alarm topic",
        "failures",
        "stale batches",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
    for (name, ok, detail, fix) in &checks {
        assert!(ok, "{name}: {detail} (fix: {fix})");
        assert!(fix.is_empty(), "{name} passed with a fix: {fix}");
    }

    let text = cfinv(&["doctor", "-d", &lane.distribution_id]).ok();
    assert!(
        text.lines()
            .take(checks.len())
            .all(|l| l.starts_with("ok   ")),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("{} checks, 0 failed\n", checks.len())),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_each_broken_part_with_its_fix_and_fails() {
    let stack = Stack::connect().await;
    // Its distribution serves the stack's bucket, not the broken stack's.
    let other = stack.lane(24).distribution_id;
    let name = format!("cfinv-doctor-broken-{}", now_epoch() as u64);
    // A bucket as S3 creates it: no notification configuration.
    stack
        .s3
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create the broken stack's bucket");
    let template = json!({
        "Parameters": {
            "BucketName": {"Type": "String"},
            "DistributionIds": {"Type": "CommaDelimitedList"},
            "TableName": {"Type": "String"},
        },
        "Resources": {
            "DeadLetterQueue": {"Type": "AWS::SQS::Queue"},
            "Rule": {
                "Type": "AWS::Events::Rule",
                "Properties": {"State": "DISABLED", "EventPattern": {"source": [name]}},
            },
            "AlarmTopic": {"Type": "AWS::SNS::Topic"},
        },
        "Outputs": {"TableName": {"Value": {"Ref": "TableName"}}},
    });
    let parameter = |key: &str, value: &str| {
        aws_sdk_cloudformation::types::Parameter::builder()
            .parameter_key(key)
            .parameter_value(value)
            .build()
    };
    let cloudformation = aws_sdk_cloudformation::Client::new(&stack.conf);
    cloudformation
        .create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .parameters(parameter("BucketName", &name))
        .parameters(parameter(
            "DistributionIds",
            &format!("ENOSUCHDIST,{other}"),
        ))
        .parameters(parameter("TableName", &stack.info.table))
        .send()
        .await
        .expect("create the broken stack");
    let resources = cloudformation
        .list_stack_resources()
        .stack_name(&name)
        .send()
        .await
        .expect("list the broken stack's resources");
    let physical = |logical: &str| {
        resources
            .stack_resource_summaries()
            .iter()
            .find(|r| r.logical_resource_id() == Some(logical))
            .and_then(|r| r.physical_resource_id())
            .unwrap_or_else(|| panic!("no {logical} in {resources:?}"))
            .to_owned()
    };
    let queue = physical("DeadLetterQueue");
    aws_sdk_sqs::Client::new(&stack.conf)
        .send_message()
        .queue_url(&queue)
        .message_body("an event EventBridge could not deliver")
        .send()
        .await
        .expect("send a dead letter");

    let run = cfinv(&["--json", "doctor", "--stack-name", &name]);
    assert_eq!(
        run.code, 1,
        "stderr: {}\nstdout: {}",
        run.stderr, run.stdout
    );
    let diagnosis: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout));
    assert_eq!(diagnosis["stack"], json!(name));
    assert_eq!(diagnosis["ok"], json!(false));
    let checks = checks(&diagnosis);
    let check = |wanted: &str| {
        checks
            .iter()
            .find(|c| c.0 == wanted)
            .unwrap_or_else(|| panic!("no check {wanted} in {checks:?}"))
    };
    // (check, what its detail says, what its fix says)
    let failing = [
        (
            "notifications".to_owned(),
            "does not send events to EventBridge".to_owned(),
            format!("put-bucket-notification-configuration --bucket {name}"),
        ),
        (
            "distribution ENOSUCHDIST".to_owned(),
            "does not exist".to_owned(),
            "correct DistributionIds".to_owned(),
        ),
        (
            format!("distribution {other}"),
            format!("no origin serves bucket {name}"),
            format!("give it an origin {name}.s3.<region>.amazonaws.com"),
        ),
        (
            "rule Rule".to_owned(),
            "is DISABLED".to_owned(),
            format!("aws events enable-rule --name {}", physical("Rule")),
        ),
        (
            "queue DeadLetterQueue".to_owned(),
            "1 message(s) waiting".to_owned(),
            format!("aws sqs receive-message --queue-url {queue}"),
        ),
        (
            "alarm topic".to_owned(),
            "no confirmed subscription (0 pending confirmation)".to_owned(),
            "aws sns subscribe".to_owned(),
        ),
    ];
    for (wanted, detail, fix) in &failing {
        let (_, ok, got_detail, got_fix) = check(wanted);
        assert!(!ok, "{wanted} passed: {got_detail}");
        assert!(
            got_detail.contains(detail.as_str()),
            "{wanted}: {got_detail}"
        );
        assert!(got_fix.contains(fix.as_str()), "{wanted}: {got_fix}");
    }
    for passing in ["bucket region", "failures", "stale batches"] {
        let (_, ok, detail, fix) = check(passing);
        assert!(ok, "{passing}: {detail} (fix: {fix})");
    }
    assert_eq!(checks.len(), failing.len() + 3, "{checks:?}");

    // The text: each failure on a FAIL line with its fix under it, and the count.
    let run = cfinv(&["doctor", "--stack-name", &name]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    for (wanted, _, fix) in &failing {
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("FAIL {wanted}: ")))
            .unwrap_or_else(|| panic!("no FAIL line for {wanted}:\n{}", run.stdout));
        assert!(
            lines[at + 1].starts_with("     fix: ") && lines[at + 1].contains(fix.as_str()),
            "{wanted}:\n{}",
            run.stdout
        );
    }
    assert_eq!(
        lines.last().copied(),
        Some(
            format!(
                "stack {name}: {} checks, {} failed",
                checks.len(),
                failing.len()
            )
            .as_str()
        )
    );
}

/// What the canary left under `prefix`: nothing, once it has cleaned up.
async fn keys_under(stack: &Stack, prefix: &str) -> Vec<String> {
    stack
        .s3
        .list_objects_v2()
        .bucket(&stack.info.bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list the canary's prefix")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_finds_every_key_fresh_and_times_out_while_cloudfront_holds_an_invalidation() {
    let stack = Stack::connect().await;
    let lane = stack.lane(25);
    let prefix = format!("{}_cfinv-canary/", lane.prefix);
    let edge = stack.edge(&lane);
    // Two batches, each debounced and invalidated: the canary's own deadline, set generously
    // for a stack busy with the other lanes.
    let report = cfinv(&[
        "--json",
        "canary",
        "-d",
        &lane.distribution_id,
        "--prefix",
        &prefix,
        "--timeout",
        "15m",
    ])
    .json();
    assert_eq!(report["ok"], json!(true), "{report:#}");
    assert_eq!(report["distributionId"], json!(lane.distribution_id));
    assert_eq!(report["baseUrl"], json!(edge));
    let keys = report["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 9, "{report:#}");
    for k in keys {
        let key = k["key"].as_str().expect("a key");
        assert!(key.starts_with(&prefix), "{key}");
        assert_eq!(k["fresh"], json!(true), "{k:#}");
        assert!(k.get("error").is_none(), "{k:#}");
        assert!(k["url"].as_str().expect("a url").starts_with(edge), "{k:#}");
        assert!(!k["batchId"].as_str().expect("a batch").is_empty(), "{k:#}");
        // The local stack's events carry keys as stored (local/README.md, s3/key-encoding).
        let readings = k["readings"].as_array().expect("readings");
        assert!(readings.contains(&json!(key)), "{k:#}");
    }
    assert!(
        keys.iter()
            .any(|k| k["key"].as_str().unwrap().ends_with("/a+b.txt")
                && k["url"].as_str().unwrap().ends_with("/a+b.txt")),
        "a + stays a + in the URL: {report:#}"
    );
    // Each key's own path was invalidated, not a directory wildcard that frees any spelling.
    let mut batches: Vec<&str> = keys
        .iter()
        .map(|k| k["batchId"].as_str().unwrap())
        .collect();
    batches.dedup();
    for batch in batches {
        let audit = cfinv(&["--json", "audit", "batch", batch]).json();
        assert_eq!(
            audit["batch"]["pathsPlanned"], audit["batch"]["pathsReceived"],
            "{audit:#}"
        );
    }
    assert_eq!(report["eventEncoding"], json!("raw"), "{report:#}");
    assert_eq!(report["keyEncoding"], json!("auto"));
    assert!(
        report["advice"]
            .as_str()
            .unwrap()
            .contains("pin KeyEncoding=raw")
    );
    assert_eq!(keys_under(&stack, &prefix).await, Vec::<String>::new());

    // CloudFront keeps the lane's new invalidations in progress for an hour: the canary's first
    // batch never completes, and it says so instead of judging keys nothing invalidated.
    let settings = stack.control("settings", json!({}));
    stack.control(
        "cloudfront/in-progress-seconds",
        json!({"seconds": 3600, "distribution_id": lane.distribution_id}),
    );
    let timeout = stack.info.debounce() + Duration::from_secs(60);
    let run = cfinv(&[
        "canary",
        "-d",
        &lane.distribution_id,
        "--prefix",
        &prefix,
        "--timeout",
        &format!("{}s", timeout.as_secs()),
    ]);
    stack.control(
        "cloudfront/in-progress-seconds",
        json!({"seconds": settings["settings"]["cloudfront_in_progress_seconds"], "distribution_id": lane.distribution_id}),
    );
    let held = stack.control(
        "cloudfront/complete",
        json!({"distribution_id": lane.distribution_id}),
    );
    assert_eq!(
        run.code, 1,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.starts_with(&format!(
            "cfinv: canary timed out after {}s (--timeout) waiting for the first write of 9 key(s)",
            timeout.as_secs()
        )) && run.stderr.contains("cfinv audit stuck"),
        "{}",
        run.stderr
    );
    assert!(
        held["completed"].as_u64() >= Some(1),
        "no invalidation was held in progress: {held}"
    );
    assert_eq!(keys_under(&stack, &prefix).await, Vec::<String>::new());
}
