"""The Lambda Runtime API + process pools (local.lambda_runtime, local.lambda_patch)."""

from __future__ import annotations

import json
import threading

import pytest

from .conftest import wait_for


@pytest.fixture(scope="module")
def fn(stack, tmp_path_factory):
    return stack.add_function("RtEcho", tmp_path_factory.mktemp("rt"), timeout=2, env={"TABLE_NAME": "t1"}, max_concurrency=3)


def _invoke(stack, pool, payload):
    resp = stack.client("lambda").invoke(FunctionName=pool.function_name, Payload=json.dumps(payload).encode())
    return resp, json.loads(resp["Payload"].read())


def test_invoke_runs_the_binary_with_lambda_environment(stack, fn):
    resp, body = _invoke(stack, fn, {"action": "echo", "n": 1})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    assert body["input"] == {"action": "echo", "n": 1}
    env = body["env"]
    assert env["TABLE_NAME"] == "t1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == fn.function_name
    assert env["AWS_ENDPOINT_URL"] == stack.endpoint
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST" and env["AWS_REGION"] == "us-east-1"
    assert int(body["deadline"]) > 0
    # The pool writes REPORT after it has answered the caller: wait for it, don't race it.
    log = wait_for(lambda: (t := fn.log_path.read_text()) and "REPORT RequestId" in t and t, what="REPORT line")
    assert "fake bootstrap started" in log and "START RequestId" in log


def test_function_error_is_unhandled_with_error_type(stack, fn):
    resp, body = _invoke(stack, fn, {"action": "raise", "errorType": "InvalidationBatchAlreadyExists", "message": "m"})
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert body == {"errorType": "InvalidationBatchAlreadyExists", "errorMessage": "m"}


def test_crash_mid_invocation_is_runtime_exit_error_and_process_is_replaced(stack, fn):
    _, first = _invoke(stack, fn, {"action": "echo"})
    resp, body = _invoke(stack, fn, {"action": "exit", "code": 3})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError" and "exit status 3" in body["errorMessage"]
    resp, again = _invoke(stack, fn, {"action": "echo"})
    assert "FunctionError" not in resp


def test_timeout_is_sandbox_timedout_and_kills_the_process(stack, fn):
    resp, body = _invoke(stack, fn, {"action": "sleep", "seconds": 10})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout" and "timed out after 2.00 seconds" in body["errorMessage"]
    resp, _ = _invoke(stack, fn, {"action": "echo"})
    assert "FunctionError" not in resp


def test_crash_fault_on_nth_call(stack, fn):
    stack.control("faults/set", {"kind": "lambda_crash", "function": "RtEcho", "on_call": 2})
    r1, _ = _invoke(stack, fn, {"action": "echo"})
    r2, b2 = _invoke(stack, fn, {"action": "echo"})
    r3, _ = _invoke(stack, fn, {"action": "echo"})
    assert "FunctionError" not in r1 and "FunctionError" not in r3
    assert r2["FunctionError"] == "Unhandled" and b2["errorType"] == "Runtime.ExitError"
    assert "signal: kill" in b2["errorMessage"]


def test_concurrent_invocations_scale_up_to_the_limit(stack, fn):
    results = []

    def call() -> None:
        results.append(_invoke(stack, fn, {"action": "sleep", "seconds": 0.7})[1])

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 5 and all("pid" in r for r in results), results
    assert 2 <= len({r["pid"] for r in results}) <= 3  # max_concurrency=3


def test_event_invocation_returns_202_and_runs_in_background(stack, fn):
    before = fn.invocations
    resp = stack.client("lambda").invoke(FunctionName=fn.function_name, InvocationType="Event", Payload=b'{"action":"echo"}')
    assert resp["StatusCode"] == 202
    wait_for(lambda: fn.invocations > before, what="async invocation")


def test_an_async_invocation_that_exhausts_its_retries_goes_to_its_on_failure_destination(stack, tmp_path):
    from local.deploy import send_to_destination

    failing = stack.add_function("AsyncFailing", tmp_path, max_concurrency=1)
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName="async-failures")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    failing.async_retries = 1
    failing.on_failure = send_to_destination(stack.stack, arn)
    payload = {"action": "raise", "errorType": "StoreUnavailable"}
    stack.client("lambda").invoke(FunctionName=failing.function_name, InvocationType="Event", Payload=json.dumps(payload).encode())
    got = wait_for(lambda: sqs.receive_message(QueueUrl=url).get("Messages"), timeout=120, what="the failure record")
    record = json.loads(got[0]["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2  # the first attempt and one retry
    assert record["requestPayload"] == payload
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "StoreUnavailable"


def test_step_functions_catch_matches_typed_error_and_retry_recovers_from_crash(stack, fn):
    sm = stack.state_machine(
        {
            "StartAt": "T",
            "States": {
                "T": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": fn.function_arn, "Payload": {"action": "raise", "errorType": "NoSuchDistribution"}},
                    "Catch": [{"ErrorEquals": ["NoSuchDistribution"], "ResultPath": "$.error", "Next": "Caught"}],
                    "End": True,
                },
                "Caught": {"Type": "Pass", "Next": "Crashy"},
                "Crashy": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": fn.function_arn, "Payload": {"action": "echo"}},
                    "Retry": [{"ErrorEquals": ["Runtime.ExitError"], "IntervalSeconds": 1, "MaxAttempts": 1}],
                    "ResultPath": "$.ok",
                    "End": True,
                },
            },
        }
    )
    stack.control("faults/set", {"kind": "lambda_crash", "function": fn.function_name, "on_call": 2})
    d = stack.run(sm)
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["error"]["Error"] == "NoSuchDistribution"
    cause = json.loads(out["error"]["Cause"])
    assert cause["errorType"] == "NoSuchDistribution"
    assert out["ok"]["Payload"]["input"] == {"action": "echo"}
    # Without a Catch the execution fails with the function's error name.
    sm2 = stack.state_machine(
        {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": fn.function_arn, "End": True}}}
    )
    d2 = stack.run(sm2, {"action": "raise", "errorType": "Throttling"})
    assert d2["status"] == "FAILED" and d2["error"] == "Throttling"


def test_crash_after_a_successful_aws_call(stack, fn):
    """The process is killed after DynamoDB applied PutItem and before the function saw it."""
    ddb = stack.client("dynamodb")
    ddb.create_table(TableName="crash-after", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    stack.control("faults/set", {"kind": "crash_after", "function": "RtEcho", "service": "dynamodb", "operation": "PutItem"})
    payload = {"action": "aws", "service": "dynamodb", "op": "put_item", "args": {"TableName": "crash-after", "Item": {"pk": {"S": "a"}}}}
    resp, body = _invoke(stack, fn, payload)
    assert resp["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.ExitError", body
    assert "Item" in ddb.get_item(TableName="crash-after", Key={"pk": {"S": "a"}})  # the effect happened
    resp, body = _invoke(stack, fn, payload)  # fault fired once
    assert "FunctionError" not in resp, body
