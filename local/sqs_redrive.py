"""SQS dead-letter-queue redrive: StartMessageMoveTask and ListMessageMoveTasks, which moto
5.2.5 does not answer, and which the README's runbook uses to send the ingest queue's
dead-lettered messages back to it.

SQS API Reference, StartMessageMoveTask: "Starts an asynchronous task to move messages from a
specified source queue to a specified destination queue. This action is currently limited to
supporting message redrive from queues that are configured as dead-letter queues (DLQs) of
other Amazon SQS queues only." "In dead-letter queues redrive context, the StartMessageMoveTask
the source queue is the DLQ, while the destination queue can be the original source queue (from
which the messages were driven to the dead-letter-queue), or a custom destination queue."
"Only one active message movement task is supported per queue at any given time."
DestinationArn: "If this field is left blank, the messages will be redriven back to their
respective original source queues." MaxNumberOfMessagesPerSecond: "The maximum value for
messages per second is 500."

Here: a source that is no queue's DLQ is refused, and so is a second task on a source whose
task still runs (the error codes are this stack's choice: the reference lists
``InvalidParameterValue``-like errors without saying which answers which case). moto moves a
message to the DLQ without noting where it came from, so "its original source queue" is the
one queue whose redrive policy names the DLQ; with several and no DestinationArn the task is
refused rather than guessed. Messages move in a background thread at the given rate (all at
once without one), each as a new message (same body and message attributes) on the
destination, then deleted from the DLQ.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .event_targets import queue_backend
from .iam import Refusal

MAX_RATE = 500


class MoveRefused(Exception):
    """A move task SQS refuses; ``refusal`` is its error answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.refusal = Refusal(code, message, 400)


@dataclass
class MoveTask:
    handle: str
    source_arn: str
    destination_arn: str
    to_move: int
    started: float
    moved: int = 0
    status: str = "RUNNING"
    thread: threading.Thread | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        return {
            "TaskHandle": self.handle, "Status": self.status, "SourceArn": self.source_arn, "DestinationArn": self.destination_arn,
            "ApproximateNumberOfMessagesMoved": self.moved, "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": int(self.started * 1000),
        }


class MessageMoves:
    """The move tasks started on this stack, newest last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tasks: list[MoveTask] = []

    def start(self, request: dict[str, Any]) -> dict[str, Any]:
        source_arn = request.get("SourceArn") or ""
        rate = request.get("MaxNumberOfMessagesPerSecond")
        if rate is not None and not 1 <= int(rate) <= MAX_RATE:
            raise MoveRefused("InvalidParameterValue", f"MaxNumberOfMessagesPerSecond must be between 1 and {MAX_RATE}.")
        try:
            backend, name = queue_backend(source_arn)
            dlq = backend.get_queue(name)
        except Exception:  # noqa: BLE001 - moto's QueueDoesNotExist, or an ARN that is none
            raise MoveRefused("ResourceNotFoundException", f"The resource that you specified for the SourceArn parameter doesn't exist: {source_arn}") from None
        sources = [q for q in backend.queues.values() if q.dead_letter_queue is dlq]
        if not sources:
            raise MoveRefused("InvalidParameterValue", f"Source queue must be configured as a Dead Letter Queue: {source_arn}")
        destination_arn = request.get("DestinationArn")
        if not destination_arn:
            if len(sources) > 1:
                raise MoveRefused("UnsupportedOperation", "this local stack does not know which of the DLQ's "
                              f"{len(sources)} source queues a message came from: give DestinationArn")
            destination_arn = sources[0].queue_arn
        with self._lock:
            if any(t.source_arn == source_arn and t.status == "RUNNING" for t in self.tasks):
                raise MoveRefused("UnsupportedOperation", f"A message movement task is already running on {source_arn}.")
            task = MoveTask(str(uuid.uuid4()), source_arn, destination_arn, len(dlq.messages), time.time())
            self.tasks.append(task)
        task.thread = threading.Thread(target=self._move, args=(task, rate), daemon=True, name=f"sqs-move-{task.handle[:8]}")
        task.thread.start()
        return {"TaskHandle": task.handle}

    def list(self, request: dict[str, Any]) -> dict[str, Any]:
        source_arn = request.get("SourceArn")
        with self._lock:
            found = [t.describe() for t in reversed(self.tasks) if t.source_arn == source_arn]
        return {"Results": found[: int(request.get("MaxResults") or 1)]}

    def _move(self, task: MoveTask, rate: int | None) -> None:
        source_backend, source_name = queue_backend(task.source_arn)
        dest_backend, dest_name = queue_backend(task.destination_arn)
        try:
            while task.moved < task.to_move:
                dlq = source_backend.get_queue(source_name)
                visible = dlq.messages
                if not visible:
                    break
                message = visible[0]
                dest_backend.send_message(dest_name, message.body, message_attributes=message.message_attributes or None)
                dlq._messages.remove(message)  # moto's own list; no receipt handle needed
                task.moved += 1
                if rate:
                    time.sleep(1 / int(rate))  # the task's own pace, as MaxNumberOfMessagesPerSecond sets it
            task.status = "COMPLETED"
        except Exception:  # noqa: BLE001 - a task that cannot finish reads FAILED, as in the console
            task.status = "FAILED"

