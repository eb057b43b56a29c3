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
  twice on function errors by :meth:`local.lambda_patch.LambdaService.invoke_async`);
* targets whose ARN service is ``sqs`` get the (transformed) event as a message, with the same
  retries and DLQ as Step Functions targets, if the queue's policy lets EventBridge send for
  the rule (:func:`queue_policy_allows`); moto's own SQS target passed ``time`` as epoch
  seconds into an ``InputTransformer`` and judged no policy;
* other targets are left to moto;
* rules with ``ScheduleExpression: rate(N unit)`` fire on that period (``Scheduled Event``
  from ``aws.events``); ``cron(...)`` schedules are not run (logged once).

:func:`emit` builds an AWS-shaped event envelope and delivers it to the default bus (used for
S3 and Step Functions events: ``PutEvents`` refuses ``aws.*`` sources, here as on AWS). A
disabled rule receives nothing.
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
from .lambda_patch import LambdaService
from .patching import replace

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
    "QueueDoesNotExist",
    "AWS.SimpleQueueService.NonExistentQueue",
}

# What the control API shows of recent events: enough for a whole test run (a fault-matrix
# stack sees thousands of changes), so a test that traces a lost change still finds its hops.
HISTORY = 20_000


class EventTargets:
    """Delivery to Step Functions and Lambda targets, and the record of it for the control API:
    ``deliveries`` (recent attempts) and ``dead_letters`` (events given up on, also sent to the
    target's DLQ if it has one)."""

    def __init__(self, faults: Faults, lambdas: LambdaService) -> None:
        self.faults = faults
        self.lambdas = lambdas
        self.deliveries: list[dict[str, Any]] = []
        self.dead_letters: list[dict[str, Any]] = []
        self.retry_base_seconds = 1.0
        self.retry_cap_seconds = 30.0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="eb-target")

    def send_to_targets(self, rule: Any, original_event: dict[str, Any], transform_input: bool, moto_send: Any) -> None:
        """moto's ``Rule.send_to_targets``: our targets here, the others by ``moto_send``."""
        # A schedule-only rule has no event pattern; moto's empty pattern would match every event.
        if getattr(rule, "scheduled_expression", None) and not _has_pattern(rule):
            return
        # DisableRule: "A disabled rule won't match any events" (moto's PutEvents sent to it).
        if getattr(rule, "state", "ENABLED") != "ENABLED":
            return
        if not rule.event_pattern.matches_event(original_event):
            return
        mine = [t for t in rule.targets if _service(t["Arn"]) in ("states", "lambda", "sqs")]
        others = [t for t in rule.targets if t not in mine]
        if others:
            proxy = copy.copy(rule)
            proxy.targets = others
            moto_send(proxy, original_event, transform_input)
        for target in mine:
            event = copy.deepcopy(original_event)
            event["time"] = iso(event.get("time"))
            event.pop("ingestion-time", None)
            self.submit(rule.arn, target, event)

    def submit(self, rule_arn: str, target: dict[str, Any], event: dict[str, Any]) -> None:
        """Deliver ``event`` to ``target`` in the background, as EventBridge does."""
        self._executor.submit(self._deliver, rule_arn, target, event)

    def _record(self, entry: dict[str, Any], into: list[dict[str, Any]]) -> None:
        with self._lock:
            into.append(entry)
            del into[:-HISTORY]

    def _deliver(self, rule_arn: str, target: dict[str, Any], event: dict[str, Any]) -> None:
        try:
            arn = target["Arn"]
            payload = _target_input(target, event)
            if _service(arn) == "lambda":
                self._deliver_lambda(rule_arn, target, event, payload)
            else:
                self._deliver_states(rule_arn, target, event, payload)
        except Exception:  # noqa: BLE001 - a background delivery must never die silently
            LOG.exception("delivery of event %s to %s failed", event.get("id"), target.get("Arn"))

    def _deliver_lambda(self, rule_arn: str, target: dict[str, Any], event: dict[str, Any], payload: str) -> None:
        pool = self.lambdas.runtime.pool_for(target["Arn"])
        fault = self.faults.target_failure_for("lambda")
        if pool is None or fault is not None:
            code = fault.code if fault else "ResourceNotFoundException"
            self._record({"time": time.time(), "rule": rule_arn, "target": target["Arn"], "event_id": event.get("id"), "ok": False, "error": code}, self.deliveries)
            self._dead_letter(rule_arn, target, event, code, "no local function" if pool is None else fault.message, 0, "MaximumRetryAttempts")
            return
        self.lambdas.invoke_async(pool, payload.encode(), source=f"EventBridge {rule_arn}")
        self._record({"time": time.time(), "rule": rule_arn, "target": target["Arn"], "event_id": event.get("id"), "ok": True}, self.deliveries)

    def _deliver_states(self, rule_arn: str, target: dict[str, Any], event: dict[str, Any], payload: str) -> None:
        """Start an execution (``execution_arn``) or send a message (``message_id``), retried by
        the target's RetryPolicy, then dead-lettered."""
        policy = target.get("RetryPolicy") or {}
        max_attempts = int(policy.get("MaximumRetryAttempts", 185))
        max_age = float(policy.get("MaximumEventAgeInSeconds", 86400))
        first = time.time()
        retries = 0
        while True:
            code = message = None
            retryable = True
            service = _service(target["Arn"])
            fault = self.faults.target_failure_for(service)
            if fault is not None:
                code, message, retryable = fault.code, fault.message, fault.retryable
            elif service == "states" and not self.faults.start_admitted(target["Arn"], payload):
                code, message = "ThrottlingException", "Rate exceeded"  # the StartExecution token bucket
            else:
                try:
                    if service == "sqs":
                        done = {"message_id": send_message(target["Arn"], payload, rule_arn)}
                    else:
                        done = {"execution_arn": start_execution(target["Arn"], str(uuid.uuid4()), payload)}
                    self._record({"time": time.time(), "rule": rule_arn, "target": target["Arn"], "event_id": event.get("id"), "ok": True, "retries": retries, **done}, self.deliveries)
                    return
                except Exception as e:  # noqa: BLE001
                    code = getattr(e, "error_type", None) or type(e).__name__
                    message = getattr(e, "message", None) or str(e)
                    retryable = code not in NON_RETRYABLE
            self._record({"time": time.time(), "rule": rule_arn, "target": target["Arn"], "event_id": event.get("id"), "ok": False, "error": code, "retries": retries}, self.deliveries)
            LOG.warning("delivery of event %s to %s failed: %s %s", event.get("id"), target["Arn"], code, message)
            if not retryable:
                return self._dead_letter(rule_arn, target, event, code, message, retries, None)
            if retries >= max_attempts:
                return self._dead_letter(rule_arn, target, event, code, message, retries, "MaximumRetryAttempts")
            delay = min(self.retry_cap_seconds, self.retry_base_seconds * (2**retries))
            if time.time() + delay - first > max_age:
                return self._dead_letter(rule_arn, target, event, code, message, retries, "MaximumEventAgeInSeconds")
            time.sleep(delay)
            retries += 1

    def _dead_letter(
        self, rule_arn: str, target: dict[str, Any], event: dict[str, Any], code: str | None, message: str | None, retries: int, exhausted: str | None
    ) -> None:
        dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
        entry = {"time": time.time(), "rule": rule_arn, "target": target["Arn"], "event_id": event.get("id"), "error": code, "message": message, "retries": retries, "dlq": dlq}
        self._record(entry, self.dead_letters)
        if not dlq:
            LOG.error("event %s dropped (no DLQ): %s %s", event.get("id"), code, message)
            return
        attrs = {
            "RULE_ARN": rule_arn,
            "TARGET_ARN": target["Arn"],
            "ERROR_CODE": code or "Unknown",
            "ERROR_MESSAGE": (message or "")[:1000] or "-",
            "RETRY_ATTEMPTS": str(retries),
        }
        if exhausted:
            attrs["EXHAUSTED_RETRY_CONDITION"] = exhausted
        try:
            send_message(dlq, json.dumps(event), rule_arn, {k: {"DataType": "String", "StringValue": v} for k, v in attrs.items()})
        except Exception as e:  # noqa: BLE001 - as on AWS, an event the DLQ refuses is lost
            LOG.error("event %s dropped: its DLQ %s refused it: %s", event.get("id"), dlq, getattr(e, "message", e))


def install(targets: EventTargets) -> None:
    """Route moto's ``Rule.send_to_targets`` through ``targets``; PutEvents refuses the sources
    AWS services own."""
    from moto.events.models import EventsBackend, Rule

    def wrap(original: Any) -> Any:
        def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
            targets.send_to_targets(self, original_event, transform_input, original)

        return send_to_targets

    replace(Rule, "send_to_targets", wrap)
    replace(EventsBackend, "put_events", _refuse_reserved_sources)
    from moto.sqs.models import Queue

    replace(Queue, "_set_attributes", _keep_policy)


def _keep_policy(original: Any) -> Any:
    """moto 5.2.5's SetQueueAttributes sets ``Policy`` to what the request gives, so changing
    any other attribute (a visibility timeout) dropped the queue's policy, and with it
    EventBridge's permission to send. SQS API Reference, SetQueueAttributes: "Sets the value
    of one or more queue attributes": the others keep theirs."""

    def set_attributes(self: Any, attributes: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        policy = getattr(self, "policy", None)
        out = original(self, attributes, *args, **kwargs)
        if "Policy" not in attributes:
            self.policy = policy
        return out

    return set_attributes


# PutEventsResultEntry, ErrorCode: "NotAuthorizedForSourceException: You do not have
# permissions to publish events with this source onto this event bus." The message AWS puts in
# ErrorMessage is not documented; this is the code's own description.
RESERVED_SOURCE = ("NotAuthorizedForSourceException", "You do not have permissions to publish events with this source onto this event bus.")


def _refuse_reserved_sources(original: Any) -> Any:
    """An entry whose ``Source`` begins with ``aws.`` fails (the others go on, each with its own
    result, in order). EventBridge user guide, "Amazon EventBridge events": "All events that come
    from AWS services begin with "aws." Customer-generated events can have any value here, as
    long as it doesn't begin with "aws."". moto 5.2.5 accepted and delivered them."""

    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        reserved = [str(e.get("Source") or "").startswith("aws.") for e in events]
        if not any(reserved) or len(events) > 10:  # moto refuses more than 10 as a whole
            return original(self, events)
        accepted = iter(original(self, [e for e, r in zip(events, reserved) if not r]))
        code, message = RESERVED_SOURCE
        return [{"ErrorCode": code, "ErrorMessage": message} if r else next(accepted) for r in reserved]

    return put_events


def iso(t: float | str | None) -> str:
    if isinstance(t, str):
        return t
    t = time.time() if t is None else float(t)
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _service(arn: str) -> str:
    parts = arn.split(":")
    return parts[2] if len(parts) > 2 else ""


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
            event={**event, "ingestion-time": iso(None)},  # its <aws.events.event.ingestion-time>
        )
        return out if isinstance(out, str) else json.dumps(out)
    return json.dumps(event)


class QueuePolicyRefusal(Exception):
    error_type = "AccessDenied"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def send_message(queue_arn: str, body: str, rule_arn: str, attributes: dict[str, Any] | None = None) -> str:
    """EventBridge's SendMessage to the queue for ``rule_arn``: refused unless the queue's policy
    allows it. EventBridge user guide, "Using resource-based policies for Amazon EventBridge"
    (Amazon SQS permissions): "To allow an EventBridge rule to invoke an Amazon SQS queue, use
    the aws sqs set-queue-attributes command" with a statement whose principal is
    ``events.amazonaws.com``, action ``sqs:SendMessage`` and condition ``aws:SourceArn`` on the
    rule. The template's QueuePolicy resources are applied at deploy (local/deploy.py)."""
    backend, name = queue_backend(queue_arn)
    queue = backend.get_queue(name)
    if not queue_policy_allows(getattr(queue, "policy", None), queue_arn, rule_arn):
        raise QueuePolicyRefusal(f"the policy of queue {name} does not let events.amazonaws.com send messages for rule {rule_arn}")
    return backend.send_message(queue_name=name, message_body=body, message_attributes=attributes).id


def queue_backend(queue_arn: str) -> tuple[Any, str]:
    """moto's SQS backend holding the queue, and the queue's name."""
    from moto.sqs.models import sqs_backends

    _, _, _, region, account, name = queue_arn.split(":", 5)
    return sqs_backends[account][region], name


def queue_policy_allows(policy: str | dict[str, Any] | None, queue_arn: str, rule_arn: str) -> bool:
    """Whether a queue policy lets EventBridge send a message for ``rule_arn``: an Allow for
    the ``events.amazonaws.com`` service principal, ``sqs:SendMessage`` on the queue, whose
    conditions (``ArnEquals``/``ArnLike``/``StringEquals``/``StringLike`` on ``aws:SourceArn``
    only; any other fails closed) hold, and no Deny that matches."""
    import fnmatch

    doc = json.loads(policy) if isinstance(policy, str) else (policy or {})

    def listed(value: Any) -> list[str]:
        return value if isinstance(value, list) else [value]

    def matches(statement: dict[str, Any]) -> bool:
        principal = statement.get("Principal")
        services = listed(principal.get("Service", [])) if isinstance(principal, dict) else [principal]
        if "events.amazonaws.com" not in services and "*" not in services:
            return False
        if not any(fnmatch.fnmatchcase("sqs:SendMessage", a) for a in listed(statement.get("Action", []))):
            return False
        if not any(fnmatch.fnmatchcase(queue_arn, r) for r in listed(statement.get("Resource", "*"))):
            return False
        for operator, conditions in (statement.get("Condition") or {}).items():
            if operator not in ("ArnEquals", "ArnLike", "StringEquals", "StringLike") or set(conditions) != {"aws:SourceArn"}:
                return False
            wanted = listed(conditions["aws:SourceArn"])
            like = operator.endswith("Like")
            if not any(fnmatch.fnmatchcase(rule_arn, w) if like else rule_arn == w for w in wanted):
                return False
        return True

    statements = listed(doc.get("Statement", []))
    if any(s.get("Effect") == "Deny" and matches(s) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and matches(s) for s in statements)


def start_execution(arn: str, name: str, payload: str) -> str:
    from moto.stepfunctions.responses import get_backend

    parts = arn.split(":")
    backend = get_backend(parts[4], parts[3])
    execution = backend.start_execution(arn, name=name, execution_input=payload)
    return execution.execution_arn


# ---- emitting AWS service events --------------------------------------------------------------
def emit(
    source: str,
    detail_type: str,
    detail: dict[str, Any],
    resources: list[str],
    region: str,
    account: str,
    event_id: str | None = None,
    event_time: float | None = None,
) -> str:
    """Deliver an AWS-service event to every rule of the default bus; returns the event id.

    ``event_id``/``event_time`` (epoch seconds) default to a fresh uuid and now; passing those of
    an earlier event delivers that event again, as EventBridge's at-least-once delivery does."""
    from moto.events.models import events_backends

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

    def __init__(self, targets: EventTargets, account: str, region: str, enabled: bool = True) -> None:
        self.targets, self.account, self.region, self.enabled = targets, account, region, enabled
        self._stop = threading.Event()
        self._next: dict[str, float] = {}
        self._warned: set[str] = set()
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
        for target in rule.targets:
            if _service(target["Arn"]) in ("states", "lambda"):
                ev = copy.deepcopy(event)
                ev["time"] = iso(ev["time"])
                self.targets.submit(rule.arn, target, ev)

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
                due = self._next.setdefault(rule.name, now + period)
                if now >= due:
                    self._next[rule.name] = now + period
                    self.fire(rule)
