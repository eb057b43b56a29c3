"""The classic one-file Lambda (``bench/baseline/lambda_function.py``) as S3 and Lambda run it, for
the burst (``bench/burst.py``): each S3 event the stack emitted becomes a classic ``Records[]``
notification (keys form-encoded, ``quote_plus`` keeping ``/``) for the function's
``lambda_handler``, live while the burst is written (``Relay``) or again at the issue's nominal
rate (``Replay``).

Why in-process: S3 invokes such a function asynchronously, one event at a time, with up to two
retries when it raises. A thread pool as wide as the stack's Lambda concurrency (8) plus timers
for the retries is exactly that, without a second emulator; its boto3 client is the function's
own module-level default client, retries included.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote_plus, unquote_plus

from botocore.exceptions import ClientError

from .common import Item, Write, control

HERE = Path(__file__).resolve().parent


def classic_notification(event: Item, region: str) -> Item:
    """The S3 ``Records[]`` notification for one EventBridge S3 event, as S3 sends it to a
    function trigger: one record, the key form-encoded (``+`` for a space, ``/`` kept, as in
    the S3 user guide's example ``images/red+flower.jpg``)."""
    detail = event["detail"]
    obj = detail["object"]
    created = event["detail-type"] == "Object Created"
    bucket = detail["bucket"]["name"]
    return {"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "eventName": "ObjectCreated:Put" if created else "ObjectRemoved:Delete",
        "userIdentity": {"principalId": "AWS:LOCAL"},
        "requestParameters": {"sourceIPAddress": detail.get("source-ip-address", "127.0.0.1")},
        "responseElements": {"x-amz-request-id": detail.get("request-id", ""), "x-amz-id-2": "local"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "classic-invalidation",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "LOCAL"}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {"key": quote_plus(obj["key"], safe="/"), **({"size": obj.get("size", 0), "eTag": obj.get("etag", "")} if created else {}),
                       "sequencer": obj["sequencer"]},
        },
    }]}


def load_baseline(endpoint_url: str, region: str, distribution_id: str) -> Callable[[Item, Any], Any]:
    """Imports ``bench/baseline/lambda_function.py`` as Lambda would: its module-level boto3
    client is created from the environment, here pointed at the local stack."""
    os.environ.update({
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "baseline",
        "AWS_SECRET_ACCESS_KEY": "baseline",
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "DISTRIBUTION_ID": distribution_id,
    })
    spec = importlib.util.spec_from_file_location("baseline_lambda_function", HERE / "baseline" / "lambda_function.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


class AsyncInvoker:
    """Lambda's asynchronous invocation of the baseline: ``concurrency`` at a time, a failed
    event retried after each of ``retry_delays`` (AWS: about 1 and 2 minutes; the local stack
    uses 1 s and 2 s, and so does this), then dropped (the classic function has no DLQ)."""

    def __init__(self, handler: Callable[[Item, Any], Any], concurrency: int, retry_delays: tuple[float, ...]) -> None:
        self.handler = handler
        self.retry_delays = retry_delays
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="baseline")
        self.cond = threading.Condition()
        self.outstanding = 0
        self.invocations = 0
        self.errors: Counter[str] = Counter()
        self.dropped: list[str] = []  # keys of events given up on
        self.durations: list[float] = []
        self._timers: list[threading.Timer] = []

    def submit(self, event: Item) -> None:
        with self.cond:
            self.outstanding += 1
        self.pool.submit(self._invoke, event, 0)

    def _invoke(self, event: Item, attempt: int) -> None:
        started = time.perf_counter()
        try:
            self.handler(event, None)
            error = None
        except ClientError as e:
            error = e.response.get("Error", {}).get("Code", "ClientError")
        except Exception as e:  # noqa: BLE001 - any failure (botocore's too) makes Lambda retry
            error = type(e).__name__
        with self.cond:
            self.invocations += 1
            self.durations.append(time.perf_counter() - started)
            if error is None:
                self.outstanding -= 1
            else:
                self.errors[error] += 1
                if attempt < len(self.retry_delays):
                    timer = threading.Timer(self.retry_delays[attempt], lambda: self.pool.submit(self._invoke, event, attempt + 1))
                    timer.daemon = True
                    self._timers.append(timer)
                    timer.start()
                else:
                    self.dropped.append(event["Records"][0]["s3"]["object"]["key"])
                    self.outstanding -= 1
            self.cond.notify_all()

    def idle(self) -> bool:
        with self.cond:
            return self.outstanding == 0

    def close(self) -> None:
        for t in self._timers:
            t.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class Relay:
    """Reads the S3 events the stack emitted (after ``after``) and hands each of the workload's
    to the baseline once, in the order S3 emitted them.

    The stack appends an event to its list just after giving it its sequencer, so under
    concurrent writes the list is not strictly in sequencer order: each poll asks from the
    highest sequencer seen a second ago and skips the event ids it already has."""

    control_url: str
    bucket: str
    prefix: str
    region: str
    invoker: AsyncInvoker
    after: str | None
    seen: int = 0
    notifications: list[Item] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, daemon=True, name="relay")
        self.thread.start()

    def _loop(self) -> None:
        ids: set[str] = set()
        marks: deque[str | None] = deque([self.after], maxlen=5)  # max sequencer at each of the last 5 polls
        try:
            while not self.stop.is_set():
                body = {"after_sequencer": marks[0]} if marks[0] else {}
                top = marks[-1]
                for e in control(self.control_url, "s3/events", body)["events"]:
                    seq = e["detail"]["object"]["sequencer"]
                    top = seq if top is None or seq > top else top
                    if e["id"] in ids:
                        continue
                    ids.add(e["id"])
                    if e["detail"]["bucket"]["name"] == self.bucket and e["detail"]["object"]["key"].startswith(self.prefix):
                        self.seen += 1
                        note = classic_notification(e, self.region)
                        self.notifications.append(note)
                        self.invoker.submit(note)
                marks.append(top)
                # the stack keeps the last 2,000 events: polling every 0.2 s keeps far ahead of them
                self.stop.wait(0.2)
        except BaseException as e:  # noqa: BLE001 - reported by the driver
            self.error = e

    def close(self) -> None:
        self.stop.set()
        if self.thread:
            self.thread.join(10)


class Replay:
    """The baseline again, fed the same notifications at the issue's nominal burst rate (the
    emulator cannot take 5,000 writes in 10 s, but the classic function needs no emulator to
    receive them that fast: S3 would). Each notification's replay time stands for its write."""

    def __init__(self, handler: Callable[[Item, Any], Any], notes: list[Item], rate: float, concurrency: int) -> None:
        self.notes = notes
        self.rate = rate
        self.invoker = AsyncInvoker(handler, concurrency=concurrency, retry_delays=(1.0, 2.0))
        self.writes: list[Write] = []
        self.thread = threading.Thread(target=self._feed, daemon=True, name="replay")
        self.stop = threading.Event()
        self.started = 0.0
        self.fed_in = 0.0

    def start(self) -> None:
        self.thread.start()

    def _feed(self) -> None:
        self.started = time.time()
        for i, note in enumerate(self.notes):
            # a rate schedule, not a wait for a condition: event i is due at started + i / rate
            if self.stop.wait(max(0.0, self.started + i / self.rate - time.time())):
                return
            self.writes.append(Write(unquote_plus(note["Records"][0]["s3"]["object"]["key"]), time.time()))
            self.invoker.submit(note)
        self.fed_in = time.time() - self.started

    def idle(self) -> bool:
        return not self.thread.is_alive() and self.invoker.idle()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.invoker.close()
