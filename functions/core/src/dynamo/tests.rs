//! Adapter tests: the requests the store sends and how it reads DynamoDB's answers, including
//! the conditional failures the join and close protocols depend on.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use time::macros::datetime;

use super::*;
use crate::model::PlanRef;
use crate::store::SubmitStore;

fn store(client: Client) -> DynamoStore {
    DynamoStore::new(client, "t", Duration::from_secs(86_400))
}

/// A DynamoDB error as it comes over the wire (JSON 1.0 protocol).
fn wire_error(code: &str) -> Response<SdkBody> {
    Response::new(
        StatusCode::try_from(400).unwrap(),
        SdkBody::from(format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"{code}"}}"#
        )),
    )
}

fn pointer() -> OpenPointer {
    OpenPointer {
        batch_id: "E1-b".into(),
        opened_at: datetime!(2026-11-25 00:00 UTC),
    }
}

#[tokio::test]
async fn a_lost_pointer_race_is_false_not_an_error() {
    let rule = mock!(Client::put_item)
        .match_requests(|r| r.condition_expression() == Some("attribute_not_exists(PK)"))
        .then_http_response(|| wire_error("ConditionalCheckFailedException"));
    let client = mock_client!(aws_sdk_dynamodb, [&rule]);
    assert!(
        !store(client)
            .swap_pointer("E1", &pointer(), None)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn rotation_is_conditional_on_the_stale_batch() {
    let rule = mock!(Client::put_item)
        .match_requests(|r| {
            r.condition_expression() == Some("batchId = :old")
                && r.expression_attribute_values().and_then(|v| v.get(":old")) == Some(&s("E1-old"))
                && r.item().and_then(|i| i.get("PK")) == Some(&s("DIST#E1"))
        })
        .then_output(|| aws_sdk_dynamodb::operation::put_item::PutItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, [&rule]);
    assert!(
        store(client)
            .swap_pointer("E1", &pointer(), Some("E1-old"))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn throttling_is_retryable_and_access_denied_is_not() {
    let throttled = mock!(Client::put_item)
        .then_http_response(|| wire_error("ProvisionedThroughputExceededException"));
    // No SDK-level retries: the state machine owns retrying, with jitter.
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&throttled], |c| c
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
    let err = store(client)
        .swap_pointer("E1", &pointer(), None)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "StoreUnavailable");

    let denied = mock!(Client::put_item).then_http_response(|| wire_error("AccessDeniedException"));
    let client = mock_client!(aws_sdk_dynamodb, [&denied]);
    let err = store(client)
        .swap_pointer("E1", &pointer(), None)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "StoreError", "{err}");
}

#[tokio::test]
async fn closing_an_already_closed_batch_reads_it_back() {
    let update = mock!(Client::update_item)
        .match_requests(|r| r.condition_expression() == Some("attribute_not_exists(closedAt)"))
        .then_http_response(|| wire_error("ConditionalCheckFailedException"));
    let get = mock!(Client::get_item)
        .match_requests(|r| r.consistent_read() == Some(true))
        .then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(HashMap::from([
                    ("batchId".to_owned(), s("E1-b")),
                    ("distributionId".to_owned(), s("E1")),
                    ("status".to_owned(), s("SUBMITTED")),
                    ("openedAt".to_owned(), s("2026-11-25T00:00:00.000Z")),
                    ("planId".to_owned(), s("p1")),
                    ("plannedChunks".to_owned(), n("2")),
                ])))
                .build()
        });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update, &get]);
    let batch_ref = BatchRef {
        batch_id: "E1-b".into(),
        distribution_id: "E1".into(),
    };
    let batch = store(client)
        .close_batch(&batch_ref, datetime!(2026-11-25 00:01 UTC), "arn")
        .await
        .unwrap();
    assert_eq!(batch.status, BatchStatus::Submitted);
    assert_eq!(
        batch.plan,
        Some(PlanRef {
            plan_id: "p1".into(),
            chunks: 2
        })
    );
}

#[tokio::test]
async fn a_batch_whose_opener_never_wrote_it_closes_with_the_opening_time_of_its_id() {
    let update = mock!(Client::update_item)
        .match_requests(|r| {
            let values = r.expression_attribute_values().cloned().unwrap_or_default();
            r.update_expression()
                .is_some_and(|e| e.contains("openedAt = if_not_exists(openedAt, :opened)"))
                && values.get(":opened") == Some(&s("2026-11-25T03:04:05.000Z"))
                && values.get(":now") == Some(&s("2026-11-25T03:10:00.000Z"))
        })
        .then_output(|| {
            UpdateItemOutput::builder()
                .set_attributes(Some(HashMap::from([
                    ("batchId".to_owned(), s("E1-20261125T030405Z-0a1b2c3d")),
                    ("distributionId".to_owned(), s("E1")),
                    ("status".to_owned(), s("CLOSED")),
                    ("openedAt".to_owned(), s("2026-11-25T03:04:05.000Z")),
                ])))
                .build()
        });
    let client = mock_client!(aws_sdk_dynamodb, [&update]);
    let batch_ref = BatchRef {
        batch_id: "E1-20261125T030405Z-0a1b2c3d".into(),
        distribution_id: "E1".into(),
    };
    let batch = store(client)
        .close_batch(&batch_ref, datetime!(2026-11-25 03:10 UTC), "arn")
        .await
        .unwrap();
    assert_eq!(batch.opened_at, datetime!(2026-11-25 03:04:05 UTC));
    assert_eq!(update.num_calls(), 1);
}

#[tokio::test]
async fn an_empty_batch_leaves_the_listing_and_the_failures_index() {
    let update = mock!(Client::update_item)
        .match_requests(|r| {
            r.update_expression()
                .is_some_and(|e| e.contains("REMOVE statusPk, statusSk, gsi1pk, gsi1sk"))
                && r.condition_expression()
                    == Some(
                        "attribute_exists(PK) AND (attribute_not_exists(planId) OR plannedChunks = :none)",
                    )
                && r.expression_attribute_values()
                    .and_then(|v| v.get(":empty"))
                    == Some(&s("EMPTY"))
        })
        .then_output(|| UpdateItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, [&update]);
    store(client)
        .mark_empty("E1-b", datetime!(2026-11-25 00:01 UTC))
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
}

fn path_change(path: &str, key: &str, event_id: &str) -> PathChange {
    PathChange::created("E1", path, key, event_id)
}

#[tokio::test]
async fn a_hot_key_whose_id_set_is_full_is_only_counted() {
    let full = mock!(Client::update_item)
        .match_requests(|r| {
            r.update_expression()
                .is_some_and(|e| e.contains("ADD eventIds :ids"))
                && r.condition_expression()
                    .is_some_and(|c| c.contains("size(eventIds) < :max"))
                && r.expression_attribute_values().and_then(|v| v.get(":max"))
                    == Some(&n(MAX_EVENT_IDS_PER_PATH.to_string()))
        })
        .then_http_response(|| wire_error("ConditionalCheckFailedException"));
    let counted = mock!(Client::update_item)
        .match_requests(|r| {
            r.update_expression()
                .is_some_and(|e| e.contains("ADD moreEvents :one") && !e.contains("eventIds"))
                && r.condition_expression().is_none()
        })
        .then_output(|| UpdateItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&full, &counted]);
    store(client)
        .put_path(
            "E1-b",
            &path_change("/hot", "hot", "ev-101"),
            datetime!(2026-11-25 00:00 UTC),
        )
        .await
        .unwrap();
    assert_eq!((full.num_calls(), counted.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_duplicate_event_adds_its_id_to_a_set() {
    let rule = mock!(Client::update_item)
        .match_requests(|r| {
            let expr = r.update_expression().unwrap_or_default();
            expr.contains("ADD eventIds :ids")
                && expr.contains("firstSeenAt = if_not_exists(firstSeenAt, :now)")
                && r.key().and_then(|k| k.get("SK")) == Some(&s(keys::path_sk("/a%20b")))
                && r.expression_attribute_values().and_then(|v| v.get(":ids"))
                    == Some(&AttributeValue::Ss(vec!["ev-1".into()]))
        })
        .then_output(|| UpdateItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, [&rule]);
    let change = PathChange {
        etag: Some("e".into()),
        sequencer: Some("01".into()),
        ..path_change("/a%20b", "a b", "ev-1")
    };
    store(client)
        .put_path("E1-b", &change, datetime!(2026-11-25 00:00 UTC))
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_manual_request_asked_again_is_charged_once() {
    use crate::manual::ManualStore;
    let hour = datetime!(2026-11-25 10:00 UTC);
    // The hour's item after request M-1 reserved: a second ask by M-1 stands, M-2 is over.
    let refused = mock!(Client::update_item)
        .match_requests(|r| {
            r.condition_expression()
                .is_some_and(|c| c.contains("NOT contains(requestIds, :id)"))
                && r.expression_attribute_values().and_then(|v| v.get(":room")) == Some(&n(2))
        })
        .then_http_response(|| wire_error("ConditionalCheckFailedException"));
    let read = mock!(Client::get_item)
        .match_requests(|r| r.consistent_read() == Some(true))
        .then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(HashMap::from([
                    ("manualPaths".to_owned(), n(3)),
                    (
                        "requestIds".to_owned(),
                        AttributeValue::Ss(vec!["M-1".into()]),
                    ),
                ])))
                .build()
        });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&refused, &read]);
    let store = store(client);
    assert!(
        store
            .reserve_manual_paths("E1", hour, "M-1", 2, 4)
            .await
            .unwrap()
    );
    assert!(
        !store
            .reserve_manual_paths("E1", hour, "M-2", 2, 4)
            .await
            .unwrap()
    );
}
