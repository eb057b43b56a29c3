"""S3 -> EventBridge events (local.s3_events) and EventBridge targets (local.event_targets)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from xml.etree import ElementTree

import pytest

from .conftest import wait_for


def _queue(stack, name: str | None = None, policy: bool = True, **attributes: str) -> tuple[str, str]:
    """A queue EventBridge may send to (a policy for any rule of the account), as on AWS."""
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName=name or f"q-{uuid.uuid4().hex[:8]}", Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    if policy:
        statement = {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/*"}},
        }
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({"Statement": [statement]})})
    return url, arn


def _drain(stack, url, n, timeout=60):
    sqs = stack.client("sqs")
    got = []

    def more():
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages", []):
            got.append(m)
        return len(got) >= n

    wait_for(more, timeout=timeout, what=f"{n} messages")
    return got


def _rule(stack, pattern: dict, targets: list[dict]) -> str:
    ev = stack.client("events")
    name = f"r-{uuid.uuid4().hex[:8]}"
    ev.put_rule(Name=name, EventPattern=json.dumps(pattern))
    ev.put_targets(Rule=name, Targets=targets)
    return name


def test_s3_events_have_unique_ids_rising_sequencers_and_aws_fields(stack, bucket):
    url, arn = _queue(stack)
    _rule(stack, {"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}}}, [{"Id": "q", "Arn": arn}])
    s3 = stack.client("s3")
    s3.put_object(Bucket=bucket, Key="a b+c.html", Body=b"1")
    s3.put_object(Bucket=bucket, Key="a b+c.html", Body=b"22")
    s3.delete_object(Bucket=bucket, Key="a b+c.html")
    events = [json.loads(m["Body"]) for m in _drain(stack, url, 3)]
    events.sort(key=lambda e: e["detail"]["object"]["sequencer"])
    assert len({e["id"] for e in events}) == 3
    assert len({e["detail"]["request-id"] for e in events}) == 3
    seqs = [e["detail"]["object"]["sequencer"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3 and all(len(s) == len(seqs[0]) for s in seqs)
    put, _, delete = events
    assert put["detail-type"] == "Object Created" and put["source"] == "aws.s3"
    assert put["detail"]["reason"] == "PutObject" and put["detail"]["object"]["key"] == "a b+c.html"
    assert put["detail"]["object"]["size"] == 1 and "etag" in put["detail"]["object"] and "eTag" not in put["detail"]["object"]
    assert put["resources"] == [f"arn:aws:s3:::{bucket}"]
    assert delete["detail-type"] == "Object Deleted" and delete["detail"]["reason"] == "DeleteObject"
    assert delete["detail"]["deletion-type"] == "Permanently Deleted"
    assert "size" not in delete["detail"]["object"] and "etag" not in delete["detail"]["object"]


def test_s3_events_after_a_sequencer_and_request_counts(stack, bucket):
    s3 = stack.client("s3")
    s3.put_object(Bucket=bucket, Key="first.html", Body=b"1")
    mine = lambda events: [e for e in events if e["detail"]["bucket"]["name"] == bucket]  # noqa: E731
    (first,) = mine(stack.control("s3/events")["events"])
    stack.control("aws/reset-requests")
    s3.put_object(Bucket=bucket, Key="second.html", Body=b"2")
    later = mine(stack.control("s3/events", {"after_sequencer": first["detail"]["object"]["sequencer"]})["events"])
    assert [e["detail"]["object"]["key"] for e in later] == ["second.html"]
    requests = stack.control("aws/requests", {"service": "s3"})["requests"]
    assert {"function": None, "service": "s3", "operation": "PutObject", "count": 1} in requests
    assert stack.control("aws/reset-requests")["removed"] >= 1
    assert stack.control("aws/requests")["requests"] == []


def test_form_key_encoding_switch(stack, bucket):
    url, arn = _queue(stack)
    _rule(stack, {"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}}}, [{"Id": "q", "Arn": arn}])
    stack.control("s3/key-encoding", {"encoding": "form"})
    try:
        stack.client("s3").put_object(Bucket=bucket, Key="a b+ü.html", Body=b"1")
    finally:
        stack.control("s3/key-encoding", {"encoding": "raw"})
    event = json.loads(_drain(stack, url, 1)[0]["Body"])
    assert event["detail"]["object"]["key"] == "a+b%2B%C3%BC.html"


def test_step_functions_target_starts_execution_with_the_event(stack, bucket):
    sm = stack.state_machine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    _rule(stack, {"source": ["aws.s3"], "detail-type": ["Object Created"], "detail": {"bucket": {"name": [bucket]}}}, [{"Id": "sfn", "Arn": sm, "RoleArn": "arn:aws:iam::123456789012:role/eb"}])
    stack.client("s3").put_object(Bucket=bucket, Key="k1", Body=b"1")
    sfn = stack.client("stepfunctions")
    execs = wait_for(lambda: sfn.list_executions(stateMachineArn=sm)["executions"], what="execution")
    d = stack.finish(execs[0]["executionArn"])
    event = json.loads(d["input"])
    assert event["detail"]["object"]["key"] == "k1" and event["source"] == "aws.s3"
    assert event["time"].endswith("Z")


def test_failed_start_is_retried_then_dead_lettered(stack, bucket):
    et = stack.stack.events
    et.retry_base_seconds = 0.05
    try:
        sm = stack.state_machine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
        dlq_url, dlq_arn = _queue(stack)
        _rule(
            stack,
            {"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}}},
            [{"Id": "sfn", "Arn": sm, "RoleArn": "arn:aws:iam::123456789012:role/eb", "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 60}, "DeadLetterConfig": {"Arn": dlq_arn}}],
        )
        stack.control("faults/set", {"kind": "target_failure", "service": "states", "code": "ThrottlingException", "count": 3})
        stack.client("s3").put_object(Bucket=bucket, Key="lost", Body=b"1")
        msg = _drain(stack, dlq_url, 1)[0]
        attrs = {k: v["StringValue"] for k, v in msg["MessageAttributes"].items()}
        assert attrs["ERROR_CODE"] == "ThrottlingException" and attrs["RETRY_ATTEMPTS"] == "2"
        assert attrs["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts" and attrs["TARGET_ARN"] == sm
        assert json.loads(msg["Body"])["detail"]["object"]["key"] == "lost"
        assert stack.client("stepfunctions").list_executions(stateMachineArn=sm)["executions"] == []
        # A transient failure within the policy is retried into a success.
        stack.control("faults/set", {"kind": "target_failure", "service": "states", "count": 1})
        stack.client("s3").put_object(Bucket=bucket, Key="saved", Body=b"1")
        wait_for(lambda: stack.client("stepfunctions").list_executions(stateMachineArn=sm)["executions"], what="retried start")
        # Non-retryable: missing state machine -> DLQ at once.
        _rule(stack, {"source": ["local.test"]}, [{"Id": "gone", "Arn": sm + "-gone", "DeadLetterConfig": {"Arn": dlq_arn}}])
        stack.client("events").put_events(Entries=[{"Source": "local.test", "DetailType": "x", "Detail": "{}"}])
        msg = _drain(stack, dlq_url, 1)[0]
        attrs = {k: v["StringValue"] for k, v in msg["MessageAttributes"].items()}
        assert attrs["ERROR_CODE"] == "StateMachineDoesNotExist" and attrs["RETRY_ATTEMPTS"] == "0"
    finally:
        et.retry_base_seconds = 1.0


def test_lambda_target_and_schedule(stack, tmp_path):
    pool = stack.add_function("EbTarget", tmp_path)
    _rule(stack, {"source": ["local.lambda"]}, [{"Id": "fn", "Arn": pool.function_arn}])
    stack.client("events").put_events(Entries=[{"Source": "local.lambda", "DetailType": "x", "Detail": '{"a": 1}'}])
    wait_for(lambda: pool.invocations >= 1, what="lambda target")
    ev = stack.client("events")
    ev.put_rule(Name="every-minute", ScheduleExpression="rate(1 minute)")
    ev.put_targets(Rule="every-minute", Targets=[{"Id": "fn", "Arn": pool.function_arn}])
    # A schedule-only rule does not match events (moto's empty pattern would match them all).
    before = pool.invocations
    stack.client("events").put_events(Entries=[{"Source": "local.other", "DetailType": "x", "Detail": "{}"}])
    stack.client("s3").create_bucket(Bucket=f"quiet-{uuid.uuid4().hex[:6]}")
    time.sleep(0.5)
    assert pool.invocations == before
    assert stack.control("schedule/fire", {"rule": "every-minute"})["fired"] == ["every-minute"]
    wait_for(lambda: pool.invocations > before, what="scheduled invocation")
    ok = lambda: [e for e in stack.control("lambda/async-log")["entries"] if e["function"] == "EbTarget" and e["ok"]]  # noqa: E731
    wait_for(lambda: len(ok()) >= 2, what="2 successful async invocations in the log")


def test_notification_configuration_shows_event_bridge_only_when_on(stack):
    s3 = stack.client("s3")
    on, off = f"b-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    for name in (on, off):
        s3.create_bucket(Bucket=name)
    s3.put_bucket_notification_configuration(Bucket=on, NotificationConfiguration={"EventBridgeConfiguration": {}})
    assert s3.get_bucket_notification_configuration(Bucket=on).get("EventBridgeConfiguration") == {}
    assert "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(Bucket=off)
    # As S3 answers a bucket without notifications: an empty NotificationConfiguration, the
    # root element the Rust SDK requires (boto3 would accept any root).
    with urllib.request.urlopen(f"{stack.endpoint}/{off}?notification", timeout=30) as resp:
        root = ElementTree.fromstring(resp.read())
    assert root.tag == "{http://s3.amazonaws.com/doc/2006-03-01/}NotificationConfiguration", root.tag
    assert len(root) == 0


def test_put_events_starts_an_execution_with_the_whole_event_envelope(stack):
    """A custom event from PutEvents reaches a Step Functions target as the event EventBridge
    builds ("Amazon EventBridge events": version, id, detail-type, source, account, time,
    region, resources, detail), the Detail string parsed into an object."""
    sm = stack.state_machine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    _rule(stack, {"detail-type": ["Invalidation Requested"]}, [{"Id": "sfn", "Arn": sm, "RoleArn": "arn:aws:iam::123456789012:role/eb"}])
    request = {"paths": ["/a b.html", "#sale"], "reason": "a manual request"}
    sent = stack.client("events").put_events(
        Entries=[
            {"Source": "cf-invalidator.manual", "DetailType": "Invalidation Requested", "Detail": json.dumps(request), "Resources": ["arn:aws:cloudfront::123456789012:distribution/E1"], "Time": datetime(2026, 5, 4, 3, 2, 1, tzinfo=timezone.utc)},
            {"Source": "cf-invalidator.other", "DetailType": "Invalidation Requested", "Detail": "{}"},
        ]
    )
    assert sent["FailedEntryCount"] == 0
    ids = [e["EventId"] for e in sent["Entries"]]
    sfn = stack.client("stepfunctions")
    execs = wait_for(lambda: len(e := sfn.list_executions(stateMachineArn=sm)["executions"]) == 2 and e, what="two executions")
    inputs = {(i := json.loads(stack.finish(x["executionArn"])["input"]))["id"]: i for x in execs}
    assert set(inputs) == set(ids)
    manual = inputs[ids[0]]
    assert manual == {
        "version": "0",
        "id": ids[0],
        "detail-type": "Invalidation Requested",
        "source": "cf-invalidator.manual",
        "account": "123456789012",
        "time": "2026-05-04T03:02:01Z",
        "region": "us-east-1",
        "resources": ["arn:aws:cloudfront::123456789012:distribution/E1"],
        "detail": request,
    }
    other = inputs[ids[1]]
    assert other["source"] == "cf-invalidator.other" and other["resources"] == [] and other["detail"] == {}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", other["time"]), "no Time: when EventBridge received it"


def test_put_events_refuses_a_source_aws_services_own(stack):
    # "Customer-generated events can have any value here, as long as it doesn't begin with
    # "aws."" (EventBridge user guide): the entry fails, the others in the request go on.
    sm = stack.state_machine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    detail_type = f"Reserved {uuid.uuid4().hex[:8]}"
    _rule(stack, {"detail-type": [detail_type]}, [{"Id": "sfn", "Arn": sm}])
    sent = stack.client("events").put_events(
        Entries=[
            {"Source": "aws.s3", "DetailType": detail_type, "Detail": "{}"},
            {"Source": "cf-invalidator.manual", "DetailType": detail_type, "Detail": "{}"},
            {"Source": "aws.cloudfront", "DetailType": detail_type, "Detail": "{}"},
        ]
    )
    assert sent["FailedEntryCount"] == 2
    first, second, third = sent["Entries"]
    assert first["ErrorCode"] == third["ErrorCode"] == "NotAuthorizedForSourceException" and "EventId" not in first
    assert "ErrorCode" not in second and second["EventId"]
    sfn = stack.client("stepfunctions")
    (only,) = wait_for(lambda: sfn.list_executions(stateMachineArn=sm)["executions"], what="the custom event's execution")
    assert json.loads(stack.finish(only["executionArn"])["input"])["source"] == "cf-invalidator.manual"
    time.sleep(0.5)
    assert len(sfn.list_executions(stateMachineArn=sm)["executions"]) == 1


def test_a_disabled_rule_receives_no_put_events(stack):
    # DisableRule: "A disabled rule won't match any events".
    sm = stack.state_machine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    detail_type = f"Disabled {uuid.uuid4().hex[:8]}"
    name = _rule(stack, {"detail-type": [detail_type]}, [{"Id": "sfn", "Arn": sm}])
    ev = stack.client("events")
    ev.disable_rule(Name=name)
    ev.put_events(Entries=[{"Source": "cf-invalidator.manual", "DetailType": detail_type, "Detail": "{}"}])
    time.sleep(1.0)
    sfn = stack.client("stepfunctions")
    assert sfn.list_executions(stateMachineArn=sm)["executions"] == []
    ev.enable_rule(Name=name)
    ev.put_events(Entries=[{"Source": "cf-invalidator.manual", "DetailType": detail_type, "Detail": "{}"}])
    wait_for(lambda: sfn.list_executions(stateMachineArn=sm)["executions"], what="an execution once enabled")


def test_setting_one_queue_attribute_keeps_the_policy(stack) -> None:
    """SetQueueAttributes changes only what it names (moto dropped the Policy)."""
    sqs = stack.client("sqs")
    url, _ = _queue(stack)
    policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "1"})
    after = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy", "VisibilityTimeout"])["Attributes"]
    assert after == {"Policy": policy, "VisibilityTimeout": "1"}
