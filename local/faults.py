"""Switchable faults for failure tests, set at runtime through the control API.

Why: the invariants (no duplicates on retry/redrive, nothing swallowed, failures visible) can only
be proven if tests can make AWS misbehave on demand, deterministically. Kinds of fault:

* CloudFront errors (``cloudfront``): answer an operation (``CreateInvalidation``,
  ``GetInvalidation``, ``ListInvalidations`` or ``*``) on one distribution or all with an error
  code (``Throttling``, ``ServiceUnavailable``, ``AccessDenied``, ``NoSuchDistribution``,
  ``TooManyInvalidationsInProgress`` = "held at its in-progress limit", ...), for the next
  ``count`` calls, on a ``rate`` fraction of calls, and/or for ``seconds``; until cleared.
* Lambda crashes (``lambda_crash``): the process handling the N-th invocation (counted from
  when the fault is set) of a function is killed -- ``at: "start"`` as it takes the event
  (nothing ran), ``at: "end"`` after its work, when it posts its answer (every side effect
  happened, the answer is lost). Either way ``Runtime.ExitError`` like Lambda; the pool
  replaces the process. With ``contains``, only invocations whose event payload contains that
  string are counted (and crashed).
* Crash after an AWS operation (``crash_after``): when a function's process makes a *successful*
  call to ``service``/``operation`` (e.g. ``cloudfront``/``CreateInvalidation``,
  ``dynamodb``/``UpdateItem``), the effect is applied and the process is killed before it sees
  the response -- e.g. CloudFront accepted the invalidation, DynamoDB was never updated.
  Works for any operation on the stack's endpoint: the process is identified by the access key
  id it signs with (each process gets its own). With ``contains``, only requests whose URL path
  or body (UTF-8) contains that string match (and count towards ``times``).
* EventBridge target failures (``target_failure``): the next ``count`` deliveries to targets of
  a service (``states``/``lambda``/``sqs``) fail with ``code`` (retryable or not), so the rule's
  RetryPolicy and DeadLetterConfig are exercised; ``pipes``: the next ``count`` executions the
  pipes try to start fail, so their batches return to the queue (``local/pipes.py``).
* S3 event delivery (``s3_delivery``, applied by :mod:`local.s3_events`) to S3 -> EventBridge
  events whose key starts with ``prefix``: ``duplicate`` delivers each one a second time (same
  envelope ``id`` and detail, EventBridge's at-least-once delivery) after a random delay in
  ``duplicate_delay``; ``reorder`` holds each one until the next one is delivered (neighbours
  swapped), a held event is released after ``hold_seconds`` if nothing follows. Nothing is
  lost: clearing the fault delivers whatever it still holds or has scheduled at once.

* Lambda holds (``lambda_hold``): invocations of a function whose payload contains ``contains``
  wait before any process takes them, until the fault is cleared (or its ``seconds`` pass);
  the function's timeout starts only when a process takes the event, as on Lambda. A test
  holds the batch machine's Submit this way to keep a batch OPEN until every event of a burst
  has joined it, however slowly this machine runs the pipeline.

* Lambda throttling (``lambda_throttle``): a reserved-concurrency limit. An invocation of
  ``function`` (whose payload contains ``contains``) that would make more than ``concurrency``
  such invocations run at once is refused with ``TooManyRequestsException`` (HTTP 429), which
  Step Functions names ``Lambda.TooManyRequestsException``, as Lambda does when a function is
  at its concurrency limit. Asynchronous invocations are queued and retried instead, as Lambda
  does.

``contains`` (``crash_after``, ``lambda_crash``, ``lambda_hold``, ``lambda_throttle``) scopes a fault to one "lane" of a shared stack,
e.g. a distribution id or a key prefix, so several faults can run side by side.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

# code -> (HTTP status, error Type, default message), as CloudFront answers them.
CLOUDFRONT_ERRORS: dict[str, tuple[int, str, str]] = {
    "Throttling": (400, "Sender", "Rate exceeded"),
    "ServiceUnavailable": (503, "Receiver", "CloudFront is temporarily unavailable."),
    "InternalError": (500, "Receiver", "An internal error occurred."),
    "AccessDenied": (403, "Sender", "Access denied."),
    "NoSuchDistribution": (404, "Sender", "The specified distribution does not exist."),
    "TooManyInvalidationsInProgress": (
        400,
        "Sender",
        "Processing your request will cause you to exceed the maximum number of in-progress "
        "invalidations.",
    ),
}

KINDS = (
    "cloudfront",
    "lambda_crash",
    "lambda_hold",
    "lambda_throttle",
    "start_throttle",
    "crash_after",
    "target_failure",
    "s3_delivery",
)


@dataclass
class CloudFrontFault:
    code: str
    operation: str = "CreateInvalidation"
    distribution_id: str | None = None
    count: int | None = None  # remaining calls to fail (None: unlimited)
    rate: float = 1.0
    until: float | None = None  # epoch seconds (None: until cleared)
    status: int | None = None
    message: str | None = None
    id: int = 0  # given by Faults.add
    fired: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LambdaCrash:
    function: str
    on_call: int = 1  # crash the on_call-th invocation after arming ...
    times: int = 1  # ... and this many consecutive ones
    at: str = "start"  # "start": dies as it takes the event; "end": after its work, before answering
    contains: str | None = None  # only invocations whose payload contains this string count
    seen: int = 0
    fired: int = 0
    id: int = 0  # given by Faults.add

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LambdaHold:
    function: str
    contains: str | None = None  # only invocations whose payload contains this string are held
    seconds: float | None = None  # release after this long even if not cleared (None: until cleared)
    held: int = 0  # invocations held so far (released ones included)
    id: int = 0  # given by Faults.add
    released: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        # asdict would deep-copy the Event (and its lock): list the plain fields instead.
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "released"}


@dataclass
class LambdaThrottle:
    function: str
    concurrency: int = 1  # invocations that may run at once; more are refused
    contains: str | None = None  # only invocations whose payload contains this string count
    running: int = 0
    admitted: int = 0
    throttled: int = 0
    id: int = 0  # given by Faults.add

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StartThrottle:
    """Step Functions' StartExecution token bucket: ``burst`` tokens, refilled at ``rate`` a
    second; a StartExecution without a token is refused with ThrottlingException."""

    rate: float = 1.0
    burst: int = 1
    contains: str | None = None  # only StartExecution requests whose body contains this string
    admitted: int = 0
    throttled: int = 0
    id: int = 0  # given by Faults.add
    tokens: float = field(default=-1.0, repr=False)
    refilled_at: float = field(default_factory=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("start_throttle needs rate > 0 and burst >= 1")
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.refilled_at) * self.rate)
        self.refilled_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.admitted += 1
            return True
        self.throttled += 1
        return False

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("tokens", "refilled_at")}


class LambdaThrottled(Exception):
    """An invocation refused by a ``lambda_throttle`` fault (Lambda's TooManyRequestsException)."""


@dataclass
class CrashAfter:
    function: str
    service: str
    operation: str
    times: int = 1
    contains: str | None = None  # only requests whose URL path or body contains this string match
    fired: int = 0
    id: int = 0  # given by Faults.add

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TargetFailure:
    service: str = "states"  # target ARN service: states | lambda | sqs, or pipes (a pipe's start)
    code: str = "ThrottlingException"
    message: str = "Rate exceeded (local fault)"
    count: int | None = 1
    retryable: bool = True
    fired: int = 0
    id: int = 0  # given by Faults.add

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class S3Delivery:
    """How S3 -> EventBridge events under ``prefix`` are delivered (see :mod:`local.s3_events`)."""

    prefix: str
    duplicate: bool = False  # deliver each event a second time (same id) ...
    duplicate_delay: list[float] = field(default_factory=lambda: [0.5, 5.0])  # ... after [min, max] s
    reorder: bool = False  # hold each event until the next one was delivered (swap neighbours)
    hold_seconds: float = 1.0  # a held event nothing follows is released after this long
    count: int | None = None  # remaining events to affect (None: unlimited)
    until: float | None = None  # epoch seconds (None: until cleared)
    delivered: int = 0  # affected events delivered (first delivery)
    duplicated: int = 0  # second deliveries made
    reordered: int = 0  # events delivered after their successor
    held: int = 0  # first deliveries owed (reorder: held events)
    pending: int = 0  # second deliveries owed (duplicate)
    id: int = 0  # given by Faults.add

    def active(self, now: float) -> bool:
        return (self.until is None or self.until > now) and (self.count is None or self.count > 0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _contains(needle: str | None, *parts: bytes | str | None) -> bool:
    """True if ``needle`` is None or occurs in one of ``parts`` (bytes decoded as UTF-8, errors ignored)."""
    if needle is None:
        return True
    for part in parts:
        if part is None:
            continue
        text = part.decode("utf-8", errors="ignore") if isinstance(part, (bytes, bytearray)) else str(part)
        if needle in text:
            return True
    return False


def _check_contains(spec: dict[str, Any]) -> None:
    if spec.get("contains") is not None and not isinstance(spec["contains"], str):
        raise ValueError("'contains' must be a string")


def _s3_delivery(spec: dict[str, Any]) -> S3Delivery:
    if "seconds" in spec:
        seconds = spec.pop("seconds")
        spec["until"] = time.time() + float(seconds) if seconds is not None else None
    counters = sorted({"delivered", "duplicated", "reordered", "held", "pending", "id"} & set(spec))
    if counters:
        raise ValueError(f"s3_delivery: {', '.join(counters)} cannot be set")
    if not isinstance(spec.get("prefix"), str):
        raise ValueError("s3_delivery needs 'prefix' (a string; \"\" for every key)")
    delay = spec.get("duplicate_delay", [0.5, 5.0])
    if (
        not isinstance(delay, (list, tuple))
        or len(delay) != 2
        or not all(isinstance(d, (int, float)) and not isinstance(d, bool) for d in delay)
        or not 0 <= delay[0] <= delay[1]
    ):
        raise ValueError("'duplicate_delay' must be [min_seconds, max_seconds] with 0 <= min <= max")
    spec["duplicate_delay"] = [float(delay[0]), float(delay[1])]
    if float(spec.get("hold_seconds", 1.0)) < 0:
        raise ValueError("'hold_seconds' must be >= 0")
    return S3Delivery(**spec)


class Faults:
    """Thread-safe registry of armed faults."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self.cloudfront: list[CloudFrontFault] = []
        self.lambda_crash: list[LambdaCrash] = []
        self.lambda_hold: list[LambdaHold] = []
        self.lambda_throttle: list[LambdaThrottle] = []
        self.start_throttle: list[StartThrottle] = []
        self.crash_after: list[CrashAfter] = []
        self.target_failure: list[TargetFailure] = []
        self.s3_delivery: list[S3Delivery] = []
        self._on_clear: list[Callable[[str | None, int | None], None]] = []

    # ---- control -------------------------------------------------------------------------
    def seed(self, seed: int | None) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def add(self, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        spec = dict(spec)
        with self._lock:
            if kind == "cloudfront":
                if "seconds" in spec:
                    seconds = spec.pop("seconds")
                    spec["until"] = time.time() + float(seconds) if seconds is not None else None
                code = spec.get("code")
                if code not in CLOUDFRONT_ERRORS and not spec.get("status"):
                    raise ValueError(f"unknown CloudFront error code {code!r}: give 'status' too")
                fault: Any = CloudFrontFault(**spec)
                self.cloudfront.append(fault)
            elif kind == "lambda_crash":
                _check_contains(spec)
                fault = LambdaCrash(**spec)
                self.lambda_crash.append(fault)
            elif kind == "lambda_hold":
                _check_contains(spec)
                fault = LambdaHold(**spec)
                if fault.seconds is not None:
                    timer = threading.Timer(float(fault.seconds), fault.released.set)
                    timer.daemon = True
                    timer.start()
                self.lambda_hold.append(fault)
            elif kind == "lambda_throttle":
                _check_contains(spec)
                fault = LambdaThrottle(**spec)
                self.lambda_throttle.append(fault)
            elif kind == "start_throttle":
                _check_contains(spec)
                fault = StartThrottle(**spec)
                self.start_throttle.append(fault)
            elif kind == "crash_after":
                _check_contains(spec)
                fault = CrashAfter(**spec)
                self.crash_after.append(fault)
            elif kind == "target_failure":
                fault = TargetFailure(**spec)
                self.target_failure.append(fault)
            elif kind == "s3_delivery":
                fault = _s3_delivery(spec)
                self.s3_delivery.append(fault)
            else:
                raise ValueError(f"unknown fault kind {kind!r}")
            fault.id = next(self._ids)
            return {"kind": kind, **fault.to_json()}

    def clear(self, kind: str | None = None, fault_id: int | None = None) -> int:
        removed = 0
        with self._lock:
            for name in KINDS:
                if kind not in (None, name):
                    continue
                items = getattr(self, name)
                keep = [f for f in items if fault_id is not None and f.id != fault_id]
                removed += len(items) - len(keep)
                for gone in items:
                    if name == "lambda_hold" and gone not in keep:
                        gone.released.set()
                setattr(self, name, keep)
            hooks = list(self._on_clear)
        for hook in hooks:  # outside the lock: a hook may deliver events (s3_delivery flush)
            hook(kind, fault_id)
        return removed

    def on_clear(self, hook: Callable[[str | None, int | None], None]) -> None:
        """Call ``hook(kind, fault_id)`` after every :meth:`clear` (registered once per hook), so
        what a cleared fault still holds is released, also for faults that already expired."""
        with self._lock:
            if hook not in self._on_clear:
                self._on_clear.append(hook)

    def list(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            self._expire()
            return {
                "cloudfront": [f.to_json() for f in self.cloudfront],
                "lambda_crash": [f.to_json() for f in self.lambda_crash],
                "lambda_hold": [f.to_json() for f in self.lambda_hold],
                "lambda_throttle": [f.to_json() for f in self.lambda_throttle],
                "start_throttle": [f.to_json() for f in self.start_throttle],
                "crash_after": [f.to_json() for f in self.crash_after],
                "target_failure": [f.to_json() for f in self.target_failure],
                "s3_delivery": [f.to_json() for f in self.s3_delivery],
            }

    def _expire(self) -> None:
        now = time.time()
        self.cloudfront = [
            f
            for f in self.cloudfront
            if (f.until is None or f.until > now) and (f.count is None or f.count > 0)
        ]
        self.lambda_crash = [f for f in self.lambda_crash if f.fired < f.times]
        self.lambda_hold = [f for f in self.lambda_hold if not f.released.is_set()]
        self.crash_after = [f for f in self.crash_after if f.fired < f.times]
        self.target_failure = [f for f in self.target_failure if f.count is None or f.count > 0]
        # Listed until everything it held or scheduled is delivered, though no longer matching.
        self.s3_delivery = [f for f in self.s3_delivery if f.active(now) or f.held or f.pending]

    # ---- queries from the emulation ----------------------------------------------------------
    def cloudfront_error(self, operation: str, distribution_id: str | None) -> tuple[str, int, str, str] | None:
        """(code, status, type, message) of the fault to answer with, or None."""
        with self._lock:
            self._expire()
            for f in self.cloudfront:
                if f.operation not in ("*", operation):
                    continue
                if f.distribution_id not in (None, distribution_id):
                    continue
                if f.rate < 1.0 and self._rng.random() >= f.rate:
                    continue
                if f.count is not None:
                    f.count -= 1
                f.fired += 1
                status, typ, message = CLOUDFRONT_ERRORS.get(f.code, (f.status or 400, "Sender", f.code))
                return f.code, f.status or status, typ, f.message or message
        return None

    def lambda_should_crash(self, names: set[str], payload: bytes | str | None = None) -> str | None:
        """Called once per invocation of a function known by ``names`` (logical id, name, ARN),
        with the invocation's event ``payload`` (for ``contains``; None: such faults never match).

        Returns None, or where the invocation must crash: "start" or "end"."""
        with self._lock:
            hit: str | None = None
            for f in self.lambda_crash:
                if f.function not in names or f.fired >= f.times:
                    continue
                if not _contains(f.contains, payload):
                    continue
                f.seen += 1
                if f.seen >= f.on_call and hit is None:
                    f.fired += 1
                    hit = f.at
            self._expire()
            return hit

    def lambda_hold_for(self, names: set[str], payload: bytes | str | None = None) -> threading.Event | None:
        """The event an invocation of the function known by ``names`` must wait for before a
        process may take it (counted as held), or None."""
        with self._lock:
            self._expire()
            for f in self.lambda_hold:
                if f.function in names and _contains(f.contains, payload):
                    f.held += 1
                    return f.released
            return None

    def lambda_admit(self, names: set[str], payload: bytes | str | None = None) -> Callable[[], None]:
        """Admits an invocation of the function known by ``names`` under every matching
        ``lambda_throttle`` fault, or raises :class:`LambdaThrottled`. Returns the release to call
        when the invocation ends."""
        with self._lock:
            matching = [f for f in self.lambda_throttle if f.function in names and _contains(f.contains, payload)]
            for f in matching:
                if f.running >= f.concurrency:
                    f.throttled += 1
                    raise LambdaThrottled(f"Rate Exceeded. (concurrency {f.concurrency} of {f.function})")
            for f in matching:
                f.running += 1
                f.admitted += 1

        def release() -> None:
            with self._lock:
                for f in matching:
                    f.running -= 1

        return release

    def start_admitted(self, *request: bytes | str | None) -> bool:
        """False if a ``start_throttle`` fault whose ``contains`` occurs in ``request`` (the
        StartExecution body, or a target's ARN and input) has no token left for it."""
        with self._lock:
            for f in self.start_throttle:
                if _contains(f.contains, *request):
                    return f.take()
        return True

    def crash_after_matches(
        self, names: set[str], service: str, operation: str, path: str | None = None, body: bytes | str | None = None
    ) -> bool:
        """Whether a successful ``service``/``operation`` call by a process of the function known
        by ``names`` must crash it (counts the firing). ``path``/``body`` of the request are
        searched for a fault's ``contains``."""
        with self._lock:
            for f in self.crash_after:
                if (
                    f.function in names
                    and f.service.lower() == service.lower()
                    and f.operation == operation
                    and f.fired < f.times
                    and _contains(f.contains, path, body)
                ):
                    f.fired += 1
                    self._expire()
                    return True
        return False

    def has_crash_after(self) -> bool:
        return bool(self.crash_after)

    def s3_delivery_for(self, key: str) -> S3Delivery | None:
        """The first active ``s3_delivery`` fault whose prefix ``key`` starts with, or None.

        Uses one of its ``count`` and, in the same step, counts the event as ``held`` (reorder)
        and its second delivery as ``pending`` (duplicate), so the fault stays listed until they
        are out; the caller reports each delivery with :meth:`s3_delivery_note`."""
        with self._lock:
            self._expire()
            now = time.time()
            for f in self.s3_delivery:
                if f.active(now) and key.startswith(f.prefix):
                    if f.count is not None:
                        f.count -= 1
                    f.held += 1 if f.reorder else 0
                    f.pending += 1 if f.duplicate else 0
                    return f
        return None

    def s3_delivery_note(self, fault: S3Delivery, **deltas: int) -> None:
        """Add ``deltas`` to the counters of ``fault`` (delivered, duplicated, reordered, held, pending)."""
        with self._lock:
            for name, delta in deltas.items():
                setattr(fault, name, getattr(fault, name) + delta)
            self._expire()

    def s3_duplicate_delay(self, fault: S3Delivery) -> float:
        """A random delay for a second delivery (seeded by :meth:`seed`)."""
        with self._lock:
            low, high = fault.duplicate_delay
            return self._rng.uniform(low, high)

    def target_failure_for(self, service: str) -> TargetFailure | None:
        with self._lock:
            self._expire()
            for f in self.target_failure:
                if f.service == service:
                    if f.count is not None:
                        f.count -= 1
                    f.fired += 1
                    return f
        return None
