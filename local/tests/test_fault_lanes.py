"""Faults scoped to one lane of a shared stack (``contains``).

A lane is one distribution / key prefix (``d<i>/``): a fault matrix runs several faults at once
on one stack, so each must touch its own lane only.
"""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import wait_for
from .test_cloudfront import _dist


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


def test_crash_hooks_keep_the_old_call_shape(stack, tmp_path):
    from local.lambda_runtime import FunctionPool

    faults = stack.stack.faults
    faults.add("lambda_crash", {"function": "Old", "contains": "x"})
    assert faults.lambda_should_crash({"Old"}) is None  # no payload: a contains fault never matches
    faults.add("lambda_crash", {"function": "Old"})
    assert faults.lambda_should_crash({"Old"}) == "start"
    asked = []
    pool = FunctionPool(
        runtime=stack.stack.runtime,
        logical_id="OldHook",
        function_name="OldHook",
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:OldHook",
        command=["/bin/false"],
        env={},
        timeout=1,
        log_path=tmp_path / "OldHook.log",
        should_crash=lambda names: asked.append(names) or "end",
    )
    try:
        assert pool.crash_for(b"{}") == "end" and asked == [pool.names]
    finally:
        pool.stop()


def test_contains_must_be_a_string(stack):
    stack.control("faults/set", {"kind": "crash_after", "function": "F", "service": "s3", "operation": "PutObject", "contains": 5}, expect=400)
    stack.control("faults/set", {"kind": "lambda_crash", "function": "F", "contains": ["d1/"]}, expect=400)
