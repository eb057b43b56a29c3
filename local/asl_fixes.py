"""Fixes to moto 5.2.5's ASL interpreter for optimized service integrations.

Why: moto's port of LocalStack's interpreter stubs out ``StateTaskService._normalise_parameters``
and ``_normalise_response``. ASL passes service parameters in the integration's casing
(``arn:aws:states:::states:startExecution`` with ``StateMachineArn``/``Name``/``Input``), but
boto3 wants the API's member names (``stateMachineArn``...): every ``states:startExecution``
task failed with ``States.Runtime`` ``'StateMachineArn'``. And AWS returns the result in
PascalCase (``ExecutionArn``, ``StartDate``), boto3 in the API's casing.

Also: ``Wait`` with ``Timestamp``/``TimestampPath`` truncated both the timestamp and the delta to
whole seconds (ending up to ~2 s early, often not waiting at all for a near timestamp) and
rejected RFC 3339 offsets (``+00:00``). The fix waits until the timestamp, rounded *up* to the
second, and accepts ``Z`` or an offset, with or without fractional seconds.

And a ``states:`` task that failed named its error ``StepFunctions.<code>Exception`` for any
code: a throttled StartExecution became ``StepFunctions.ThrottlingExceptionException``, a name
no AWS client produces. The cause AWS gives such a failure ("Service: AWSStepFunctions; Status
Code: 400; Error Code: ...; Request ID: ...; Proxy: null") is the AWS SDK for Java's, which
names a modeled error by its exception class (``ExecutionAlreadyExists`` ->
``ExecutionAlreadyExistsException``, ``ValidationException`` as is) and an error code the
service model does not declare (``ThrottlingException`` for StartExecution) by the service's
base class, ``AWSStepFunctionsException``. No AWS document lists these names; the state
machines retry all three spellings of a throttle (``statemachine/object-changed.asl.json``).
A task call that got no answer at all (a connection closed or timed out: the one emulator
process under load) was ``States.Runtime``, which no Retry may match; it is now
``Lambda.SdkClientException`` / ``StepFunctions.SdkClientException``, the names the Step
Functions developer guide gives transient SDK-side failures and the state machines retry.

And a JSONPath that names a field by dot notation although the name holds a character outside
JSONPath's member-name-shorthand (``$.detail-type``) was accepted; the Step Functions developer
guide requires bracket notation for it (``$['detail-type']``), so such a definition is refused
at CreateStateMachine/UpdateStateMachine (and so at deploy) with ``InvalidDefinition``
(:func:`check_member_names`).

The integration fix is shape-driven (botocore's service model), so it only renames *structure members*:
parameter keys are matched case-insensitively to the input shape's members; response members are
renamed to an upper-case first letter, timestamps become epoch milliseconds. Map keys (e.g. DynamoDB attribute names) are never touched,
and calls whose keys already match (Lambda, DynamoDB, SQS) are unchanged.
"""

from __future__ import annotations

import datetime
import functools
import logging
import re
import threading
from typing import Any

LOG = logging.getLogger("local.sfn")

_installed = False


_operation_lock = threading.Lock()


def _operation(service: str, action_snake: str) -> Any:
    # One loader at a time: the first executions of a run all start at once, and each would
    # load the same botocore service model (seconds of the one emulator process each).
    with _operation_lock:
        return _load_operation(service, action_snake)


@functools.lru_cache(maxsize=256)
def _load_operation(service: str, action_snake: str) -> Any:
    model = _load_service_model(service)
    for name in model.operation_names:
        if _snake(name) == action_snake:
            return model.operation_model(name)
    return None


@functools.lru_cache(maxsize=16)
def _load_service_model(service: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def _snake(name: str) -> str:
    from botocore import xform_name

    return xform_name(name)


def to_api_casing(value: Any, shape: Any) -> Any:
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        by_lower = {m.lower(): m for m in shape.members}
        out = {}
        for k, v in value.items():
            member = k if k in shape.members else by_lower.get(k.lower(), k)
            out[member] = to_api_casing(v, shape.members.get(member))
        return out
    if kind == "list" and isinstance(value, list):
        return [to_api_casing(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: to_api_casing(v, shape.value) for k, v in value.items()}
    return value


def to_sfn_casing(value: Any, shape: Any) -> Any:
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        out = {}
        for k, v in value.items():
            member_shape = shape.members.get(k)
            out[k[:1].upper() + k[1:] if member_shape is not None else k] = to_sfn_casing(v, member_shape)
        return out
    if kind == "list" and isinstance(value, list):
        return [to_sfn_casing(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: to_sfn_casing(v, shape.value) for k, v in value.items()}
    if kind == "timestamp" and isinstance(value, datetime.datetime):
        # Step Functions serialises timestamps of integration results as epoch milliseconds
        # (e.g. the StartDate of states:startExecution); a datetime would not even serialise.
        return int(value.timestamp() * 1000)
    return value


# ---- JSONPath member names ------------------------------------------------------------------
# RFC 9535 (JSONPath), "member-name-shorthand": name-first = ALPHA / "_" / %x80-D7FF /
# %xE000-10FFFF; name-char = name-first / DIGIT.
_SHORTHAND = re.compile("[A-Za-z_\u0080-\ud7ff\ue000-\U0010ffff][A-Za-z0-9_\u0080-\ud7ff\ue000-\U0010ffff]*")
# Fields whose object is a payload template: only its keys ending in ".$" hold paths (a key
# such as "FilePath" inside it is data).
_TEMPLATES = {"Parameters", "ResultSelector", "ItemSelector", "Assign", "Result"}


def dotted_names_outside_shorthand(path: str) -> list[str]:
    """The names a JSONPath selects by dot notation that member-name-shorthand cannot spell
    (bracketed segments, filters included, are skipped)."""
    found: list[str] = []
    i = 2 if path.startswith("$$") else 1
    while i < len(path):
        c = path[i]
        if c == "[":
            depth, quote = 0, ""
            while i < len(path):
                ch = path[i]
                if quote:
                    quote = "" if ch == quote and path[i - 1] != "\\" else quote
                elif ch in "'\"":
                    quote = ch
                elif ch == "[":
                    depth += 1
                elif ch == "]":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            i += 1
        elif c == ".":
            i += 2 if path[i + 1 : i + 2] == "." else 1
            if path[i : i + 1] == "*":
                i += 1
                continue
            j = i
            while j < len(path) and path[j] not in ".[":
                j += 1
            if j > i and not _SHORTHAND.fullmatch(path[i:j]):
                found.append(path[i:j])
            i = j
        else:
            i += 1
    return found


def check_member_names(definition: dict[str, Any]) -> list[str]:
    """Where the definition's JSONPath paths select a name by dot notation that needs bracket
    notation: ``["/States/Route/Choices/0/Variable: 'detail-type'", ...]``.

    Step Functions developer guide, "Using JSONPath paths": "You must use square bracket
    notation if your field name contains any character that is not included in the
    member-name-shorthand definition of the JsonPath ABNF rule. Therefore, to encode special
    characters, such as punctuation marks (excluding _), you must use square bracket notation.
    For example, $.abc.['def ghi']." States and machines in JSONata are not JSONPath: skipped."""
    problems: list[str] = []

    def path(value: Any, where: str) -> None:
        if isinstance(value, str) and value.startswith("$"):
            problems.extend(f"{where}: {name!r}" for name in dotted_names_outside_shorthand(value))

    def template(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k.endswith(".$"):
                    path(v, f"{where}/{k}")
                else:
                    template(v, f"{where}/{k}")
        elif isinstance(node, list):
            for n, v in enumerate(node):
                template(v, f"{where}/{n}")

    def fields(node: Any, where: str) -> None:
        if isinstance(node, list):
            for n, v in enumerate(node):
                fields(v, f"{where}/{n}")
            return
        if not isinstance(node, dict) or node.get("QueryLanguage") == "JSONata":
            return
        for k, v in node.items():
            if k == "Result":
                continue  # a Pass state's literal data
            if k in _TEMPLATES:
                template(v, f"{where}/{k}")
            elif k == "Variable" or k.endswith("Path"):
                path(v, f"{where}/{k}")
            else:
                fields(v, f"{where}/{k}")

    fields(definition, "")
    return problems


def _install_member_name_check() -> None:
    """Also names every refused definition ``InvalidDefinition``: moto raised its parser's
    exception class, which its JSON serializer answered with an empty error code."""
    import json

    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser.api import InvalidDefinition as ParserInvalidDefinition
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    class InvalidDefinition(AWSError):
        TYPE = "InvalidDefinition"
        STATUS = 400

    original = StepFunctionsParserBackend._validate_definition

    def _validate_definition(definition: str) -> None:
        try:
            original(definition=definition)
        except ParserInvalidDefinition as e:
            raise InvalidDefinition(str(e.message)) from e
        problems = check_member_names(json.loads(definition))
        if problems:
            raise InvalidDefinition(
                "Invalid State Machine Definition: a JSONPath names a field by dot notation that needs "
                "bracket notation (Step Functions developer guide, \"Using JSONPath paths\": "
                "\"You must use square bracket notation if your field name contains any character that is not "
                "included in the member-name-shorthand definition\"; e.g. $['detail-type'] for $.detail-type) at "
                + "; ".join(problems)
            )

    StepFunctionsParserBackend._validate_definition = staticmethod(_validate_definition)  # type: ignore[method-assign]


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    _install_member_name_check()
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )

    def _normalise_parameters(self: Any, parameters: dict, boto_service_name: str | None = None, service_action_name: str | None = None) -> None:
        op = _operation(self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name))
        if op is None or op.input_shape is None:
            return
        converted = to_api_casing(parameters, op.input_shape)
        parameters.clear()
        parameters.update(converted)

    def _normalise_response(self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None) -> None:
        op = _operation(self._get_boto_service_name(boto_service_name), self._get_boto_service_action(service_action_name))
        if op is None or op.output_shape is None or not isinstance(response, dict):
            return
        response.pop("ResponseMetadata", None)
        converted = to_sfn_casing(response, op.output_shape)
        response.clear()
        response.update(converted)

    _install_timestamp_fix()
    _install_sfn_error_names()
    _share_task_clients()
    StateTaskService._normalise_parameters = _normalise_parameters  # type: ignore[method-assign]
    StateTaskService._normalise_response = _normalise_response  # type: ignore[method-assign]


def _share_task_clients() -> None:
    """One boto3 client per (region, service) for the interpreter's task calls.

    Why: moto builds a new boto3 client for every Task call (lambda:invoke, startExecution, ...).
    Creating a client costs tens of milliseconds of CPU under the GIL, which capped the stack
    at ~10 executions a second: a 500-write burst took ~50 s to get through dedupe. botocore
    clients are thread-safe, so the interpreter's threads can share them.
    """
    import sys
    import threading

    import boto3
    from botocore.config import Config
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
    from moto.stepfunctions.parser.asl.utils import boto_client

    original = boto_client.boto_client_for
    clients: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def shared(region: str, service: str, state_credentials: Any = None) -> Any:
        if boto_client.botocore_stubber.enabled:  # in-process mocking: keep moto's own path
            return original(region, service, state_credentials)
        with lock:
            client = clients.get((region, service))
            if client is None:
                client = boto3.client(
                    service_name=service,
                    region_name=region,
                    aws_access_key_id="ak",
                    aws_secret_access_key="sk",
                    endpoint_url=f"http://localhost:{moto_server_port()}",
                    config=Config(
                        parameter_validation=False,
                        retries={"max_attempts": 0, "total_max_attempts": 1},
                        connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        max_pool_connections=64,
                    ),
                )
                clients[(region, service)] = client
            return client

    boto_client.boto_client_for = shared
    # Modules that imported the function by name keep their own reference: rebind those too.
    for module in list(sys.modules.values()):
        if getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = shared  # type: ignore[attr-defined]


def sfn_error_name(code: str) -> str:
    """The error a failed ``states:`` task reports for a Step Functions error ``code``."""
    with _operation_lock:  # loaded once, not per failed task
        model = _load_service_model("stepfunctions")
    if model.shape_for_error_code(code) is None:
        return "StepFunctions.AWSStepFunctionsException"
    return f"StepFunctions.{code}" if code.endswith("Exception") else f"StepFunctions.{code}Exception"


def is_transport_error(ex: Exception) -> bool:
    """A call that got no answer: the connection failed, closed or timed out."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(ex, (BotoConnectionError, HTTPClientError))


def _install_sfn_error_names() -> None:
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_lambda import (
        StateTaskServiceLambda,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    def patch(cls: Any, prefix: str) -> None:
        original = cls._from_error

        def _from_error(self: Any, env: Any, ex: Exception) -> Any:
            if is_transport_error(ex):
                # moto made it States.Runtime, which no Retry may match: a lost connection to
                # the emulator under load failed the execution for good.
                name, resource = f"{prefix}.SdkClientException", self._get_sfn_resource()
                LOG.warning("a task calling %s lost its connection: %s", resource, ex)
                details = TaskFailedEventDetails(
                    error=name, cause=str(ex), resource=resource, resourceType=self._get_sfn_resource_type()
                )
                return FailureEvent(
                    env=env,
                    error_name=CustomErrorName(name),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(taskFailedEventDetails=details),
                )
            event = original(self, env, ex)
            if prefix == "StepFunctions" and isinstance(ex, ClientError):
                name = sfn_error_name(ex.response["Error"]["Code"])
                event.error_name = CustomErrorName(name)
                event.event_details["taskFailedEventDetails"]["error"] = name
            return event

        cls._from_error = _from_error  # type: ignore[method-assign]

    patch(StateTaskServiceLambda, "Lambda")
    patch(StateTaskServiceSfn, "StepFunctions")


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(text: str) -> datetime.datetime | None:
    """RFC 3339 (``Z`` or offset, optional fraction) -> naive UTC datetime, else None."""
    if not isinstance(text, str) or not _RFC3339.match(text):
        return None
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def _install_timestamp_fix() -> None:
    import math

    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp

    def _from_timestamp_string(timestamp: str) -> datetime.datetime | None:
        return parse_timestamp(timestamp)

    def _get_wait_seconds(self: Any, env: Any) -> int:
        self.string.eval(env=env)
        timestamp_str = env.stack.pop()
        timestamp = parse_timestamp(timestamp_str)
        if timestamp is None:
            raise FailureEventException(self._create_failure_event(env, timestamp_str))
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        return max(0, math.ceil((timestamp - now).total_seconds()))

    Timestamp._from_timestamp_string = staticmethod(_from_timestamp_string)  # type: ignore[method-assign]
    Timestamp._get_wait_seconds = _get_wait_seconds  # type: ignore[method-assign]
