"""EventBridge targets moto lacks: Step Functions and Lambda, with retry policy, DLQ, schedules.

Why: moto 5.2.5's ``Rule.send_to_targets`` supports log groups, archives, SQS, event buses and
API destinations only; a Step Functions or Lambda target raises ``NotImplementedError``, which
the S3 notification path swallows -- the event is dropped silently. This module wraps
``send_to_targets``:

* targets whose ARN service is ``states`` start an execution (input = the event, or the
  target's ``Input``/``InputPath``/``InputTransformer``; a unique name), asynchronously like
  EventBridge; a failed start is retried with exponential backoff within the target's
  ``RetryPolicy`` (``MaximumRetryAttempts`` default 185, ``MaximumEventAgeInSeconds`` default
  86,400); errors that AWS does not retry (missing state machine, access, validation) are not
  retried; when retries are exhausted the event goes to the ``DeadLetterConfig`` SQS queue
  with AWS's message attributes (``RULE_ARN``, ``TARGET_ARN``, ``ERROR_CODE``,
  ``ERROR_MESSAGE``, ``EXHAUSTED_RETRY_CONDITION``, ``RETRY_ATTEMPTS``); without a DLQ it is
  logged and recorded;
* targets whose ARN service is ``lambda`` invoke the function asynchronously (pool, retried
  twice on function errors by :func:`local.lambda_patch.invoke_async`);
* other targets are left to moto;
* rules with ``ScheduleExpression: rate(N unit)`` fire on that period (``Scheduled Event``
  from ``aws.events``); ``cron(...)`` schedules are not run (logged once).

:func:`emit` builds an AWS-shaped event envelope and delivers it to the default bus (used for
S3 and Step Functions events; ``PutEvents`` refuses ``aws.*`` sources on AWS).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from .faults import Faults

LOG = logging.getLogger("local.events")

NON_RETRYABLE = {
    "StateMachineDoesNotExist",
    "ResourceNotFound",
    "ResourceNotFoundException",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidArn",
    "InvalidExecutionInput",
    "InvalidName",
    "ValidationException",
    "StateMachineDeleting",
}

_executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="eb-target")
_original_send: Any = None
_faults: Faults | None = None
_account = "123456789012"
_region = "us-east-1"
_lock = threading.Lock()
# What the control API shows of recent events: enough for a whole test run (a fault-matrix
# stack sees thousands of changes), so a test that traces a lost change still finds its hops.
HISTORY = 20_000
deliveries: list[dict[str, Any]] = []  # recent deliveries (for the control API)
dead_letters: list[dict[str, Any]] = []  # events given up on (also sent to the DLQ if any)
retry_base_seconds = 1.0
retry_cap_seconds = 30.0


def install(faults: Faults, account: str, region: str) -> None:
    global _original_send, _faults, _account, _region
    from moto.events.models import Rule

    _faults, _account, _region = faults, account, region
    if _original_send is None:
        _original_send = Rule.send_to_targets
        Rule.send_to_targets = _send_to_targets  # type: ignore[method-assign]


def iso(t: float | str | None) -> str:
    if isinstance(t, str):
        return t
    t = time.time() if t is None else float(t)
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(entry: dict[str, Any], target: list[dict[str, Any]] = deliveries) -> None:
    with _lock:
        target.append(entry)
        del target[:-HISTORY]


def _service(arn: str) -> str:
    parts = arn.split(":")
    return parts[2] if len(parts) > 2 else ""


def _send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
    # A schedule-only rule has no event pattern; moto's empty pattern would match every event.
    if getattr(self, "scheduled_expression", None) and not _has_pattern(self):
        return
    if not self.event_pattern.matches_event(original_event):
        return
    mine = [t for t in self.targets if _service(t["Arn"]) in ("states", "lambda")]
    others = [t for t in self.targets if t not in mine]
    if others:
        proxy = copy.copy(self)
        proxy.targets = others
        _original_send(proxy, original_event, transform_input)
    for target in mine:
        event = copy.deepcopy(original_event)
        event["time"] = iso(event.get("time"))
        event.pop("ingestion-time", None)
        _executor.submit(_deliver, self.arn, target, event)


def _has_pattern(rule: Any) -> bool:
    pattern = rule.event_pattern
    raw = getattr(pattern, "_raw_pattern", None)
    if raw is None:
        raw = getattr(pattern, "_pattern", None)
    return bool(raw)


def _target_input(target: dict[str, Any], event: dict[str, Any]) -> str:
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        value: Any = event
        for part in [p for p in target["InputPath"].lstrip("$").split(".") if p]:
            value = value.get(part) if isinstance(value, dict) else None
        return json.dumps(value)
    transformer = target.get("InputTransformer")
    if transformer:
        from moto.events.models import EventTemplateParser

        out = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=event,
        )
        return out if isinstance(out, str) else json.dumps(out)
    return json.dumps(event)


def _deliver(rule_arn: str, target: dict[str, Any], event: dict[str, Any]) -> None:
    try:
        arn = target["Arn"]
        payload = _target_input(target, event)
        if _service(arn) == "lambda":
            _deliver_lambda(rule_arn, target, event, payload)
        else:
            _deliver_states(rule_arn, target, event, payload)
    except Exception:  # noqa: BLE001 - a background delivery must never die silently
        LOG.exception("delivery of event %s to %s failed", event.get("id"), target.get("Arn"))


def _deliver_lambda(rule_arn: str, target: dict[str, Any], event: dict[str, Any], payload: str) -> None:
    from . import lambda_patch

    pool = lambda_patch._runtime.pool_for(target["Arn"]) if lambda_patch._runtime else None
    fault = _faults.target_failure_for("lambda") if _faults else None
    if pool is None or fault is not None:
        code = fault.code if fault else "ResourceNotFoundException"
        _record({"time": time.time(), "rule": rule_arn, "target": target["Arn"], "event_id": event.get("id"), "ok": False, "error": code})
        _dead_letter(rule_arn, target, event, code, "no local function" if pool is None else fault.message, 0, "MaximumRetryAttempts")
        return
    lambda_patch.invoke_async(pool, payload.encode(), source=f"EventBridge {rule_arn}")
    _record({"time": time.time(), "rule": rule_arn, "target": target["Arn"], "event_id": event.get("id"), "ok": True})


def _start_execution(arn: str, name: str, payload: str) -> str:
    from moto.stepfunctions.responses import get_backend

    parts = arn.split(":")
    backend = get_backend(parts[4], parts[3])
    execution = backend.start_execution(arn, name=name, execution_input=payload)
    return execution.execution_arn


def _deliver_states(rule_arn: str, target: dict[str, Any], event: dict[str, Any], payload: str) -> None:
    policy = target.get("RetryPolicy") or {}
    max_attempts = int(policy.get("MaximumRetryAttempts", 185))
    max_age = float(policy.get("MaximumEventAgeInSeconds", 86400))
    first = time.time()
    retries = 0
    while True:
        code = message = None
        retryable = True
        fault = _faults.target_failure_for("states") if _faults else None
        if fault is not None:
            code, message, retryable = fault.code, fault.message, fault.retryable
        elif _faults and not _faults.start_admitted(target["Arn"], payload):
            code, message = "ThrottlingException", "Rate exceeded"  # the StartExecution token bucket
        else:
            try:
                name = str(uuid.uuid4())
                exec_arn = _start_execution(target["Arn"], name, payload)
                _record({"time": time.time(), "rule": rule_arn, "target": target["Arn"], "event_id": event.get("id"), "ok": True, "execution_arn": exec_arn, "retries": retries})
                return
            except Exception as e:  # noqa: BLE001
                code = getattr(e, "error_type", None) or type(e).__name__
                message = getattr(e, "message", None) or str(e)
                retryable = code not in NON_RETRYABLE
        _record({"time": time.time(), "rule": rule_arn, "target": target["Arn"], "event_id": event.get("id"), "ok": False, "error": code, "retries": retries})
        LOG.warning("StartExecution for event %s failed: %s %s", event.get("id"), code, message)
        if not retryable:
            return _dead_letter(rule_arn, target, event, code, message, retries, None)
        if retries >= max_attempts:
            return _dead_letter(rule_arn, target, event, code, message, retries, "MaximumRetryAttempts")
        delay = min(retry_cap_seconds, retry_base_seconds * (2**retries))
        if time.time() + delay - first > max_age:
            return _dead_letter(rule_arn, target, event, code, message, retries, "MaximumEventAgeInSeconds")
        time.sleep(delay)
        retries += 1


def _dead_letter(
    rule_arn: str, target: dict[str, Any], event: dict[str, Any], code: str | None, message: str | None, retries: int, exhausted: str | None
) -> None:
    dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
    entry = {"time": time.time(), "rule": rule_arn, "target": target["Arn"], "event_id": event.get("id"), "error": code, "message": message, "retries": retries, "dlq": dlq}
    _record(entry, dead_letters)
    if not dlq:
        LOG.error("event %s dropped (no DLQ): %s %s", event.get("id"), code, message)
        return
    from moto.sqs.models import sqs_backends

    parts = dlq.split(":")
    attrs = {
        "RULE_ARN": rule_arn,
        "TARGET_ARN": target["Arn"],
        "ERROR_CODE": code or "Unknown",
        "ERROR_MESSAGE": (message or "")[:1000] or "-",
        "RETRY_ATTEMPTS": str(retries),
    }
    if exhausted:
        attrs["EXHAUSTED_RETRY_CONDITION"] = exhausted
    sqs_backends[parts[4]][parts[3]].send_message(
        queue_name=parts[5],
        message_body=json.dumps(event),
        message_attributes={k: {"DataType": "String", "StringValue": v} for k, v in attrs.items()},
    )


# ---- emitting AWS service events --------------------------------------------------------------
def emit(
    source: str,
    detail_type: str,
    detail: dict[str, Any],
    resources: list[str],
    region: str | None = None,
    account: str | None = None,
    event_id: str | None = None,
    event_time: float | None = None,
) -> str:
    """Deliver an AWS-service event to every rule of the default bus; returns the event id.

    ``event_id``/``event_time`` (epoch seconds) default to a fresh uuid and now; passing those of
    an earlier event delivers that event again, as EventBridge's at-least-once delivery does."""
    from moto.events.models import events_backends

    region = region or _region
    account = account or _account
    event_id = event_id or str(uuid.uuid4())
    event = {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": time.time() if event_time is None else float(event_time),  # epoch: moto's SQS/log targets expect it; ours convert to ISO
        "region": region,
        "resources": resources,
        "detail": detail,
        "ingestion-time": time.time(),  # moto's InputTransformer needs it; removed for our targets
    }
    backend = events_backends[account][region]
    bus = backend.event_buses.get("default")
    if bus is None:
        return event_id
    for rule in list(bus.rules.values()):
        if getattr(rule, "state", "ENABLED") != "ENABLED":
            continue
        try:
            rule.send_to_targets(copy.deepcopy(event), transform_input=True)
        except Exception:  # noqa: BLE001
            LOG.exception("rule %s failed on %s event", rule.name, source)
    return event_id


# ---- schedules ------------------------------------------------------------------------------------
_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def schedule_period(expr: str | None) -> float | None:
    m = _RATE.match((expr or "").strip())
    return int(m.group(1)) * _UNITS[m.group(2)] if m else None


class Scheduler:
    """Fires ``rate(...)`` rules of the default bus on their period (first run after one period)."""

    def __init__(self, account: str, region: str, enabled: bool = True, scale: float = 1.0) -> None:
        self.account, self.region, self.enabled, self.scale = account, region, enabled, scale
        self._stop = threading.Event()
        self._next: dict[str, float] = {}
        self._warned: set[str] = set()
        self.fired: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._loop, daemon=True, name="scheduler")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def rules(self) -> list[Any]:
        from moto.events.models import events_backends

        bus = events_backends[self.account][self.region].event_buses.get("default")
        return [r for r in (bus.rules.values() if bus else []) if getattr(r, "scheduled_expression", None)]

    def fire(self, rule: Any) -> None:
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account,
            "time": time.time(),
            "region": self.region,
            "resources": [rule.arn],
            "detail": {},
        }
        self.fired.append({"time": time.time(), "rule": rule.name})
        for target in rule.targets:
            if _service(target["Arn"]) in ("states", "lambda"):
                ev = copy.deepcopy(event)
                ev["time"] = iso(ev["time"])
                _executor.submit(_deliver, rule.arn, target, ev)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            if not self.enabled:
                continue
            now = time.time()
            for rule in self.rules():
                if getattr(rule, "state", "ENABLED") != "ENABLED":
                    continue
                period = schedule_period(rule.scheduled_expression)
                if period is None:
                    if rule.name not in self._warned:
                        self._warned.add(rule.name)
                        LOG.warning("schedule %r of rule %s is not run locally", rule.scheduled_expression, rule.name)
                    continue
                due = self._next.setdefault(rule.name, now + period * self.scale)
                if now >= due:
                    self._next[rule.name] = now + period * self.scale
                    self.fire(rule)
