//! `cfinv doctor`: is a deployed stack wired? One check per line, each with its fix. The
//! decisions are pure functions (tested below); `run` only gathers what they judge.

use std::fmt::Write;
use std::time::Duration;

use cfinv_core::distribution::serves_bucket;
use cfinv_core::routes::MappingConfig;
use serde::Serialize;
use time::OffsetDateTime;

use super::Deployment;
use super::deployed::DeployedStack;
use crate::records::FailedEvent;
use crate::report::Answer;
use crate::{Result, error_chain};

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What to do when the check fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Diagnosis {
    pub stack: String,
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Answer for Diagnosis {
    fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let _ = write!(
                out,
                "{} {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
            if let Some(fix) = &c.fix {
                let _ = write!(out, "\n     fix: {fix}");
            }
            out.push('\n');
        }
        let failed = self.checks.iter().filter(|c| !c.ok).count();
        let _ = writeln!(
            out,
            "stack {}: {} checks, {failed} failed",
            self.stack,
            self.checks.len()
        );
        out
    }
}

/// The Region of a bucket from GetBucketLocation. The S3 API reference: "Buckets in Region
/// us-east-1 have a LocationConstraint of null. Buckets with a LocationConstraint of EU reside
/// in eu-west-1." An empty constraint (how the XML's empty element may parse) is the null one.
pub fn bucket_region(location_constraint: Option<&str>) -> &str {
    match location_constraint {
        None | Some("") => "us-east-1",
        Some("EU") => "eu-west-1",
        Some(region) => region,
    }
}

/// An origin path in the routes' sense: `/site`, `site` and `/site/` are the same.
fn origin_dir(origin_path: &str) -> &str {
    origin_path.trim_matches('/')
}

/// The origin paths the routes expect `distribution_id` to serve `bucket` under.
pub fn expected_origin_paths<'m>(
    mapping: &'m MappingConfig,
    bucket: &str,
    distribution_id: &str,
) -> Vec<&'m str> {
    let mut paths: Vec<&str> = mapping
        .routes
        .iter()
        .filter(|r| r.bucket == bucket && r.distribution_id == distribution_id)
        .map(|r| origin_dir(&r.origin_path))
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// One origin of a distribution: its domain and origin path.
#[derive(Debug, Clone)]
pub struct Origin {
    pub domain: String,
    pub path: String,
}

/// The distribution check from what GetDistribution said (`None`: no such distribution).
pub fn distribution_check(
    id: &str,
    found: Option<(bool, &[Origin])>,
    bucket: &str,
    expected_paths: &[&str],
) -> Check {
    let name = format!("distribution {id}");
    let Some((enabled, origins)) = found else {
        return Check::fail(
            name,
            "does not exist",
            "correct DistributionIds (`aws cloudfront list-distributions`) and redeploy",
        );
    };
    if !enabled {
        return Check::fail(
            name,
            "is disabled: viewers get nothing from it",
            format!("enable it, or remove {id} from DistributionIds"),
        );
    }
    let serving: Vec<&Origin> = origins
        .iter()
        .filter(|o| serves_bucket(&o.domain, bucket))
        .collect();
    if serving.is_empty() {
        let domains: Vec<&str> = origins.iter().map(|o| o.domain.as_str()).collect();
        return Check::fail(
            name,
            format!(
                "no origin serves bucket {bucket} (origins: {})",
                domains.join(", ")
            ),
            format!(
                "give it an origin {bucket}.s3.<region>.amazonaws.com, or remove {id} from \
                 DistributionIds / Routes"
            ),
        );
    }
    let matching = serving
        .iter()
        .find(|o| expected_paths.contains(&origin_dir(&o.path)));
    match matching {
        Some(o) => Check::pass(
            name,
            format!("enabled, origin {}{} serves the bucket", o.domain, o.path),
        ),
        None => Check::fail(
            name,
            format!(
                "its {bucket} origin has origin path {:?}, the routes say {:?}: the paths \
                 invalidated are not the ones viewers request",
                serving[0].path,
                expected_paths
                    .iter()
                    .map(|p| if p.is_empty() {
                        String::new()
                    } else {
                        format!("/{p}")
                    })
                    .collect::<Vec<_>>()
            ),
            "make the Routes parameter's originPath for this distribution match the origin's \
             Origin path, and redeploy",
        ),
    }
}

/// The prefix of the response headers S3 serves an object's user metadata as.
const METADATA_HEADER: &str = "x-amz-meta-";

/// The cache-tag check of a distribution when the stack reads cache tags from the S3 metadata
/// key `metadata` (`CacheTagMetadata`). S3 serves that metadata as the response header
/// `x-amz-meta-<metadata>` (the guide, quoted in `functions/core/src/object_tags.rs`), so the
/// distribution's `CacheTagConfig` must read that header, or the tags invalidated are not the
/// ones it stored. `header`: its
/// `CacheTagConfig.HeaderName`; `by_discovery`: the stack routes by discovery (`Routes` empty),
/// whose plans send tags only to distributions with a `CacheTagConfig`; hand-written Routes send
/// them to every routed distribution.
pub fn cache_tag_check(
    id: &str,
    metadata: &str,
    header: Option<&str>,
    by_discovery: bool,
) -> Check {
    let name = format!("cache tags {id}");
    let wanted = format!("{METADATA_HEADER}{metadata}");
    match header {
        // HTTP header names are case-insensitive.
        Some(h) if h.eq_ignore_ascii_case(&wanted) => Check::pass(
            name,
            format!("its CacheTagConfig reads {wanted}, the tags CacheTagMetadata reads"),
        ),
        Some(h) => Check::fail(
            name,
            format!(
                "its CacheTagConfig reads {h}, the stack reads tags from metadata {metadata:?} \
                 ({wanted}): the tags invalidated are not the ones it stored, and each is billed"
            ),
            match h.to_ascii_lowercase().strip_prefix(METADATA_HEADER) {
                Some(key) => format!(
                    "set its CacheTagConfig HeaderName to {wanted}, or redeploy with \
                     CacheTagMetadata={key}"
                ),
                None => format!("set its CacheTagConfig HeaderName to {wanted}"),
            },
        ),
        None if by_discovery => Check::pass(
            name,
            "no CacheTagConfig: it stores no tags, and its plans send it none",
        ),
        None => Check::fail(
            name,
            "no CacheTagConfig, yet Routes send it the tags CacheTagMetadata reads: each is billed \
             and matches nothing",
            format!(
                "give it a CacheTagConfig with HeaderName {wanted}, or redeploy with Routes empty \
                 (discovery sends tags only where they are stored)"
            ),
        ),
    }
}

/// A subscription is confirmed once it has an ARN. The SNS API reference (Subscribe): the
/// subscription's ARN "if it is confirmed, or the string \"pending confirmation\" if the
/// subscription requires confirmation"; ListSubscriptionsByTopic shows `PendingConfirmation`.
/// Anything but an ARN counts as unconfirmed (the safe side).
pub fn is_confirmed(subscription_arn: &str) -> bool {
    subscription_arn.starts_with("arn:")
}

/// What a queue of the stack is for.
pub enum QueueRole<'a> {
    /// Messages on their way (the ingest queue).
    Working,
    /// A dead-letter queue of another of the stack's queues (this ARN): redriven to it.
    RedrivenToSource(&'a str),
    /// A dead-letter queue of EventBridge or Lambda: its messages are replayed by hand.
    DeadLetters,
}

/// The queue check from its approximate message counts (visible, in flight, delayed): a
/// dead-letter queue must be empty; a working queue's messages are on their way.
pub fn queue_check(logical_id: &str, url: &str, messages: u64, role: QueueRole) -> Check {
    let name = format!("queue {logical_id}");
    if let QueueRole::Working = role {
        return Check::pass(name, format!("{messages} message(s) on their way"));
    }
    if messages == 0 {
        return Check::pass(name, "empty");
    }
    let read = format!("read them (`aws sqs receive-message --queue-url {url}`), fix their cause");
    let fix = match role {
        QueueRole::RedrivenToSource(arn) => format!(
            "{read}, then redrive the queue to its source \
             (`aws sqs start-message-move-task --source-arn {arn}`)"
        ),
        _ => format!("{read}, then replay them and purge the queue"),
    };
    Check::fail(name, format!("{messages} message(s) waiting"), fix)
}

pub struct DoctorOptions<'a> {
    /// Only these distributions (default: every one of DistributionIds).
    pub distributions: &'a [String],
    pub stale_after: Duration,
}

pub async fn run(
    d: &Deployment,
    opts: &DoctorOptions<'_>,
    now: OffsetDateTime,
) -> Result<Diagnosis> {
    let conf = d.conf();
    let stack = &d.stack;
    let bucket = stack.bucket()?;
    let mapping = stack.mapping()?;
    let mut checks = Vec::new();

    let s3 = aws_sdk_s3::Client::new(conf);
    checks.push(
        match s3
            .get_bucket_notification_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(n) if n.event_bridge_configuration().is_some() => Check::pass(
                "notifications",
                format!("bucket {bucket} sends its events to EventBridge"),
            ),
            Ok(_) => Check::fail(
                "notifications",
                format!(
                    "bucket {bucket} does not send events to EventBridge: nothing is invalidated"
                ),
                format!(
                    "aws s3api put-bucket-notification-configuration --bucket {bucket} \
                 --notification-configuration '{{\"EventBridgeConfiguration\": {{}}}}' (this \
                 replaces the configuration: merge any existing one in)"
                ),
            ),
            Err(e) => unreadable("notifications", &e),
        },
    );
    checks.push(match s3.get_bucket_location().bucket(bucket).send().await {
        Ok(l) => {
            let region = bucket_region(l.location_constraint().map(|c| c.as_str()));
            if region == d.region() {
                Check::pass(
                    "bucket region",
                    format!("{bucket} is in {region}, as the stack"),
                )
            } else {
                Check::fail(
                    "bucket region",
                    format!(
                        "{bucket} is in {region}, the stack in {}: its rule never sees the \
                         bucket's events",
                        d.region()
                    ),
                    format!("deploy the stack in {region}"),
                )
            }
        }
        Err(e) => unreadable("bucket region", &e),
    });

    let cloudfront = aws_sdk_cloudfront::Client::new(conf);
    let ids = if opts.distributions.is_empty() {
        stack.distribution_ids()
    } else {
        opts.distributions.to_vec()
    };
    // With CacheTagMetadata set, each distribution also gets a cache-tag check.
    let tags_from = stack
        .parameter("CacheTagMetadata")
        .map(str::trim)
        .filter(|m| !m.is_empty());
    let by_discovery = stack
        .parameter("Routes")
        .is_none_or(|r| r.trim().is_empty());
    let mut tag_checks = Vec::new();
    for id in &ids {
        let expected = expected_origin_paths(&mapping, bucket, id);
        checks.push(match cloudfront.get_distribution().id(id).send().await {
            Ok(out) => {
                let config = out.distribution().and_then(|d| d.distribution_config());
                let enabled = config.is_some_and(|c| c.enabled());
                let origins: Vec<Origin> = config
                    .and_then(|c| c.origins())
                    .map(|o| o.items())
                    .unwrap_or_default()
                    .iter()
                    .map(|o| Origin {
                        domain: o.domain_name().to_owned(),
                        path: o.origin_path().unwrap_or_default().to_owned(),
                    })
                    .collect();
                if let Some(metadata) = tags_from {
                    let header = config
                        .and_then(|c| c.cache_tag_config())
                        .map(|t| t.header_name());
                    tag_checks.push(cache_tag_check(id, metadata, header, by_discovery));
                }
                distribution_check(id, Some((enabled, &origins)), bucket, &expected)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_no_such_distribution()) =>
            {
                distribution_check(id, None, bucket, &expected)
            }
            Err(e) => unreadable(&format!("distribution {id}"), &e),
        });
    }

    checks.append(&mut tag_checks);

    let events = aws_sdk_eventbridge::Client::new(conf);
    for (logical, name) in stack.of_type("AWS::Events::Rule") {
        let check_name = format!("rule {logical}");
        checks.push(match events.describe_rule().name(name).send().await {
            Ok(r) if r.state().is_some_and(|s| s.as_str() == "ENABLED") => {
                Check::pass(check_name, "enabled")
            }
            Ok(r) => Check::fail(
                check_name,
                format!("is {}", r.state().map_or("in no state", |s| s.as_str())),
                format!("aws events enable-rule --name {name}"),
            ),
            Err(e) => unreadable(&check_name, &e),
        });
    }

    use aws_sdk_sqs::types::QueueAttributeName as A;
    let sqs = aws_sdk_sqs::Client::new(conf);
    let mut queues = Vec::new();
    for (logical, url) in stack.of_type("AWS::SQS::Queue") {
        let out = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .attribute_names(A::RedrivePolicy)
            .attribute_names(A::QueueArn)
            .send()
            .await;
        queues.push((
            logical,
            url,
            out.map(|o| o.attributes().cloned().unwrap_or_default()),
        ));
    }
    // The dead-letter queues of the stack's own queues (the ingest queue's): redriven to their
    // source once the cause is fixed, not replayed by hand.
    let redrive_targets: Vec<String> = queues
        .iter()
        .filter_map(|(_, _, attributes)| {
            let policy = attributes.as_ref().ok()?.get(&A::RedrivePolicy)?;
            let policy: serde_json::Value = serde_json::from_str(policy).ok()?;
            Some(policy["deadLetterTargetArn"].as_str()?.to_owned())
        })
        .collect();
    for (logical, url, attributes) in queues {
        checks.push(match attributes {
            Ok(attributes) => {
                let count = |name: A| {
                    attributes
                        .get(&name)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                let messages = count(A::ApproximateNumberOfMessages)
                    + count(A::ApproximateNumberOfMessagesNotVisible)
                    + count(A::ApproximateNumberOfMessagesDelayed);
                // A queue with a dead-letter queue of its own is a working queue (the ingest
                // queue): its messages wait for the pipe; the failed ones reach its DLQ.
                let role = if attributes.contains_key(&A::RedrivePolicy) {
                    QueueRole::Working
                } else {
                    match attributes.get(&A::QueueArn) {
                        Some(arn) if redrive_targets.contains(arn) => {
                            QueueRole::RedrivenToSource(arn)
                        }
                        _ => QueueRole::DeadLetters,
                    }
                };
                queue_check(logical, url, messages, role)
            }
            Err(e) => unreadable(&format!("queue {logical}"), &e),
        });
    }

    checks.push(alarm_topic(stack, &aws_sdk_sns::Client::new(conf)).await);

    let (failed, failed_events) = d.table.failed(None).await?;
    let in_scope = |distribution_id: &str| ids.iter().any(|id| id == distribution_id);
    let failed: Vec<_> = failed
        .iter()
        .filter(|b| in_scope(&b.distribution_id))
        .collect();
    checks.push(failures(failed.len(), &failed_events));
    let stuck = d.table.stuck(now - opts.stale_after).await?;
    let stuck: Vec<_> = stuck
        .iter()
        .filter(|b| in_scope(&b.distribution_id))
        .collect();
    checks.push(if stuck.is_empty() {
        Check::pass(
            "stale batches",
            format!("none older than {}s", opts.stale_after.as_secs()),
        )
    } else {
        Check::fail(
            "stale batches",
            format!(
                "{} batch(es) OPEN, CLOSED or SUBMITTED for over {}s",
                stuck.len(),
                opts.stale_after.as_secs()
            ),
            "`cfinv audit stuck` lists them; a SUBMITTED one waits on CloudFront, an OPEN one on \
             the sweep schedule",
        )
    });

    Ok(Diagnosis {
        stack: stack.name.clone(),
        ok: checks.iter().all(|c| c.ok),
        checks,
    })
}

async fn alarm_topic(stack: &DeployedStack, sns: &aws_sdk_sns::Client) -> Check {
    let name = "alarm topic";
    let topics: Vec<(&str, &str)> = stack.of_type("AWS::SNS::Topic").collect();
    let Some((_, arn)) = topics.first() else {
        return Check::fail(
            name,
            "the stack has no alarm topic (AlarmEmail is empty): its alarms notify nobody",
            "redeploy with AlarmEmail=<address> (`sam deploy --parameter-overrides \
             AlarmEmail=ops@example.com`) and confirm the e-mail AWS sends",
        );
    };
    let mut pages = sns
        .list_subscriptions_by_topic()
        .topic_arn(*arn)
        .into_paginator()
        .send();
    let (mut confirmed, mut pending) = (0, 0);
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => return unreadable(name, &e),
        };
        for s in page.subscriptions() {
            if is_confirmed(s.subscription_arn().unwrap_or_default()) {
                confirmed += 1;
            } else {
                pending += 1;
            }
        }
    }
    if confirmed > 0 {
        Check::pass(name, format!("{confirmed} confirmed subscription(s)"))
    } else {
        Check::fail(
            name,
            format!("no confirmed subscription ({pending} pending confirmation)"),
            "click the link in the \"AWS Notification - Subscription Confirmation\" e-mail, or \
             subscribe an endpoint: `aws sns subscribe --topic-arn ...`",
        )
    }
}

/// A check whose AWS read failed: failed, with the reason (often a missing permission).
fn unreadable(name: &str, e: &dyn std::error::Error) -> Check {
    Check::fail(
        name,
        format!("cannot read: {}", error_chain(e)),
        "grant the read-only permissions README.md lists for `cfinv doctor`",
    )
}

/// FAILED batches and failed S3 events fail the check. A manual request refused by a bound
/// fails its execution too (`ManualRequestRefused`, docs/design.md §9): that is the bounds
/// working, not the pipeline failing, so it is counted apart and passes.
fn failures(failed_batches: usize, failed_events: &[FailedEvent]) -> Check {
    let refused_name = cfinv_core::Error::ManualRequestRefused(String::new()).name();
    let refused = failed_events
        .iter()
        .filter(|e| {
            e.error
                .as_deref()
                .is_some_and(|e| e.starts_with(refused_name))
        })
        .count();
    let events = failed_events.len() - refused;
    let refused = match refused {
        0 => String::new(),
        n => format!("; {n} refused manual request(s): `cfinv audit requests --refused`"),
    };
    if failed_batches == 0 && events == 0 {
        Check::pass(
            "failures",
            format!("no FAILED batch, no failed S3 event{refused}"),
        )
    } else {
        Check::fail(
            "failures",
            format!("{failed_batches} FAILED batch(es), {events} failed S3 event(s){refused}"),
            "`cfinv audit failed` lists them with the execution to redrive (or `cfinv replay`)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_or_empty_location_is_us_east_1_and_eu_is_eu_west_1() {
        assert_eq!(bucket_region(None), "us-east-1");
        assert_eq!(bucket_region(Some("")), "us-east-1");
        assert_eq!(bucket_region(Some("EU")), "eu-west-1");
        assert_eq!(bucket_region(Some("ap-south-1")), "ap-south-1");
    }

    fn origin(domain: &str, path: &str) -> Origin {
        Origin {
            domain: domain.into(),
            path: path.into(),
        }
    }

    #[test]
    fn a_distribution_passes_only_when_it_exists_is_enabled_and_serves_the_routes_origin_path() {
        let good = [origin("site.s3.amazonaws.com", "/img")];
        assert!(distribution_check("E1", Some((true, &good)), "site", &["img"]).ok);
        let missing = distribution_check("E1", None, "site", &[""]);
        assert!(!missing.ok && missing.detail.contains("does not exist"));
        let disabled = distribution_check("E1", Some((false, &good)), "site", &["img"]);
        assert!(!disabled.ok && disabled.detail.contains("disabled"));
        let elsewhere = [origin("api.example.com", "")];
        let other = distribution_check("E1", Some((true, &elsewhere)), "site", &[""]);
        assert!(!other.ok && other.detail.contains("no origin serves"));
        let wrong_path = distribution_check("E1", Some((true, &good)), "site", &[""]);
        assert!(!wrong_path.ok && wrong_path.detail.contains("origin path"));
    }

    #[test]
    fn a_distribution_must_store_the_tags_the_stack_reads() {
        let check = |header, by_discovery| cache_tag_check("E1", "cache-tag", header, by_discovery);
        assert!(check(Some("X-Amz-Meta-Cache-Tag"), false).ok);
        let other = check(Some("x-amz-meta-tags"), true);
        assert!(!other.ok && other.detail.contains("not the ones it stored"));
        assert!(
            other
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("CacheTagMetadata=tags"))
        );
        let not_metadata = check(Some("edge-cache-tag"), true);
        assert!(!not_metadata.ok);
        assert!(
            !not_metadata
                .fix
                .as_deref()
                .unwrap()
                .contains("CacheTagMetadata=")
        );
        assert!(check(None, true).ok);
        let routed = check(None, false);
        assert!(!routed.ok && routed.detail.contains("billed"));
    }

    #[test]
    fn routes_give_each_distribution_its_origin_paths() {
        let mapping = MappingConfig::from_lookup(|name| {
            match name {
            "ROUTES" => Some(
                r#"[{"bucket":"site","keyPrefix":"img/","distributionId":"E1","originPath":"/img/"},
                    {"bucket":"site","distributionId":"E2"}]"#
                    .into(),
            ),
            _ => None,
        }
        })
        .unwrap();
        assert_eq!(expected_origin_paths(&mapping, "site", "E1"), ["img"]);
        assert_eq!(expected_origin_paths(&mapping, "site", "E2"), [""]);
        assert!(expected_origin_paths(&mapping, "other", "E1").is_empty());
    }

    #[test]
    fn only_a_subscription_with_an_arn_is_confirmed() {
        assert!(is_confirmed("arn:aws:sns:us-east-1:1:t:abc"));
        assert!(!is_confirmed("PendingConfirmation"));
        assert!(!is_confirmed("pending confirmation"));
        assert!(!is_confirmed(""));
    }

    mod adapter {
        use aws_sdk_sns::Client;
        use aws_sdk_sns::operation::list_subscriptions_by_topic::ListSubscriptionsByTopicOutput;
        use aws_sdk_sns::types::Subscription;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        use super::super::{DeployedStack, alarm_topic};

        const TOPIC: &str = "arn:aws:sns:us-east-1:1:alarms";

        fn with_topic() -> DeployedStack {
            let mut stack = DeployedStack::default();
            stack.resources.insert(
                "AlarmTopic".into(),
                ("AWS::SNS::Topic".into(), TOPIC.into()),
            );
            stack
        }

        fn page(arns: &[&str], next: Option<&str>) -> ListSubscriptionsByTopicOutput {
            let mut out =
                ListSubscriptionsByTopicOutput::builder().set_next_token(next.map(Into::into));
            for arn in arns {
                out = out.subscriptions(
                    Subscription::builder()
                        .topic_arn(TOPIC)
                        .protocol("email")
                        .subscription_arn(*arn)
                        .build(),
                );
            }
            out.build()
        }

        #[tokio::test]
        async fn a_topic_with_only_pending_subscriptions_fails_and_every_page_is_read() {
            let first = mock!(Client::list_subscriptions_by_topic)
                .match_requests(|r| r.topic_arn() == Some(TOPIC) && r.next_token().is_none())
                .then_output(|| page(&["PendingConfirmation"], Some("p2")));
            let second = mock!(Client::list_subscriptions_by_topic)
                .match_requests(|r| r.next_token() == Some("p2"))
                .then_output(|| page(&["PendingConfirmation"], None));
            let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, [&first, &second]);
            let check = alarm_topic(&with_topic(), &client).await;
            assert!(!check.ok);
            assert_eq!(
                check.detail,
                "no confirmed subscription (2 pending confirmation)"
            );
            assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
        }

        #[tokio::test]
        async fn one_confirmed_subscription_passes() {
            let rule = mock!(Client::list_subscriptions_by_topic)
                .then_output(|| page(&["PendingConfirmation", &format!("{TOPIC}:1b2c")], None));
            let client = mock_client!(aws_sdk_sns, [&rule]);
            let check = alarm_topic(&with_topic(), &client).await;
            assert!(check.ok, "{check:?}");
            assert_eq!(check.detail, "1 confirmed subscription(s)");
        }

        #[tokio::test]
        async fn no_topic_fails_without_asking_sns() {
            let rule = mock!(Client::list_subscriptions_by_topic).then_output(|| page(&[], None));
            let client = mock_client!(aws_sdk_sns, [&rule]);
            let check = alarm_topic(&DeployedStack::default(), &client).await;
            assert!(!check.ok && check.fix.unwrap().contains("AlarmEmail="));
            assert_eq!(rule.num_calls(), 0);
        }

        #[tokio::test]
        async fn an_unreadable_topic_fails_with_the_reason() {
            let rule = mock!(Client::list_subscriptions_by_topic).then_error(|| {
                aws_sdk_sns::operation::list_subscriptions_by_topic::ListSubscriptionsByTopicError::AuthorizationErrorException(
                    aws_sdk_sns::types::error::AuthorizationErrorException::builder()
                        .message("not allowed")
                        .build(),
                )
            });
            let client = mock_client!(aws_sdk_sns, [&rule]);
            let check = alarm_topic(&with_topic(), &client).await;
            assert!(!check.ok);
            assert!(
                check.detail.starts_with("cannot read: "),
                "{}",
                check.detail
            );
            assert!(check.fix.unwrap().contains("read-only permissions"));
        }
    }

    #[test]
    fn refused_manual_requests_are_counted_apart_and_pass() {
        let event = |error: &str| FailedEvent {
            execution_name: "x".into(),
            execution_arn: None,
            failed_at: None,
            error: Some(error.into()),
            object: None,
            input: None,
        };
        let refused = event("ManualRequestRefused: request e-1 (recorded in the audit): ...");
        let check = failures(0, std::slice::from_ref(&refused));
        assert!(check.ok, "{check:?}");
        assert!(
            check.detail.contains("1 refused manual request(s)"),
            "{check:?}"
        );
        let check = failures(0, &[refused, event("InvalidEvent: no detail")]);
        assert!(!check.ok);
        assert!(
            check
                .detail
                .starts_with("0 FAILED batch(es), 1 failed S3 event(s)"),
            "{check:?}"
        );
        assert!(failures(1, &[]).detail.starts_with("1 FAILED batch(es)"));
    }

    #[test]
    fn a_queue_with_messages_fails_with_how_to_read_them() {
        assert!(queue_check("Dlq", "https://q", 0, QueueRole::DeadLetters).ok);
        assert!(
            queue_check("Ingest", "https://q", 3, QueueRole::Working).ok,
            "a working queue"
        );
        let c = queue_check("Dlq", "https://q", 3, QueueRole::DeadLetters);
        assert!(!c.ok && c.detail.contains("3 message"));
        let fix = c.fix.unwrap();
        assert!(fix.contains("receive-message --queue-url https://q") && fix.contains("replay"));
        let c = queue_check(
            "IngestDlq",
            "https://q",
            2,
            QueueRole::RedrivenToSource("arn:dlq"),
        );
        assert!(!c.ok);
        assert!(
            c.fix
                .unwrap()
                .contains("start-message-move-task --source-arn arn:dlq")
        );
    }

    #[test]
    fn the_text_has_one_line_per_check_and_the_fix_under_a_failure() {
        let d = Diagnosis {
            stack: "s".into(),
            ok: false,
            checks: vec![
                Check::pass("a", "fine"),
                Check::fail("b", "broken", "mend it"),
            ],
        };
        assert_eq!(
            d.text(),
            "ok   a: fine\nFAIL b: broken\n     fix: mend it\nstack s: 2 checks, 1 failed\n"
        );
    }
}
