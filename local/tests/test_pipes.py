"""EventBridge Pipes (local.pipes): SQS source, batches, one Standard execution per batch, and
failed batches returning to the queue until its redrive policy dead-letters them."""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import wait_for
from .test_events import _drain, _queue, _rule


def _role(stack, statements: list[dict]) -> str:
    iam = stack.client("iam")
    name = f"pipe-{uuid.uuid4().hex[:8]}"
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    return arn


def _pipe(stack, queue_arn: str, sm: str, *, batch_size: int = 10, window: int = 1, allowed: bool = True, **target: object) -> object:
    actions = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    statements = [{"Effect": "Allow", "Action": actions, "Resource": queue_arn}]
    if allowed:
        statements.append({"Effect": "Allow", "Action": "states:StartExecution", "Resource": sm})
    pipes = stack.stack.pipes
    pipe = pipes.add(
        f"p-{uuid.uuid4().hex[:8]}",
        {
            "RoleArn": _role(stack, statements),
            "Source": queue_arn,
            "SourceParameters": {"SqsQueueParameters": {"BatchSize": batch_size, "MaximumBatchingWindowInSeconds": window}},
            "Target": sm,
            "TargetParameters": {"InputTemplate": "<$.body>", "StepFunctionStateMachineParameters": {"InvocationType": "FIRE_AND_FORGET"}, **target},
        },
    )
    pipes.start()
    return pipe


def _batches(stack, pipe) -> list[dict]:
    return [b for b in stack.control("pipes/batches")["batches"] if b["pipe"] == pipe.arn]


def _executions(stack, sm: str) -> list[dict]:
    sfn = stack.client("stepfunctions")
    return [sfn.describe_execution(executionArn=e["executionArn"]) for e in sfn.list_executions(stateMachineArn=sm)["executions"]]


def test_a_burst_becomes_batches_of_at_most_batch_size_with_each_body_parsed(stack):
    sm = stack.state_machine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    url, arn = _queue(stack)
    sqs = stack.client("sqs")
    for i in range(25):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"id": f"e{i}", "n": i}))
    sqs.send_message(QueueUrl=url, MessageBody="not json")
    pipe = _pipe(stack, arn, sm, batch_size=10, window=1)
    wait_for(lambda: sum(len(b["event_ids"]) for b in _batches(stack, pipe)) == 26, what="26 records started")
    batches = _batches(stack, pipe)
    assert all(b["ok"] for b in batches) and len(batches) == 3, batches
    inputs = [json.loads(e["input"]) for e in _executions(stack, sm)]
    assert sorted(len(i) for i in inputs) == [6, 10, 10]
    records = [r for i in inputs for r in i]
    assert sorted(r["n"] for r in records if isinstance(r, dict)) == list(range(25))
    assert "not json" in records, "a body that is not JSON is passed as a string"
    # Delivered batches are deleted from the queue.
    wait_for(lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0", what="deleted")
    deliveries = {d["event_id"]: d for d in stack.control("events/deliveries")["deliveries"] if d.get("pipe") == pipe.arn}
    assert deliveries["e3"]["execution_arn"] in {b["execution_arn"] for b in batches}


def test_a_batch_the_pipe_cannot_start_returns_to_the_queue_then_reaches_its_dlq(stack):
    sm = stack.state_machine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    dlq_url, dlq_arn = _queue(stack)
    url, arn = _queue(stack, VisibilityTimeout="1", RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    stack.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps({"id": "poisoned"}))
    pipe = _pipe(stack, arn, sm, window=0, allowed=False)  # no states:StartExecution
    moved = _drain(stack, dlq_url, 1, timeout=60)
    assert json.loads(moved[0]["Body"]) == {"id": "poisoned"}
    failed = _batches(stack, pipe)
    assert [b["receive_counts"] for b in failed] == [[1], [2]] and {b["error"] for b in failed} == {"AccessDeniedException"}
    assert _executions(stack, sm) == []


def test_a_throttled_start_is_retried_in_place(stack):
    sm = stack.state_machine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    url, arn = _queue(stack, VisibilityTimeout="30")
    stack.control("faults/set", {"kind": "target_failure", "service": "pipes", "code": "ThrottlingException", "count": 2})
    stack.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps({"id": "t1"}))
    pipe = _pipe(stack, arn, sm, window=0)
    wait_for(lambda: _batches(stack, pipe), what="the batch")
    (batch,) = _batches(stack, pipe)
    assert batch["ok"] and batch["retries"] == 2 and batch["receive_counts"] == [1]


def test_a_standard_workflow_takes_only_fire_and_forget(stack):
    sm = stack.state_machine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    _, arn = _queue(stack)
    with pytest.raises(RuntimeError, match="REQUEST_RESPONSE is not supported for STANDARD"):
        stack.stack.pipes.add("sync", {"RoleArn": "arn:aws:iam::123456789012:role/x", "Source": arn, "Target": sm})


def test_a_rule_sends_to_a_queue_only_if_its_policy_allows(stack, bucket):
    dlq_url, dlq_arn = _queue(stack)
    _, closed_arn = _queue(stack, policy=False)
    _rule(stack, {"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}}}, [{"Id": "q", "Arn": closed_arn, "DeadLetterConfig": {"Arn": dlq_arn}}])
    stack.client("s3").put_object(Bucket=bucket, Key="refused", Body=b"1")
    msg = _drain(stack, dlq_url, 1)[0]
    attrs = {k: v["StringValue"] for k, v in msg["MessageAttributes"].items()}
    assert attrs["ERROR_CODE"] == "AccessDenied" and attrs["RETRY_ATTEMPTS"] == "0"


def test_a_rule_input_transformer_sees_the_event_time_as_aws_writes_it(stack, bucket):
    url, arn = _queue(stack)
    transformer = {"InputPathsMap": {"id": "$.id", "time": "$.time", "key": "$.detail.object.key"}, "InputTemplate": '{"id": "<id>", "time": "<time>", "key": "<key>"}'}
    _rule(stack, {"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}}}, [{"Id": "q", "Arn": arn, "InputTransformer": transformer}])
    stack.client("s3").put_object(Bucket=bucket, Key="a b.html", Body=b"1")
    body = json.loads(_drain(stack, url, 1)[0]["Body"])
    assert body["key"] == "a+b.html" or body["key"] == "a b.html"
    assert body["time"].endswith("Z") and "T" in body["time"], body


def test_dead_letters_redriven_to_their_source_queue(stack) -> None:
    """StartMessageMoveTask (local/sqs_redrive.py): a DLQ's messages go back to the queue whose
    redrive policy names it; a queue that is no DLQ is refused."""
    sqs = stack.client("sqs")
    dlq_url, dlq_arn = _queue(stack)
    source_url = sqs.create_queue(
        QueueName=f"src-{uuid.uuid4().hex[:8]}",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})},
    )["QueueUrl"]
    source_arn = sqs.get_queue_attributes(QueueUrl=source_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for body in ("one", "two", "three"):
        sqs.send_message(QueueUrl=dlq_url, MessageBody=body, MessageAttributes={"k": {"DataType": "String", "StringValue": body}})

    with pytest.raises(sqs.exceptions.ClientError, match="Dead Letter Queue"):
        sqs.start_message_move_task(SourceArn=source_arn)
    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    task = wait_for(lambda: next((t for t in sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
                                  if t["TaskHandle"] == handle and t["Status"] == "COMPLETED"), None), what="the move task")
    assert task["ApproximateNumberOfMessagesMoved"] == 3 and task["DestinationArn"] == source_arn
    moved = sqs.receive_message(QueueUrl=source_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
    assert sorted((m["Body"], m["MessageAttributes"]["k"]["StringValue"]) for m in moved) == [(b, b) for b in ("one", "three", "two")]
    assert "Messages" not in sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10)
