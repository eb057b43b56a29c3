"""local.speedups: moto's hot paths made cheap must answer exactly what moto answers."""

from __future__ import annotations

import uuid

from moto.core.base_backend import BackendDict
from moto.sqs.models import sqs_backends


def test_queue_counts_and_retention_answer_as_moto(stack) -> None:
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=30)["Messages"]
    assert len(received) == 1

    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed", "ApproximateNumberOfMessagesNotVisible"]
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    assert counts == {"ApproximateNumberOfMessages": "2", "ApproximateNumberOfMessagesDelayed": "1",
                      "ApproximateNumberOfMessagesNotVisible": "1"}

    # A message older than the queue's retention period is gone, as moto (and SQS) has it.
    queue = sqs_backends[stack.stack.account][stack.stack.region].get_queue(url.rsplit("/", 1)[1])
    for message in queue._messages:
        if message.body != "later":
            message.sent_timestamp -= 61_000
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)


def test_backend_lookup_returns_the_same_backend(stack) -> None:
    account = f"{uuid.uuid4().int % 10**12:012}"  # an account no request has used yet
    first = sqs_backends[account]
    assert sqs_backends[account] is first
    assert sqs_backends in BackendDict._instances  # registered, as moto's own lookup does


def test_jsonpath_parse_is_cached_and_still_evaluates() -> None:
    from jsonpath_ng.ext import parse

    assert parse("$.detail.object.key") is parse("$.detail.object.key")
    assert [m.value for m in parse("$.detail.object.key").find({"detail": {"object": {"key": "a b"}}})] == ["a b"]


def test_update_expression_parse_is_cached_and_items_update_as_before(stack) -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    expression = "SET #a = :a ADD #n :one"
    assert UpdateExpressionParser.make(expression) is UpdateExpressionParser.make(expression)

    ddb = stack.client("dynamodb")
    table = f"t-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    for value in ("first", "second"):
        ddb.update_item(TableName=table, Key={"pk": {"S": "k"}}, UpdateExpression=expression,
                        ExpressionAttributeNames={"#a": "a", "#n": "n"},
                        ExpressionAttributeValues={":a": {"S": value}, ":one": {"N": "1"}})
    item = ddb.get_item(TableName=table, Key={"pk": {"S": "k"}})["Item"]
    assert item == {"pk": {"S": "k"}, "a": {"S": "second"}, "n": {"N": "2"}}
