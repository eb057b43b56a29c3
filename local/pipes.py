"""EventBridge Pipes with an SQS source and a Step Functions target (moto 5.2.5 has no Pipes).

What AWS documents, and how each point is met here (quotes from the EventBridge user guide):

* Polling and batching ("Amazon Simple Queue Service as a source"): "EventBridge reads messages
  in batches and invokes your pipe once for each batch. When your pipe successfully processes a
  batch, EventBridge deletes its messages from the queue." Before invoking, it "continues to
  poll messages ... until one of these things occurs: The batch window expires. The invocation
  payload size quota is reached. The configured maximum batch size is reached." Here: receive
  (up to 10 per call), the window starts with the first message of a batch, and a record that
  would take the batch's input past 262,144 characters starts the next batch instead.
* The target ("Amazon EventBridge Pipes batching and concurrency"): "the batch is converted to
  a JSON array and passed to as input to the Lambda or Step Functions target", bounded by "the
  overall event payload size ... Step Functions state machines (262144 characters)"; "Input
  transformers are applied separately on each individual JSON record in the array". A Standard
  workflow takes only ``FIRE_AND_FORGET`` (PipeTargetStateMachineParameters: "REQUEST_RESPONSE
  is not supported for STANDARD state machine workflows"): anything else fails the deploy.
* Failures ("Amazon EventBridge Pipes error handling and troubleshooting"): for customer
  invocation errors such as "The pipe has insufficient permissions to invoke the target",
  "For pipes with an Amazon SQS source, EventBridge Pipes retries customer errors up to the
  maximum receive count on the source queue": the batch is not deleted, its messages return
  after the queue's visibility timeout, and moto's redrive policy moves them to the DLQ after
  ``maxReceiveCount`` receives. A throttled StartExecution is a retryable AWS failure, which
  Pipes "automatically retries": here with backoff for up to half the visibility timeout, then
  the batch is left to return like a failure. The role is judged for ``sqs:ReceiveMessage``,
  ``sqs:DeleteMessage`` and ``states:StartExecution`` (``local/iam.py`` ``role_refusal``).
* The input template: only the form the template uses, one JSON path (``<$.body>``); the
  input-transformation page references fields inside an SQS body (``<$.body.key>``), so a
  body that parses as JSON is passed as JSON, any other as a string. Anything else fails the
  deploy rather than being half emulated.

Not emulated: a pipe disabling itself after nearly continuous 4xx errors, and the 20 s wait
on a quiet queue with a batching window.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .event_targets import HISTORY, NON_RETRYABLE, EventTargets, queue_backend, start_execution
from .faults import Faults
from .iam import Iam

LOG = logging.getLogger("local.pipes")

MAX_INPUT_CHARS = 262_144
_ONE_PATH = re.compile(r"^<\$((?:\.[A-Za-z0-9_-]+)*)>$")


@dataclass
class Pipe:
    name: str
    arn: str
    role_arn: str
    source_arn: str
    target_arn: str
    batch_size: int
    window: float
    path: list[str]  # the InputTemplate's JSON path (empty: the whole record)
    stop: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arn": self.arn,
            "source": self.source_arn,
            "target": self.target_arn,
            "batch_size": self.batch_size,
            "batching_window_seconds": self.window,
        }


class Pipes:
    """The stack's pipes, each polled by its own thread, and the record of their batches."""

    def __init__(self, faults: Faults, iam: Iam, events: EventTargets, account: str, region: str) -> None:
        self.faults, self.iam, self.events = faults, iam, events
        self.account, self.region = account, region
        self.pipes: dict[str, Pipe] = {}
        self.batches: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}

    def add(self, name: str, props: dict[str, Any]) -> Pipe:
        """A pipe from its CloudFormation properties; what the stack cannot emulate faithfully
        is refused here, so the deploy fails."""
        source, target = str(props["Source"]), str(props["Target"])
        if not source.startswith("arn:aws:sqs:") or not target.startswith("arn:aws:states:"):
            raise RuntimeError(f"pipe {name}: only an SQS source and a Step Functions target are emulated")
        params = (props.get("SourceParameters") or {}).get("SqsQueueParameters") or {}
        target_params = props.get("TargetParameters") or {}
        invocation = (target_params.get("StepFunctionStateMachineParameters") or {}).get("InvocationType", "REQUEST_RESPONSE")
        if _state_machine_type(target) == "STANDARD" and invocation != "FIRE_AND_FORGET":
            raise RuntimeError(f"pipe {name}: REQUEST_RESPONSE is not supported for STANDARD state machine workflows")
        template = target_params.get("InputTemplate")
        match = _ONE_PATH.match(template.strip()) if template is not None else _ONE_PATH.match("<$>")
        if match is None:
            raise RuntimeError(f"pipe {name}: the local pipe supports an InputTemplate of one JSON path, not {template!r}")
        batch_size = int(params.get("BatchSize", 10))
        window = float(params.get("MaximumBatchingWindowInSeconds", 0))
        if not 1 <= batch_size <= 10_000 or not 0 <= window <= 300:
            raise RuntimeError(f"pipe {name}: BatchSize must be 1-10000 and MaximumBatchingWindowInSeconds 0-300")
        pipe = Pipe(
            name=name,
            arn=f"arn:aws:pipes:{self.region}:{self.account}:pipe/{name}",
            role_arn=str(props["RoleArn"]),
            source_arn=source,
            target_arn=target,
            batch_size=batch_size,
            window=window,
            path=[p for p in match.group(1).split(".") if p],
        )
        self.pipes[name] = pipe
        return pipe

    def start(self) -> None:
        """Start polling every pipe not yet polled."""
        for pipe in self.pipes.values():
            if pipe.name not in self._threads:
                self._threads[pipe.name] = threading.Thread(target=self._run, args=(pipe,), daemon=True, name=f"pipe-{pipe.name}")
                self._threads[pipe.name].start()

    def stop(self) -> None:
        for pipe in self.pipes.values():
            pipe.stop.set()

    def describe(self) -> dict[str, Any]:
        return {name: pipe.describe() for name, pipe in self.pipes.items()}

    def queued(self, marker: str) -> int:
        """Messages on the pipes' source queues (waiting, or received and not yet deleted) whose
        body contains ``marker``: events on their way to an execution."""
        count = 0
        for pipe in self.pipes.values():
            backend, name = queue_backend(pipe.source_arn)
            count += sum(marker in m.body for m in list(backend.get_queue(name)._messages))
        return count

    # ---- the poller -------------------------------------------------------------------------
    def _run(self, pipe: Pipe) -> None:
        carry: list[tuple[Any, Any]] = []
        while not pipe.stop.is_set():
            try:
                batch, carry = self._gather(pipe, carry)
                if batch:
                    self._deliver(pipe, batch)
            except Exception:  # noqa: BLE001 - a poller must never die silently
                LOG.exception("pipe %s failed a round; polling on", pipe.name)
                pipe.stop.wait(1.0)

    def _gather(self, pipe: Pipe, carry: list[tuple[Any, Any]]) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
        """One batch of (message, transformed record) pairs, and what was received beyond its
        size quota, for the next."""
        backend, queue_name = queue_backend(pipe.source_arn)
        batch = list(carry)
        size = len(json.dumps([item for _, item in batch], ensure_ascii=False))
        opened = time.monotonic() if batch else None
        while len(batch) < pipe.batch_size and not pipe.stop.is_set():
            left = pipe.window - (time.monotonic() - opened) if opened is not None else 1.0
            if opened is not None and left <= 0:
                break
            refusal = self.iam.role_refusal(pipe.role_arn, "sqs:ReceiveMessage", pipe.source_arn)
            if refusal is not None:
                LOG.error("pipe %s cannot poll its source: %s", pipe.name, refusal.message)
                pipe.stop.wait(5.0)
                continue
            queue = backend.get_queue(queue_name)
            got = backend.receive_message(
                queue_name,
                min(10, pipe.batch_size - len(batch)),
                wait_seconds_timeout=min(1.0, max(left, 0.05)),
                visibility_timeout=int(queue.visibility_timeout),
            )
            received = [(m, self._transform(pipe, m)) for m in got]
            for i, (message, item) in enumerate(received):
                size += len(json.dumps(item, ensure_ascii=False)) + 2
                if size > MAX_INPUT_CHARS and batch:
                    return batch, received[i:]
                batch.append((message, item))
            if batch and opened is None:
                opened = time.monotonic()
            if batch and pipe.window == 0:
                break
        return batch, []

    def _deliver(self, pipe: Pipe, received: list[tuple[Any, Any]]) -> None:
        backend, queue_name = queue_backend(pipe.source_arn)
        batch = [m for m, _ in received]
        payload = json.dumps([item for _, item in received], ensure_ascii=False)
        ids = [_event_id(item, m) for m, item in received]
        visibility = float(backend.get_queue(queue_name).visibility_timeout)
        started = time.monotonic()
        delay, retries = 0.5, 0
        while True:
            code, message, retryable = self._start(pipe, payload)
            if code is None:
                break
            if code != "ThrottlingException" or time.monotonic() + delay - started > visibility / 2 or pipe.stop.is_set():
                return self._failed(pipe, batch, ids, code, message or "", retries)
            pipe.stop.wait(delay)
            delay, retries = min(delay * 2, 8.0), retries + 1
        execution_arn = message
        refusal = self.iam.role_refusal(pipe.role_arn, "sqs:DeleteMessage", pipe.source_arn)
        if refusal is not None:  # the execution runs; its messages return and run again
            LOG.error("pipe %s cannot delete its batch: %s", pipe.name, refusal.message)
        else:
            for m in batch:
                try:
                    backend.delete_message(queue_name, m.receipt_handle)
                except Exception as e:  # noqa: BLE001 - a receipt that expired: the message returns
                    LOG.warning("pipe %s: delete of message %s failed: %s", pipe.name, m.id, e)
        self._record(pipe, ids, batch, {"ok": True, "execution_arn": execution_arn, "retries": retries})

    def _start(self, pipe: Pipe, payload: str) -> tuple[str | None, str | None, bool]:
        """(None, execution ARN, _) on success, else (code, message, retryable)."""
        fault = self.faults.target_failure_for("pipes")
        if fault is not None:
            return fault.code, fault.message, fault.retryable
        refusal = self.iam.role_refusal(pipe.role_arn, "states:StartExecution", pipe.target_arn)
        if refusal is not None:
            return refusal.code, refusal.message, False
        if not self.faults.start_admitted(pipe.target_arn, payload):
            return "ThrottlingException", "Rate exceeded", True
        try:
            return None, start_execution(pipe.target_arn, str(uuid.uuid4()), payload), True
        except Exception as e:  # noqa: BLE001
            code = getattr(e, "error_type", None) or type(e).__name__
            return code, getattr(e, "message", None) or str(e), code not in NON_RETRYABLE

    def _failed(self, pipe: Pipe, batch: list[Any], ids: list[str], code: str, message: str, retries: int) -> None:
        """The batch stays on the queue: its messages return after the visibility timeout and
        count a receive each, until the redrive policy moves them to the DLQ."""
        LOG.warning("pipe %s could not start an execution for %d message(s): %s %s", pipe.name, len(batch), code, message)
        self._record(pipe, ids, batch, {"ok": False, "error": code, "message": message, "retries": retries})

    def _record(self, pipe: Pipe, ids: list[str], batch: list[Any], outcome: dict[str, Any]) -> None:
        now = time.time()
        entry = {
            "time": now,
            "pipe": pipe.arn,
            "target": pipe.target_arn,
            "event_ids": ids,
            "message_ids": [m.id for m in batch],
            "receive_counts": [m.approximate_receive_count for m in batch],
            **outcome,
        }
        with self._lock:
            self.batches.append(entry)
            del self.batches[:-HISTORY]
        # One delivery per event too, so a trace (and a test waiting on an event's execution)
        # follows an event through the pipe as through a rule target.
        delivered = {k: v for k, v in outcome.items() if k in ("ok", "error", "execution_arn", "retries")}
        for event_id in ids:
            self.events._record(
                {"time": now, "rule": None, "pipe": pipe.arn, "target": pipe.target_arn, "event_id": event_id, **delivered},
                self.events.deliveries,
            )

    def _transform(self, pipe: Pipe, message: Any) -> Any:
        value: Any = _record_of(message, pipe.source_arn, self.region)
        for part in pipe.path:
            if part == "body" and isinstance(value, dict) and isinstance(value.get("body"), str):
                try:
                    value = json.loads(value["body"])
                except ValueError:
                    value = value["body"]
                continue
            value = value.get(part) if isinstance(value, dict) else None
        return value


def _record_of(message: Any, source_arn: str, region: str) -> dict[str, Any]:
    """An SQS message as Pipes passes it on (the record shape of Lambda's SQS events)."""
    return {
        "messageId": message.id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": {
            "ApproximateReceiveCount": str(message.approximate_receive_count),
            "SentTimestamp": str(message.sent_timestamp),
            "SenderId": message.sender_id,
            "ApproximateFirstReceiveTimestamp": str(message.approximate_first_receive_timestamp),
        },
        "messageAttributes": {},
        "md5OfBody": message.body_md5,
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": region,
    }


def _event_id(item: Any, message: Any) -> str:
    """The EventBridge event id a record carries, else its message id."""
    if isinstance(item, dict) and isinstance(item.get("id"), str):
        return item["id"]
    return f"message:{message.id}"


def _state_machine_type(arn: str) -> str:
    from moto.stepfunctions.responses import get_backend

    _, _, _, region, account = arn.split(":")[:5]
    machine = get_backend(account, region).describe_state_machine(arn)
    return str(getattr(machine, "type", "STANDARD") or "STANDARD")
