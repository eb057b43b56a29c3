//! Routing by discovery (README "Routing"): `cfinv discover`, and plans that follow each
//! distribution's configuration, read through the edge. `cfinv discover` runs on any stack; the
//! other tests need one started with `local up --discover` (Routes empty) and use the profiled
//! distributions (local/deploy.py `PROFILES`), each in its own key space of the bucket:
//!
//! ```text
//! .venv/bin/python -m local up --discover ... ; CFINV_STACK=... cargo test -p e2e -- --ignored discovery::
//! ```

use aws_sdk_dynamodb::types::AttributeValue;
use cfinv_core::path::url_path;
use cfinv_core::schema::{self, keys};
use e2e::{Lane, Stack, covers, is_hit, now_epoch};
use serde_json::Value;

use crate::cli::cfinv;

const NEEDS_DISCOVERY: &str = "needs a stack started with `local up --discover`";

/// A key space of its own for each run against the same stack.
fn run_id() -> String {
    format!("r{}", (now_epoch() * 1000.0) as u64)
}

/// Puts `body` at `key`; returns the write as (`path` to wait for, time written).
async fn put(stack: &Stack, key: &str, body: &str, path: &str) -> (String, f64) {
    stack.put(key, body).await;
    (path.to_owned(), now_epoch())
}

/// What the lane's edge answers for `url`: (status, body, from its cache).
fn read(stack: &Stack, lane: &Lane, url: &str) -> (u16, String, bool) {
    let answer = stack.view(lane, url);
    (answer.status, answer.text(), is_hit(&answer))
}

#[tokio::test(flavor = "multi_thread")]
async fn discover_finds_every_distribution_of_the_stack_bucket() {
    let stack = Stack::connect().await;
    let found = cfinv(&["discover", "--bucket", &stack.info.bucket, "--json"]).json();
    let ids: Vec<&str> = found["distributionIds"]
        .as_str()
        .unwrap()
        .split(',')
        .collect();
    let mut expected: Vec<&str> = stack
        .info
        .distribution_ids
        .iter()
        .map(String::as_str)
        .collect();
    let mut got = ids.clone();
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, expected, "{found}");
    let served = |profile: &str| -> Value {
        let id = stack
            .info
            .distribution_profiles
            .iter()
            .find(|(_, p)| p.as_str() == profile)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no {profile} distribution in stack.json"));
        found["distributions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["distributionId"] == id.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{id} not found: {found}"))
    };
    // Only the behavior to the bucket's origin, with its query strings.
    let qs = served("query-strings");
    assert_eq!(qs["behaviors"].as_array().unwrap().len(), 1, "{qs}");
    assert_eq!(qs["behaviors"][0]["pathPattern"], "/qs/*");
    assert_eq!(qs["behaviors"][0]["queryStrings"], true);
    assert_eq!(served("origin-path")["origins"][0]["originPath"], "/op");
    let routes: Vec<Value> = serde_json::from_str(found["routes"].as_str().unwrap()).unwrap();
    assert!(
        routes.iter().any(|r| r["originPath"] == "/op"),
        "{routes:?}"
    );

    let text = cfinv(&["discover", "--bucket", &stack.info.bucket]).ok();
    assert!(text.contains("DistributionIds="), "{text}");
    let none = cfinv(&["discover", "--bucket", "no-such-bucket-here"]);
    assert_eq!(none.code, 1, "{}", none.stdout);
    assert!(
        none.stderr
            .contains("no distribution has an origin serving bucket no-such-bucket-here"),
        "{}",
        none.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a stack started with `local up --discover`"]
async fn a_query_string_variant_is_fresh_once_its_wildcard_completes() {
    let stack = Stack::connect().await;
    let lane = stack.profile("query-strings", "qs/");
    let key = format!("qs/{}/app.js", run_id());
    let url = url_path(&key);
    let wildcard = format!("{url}*");

    let v1 = put(&stack, &key, "v1", &wildcard).await;
    let invalidations = stack.wait_covered(&lane, &[v1]).await;
    assert!(
        invalidations.iter().any(|i| i.paths.contains(&wildcard)),
        "{key} invalidated as {wildcard}: {invalidations:?}"
    );
    assert!(stack.batches_completed(&lane).await, "{NEEDS_DISCOVERY}");

    // Two query strings, two cache entries (the behavior's cache key holds them).
    let variants = [format!("{url}?v=1"), format!("{url}?v=2")];
    for variant in &variants {
        assert_eq!(
            read(&stack, &lane, variant),
            (200, "v1".into(), false),
            "{variant}"
        );
        assert_eq!(
            read(&stack, &lane, variant),
            (200, "v1".into(), true),
            "{variant}"
        );
    }
    let v2 = put(&stack, &key, "v2", &wildcard).await;
    for variant in &variants {
        assert_eq!(
            read(&stack, &lane, variant).1,
            "v1",
            "{variant} stale until Completed"
        );
    }
    stack.wait_covered(&lane, &[v2]).await;
    for variant in &variants {
        assert_eq!(
            read(&stack, &lane, variant).1,
            "v2",
            "{variant} fresh after Completed"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a stack started with `local up --discover`"]
async fn the_root_is_fresh_once_the_default_root_object_changed() {
    let stack = Stack::connect().await;
    let lane = stack.profile("default-root", "dro/");
    let key = "dro/home.html";
    let body = |v: &str| format!("{v} {}", run_id());

    let first = body("v1");
    let v1 = put(&stack, key, &first, "/").await;
    let invalidations = stack.wait_covered(&lane, &[v1]).await;
    assert!(
        invalidations.iter().any(
            |i| i.paths.contains(&"/".to_owned()) && i.paths.contains(&"/home.html".to_owned())
        ),
        "the root object's change invalidates / and /home.html: {invalidations:?}"
    );
    assert!(stack.batches_completed(&lane).await, "{NEEDS_DISCOVERY}");
    assert_eq!(read(&stack, &lane, "/").1, first);
    assert_eq!(read(&stack, &lane, "/"), (200, first.clone(), true));

    let second = body("v2");
    let v2 = put(&stack, key, &second, "/").await;
    assert_eq!(read(&stack, &lane, "/").1, first, "/ stale until Completed");
    stack.wait_covered(&lane, &[v2]).await;
    assert_eq!(
        read(&stack, &lane, "/").1,
        second,
        "/ fresh after Completed"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a stack started with `local up --discover`"]
async fn a_key_the_distribution_does_not_route_is_not_invalidated_and_the_audit_says_why() {
    let stack = Stack::connect().await;
    let lane = stack.profile("query-strings", "elsewhere/");
    let op = stack.profile("origin-path", "op/");
    let run = run_id();
    // Routed on origin-path (its origin path stripped), not on query-strings (whose default
    // behavior goes to another origin).
    let key = format!("op/{run}/page.html");
    let stripped = format!("/{run}/page.html");
    let written = put(&stack, &key, "v1", &stripped).await;
    stack.wait_covered(&op, &[written]).await;
    assert_eq!(
        read(&stack, &op, &stripped).1,
        "v1",
        "served under the origin path"
    );

    // Its batch may hold other tests' paths (then it COMPLETED) or only this one (then it is
    // EMPTY, out of the distribution's listing): found through the path's history (byPath).
    let unrouted = url_path(&key);
    let batch = stack
        .wait_lane(
            &lane,
            "the batch holding the unrouted key to be planned",
            || async {
                let items = stack
                    .ddb
                    .query()
                    .table_name(&stack.info.table)
                    .index_name(schema::BY_PATH)
                    .key_condition_expression("gsi2pk = :pk")
                    .expression_attribute_values(
                        ":pk",
                        AttributeValue::S(keys::path_index_pk(&lane.distribution_id, &unrouted)),
                    )
                    .send()
                    .await
                    .expect("query byPath");
                let pk = items.items().first()?.get("PK")?.as_s().ok()?.clone();
                let batch = stack.batch_item(pk.strip_prefix("BATCH#")?).await?;
                let done = matches!(
                    batch.get("status").map(String::as_str),
                    Some("EMPTY" | "COMPLETED")
                );
                (done && batch.contains_key("planBasis")).then_some(batch)
            },
        )
        .await;
    let basis: Value = serde_json::from_str(&batch["planBasis"]).expect("the plan's basis");
    let skipped = basis["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == unrouted.as_str())
        .unwrap_or_else(|| panic!("{unrouted} skipped: {basis}"));
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .contains("to origin \"app\", not the bucket's origin"),
        "{skipped}"
    );
    let invalidated: Vec<String> = stack
        .invalidations(&lane)
        .await
        .into_iter()
        .flat_map(|i| i.paths)
        .collect();
    assert!(
        !invalidated.iter().any(|p| covers(p, &unrouted)),
        "{unrouted} not invalidated on {}: {invalidated:?}",
        lane.distribution_id
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a stack started with `local up --discover`"]
async fn a_redrive_replays_the_stored_plan_after_the_distribution_changed() {
    let stack = Stack::connect().await;
    let lane = stack.profile("origin-path", "op/");
    let run = run_id();
    let fault = stack.control(
        "faults/set",
        serde_json::json!({"kind": "cloudfront", "code": "AccessDenied", "operation": "CreateInvalidation", "distribution_id": lane.distribution_id}),
    );
    let key = format!("op/{run}/redriven.html");
    let planned = format!("/{run}/redriven.html");
    let written = put(&stack, &key, "v1", &planned).await;
    let batch_id = stack
        .wait_lane(&lane, "the batch to be FAILED", || async {
            for b in stack.batches(&lane).await {
                if b.get("status").map(String::as_str) == Some("FAILED")
                    && stack
                        .path_items(&b["batchId"])
                        .await
                        .iter()
                        .any(|p| p.get("key") == Some(&key))
                {
                    return Some(b["batchId"].clone());
                }
            }
            None
        })
        .await;

    // Before the redrive, the run's paths get a behavior whose cache key holds query strings:
    // a fresh read of the configuration would plan `<path>*` (no other test's path matches).
    add_query_string_behavior(&stack, &lane, &format!("/{run}/*")).await;

    stack.release(&fault);
    stack.redrive_batch(&batch_id).await;
    let invalidations = stack.wait_covered(&lane, &[written]).await;
    let ours: Vec<&Vec<String>> = invalidations
        .iter()
        .filter(|i| i.caller_reference.starts_with(&batch_id))
        .map(|i| &i.paths)
        .collect();
    assert_eq!(
        ours,
        [&vec![planned]],
        "the stored plan, not one from the new configuration"
    );
}

/// Adds a first cache behavior `pattern` -> the bucket's origin, caching on query strings.
#[allow(deprecated)] // ForwardedValues: the legacy cache settings the local profiles use
async fn add_query_string_behavior(stack: &Stack, lane: &Lane, pattern: &str) {
    use aws_sdk_cloudfront::types::{
        CacheBehavior, CacheBehaviors, CookiePreference, ForwardedValues, ItemSelection,
        ViewerProtocolPolicy,
    };
    let current = stack
        .cloudfront
        .get_distribution_config()
        .id(&lane.distribution_id)
        .send()
        .await
        .expect("GetDistributionConfig");
    let mut config = current.distribution_config().unwrap().clone();
    let behavior = CacheBehavior::builder()
        .path_pattern(pattern)
        .target_origin_id("site")
        .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
        .min_ttl(0)
        .forwarded_values(
            ForwardedValues::builder()
                .query_string(true)
                .cookies(
                    CookiePreference::builder()
                        .forward(ItemSelection::None)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut items = vec![behavior];
    items.extend(
        config
            .cache_behaviors()
            .map(|b| b.items().to_vec())
            .unwrap_or_default(),
    );
    config.cache_behaviors = Some(
        CacheBehaviors::builder()
            .quantity(i32::try_from(items.len()).unwrap())
            .set_items(Some(items))
            .build()
            .unwrap(),
    );
    stack
        .cloudfront
        .update_distribution()
        .id(&lane.distribution_id)
        .if_match(current.e_tag().unwrap())
        .distribution_config(config)
        .send()
        .await
        .expect("UpdateDistribution");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a stack started with `local up --discover --param CacheTagMetadata=cache-tag`"]
async fn a_tagged_object_is_fresh_under_every_spelling_once_its_tag_completes() {
    let stack = Stack::connect().await;
    let lane = stack.profile("tags", "tg/");
    let run = run_id();
    let key = format!("tg/{run}/caf\u{e9}.html");
    let url = format!("/{run}/caf%C3%A9.html");
    // Another cache entry of the same object (the edge compares URLs as sent): no path
    // invalidation frees it, the object's tag does.
    let other_spelling = format!("/{run}/caf%c3%a9.html");
    let tag = format!("product:{run}");
    let item = format!("#{tag}");
    let put_tagged = |body: &'static str| {
        let request = stack
            .s3
            .put_object()
            .bucket(&stack.info.bucket)
            .key(&key)
            .metadata("cache-tag", format!("{tag}, sale"))
            .body(body.as_bytes().to_vec().into());
        let url = url.clone();
        async move {
            request.send().await.expect("put a tagged object");
            (url, now_epoch())
        }
    };

    let v1 = put_tagged("v1").await;
    let invalidations = stack.wait_covered(&lane, &[v1]).await;
    assert!(
        invalidations.iter().any(|i| i.paths.contains(&item)),
        "the object's tag is invalidated with its path: {invalidations:?}"
    );
    assert!(stack.batches_completed(&lane).await, "{NEEDS_DISCOVERY}");
    for spelling in [&url, &other_spelling] {
        assert_eq!(read(&stack, &lane, spelling), (200, "v1".into(), false));
        assert_eq!(read(&stack, &lane, spelling), (200, "v1".into(), true));
    }

    let v2 = put_tagged("v2").await;
    for spelling in [&url, &other_spelling] {
        assert_eq!(
            read(&stack, &lane, spelling).1,
            "v1",
            "{spelling} stale until Completed"
        );
    }
    stack.wait_covered(&lane, &[v2]).await;
    for spelling in [&url, &other_spelling] {
        assert_eq!(
            read(&stack, &lane, spelling).1,
            "v2",
            "{spelling} fresh after Completed"
        );
        assert_eq!(read(&stack, &lane, spelling), (200, "v2".into(), true));
    }

    // A deleted object has no metadata left: its tags are the ones last seen.
    stack.delete(&key).await;
    let deleted = (url.clone(), now_epoch());
    let invalidations = stack.wait_covered(&lane, &[deleted]).await;
    assert!(
        invalidations
            .iter()
            .filter(|i| i.paths.contains(&url))
            .any(|i| i.paths.contains(&item)),
        "the delete invalidates the tag last seen: {invalidations:?}"
    );
    for spelling in [&url, &other_spelling] {
        assert_ne!(
            read(&stack, &lane, spelling).0,
            200,
            "{spelling} gone after Completed"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a stack started with `local up --discover --param CacheTagMetadata=cache-tag`"]
async fn doctor_checks_each_distribution_stores_the_tags_the_stack_reads() {
    let stack = Stack::connect().await;
    let tagged = stack.profile("tags", "tg/");
    let plain = stack
        .info
        .distribution_ids
        .iter()
        .find(|id| !stack.info.distribution_profiles.contains_key(*id))
        .expect("a distribution of no profile");
    // Other checks may fail on this stack (it has no alarm topic): only the tag lines count.
    let run = cfinv(&[
        "--json",
        "doctor",
        "-d",
        &tagged.distribution_id,
        "-d",
        plain,
    ]);
    let diagnosis: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", run.stdout, run.stderr));
    let check = |id: &str| {
        let name = format!("cache tags {id}");
        diagnosis["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name.as_str()))
            .cloned()
            .unwrap_or_else(|| panic!("no check {name}: {diagnosis:#}"))
    };
    // The tags profile's CacheTagConfig reads the metadata; the plain distribution has none,
    // and under discovery its plans send it no tags.
    for (id, says) in [
        (tagged.distribution_id.as_str(), "x-amz-meta-cache-tag"),
        (plain.as_str(), "no CacheTagConfig"),
    ] {
        let check = check(id);
        assert_eq!(check["ok"], true, "{check:#}");
        let detail = check["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{check:#}");
    }
}
