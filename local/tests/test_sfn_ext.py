"""Step Functions extensions (local.sfn_ext): idempotent starts, status events, RedriveExecution."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from botocore.exceptions import ClientError

from .conftest import wait_for
from .test_events import _queue


def _wait_sm(stack, seconds=1):
    return stack.state_machine({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": seconds, "End": True}}})


def test_start_execution_name_semantics(stack):
    sm = _wait_sm(stack)
    sfn = stack.client("stepfunctions")
    a = sfn.start_execution(stateMachineArn=sm, name="b1", input='{"x":1}')["executionArn"]
    assert sfn.start_execution(stateMachineArn=sm, name="b1", input='{"x":1}')["executionArn"] == a
    with pytest.raises(ClientError) as e:
        sfn.start_execution(stateMachineArn=sm, name="b1", input='{"x":2}')
    assert e.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
    stack.finish(a)
    with pytest.raises(ClientError) as e:
        sfn.start_execution(stateMachineArn=sm, name="b1", input='{"x":1}')
    assert e.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
    for bad in ("has space", "a/b", "x" * 81, "semi;colon"):
        with pytest.raises(ClientError) as e:
            sfn.start_execution(stateMachineArn=sm, name=bad)
        assert e.value.response["Error"]["Code"] == "InvalidName"


def test_concurrent_starts_with_one_name_make_one_execution(stack):
    sm = _wait_sm(stack)
    arns, errors = [], []

    def start():
        try:
            arns.append(stack.client("stepfunctions").start_execution(stateMachineArn=sm, name="race", input="{}")["executionArn"])
        except ClientError as e:
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(arns)) == 1
    assert len(stack.client("stepfunctions").list_executions(stateMachineArn=sm)["executions"]) == 1


def test_status_change_events_reach_rules(stack):
    sm_ok = stack.state_machine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    sm_bad = stack.state_machine({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "because"}}})
    sqs = stack.client("sqs")
    url, qarn = _queue(stack, f"st-{uuid.uuid4().hex[:6]}")
    ev = stack.client("events")
    ev.put_rule(
        Name="status",
        EventPattern=json.dumps(
            {"source": ["aws.states"], "detail-type": ["Step Functions Execution Status Change"], "detail": {"status": ["FAILED", "SUCCEEDED", "TIMED_OUT", "ABORTED"], "stateMachineArn": [sm_ok, sm_bad]}}
        ),
    )
    ev.put_targets(Rule="status", Targets=[{"Id": "q", "Arn": qarn}])
    ok = stack.run(sm_ok, {"in": 1}, name="ok1")
    bad = stack.run(sm_bad, name="bad1")
    got = []
    wait_for(lambda: got.extend(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])) or len(got) >= 2, what="2 status events")
    by_status = {json.loads(m["Body"])["detail"]["status"]: json.loads(m["Body"]) for m in got}
    s, f = by_status["SUCCEEDED"], by_status["FAILED"]
    assert s["source"] == "aws.states" and s["resources"] == [ok["executionArn"]]
    assert s["detail"]["executionArn"] == ok["executionArn"] and s["detail"]["stateMachineArn"] == sm_ok and s["detail"]["name"] == "ok1"
    assert json.loads(s["detail"]["input"]) == {"in": 1} and json.loads(s["detail"]["output"]) == {"in": 1}
    assert isinstance(s["detail"]["startDate"], int) and s["detail"]["stopDate"] >= s["detail"]["startDate"]
    assert f["detail"]["error"] == "Boom" and f["detail"]["cause"] == "because" and f["detail"]["output"] is None
    assert f["detail"]["redriveStatus"] == "REDRIVABLE" and f["detail"]["redriveCount"] == 0
    assert bad["status"] == "FAILED"


def test_abort_emits_aborted(stack):
    sm = _wait_sm(stack, 30)
    sfn = stack.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=sm, name="abort-me")["executionArn"]
    wait_for(lambda: any(e["executionArn"] == arn for e in stack.control("sfn/status-events")["events"]), what="RUNNING event")
    sfn.stop_execution(executionArn=arn)
    wait_for(lambda: any(e["executionArn"] == arn and e["status"] == "ABORTED" for e in stack.control("sfn/status-events")["events"]), what="ABORTED event")
    assert stack.finish(arn)["status"] == "ABORTED"


def test_redrive_resumes_at_the_failed_state_with_its_input(stack, tmp_path):
    pool = stack.add_function("RedriveFn", tmp_path)
    task = lambda payload, **kw: {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": pool.function_arn, "Payload": payload}, **kw}  # noqa: E731
    sm = stack.state_machine(
        {
            "StartAt": "First",
            "States": {
                "First": task({"action": "echo", "step": 1}, ResultPath="$.first", Next="Second"),
                "Second": task({"action": "echo", "rc.$": "$$.Execution.RedriveCount", "from.$": "$.tag"}, ResultSelector={"rc.$": "$.Payload.input.rc", "from.$": "$.Payload.input.from"}, ResultPath="$.second", End=True),
            },
        }
    )
    sfn = stack.client("stepfunctions")
    start_calls = pool.invocations
    stack.control("faults/set", {"kind": "lambda_crash", "function": "RedriveFn", "on_call": 2})
    d = stack.run(sm, {"tag": "t1"}, name="to-redrive")
    assert d["status"] == "FAILED" and d["error"] == "Runtime.ExitError", d
    assert pool.invocations - start_calls == 2
    desc = sfn.describe_execution(executionArn=d["executionArn"])
    assert desc["redriveStatus"] == "REDRIVABLE" and desc.get("redriveCount", 0) == 0
    with pytest.raises(ClientError) as e:
        sfn.redrive_execution(executionArn=sm.replace("stateMachine", "execution") + ":nope")
    assert e.value.response["Error"]["Code"] in ("ExecutionDoesNotExist", "ResourceNotFound")

    resp = sfn.redrive_execution(executionArn=d["executionArn"])
    assert resp["redriveDate"]
    d2 = stack.finish(d["executionArn"])
    assert d2["status"] == "SUCCEEDED", d2
    assert d2["executionArn"] == d["executionArn"] and d2["redriveCount"] == 1
    out = json.loads(d2["output"])
    assert out["second"] == {"rc": 1, "from": "t1"}
    assert out["first"]["Payload"]["input"]["step"] == 1
    assert pool.invocations - start_calls == 3  # First was not run again
    history = [e["type"] for e in sfn.get_execution_history(executionArn=d["executionArn"])["events"]]
    assert history.count("ExecutionStarted") == 1 and "ExecutionRedriven" in history
    assert history.index("ExecutionFailed") < history.index("ExecutionRedriven") < history.index("ExecutionSucceeded")
    with pytest.raises(ClientError) as e:
        sfn.redrive_execution(executionArn=d["executionArn"])
    assert e.value.response["Error"]["Code"] == "ExecutionNotRedrivable"
    statuses = [e["status"] for e in stack.control("sfn/status-events")["events"] if e["executionArn"] == d["executionArn"]]
    assert statuses == ["RUNNING", "FAILED", "RUNNING", "SUCCEEDED"]


def test_a_start_throttle_fault_is_a_token_bucket_on_start_execution(stack):
    sm = _wait_sm(stack, 0)
    sfn = stack.client("stepfunctions")
    fault = stack.control("faults/set", {"kind": "start_throttle", "rate": 0.5, "burst": 2, "contains": "lane-7"})
    assert fault["burst"] == 2 and "tokens" not in fault
    ok = [sfn.start_execution(stateMachineArn=sm, name=str(uuid.uuid4()), input='{"lane": "lane-7"}') for _ in range(2)]
    with pytest.raises(ClientError) as e:
        sfn.start_execution(stateMachineArn=sm, name=str(uuid.uuid4()), input='{"lane": "lane-7"}')
    assert e.value.response["Error"]["Code"] == "ThrottlingException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    other = sfn.start_execution(stateMachineArn=sm, name=str(uuid.uuid4()), input='{"lane": "lane-8"}')  # not matched
    # Refilled at 0.5 a second: a token again within a few seconds.
    arn = wait_for(
        lambda: _start_or_none(sfn, sm, '{"lane": "lane-7"}'), timeout=10, interval=0.5, what="a refilled token"
    )
    for execution in [o["executionArn"] for o in ok] + [other["executionArn"], arn]:
        stack.finish(execution)
    listed = stack.control("faults/list")["start_throttle"]
    assert listed[0]["admitted"] == 3 and listed[0]["throttled"] >= 1


def _start_or_none(sfn, sm, payload):
    try:
        return sfn.start_execution(stateMachineArn=sm, name=str(uuid.uuid4()), input=payload)["executionArn"]
    except ClientError as e:
        assert e.response["Error"]["Code"] == "ThrottlingException"
        return None


def test_eventbridge_retries_a_throttled_start_by_its_retry_policy(stack, bucket):
    from .test_events import _rule

    sm = _wait_sm(stack, 0)
    stack.control("faults/set", {"kind": "start_throttle", "rate": 1.0, "burst": 1, "contains": "throttled/"})
    _rule(stack, {"source": ["aws.s3"], "detail": {"bucket": {"name": [bucket]}}}, [{"Id": "sm", "Arn": sm, "RoleArn": "arn:aws:iam::123456789012:role/r"}])
    s3 = stack.client("s3")
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"throttled/{i}", Body=b"x")
    deliveries = lambda: [d for d in stack.control("events/deliveries")["deliveries"] if d["target"] == sm]  # noqa: E731
    wait_for(lambda: sum(d["ok"] for d in deliveries()) == 3, timeout=60, what="3 executions started")
    refused = [d for d in deliveries() if not d["ok"]]
    assert refused and all(d["error"] == "ThrottlingException" for d in refused)
    assert all(d["target"] != sm for d in stack.control("events/dead-letters")["dead_letters"])
