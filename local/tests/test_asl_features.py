"""Which ASL features moto 5.2.5's interpreter (plus local.asl_fixes / local.sfn_ext) supports.

Each test runs a tiny state machine on the in-process stack and asserts AWS's documented result.
The findings are summarised in local/README.md ("ASL support").
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from .conftest import wait_for


def _task(fn_arn: str, payload: dict, **extra: object) -> dict:
    return {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": fn_arn, "Payload": payload}, **extra}


@pytest.fixture(scope="module")
def echo(stack, tmp_path_factory):
    return stack.add_function("AslEcho", tmp_path_factory.mktemp("asl"))


def test_retry_with_jitter_and_max_delay_then_catch_named_error(stack, echo):
    sm = stack.state_machine(
        {
            "StartAt": "Fail",
            "States": {
                "Fail": _task(
                    echo.function_arn,
                    {"action": "raise", "errorType": "TooManyInvalidationsInProgress"},
                    Retry=[
                        {
                            "ErrorEquals": ["TooManyInvalidationsInProgress"],
                            "IntervalSeconds": 1,
                            "MaxAttempts": 2,
                            "BackoffRate": 2.0,
                            "MaxDelaySeconds": 1,
                            "JitterStrategy": "FULL",
                        }
                    ],
                    Catch=[{"ErrorEquals": ["TooManyInvalidationsInProgress"], "ResultPath": "$.err", "Next": "Caught"}],
                    Next="Never",
                ),
                "Never": {"Type": "Fail", "Error": "Wrong"},
                "Caught": {"Type": "Pass", "End": True},
            },
        }
    )
    d = stack.run(sm, {"x": 1})
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["err"]["Error"] == "TooManyInvalidationsInProgress"
    events = stack.client("stepfunctions").get_execution_history(executionArn=d["executionArn"])["events"]
    assert sum(1 for e in events if e["type"] == "TaskFailed") == 3  # first try + 2 retries


def test_states_all_catches_and_taskfailed_matches_function_errors(stack, echo):
    sm = stack.state_machine(
        {
            "StartAt": "A",
            "States": {
                "A": _task(echo.function_arn, {"action": "raise", "errorType": "AccessDenied"}, Catch=[{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.a", "Next": "B"}], Next="B"),
                "B": _task(echo.function_arn, {"action": "raise", "errorType": "Whatever"}, Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.b", "Next": "Done"}], End=True),
                "Done": {"Type": "Succeed"},
            },
        }
    )
    d = stack.run(sm)
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["a"]["Error"] == "AccessDenied" and out["b"]["Error"] == "Whatever"


def test_map_itemprocessor_itemselector_resultpath_null_and_iterator(stack):
    sm = stack.state_machine(
        {
            "StartAt": "M1",
            "States": {
                "M1": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index", "tag.$": "$.tag"},
                    "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                    "ResultPath": "$.mapped",
                    "Next": "M2",
                },
                "M2": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "Iterator": {"StartAt": "P2", "States": {"P2": {"Type": "Pass", "End": True}}},
                    "ResultPath": None,
                    "End": True,
                },
            },
        }
    )
    d = stack.run(sm, {"items": [10, 20], "tag": "t"})
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["mapped"] == [{"v": 10, "i": 0, "tag": "t"}, {"v": 20, "i": 1, "tag": "t"}]
    assert set(out) == {"items", "tag", "mapped"}  # ResultPath null kept the input


def test_choice_is_present_wait_seconds_and_redrive_count_zero(stack, echo):
    sm = stack.state_machine(
        {
            "StartAt": "W",
            "States": {
                "W": {"Type": "Wait", "Seconds": 1, "Next": "C"},
                "C": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.flag", "IsPresent": True, "Next": "T"}],
                    "Default": "Nope",
                },
                "Nope": {"Type": "Fail", "Error": "NoFlag"},
                "T": _task(echo.function_arn, {"rc.$": "$$.Execution.RedriveCount", "name.$": "$$.Execution.Name"}, OutputPath="$.Payload", End=True),
            },
        }
    )
    t0 = time.time()
    d = stack.run(sm, {"flag": False}, name="rc-zero")
    assert time.time() - t0 >= 1.0
    assert d["status"] == "SUCCEEDED", d
    out = json.loads(d["output"])
    assert out["input"]["rc"] == 0 and out["input"]["name"] == "rc-zero"
    d2 = stack.run(sm, {})
    assert d2["status"] == "FAILED" and d2["error"] == "NoFlag"


def test_task_timeout_seconds_and_machine_timeout(stack, echo):
    sm = stack.state_machine(
        {"StartAt": "Slow", "States": {"Slow": _task(echo.function_arn, {"action": "sleep", "seconds": 3}, TimeoutSeconds=1, End=True)}}
    )
    d = stack.run(sm)
    assert d["status"] == "FAILED" and d["error"] == "States.Timeout", d
    sm2 = stack.state_machine({"TimeoutSeconds": 1, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "End": True}}})
    d2 = stack.run(sm2)
    assert d2["status"] == "TIMED_OUT", d2


def _pass_machine(stack):
    return stack.state_machine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})


def _starter(stack, parameters, **task):
    """A machine whose one Task is states:startExecution with ``parameters`` (and ``task``'s
    fields; a Catch may go to the Succeed state ``Already``)."""
    start = {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution", "Parameters": parameters, "End": True, **task}
    return stack.state_machine({"StartAt": "Start", "States": {"Start": start, "Already": {"Type": "Succeed"}}})


def test_start_execution_integration_and_already_exists_catch(stack):
    """states:startExecution works (after local.asl_fixes); a second start with the same name on a
    closed execution fails with StepFunctions.ExecutionAlreadyExistsException, catchable."""
    child = _pass_machine(stack)
    parent = _starter(
        stack,
        {"StateMachineArn": child, "Name.$": "$.batch", "Input": {"batchId.$": "$.batch"}},
        Catch=[{"ErrorEquals": ["StepFunctions.ExecutionAlreadyExistsException"], "ResultPath": "$.already", "Next": "Already"}],
        ResultPath="$.started",
    )
    batch = f"b-{uuid.uuid4().hex[:8]}"
    d1 = stack.run(parent, {"batch": batch})
    assert d1["status"] == "SUCCEEDED", d1
    started = json.loads(d1["output"])["started"]
    assert started["ExecutionArn"].endswith(":" + batch) and isinstance(started["StartDate"], int)
    stack.finish(started["ExecutionArn"])
    d2 = stack.run(parent, {"batch": batch})
    assert d2["status"] == "SUCCEEDED", d2
    assert json.loads(d2["output"])["already"]["Error"] == "StepFunctions.ExecutionAlreadyExistsException"


def test_definition_substitution_unquoted_number_via_cfn(stack):
    """DefinitionSubstitutions are textual, so "Seconds": ${Wait} (unquoted) deploys."""
    cfn = stack.client("cloudformation")
    s3 = stack.client("s3")
    bucket = f"defs-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="m.json", Body=b'{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":${Wait},"End":true}}}')
    name = f"subst-{uuid.uuid4().hex[:6]}"
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(
            {
                "Resources": {
                    "M": {
                        "Type": "AWS::StepFunctions::StateMachine",
                        "Properties": {
                            "RoleArn": "arn:aws:iam::123456789012:role/x",
                            "DefinitionS3Location": {"Bucket": bucket, "Key": "m.json"},
                            "DefinitionSubstitutions": {"Wait": 0},
                        },
                    }
                }
            }
        ),
    )
    arn = cfn.describe_stack_resource(StackName=name, LogicalResourceId="M")["StackResourceDetail"]["PhysicalResourceId"]
    definition = stack.client("stepfunctions").describe_state_machine(stateMachineArn=arn)["definition"]
    assert '"Seconds":0' in definition
    assert stack.run(arn)["status"] == "SUCCEEDED"


@pytest.mark.parametrize("fmt", ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S+00:00"])
def test_wait_timestamp_path_seconds_path_and_is_present_on_array_index(stack, fmt):
    import datetime as dt

    sm = stack.state_machine(
        {
            "StartAt": "Until",
            "States": {
                "Until": {"Type": "Wait", "TimestampPath": "$.flushAt", "Next": "For"},
                "For": {"Type": "Wait", "SecondsPath": "$.waitSeconds", "Next": "Any"},
                "Any": {"Type": "Choice", "Choices": [{"Variable": "$.paths[0]", "IsPresent": True, "Next": "Yes"}], "Default": "No"},
                "Yes": {"Type": "Succeed"},
                "No": {"Type": "Fail", "Error": "Empty"},
            },
        }
    )
    at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1.5)
    d = stack.run(sm, {"flushAt": at.strftime(fmt), "waitSeconds": 0, "paths": ["/a"]})
    assert d["status"] == "SUCCEEDED", d
    # Never earlier than the timestamp (local.asl_fixes; moto alone ended up to 2 s early).
    assert dt.datetime.now(dt.timezone.utc) >= (at if "%f" in fmt else at.replace(microsecond=0))
    d2 = stack.run(sm, {"flushAt": "2020-01-01T00:00:00Z", "waitSeconds": 0, "paths": []})
    assert d2["status"] == "FAILED" and d2["error"] == "Empty", d2


def test_event_pattern_numeric_on_redrive_count(stack):
    """The template's 'redriven' rule matches detail.redriveCount with {numeric: [">", 0]}."""
    from moto.events.models import EventPattern

    pattern = EventPattern.load(json.dumps({"source": ["aws.states"], "detail": {"status": ["SUCCEEDED"], "redriveCount": [{"numeric": [">", 0]}]}}))
    assert pattern.matches_event({"source": "aws.states", "detail": {"status": "SUCCEEDED", "redriveCount": 1}})
    assert not pattern.matches_event({"source": "aws.states", "detail": {"status": "SUCCEEDED", "redriveCount": 0}})


def test_a_throttled_start_execution_task_fails_with_the_sdk_base_exception(stack):
    """ThrottlingException is not in Step Functions' service model: the Java SDK behind the
    integration names it AWSStepFunctionsException (moto said ThrottlingExceptionException)."""
    lane = f"throttled-{uuid.uuid4().hex[:8]}"  # only the task's start carries it
    child = _pass_machine(stack)
    parent = _starter(stack, {"StateMachineArn": child, "Input": {"lane": lane}})
    stack.control("faults/set", {"kind": "start_throttle", "rate": 0.001, "burst": 1, "contains": lane})
    stack.client("stepfunctions").start_execution(stateMachineArn=child, input=json.dumps({"lane": lane}))  # the one token
    failed = stack.run(parent, {})
    assert failed["status"] == "FAILED", failed
    assert failed["error"] == "StepFunctions.AWSStepFunctionsException", failed
    assert "Error Code: ThrottlingException" in failed["cause"], failed


@pytest.mark.parametrize(
    ("module", "cls", "name"),
    [
        ("state_task_service_lambda", "StateTaskServiceLambda", "Lambda.SdkClientException"),
        ("state_task_service_sfn", "StateTaskServiceSfn", "StepFunctions.SdkClientException"),
    ],
)
def test_a_task_call_that_got_no_answer_is_a_retryable_sdk_client_exception(stack, module, cls, name):
    """A closed or timed-out connection (the emulator under load) was States.Runtime, which no
    Retry may match; the state machines retry the SDK client exception."""
    import importlib
    from types import SimpleNamespace

    from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError

    task_cls = getattr(importlib.import_module(f"moto.stepfunctions.parser.asl.component.state.exec.state_task.service.{module}"), cls)
    task = task_cls.__new__(task_cls)
    task._get_sfn_resource = lambda: "invoke"
    task._get_sfn_resource_type = lambda: "lambda"
    env = SimpleNamespace(next_state_name="Enqueue", event_history_context=SimpleNamespace(source_event_id=1))
    for error in (ConnectionClosedError(endpoint_url="http://localhost:1/"), ConnectTimeoutError(endpoint_url="http://localhost:1/")):
        event = task._from_error(env, error)
        assert event.error_name.error_name == name
        assert event.event_details["taskFailedEventDetails"]["error"] == name
    retried = {n for f in ("object-changed", "invalidate-batch") for n in _retried_names(f)}
    assert name in retried


def _retried_names(machine: str) -> set[str]:
    from pathlib import Path

    definition = json.loads((Path(__file__).resolve().parents[2] / "statemachine" / f"{machine}.asl.json").read_text())
    names: set[str] = set()

    def walk(states: dict) -> None:
        for state in states.values():
            for rule in state.get("Retry", []):
                names.update(rule["ErrorEquals"])
            for branch in state.get("Branches", []):
                walk(branch["States"])
            for key in ("ItemProcessor", "Iterator"):
                if key in state:
                    walk(state[key]["States"])

    walk(definition["States"])
    return names


def _manual_or_s3(detail_type_path: str) -> dict:
    """The start object-changed is to have: a Choice on the event's detail-type, then a Pass
    that turns a manual request's envelope into the machine's own input."""
    return {
        "StartAt": "Kind",
        "States": {
            "Kind": {
                "Type": "Choice",
                "Choices": [{"Variable": detail_type_path, "StringEquals": "Invalidation Requested", "Next": "Manual"}],
                "Default": "S3",
            },
            "Manual": {
                "Type": "Pass",
                "Parameters": {"paths": [], "manual": {"request.$": "$.detail", "source.$": "$.source", "account.$": "$.account", "eventId.$": "$.id"}},
                "End": True,
            },
            "S3": {"Type": "Pass", "Result": {"kind": "an S3 event"}, "End": True},
        },
    }


ENVELOPE = {
    "version": "0",
    "id": "6f6c1d0e-0000-4000-8000-000000000001",
    "detail-type": "Invalidation Requested",
    "source": "cf-invalidator.manual",
    "account": "123456789012",
    "time": "2026-05-04T03:02:01Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {"paths": ["/a.html"], "reason": "r"},
}


def test_choice_on_a_hyphenated_field_in_bracket_notation_and_pass_parameters(stack):
    # The developer guide, "Using JSONPath paths": a name with punctuation other than _ needs
    # bracket notation. A Pass state's Parameters build its output from the input (no Result).
    sm = stack.state_machine(_manual_or_s3("$['detail-type']"))
    d = stack.run(sm, ENVELOPE)
    assert d["status"] == "SUCCEEDED", d
    assert json.loads(d["output"]) == {
        "paths": [],
        "manual": {"request": ENVELOPE["detail"], "source": "cf-invalidator.manual", "account": "123456789012", "eventId": ENVELOPE["id"]},
    }
    s3 = stack.run(sm, {**ENVELOPE, "detail-type": "Object Created", "source": "aws.s3"})
    assert s3["status"] == "SUCCEEDED" and json.loads(s3["output"]) == {"kind": "an S3 event"}


@pytest.mark.parametrize(
    "where",
    ["Variable", "Parameters", "InputPath"],
)
def test_a_hyphenated_name_in_dot_notation_is_refused_as_an_invalid_definition(stack, where):
    # "You must use square bracket notation if your field name contains any character that is
    # not included in the member-name-shorthand definition of the JsonPath ABNF rule." Whether
    # AWS refuses the definition or fails the execution is not documented: refused at once here.
    from botocore.exceptions import ClientError

    definition = _manual_or_s3("$['detail-type']")
    if where == "Variable":
        definition = _manual_or_s3("$.detail-type")
    elif where == "Parameters":
        definition["States"]["Manual"]["Parameters"]["manual"]["kind.$"] = "$.detail-type"
    else:
        definition["States"]["Manual"]["InputPath"] = "$.detail.reason-code"
    with pytest.raises(ClientError) as e:
        stack.state_machine(definition)
    assert e.value.response["Error"]["Code"] == "InvalidDefinition"
    assert "bracket notation" in e.value.response["Error"]["Message"]
    # The same names in bracket notation, or as data, are fine; so is UpdateStateMachine's check.
    sm = stack.state_machine({**_manual_or_s3("$['detail-type']"), "Comment": "$.not-a-path"})
    sfn = stack.client("stepfunctions")
    with pytest.raises(ClientError) as e:
        sfn.update_state_machine(stateMachineArn=sm, definition=json.dumps(definition))
    assert e.value.response["Error"]["Code"] == "InvalidDefinition"


def test_a_definition_moto_cannot_parse_is_named_invalid_definition(stack):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as e:
        stack.state_machine({"StartAt": "X", "States": {"X": {"Type": "Nope", "End": True}}})
    assert e.value.response["Error"]["Code"] == "InvalidDefinition", "moto answered an empty code"


def test_the_member_name_check_reads_only_paths():
    from local.asl_fixes import check_member_names, dotted_names_outside_shorthand

    assert dotted_names_outside_shorthand("$.detail-type") == ["detail-type"]
    for fine in ("$['detail-type']", "$.['detail-type']", "$.detail.object.key", "$$.Execution.Id", "$.paths[0]", "$..name", "$.a.*", "$.jar[?(@.a-b >= 5)].x", "$.caf\u00e9_1"):
        assert dotted_names_outside_shorthand(fine) == [], fine
    machine = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Pass", "Parameters": {"FilePath": "$.a-b", "x.$": "States.Format('{}', $.id)"}, "Result": {"k.$": "$.a-b"}, "Next": "J"},
            "J": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input.a %}", "End": True},
        },
    }
    assert check_member_names(machine) == [], "data, intrinsic functions and JSONata are not JSONPath paths"
    machine["States"]["P"]["ResultPath"] = "$.out-put"
    assert check_member_names(machine) == ["/States/P/ResultPath: 'out-put'"]
