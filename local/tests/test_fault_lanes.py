"""Faults scoped to one lane of a shared stack (``contains``) and S3 event delivery faults.

A lane is one distribution / key prefix (``d<i>/``): a fault matrix runs several faults at once
on one stack, so each must touch its own lane only.
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from botocore.exceptions import ClientError

from .conftest import wait_for
from .test_cloudfront import _dist
from .test_events import _drain, _queue, _rule


@pytest.fixture(scope="module")
def fn(stack, tmp_path_factory):
    return stack.add_function("LaneFn", tmp_path_factory.mktemp("lanes"), timeout=10, max_concurrency=2)


def _invoke(stack, pool, payload):
    resp = stack.client("lambda").invoke(FunctionName=pool.function_name, Payload=json.dumps(payload).encode())
    return resp, json.loads(resp["Payload"].read())


def _crashed(resp, body) -> bool:
    return resp.get("FunctionError") == "Unhandled" and body.get("errorType") == "Runtime.ExitError"


def _faults(stack, kind):
    return stack.control("faults/list")[kind]


def _deliveries(stack, bucket):
    """S3 events delivered for ``bucket``, in delivery order: (key, entry)."""
    events = stack.control("s3/events")["events"]
    return [(e["detail"]["object"]["key"], e) for e in events if e["detail"]["bucket"]["name"] == bucket]


# ---- crash_after / lambda_crash with contains ---------------------------------------------------
def test_crash_after_contains_looks_in_the_body(stack, fn):
    ddb = stack.client("dynamodb")
    ddb.create_table(TableName="lanes", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    fault = stack.control(
        "faults/set",
        {"kind": "crash_after", "function": "LaneFn", "service": "dynamodb", "operation": "PutItem", "contains": "EDIST0002", "times": 1},
    )
    assert fault["contains"] == "EDIST0002"

    def put(pk):
        return {"action": "aws", "service": "dynamodb", "op": "put_item", "args": {"TableName": "lanes", "Item": {"pk": {"S": pk}}}}

    resp, body = _invoke(stack, fn, put("d1/EDIST0001"))  # another lane: not crashed, not counted
    assert "FunctionError" not in resp, body
    assert [f["fired"] for f in _faults(stack, "crash_after")] == [0]
    resp, body = _invoke(stack, fn, put("d2/EDIST0002"))
    assert _crashed(resp, body), body
    assert "Item" in ddb.get_item(TableName="lanes", Key={"pk": {"S": "d2/EDIST0002"}})  # the effect happened
    assert _faults(stack, "crash_after") == []  # fired its one time
    resp, body = _invoke(stack, fn, put("d2/EDIST0002-again"))
    assert "FunctionError" not in resp, body


def test_crash_after_contains_looks_in_the_url_path(stack, fn):
    mine, other = _dist(stack), _dist(stack)
    stack.control(
        "faults/set",
        {"kind": "crash_after", "function": "LaneFn", "service": "cloudfront", "operation": "CreateInvalidation", "contains": mine, "times": 1},
    )

    def invalidate(dist):
        batch = {"Paths": {"Quantity": 1, "Items": ["/a.html"]}, "CallerReference": uuid.uuid4().hex}
        return {"action": "aws", "service": "cloudfront", "op": "create_invalidation", "args": {"DistributionId": dist, "InvalidationBatch": batch}}

    resp, body = _invoke(stack, fn, invalidate(other))
    assert "FunctionError" not in resp, body
    resp, body = _invoke(stack, fn, invalidate(mine))
    assert _crashed(resp, body), body
    assert stack.control("cloudfront/calls", {"distribution_id": mine})["created"] == 1  # CloudFront accepted it
    assert _faults(stack, "crash_after") == []


def test_lambda_crash_contains_counts_only_matching_payloads(stack, fn):
    stack.control("faults/set", {"kind": "lambda_crash", "function": "LaneFn", "contains": "d7/", "on_call": 2})
    outcomes = []
    for key in ("d1/a", "d7/a", "d1/b"):
        resp, body = _invoke(stack, fn, {"action": "echo", "key": key})
        outcomes.append(_crashed(resp, body))
    assert outcomes == [False, False, False]
    assert [(f["seen"], f["fired"]) for f in _faults(stack, "lambda_crash")] == [(1, 0)]
    resp, body = _invoke(stack, fn, {"action": "echo", "key": "d7/b"})  # the 2nd d7/ invocation
    assert _crashed(resp, body), body
    resp, body = _invoke(stack, fn, {"action": "echo", "key": "d7/c"})
    assert "FunctionError" not in resp, body


def test_lambda_hold_keeps_matching_invocations_until_cleared(stack, fn):
    hold = stack.control("faults/set", {"kind": "lambda_hold", "function": "LaneFn", "contains": "d8/"})
    outcome: dict[str, object] = {}

    def held_call() -> None:
        outcome["resp"], outcome["body"] = _invoke(stack, fn, {"action": "echo", "key": "d8/a"})

    worker = threading.Thread(target=held_call, daemon=True)
    worker.start()
    wait_for(lambda: _faults(stack, "lambda_hold")[0]["held"] == 1, what="the d8/ invocation held")
    resp, _ = _invoke(stack, fn, {"action": "echo", "key": "d1/a"})  # another lane is not held
    assert "FunctionError" not in resp
    worker.join(0.5)
    assert worker.is_alive() and "resp" not in outcome, "still held"
    stack.control("faults/clear", {"id": hold["id"]})
    worker.join(10)
    assert not worker.is_alive() and "FunctionError" not in outcome["resp"], outcome
    assert _faults(stack, "lambda_hold") == []


def test_lambda_throttle_refuses_invocations_past_the_concurrency_limit(stack, fn):
    throttle = stack.control("faults/set", {"kind": "lambda_throttle", "function": "LaneFn", "concurrency": 1, "contains": "d9/"})
    slow = threading.Thread(target=_invoke, args=(stack, fn, {"action": "sleep", "seconds": 3, "key": "d9/a"}), daemon=True)
    slow.start()
    wait_for(lambda: _faults(stack, "lambda_throttle")[0]["running"] == 1, what="the first d9/ invocation running")
    with pytest.raises(ClientError) as refused:
        _invoke(stack, fn, {"action": "echo", "key": "d9/b"})
    assert refused.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    resp, _ = _invoke(stack, fn, {"action": "echo", "key": "d1/b"})  # another lane is not limited
    assert "FunctionError" not in resp

    # Step Functions sees Lambda's name for it, which the state machines retry.
    sm = stack.state_machine(
        {
            "StartAt": "T",
            "States": {
                "T": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": fn.function_arn, "Payload": {"action": "echo", "key": "d9/c"}},
                    "Catch": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "Next": "Throttled"}],
                    "End": True,
                },
                "Throttled": {"Type": "Succeed"},
            },
        }
    )
    sfn = stack.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=sm)["executionArn"]
    wait_for(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING", what="the execution")
    states = [e["stateEnteredEventDetails"]["name"] for e in sfn.get_execution_history(executionArn=arn)["events"] if "stateEnteredEventDetails" in e]
    assert states == ["T", "Throttled"], states
    slow.join(10)
    assert _faults(stack, "lambda_throttle")[0]["throttled"] == 2
    stack.control("faults/clear", {"id": throttle["id"]})


def test_a_crash_check_without_a_payload_never_matches_contains(stack):
    faults = stack.stack.faults
    faults.add("lambda_crash", {"function": "Old", "contains": "x"})
    assert faults.lambda_should_crash({"Old"}) is None  # no payload: a contains fault never matches
    faults.add("lambda_crash", {"function": "Old"})
    assert faults.lambda_should_crash({"Old"}) == "start"


def test_contains_and_s3_delivery_are_validated(stack):
    stack.control("faults/set", {"kind": "crash_after", "function": "F", "service": "s3", "operation": "PutObject", "contains": 5}, expect=400)
    stack.control("faults/set", {"kind": "s3_delivery", "duplicate": True}, expect=400)
    stack.control("faults/set", {"kind": "s3_delivery", "prefix": "d1/", "duplicate_delay": [5, 1]}, expect=400)
    stack.control("faults/set", {"kind": "s3_delivery", "prefix": "d1/", "held": 3}, expect=400)
    stack.control("faults/set", {"kind": "s3_delivery", "prefix": "d1/", "bogus": 1}, expect=400)
    assert _faults(stack, "s3_delivery") == []


# ---- s3_delivery -------------------------------------------------------------------------------------
def test_s3_delivery_duplicate_delivers_the_same_event_twice(stack, bucket):
    url, arn = _queue(stack)
    _rule(stack, {"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}}}, [{"Id": "q", "Arn": arn}])
    fault = stack.control("faults/set", {"kind": "s3_delivery", "prefix": "d3/", "duplicate": True, "duplicate_delay": [0.05, 0.2]})
    assert fault["duplicate_delay"] == [0.05, 0.2] and fault["delivered"] == 0
    s3 = stack.client("s3")
    for key in ("d3/a.html", "d3/b.html", "d4/other.html"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"1")
    events = [json.loads(m["Body"]) for m in _drain(stack, url, 5)]
    by_key: dict[str, list[dict]] = {}
    for e in events:
        by_key.setdefault(e["detail"]["object"]["key"], []).append(e)
    assert sorted((k, len(v)) for k, v in by_key.items()) == [("d3/a.html", 2), ("d3/b.html", 2), ("d4/other.html", 1)]
    for key in ("d3/a.html", "d3/b.html"):
        first, second = by_key[key]
        assert first == second  # same envelope id, time and detail (sequencer included)
    (f,) = wait_for(lambda: [f for f in _faults(stack, "s3_delivery") if f["duplicated"] == 2], what="2 duplicates counted")
    assert (f["delivered"], f["pending"], f["held"], f["reordered"]) == (2, 0, 0, 0)
    flagged = [(k, e.get("redelivery", False)) for k, e in _deliveries(stack, bucket)]
    assert sorted(flagged) == [("d3/a.html", False), ("d3/a.html", True), ("d3/b.html", False), ("d3/b.html", True), ("d4/other.html", False)]


def test_s3_delivery_count_limits_the_events_affected(stack, bucket):
    stack.control("faults/set", {"kind": "s3_delivery", "prefix": "d5/", "duplicate": True, "duplicate_delay": [0, 0], "count": 1})
    s3 = stack.client("s3")
    s3.put_object(Bucket=bucket, Key="d5/a", Body=b"1")
    s3.put_object(Bucket=bucket, Key="d5/b", Body=b"1")
    # Listed until its scheduled second delivery is made, then gone.
    wait_for(lambda: _faults(stack, "s3_delivery") == [], what="the exhausted fault to go")
    got = [(k, e.get("redelivery", False)) for k, e in _deliveries(stack, bucket)]
    assert sorted(got) == [("d5/a", False), ("d5/a", True), ("d5/b", False)]


def test_s3_delivery_reorder_swaps_neighbours_and_releases_a_lone_event(stack, bucket):
    url, arn = _queue(stack)
    _rule(stack, {"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}}}, [{"Id": "q", "Arn": arn}])
    pair = stack.control("faults/set", {"kind": "s3_delivery", "prefix": "d6/", "reorder": True, "hold_seconds": 30})
    lone = stack.control("faults/set", {"kind": "s3_delivery", "prefix": "d7/", "reorder": True, "hold_seconds": 0.2})
    s3 = stack.client("s3")
    s3.put_object(Bucket=bucket, Key="d6/1", Body=b"1")
    assert _deliveries(stack, bucket) == []  # held
    s3.put_object(Bucket=bucket, Key="d6/2", Body=b"2")
    got = _deliveries(stack, bucket)
    assert [(k, e.get("reordered", False)) for k, e in got] == [("d6/2", False), ("d6/1", True)]
    seq = {k: e["detail"]["object"]["sequencer"] for k, e in got}
    assert seq["d6/1"] < seq["d6/2"]  # S3's order is still in the sequencers
    received = [json.loads(m["Body"])["detail"]["object"]["key"] for m in _drain(stack, url, 2)]
    assert sorted(received) == ["d6/1", "d6/2"]

    s3.put_object(Bucket=bucket, Key="d7/only", Body=b"1")  # nothing follows: the timer releases it
    wait_for(lambda: [k for k, _ in _deliveries(stack, bucket)][2:] == ["d7/only"], timeout=60, what="the held event")
    counters = {f["id"]: (f["delivered"], f["reordered"], f["held"]) for f in _faults(stack, "s3_delivery")}
    assert counters == {pair["id"]: (2, 1, 0), lone["id"]: (1, 0, 0)}


def test_clear_delivers_what_s3_delivery_holds_and_schedules(stack, bucket):
    stack.control(
        "faults/set",
        {"kind": "s3_delivery", "prefix": "d8/", "reorder": True, "hold_seconds": 60, "duplicate": True, "duplicate_delay": [60, 60]},
    )
    s3 = stack.client("s3")
    for key in ("d8/1", "d8/2", "d8/3"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"1")
    assert [k for k, _ in _deliveries(stack, bucket)] == ["d8/2", "d8/1"]  # d8/3 held
    (f,) = _faults(stack, "s3_delivery")
    assert (f["delivered"], f["held"], f["pending"]) == (2, 1, 3)  # pending: d8/3's second delivery too
    assert stack.control("faults/clear", {"kind": "s3_delivery"}) == {"removed": 1}
    got = [(k, e.get("redelivery", False)) for k, e in _deliveries(stack, bucket)]
    assert got == [("d8/2", False), ("d8/1", False), ("d8/2", True), ("d8/1", True), ("d8/3", False), ("d8/3", True)]
    assert _faults(stack, "s3_delivery") == []
