"""Step Functions behaviour moto 5.2.5 lacks, patched into its ASL interpreter backend.

Why each piece:

* **State machines created by CloudFormation** go to the wrong backend: moto's
  ``StateMachine.create_from_cloudformation_json`` writes to the plain backend, while the API
  (with ``execute_state_machine``) reads the interpreter backend -- the stack's machines would
  be invisible. It also ignores ``DefinitionSubstitutions``, ``DefinitionS3Location`` and
  ``Definition`` (object). :func:`_create_from_cfn` handles all of them (substitution is textual,
  as CloudFormation does, so unquoted numeric placeholders work).
* **StartExecution idempotency** must hold under concurrency (the Map step of many executions
  starts the same batch execution by name at once): moto checks then appends without a lock,
  so two racing calls could create two executions with one ARN. A lock makes check+create
  atomic. Semantics (as AWS): same name + identical input + original RUNNING -> the same
  execution; otherwise ``ExecutionAlreadyExists``. Names are validated like AWS (1-80 chars,
  no whitespace, ``<>{}[]?*"#%\\^|~`$&,;:/`` or control characters) -> ``InvalidName``.
* **Execution Status Change events** (``aws.states``) go to EventBridge on RUNNING (start and
  redrive) and on SUCCEEDED/FAILED/TIMED_OUT/ABORTED, detail as AWS documents it
  (``executionArn, stateMachineArn, name, status, startDate, stopDate`` in epoch millis,
  ``input, inputDetails, output, outputDetails, error, cause, redriveCount, redriveDate,
  redriveStatus, redriveStatusReason``).
* **RedriveExecution** (moto has none): a FAILED / TIMED_OUT / ABORTED execution resumes at the
  top-level state that was running when it stopped, with that state's original input, under the
  same execution ARN; the status goes back to RUNNING, history continues with an
  ``ExecutionRedriven`` event, ``$$.Execution.RedriveCount`` and ``$$.Execution.RedriveTime``
  are set, ``DescribeExecution`` shows ``redriveCount``/``redriveDate``/``redriveStatus``.
  Variables and the context object carry over. Stand-in part: a failed *Map* (or Parallel)
  state is re-run as a whole (AWS re-runs only unsuccessful iterations of a Distributed Map).
* ``$$.Execution.RedriveCount`` is 0 in an execution never redriven (moto omits it).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
import threading
from typing import Any

from .event_targets import HISTORY, emit
from .patching import replace

LOG = logging.getLogger("local.sfn")

_NAME_BAD = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]")


def _exceptions() -> tuple[type, type]:
    from moto.core.exceptions import AWSError

    class ExecutionNotRedrivable(AWSError):
        TYPE = "ExecutionNotRedrivable"
        STATUS = 400

    class InvalidName(AWSError):
        TYPE = "InvalidName"
        STATUS = 400

    return ExecutionNotRedrivable, InvalidName


ExecutionNotRedrivable, InvalidName = _exceptions()


def install(executions: Executions) -> None:
    """Patch moto's Step Functions; the patches that start, stop or redrive an execution report
    to ``executions``."""
    from moto.stepfunctions.models import StateMachine
    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField
    from moto.stepfunctions.parser.backend import execution as execution_mod
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    StateMachine.create_from_cloudformation_json = classmethod(_create_from_cfn)  # type: ignore[assignment]

    def wrap_start(original_start: Any) -> Any:
        def start_execution(self: Any, state_machine_arn: str, name: Any = None, execution_input: Any = None, trace_header: Any = None) -> Any:
            if name is not None:
                validate_name(name)
            with executions.lock:
                sm = self.describe_state_machine(state_machine_arn)
                before = {id(e) for e in sm.executions}
                execution = original_start(self, state_machine_arn, name, execution_input, trace_header)
                is_new = id(execution) not in before
            if is_new:
                executions.started.append(execution)
                executions.status_event(execution, "RUNNING")
            return execution

        return start_execution

    replace(StepFunctionsParserBackend, "start_execution", wrap_start)

    def redrive_execution(self: Any, execution_arn: str) -> Any:
        return executions.redrive(self, execution_arn)

    StepFunctionsParserBackend.redrive_execution = redrive_execution  # type: ignore[attr-defined]

    # $$.Execution.RedriveCount = 0 for a fresh execution.
    def wrap_env(original_env: Any) -> Any:
        def _get_evaluation_environment(self: Any) -> Any:
            env = original_env(self)
            ex = env.states.context_object.context_object_data["Execution"]
            ex.setdefault("RedriveCount", 0)
            return env

        return _get_evaluation_environment

    replace(ExecutionWorker, "_get_evaluation_environment", wrap_env)

    # Remember, per execution, the top-level state being run and its input (redrive point).
    def wrap_body(original_body: Any) -> Any:
        def _eval_body(self: Any, env: Any) -> None:
            if not env.is_frame():
                env._local_redrive_point = (self.name, copy.deepcopy(env.states.get_input()))
            return original_body(self, env)

        return _eval_body

    replace(CommonStateField, "_eval_body", wrap_body)

    # Terminal status change events.
    def wrap_terminated(original_terminated: Any) -> Any:
        def terminated(self: Any) -> None:
            original_terminated(self)
            try:
                executions.status_event(self.execution, self.execution.exec_status.value)
            except Exception:  # noqa: BLE001
                LOG.exception("status change event failed")

        return terminated

    replace(execution_mod.BaseExecutionWorkerCommunication, "terminated", wrap_terminated)

    # API: RedriveExecution, DescribeExecution with redrive fields.
    def redrive_execution_api(self: Any) -> Any:
        from moto.core.responses import ActionResult

        arn = self._get_param("executionArn")
        execution = self.stepfunction_backend.redrive_execution(arn)
        return ActionResult({"redriveDate": execution._local_redrive_date})

    StepFunctionResponse.redrive_execution = redrive_execution_api  # type: ignore[attr-defined]

    def wrap_describe(original_describe: Any) -> Any:
        def describe_execution(self: Any) -> Any:
            result = original_describe(self)
            try:
                execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
                body = result.result
                count = getattr(execution, "_local_redrive_count", 0)
                body["redriveCount"] = count
                if count:
                    body["redriveDate"] = execution._local_redrive_date
                status, reason = _redrive_status(execution)
                body["redriveStatus"] = status
                if reason:
                    body["redriveStatusReason"] = reason
                if execution.status == "TIMED_OUT" and execution.stop_date is not None:
                    body["stopDate"] = execution.stop_date
            except Exception:  # noqa: BLE001
                LOG.exception("describe_execution extension failed")
            return result

        return describe_execution

    replace(StepFunctionResponse, "describe_execution", wrap_describe)


def validate_name(name: str) -> None:
    if not (1 <= len(name) <= 80) or _NAME_BAD.search(name):
        raise InvalidName(f"Invalid Name: '{name}'")


# ---- CloudFormation ------------------------------------------------------------------------------
def _create_from_cfn(cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
    from moto.stepfunctions.responses import get_backend
    from moto.utilities.tagging_service import TaggingService  # noqa: F401 - keeps import side effects

    props = cloudformation_json["Properties"]
    name = props.get("StateMachineName") or resource_name
    definition = props.get("DefinitionString")
    if definition is None and "Definition" in props:
        definition = json.dumps(props["Definition"])
    if definition is None and "DefinitionS3Location" in props:
        from moto.s3.models import s3_backends

        loc = props["DefinitionS3Location"]
        key = s3_backends[account_id]["global"].get_object(loc["Bucket"], loc["Key"])
        definition = key.value.decode()
    if definition is None:
        raise ValueError(f"state machine {resource_name}: no definition")
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    tags = [{"key": t["Key"], "value": t["Value"]} for t in props.get("Tags", [])]
    backend = get_backend(account_id, region_name)
    sm = backend.create_state_machine(
        name=name,
        definition=definition,
        roleArn=props.get("RoleArn", ""),
        tags=tags,
        loggingConfiguration=props.get("LoggingConfiguration"),
        tracingConfiguration=props.get("TracingConfiguration"),
        sm_type=props.get("StateMachineType", "STANDARD"),
    )
    return sm


# ---- status change events -------------------------------------------------------------------------
def _millis(t: Any) -> int | None:
    if t is None:
        return None
    if isinstance(t, str):
        t = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    return int(t.timestamp() * 1000)


def _redrive_status(execution: Any) -> tuple[str, str | None]:
    status = execution.status
    if status == "RUNNING":
        return "NOT_REDRIVABLE", "Execution is RUNNING and cannot be redriven"
    if status == "SUCCEEDED":
        return "NOT_REDRIVABLE", "Execution is SUCCEEDED and cannot be redriven"
    if getattr(execution, "sm_type", "STANDARD") == "EXPRESS":
        return "NOT_REDRIVABLE", "Express executions cannot be redriven"
    return "REDRIVABLE", None


def _input_names(execution: Any, contains: str) -> bool:
    """Whether ``contains`` (a key, a distribution id) is in the execution's input as JSON text."""
    data = execution.input_data or ""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return contains in text


# ---- the stack's record of executions ------------------------------------------------------------
class Executions:
    """The executions started (moto keeps them per state machine) and the status change events
    emitted, for the control API; ``lock`` makes a start's check+create and a redrive atomic."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.status_events: list[dict[str, Any]] = []
        self.lock = threading.RLock()

    def running(self, contains: str) -> int:
        """How many executions are RUNNING with ``contains`` in their input: a test knows its lane
        is quiet (no event between S3 and its batch, no task retry pending) only when none is."""
        return sum(1 for e in list(self.started) if e.status == "RUNNING" and _input_names(e, contains))

    def executions_with(self, contains: str) -> list[dict[str, Any]]:
        """Every execution with ``contains`` in its input, with its status and, once stopped, its
        error and cause: where a change went after its event was delivered."""
        return [
            {"executionArn": e.execution_arn, "status": e.status, "error": e.error, "cause": e.cause}
            for e in list(self.started)
            if _input_names(e, contains)
        ]

    def status_event(self, execution: Any, status: str) -> None:
        """Record and emit an Execution Status Change event."""
        def js(value: Any) -> str | None:
            if value is None:
                return None
            return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

        redrive_count = getattr(execution, "_local_redrive_count", 0)
        redrive_status, reason = _redrive_status(execution)
        detail = {
            "executionArn": execution.execution_arn,
            "stateMachineArn": execution.state_machine_arn,
            "name": execution.name,
            "status": status,
            "startDate": _millis(execution.start_date),
            "stopDate": None if status == "RUNNING" else _millis(execution.stop_date),
            "input": js(execution.input_data),
            "output": js(execution.output) if status == "SUCCEEDED" else None,
            "inputDetails": {"included": True},
            "outputDetails": {"included": True} if status == "SUCCEEDED" else None,
            "error": execution.error if status != "RUNNING" else None,
            "cause": execution.cause if status != "RUNNING" else None,
            "redriveCount": redrive_count,
            "redriveDate": _millis(getattr(execution, "_local_redrive_date", None)),
            "redriveStatus": redrive_status,
            "redriveStatusReason": reason,
        }
        self.status_events.append({"status": status, "executionArn": execution.execution_arn, "redriveCount": redrive_count})
        del self.status_events[:-HISTORY]
        emit(
            "aws.states",
            "Step Functions Execution Status Change",
            detail,
            [execution.execution_arn],
            region=execution.region_name,
            account=execution.account_id,
        )

    def redrive(self, backend: Any, execution_arn: str) -> Any:
        """moto's missing ``RedriveExecution`` on ``backend`` (see the module docstring)."""
        from moto.stepfunctions.parser.api import (
            ExecutionRedrivenEventDetails,
            ExecutionStatus,
            HistoryEventType,
        )
        from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
        from moto.stepfunctions.parser.asl.eval.environment import Environment
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
        from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

        with self.lock:
            execution = backend.describe_execution(execution_arn)
            status, reason = _redrive_status(execution)
            if status != "REDRIVABLE":
                raise ExecutionNotRedrivable(f"Execution {execution_arn} is not redrivable: {reason}")
            worker = execution.exec_worker
            old_env = worker.env if worker else None
            point = getattr(old_env, "_local_redrive_point", None)
            if old_env is None or point is None:
                raise ExecutionNotRedrivable(f"Execution {execution_arn} never entered a state")
            state_name, state_input = point
            now = dt.datetime.now(tz=dt.timezone.utc)
            count = getattr(execution, "_local_redrive_count", 0) + 1

            context = copy.deepcopy(old_env.states.context_object.context_object_data)
            context["Execution"]["RedriveCount"] = count
            context["Execution"]["RedriveTime"] = now.isoformat()
            for key in ("State", "Task", "Map"):
                context.pop(key, None)
            env = Environment(
                aws_execution_details=old_env.aws_execution_details,
                execution_type=old_env.execution_type,
                context=context,
                event_history_context=old_env.event_history_context,
                cloud_watch_logging_session=old_env.cloud_watch_logging_session,
                activity_store=old_env.activity_store,
                variable_store=old_env.variable_store,
            )
            env.event_manager = old_env.event_manager  # the history continues
            env.states.reset(input_value=state_input)
            env.next_state_name = state_name
            env.event_manager.add_event(
                context=env.event_history_context,
                event_type=HistoryEventType.ExecutionRedriven,
                event_details=EventDetails(executionRedrivenEventDetails=ExecutionRedrivenEventDetails(redriveCount=count)),
            )
            worker.env = env
            execution._local_redrive_count = count
            execution._local_redrive_date = now
            execution.exec_status = ExecutionStatus.RUNNING
            execution.stop_date = None
            execution.error = None
            execution.cause = None
            execution.output = None
            program = AmazonStateLanguageParser.parse(execution.state_machine.definition)[0]

        def run() -> None:
            timeout = program.timeout_seconds.timeout_seconds if program.timeout_seconds else None
            inner = threading.Thread(target=EvalComponent.eval, args=(program, env), daemon=True)
            inner.start()
            inner.join(timeout=timeout)
            if inner.is_alive():
                env.set_timed_out()
            worker._execution_communication.terminated()

        self.status_event(execution, "RUNNING")
        threading.Thread(target=run, daemon=True, name=f"redrive-{execution.name}").start()
        return execution
