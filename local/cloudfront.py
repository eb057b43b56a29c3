"""CloudFront invalidations modelled on AWS, served in front of moto.

Why: moto completes every invalidation at once (status ``COMPLETED``, AWS says ``Completed``
after ``InProgress``), makes a new invalidation for a repeated ``CallerReference`` and enforces
no limits -- so neither idempotency nor back-pressure could be tested. This module answers the
three invalidation operations itself (REST-XML, API version 2020-05-31), before moto sees them:

* ``CreateInvalidation`` -> 201 + ``Location``; status ``InProgress`` for ``in_progress_seconds``
  (global default, per-distribution override, both settable at runtime), then ``Completed``.
* ``CallerReference``: same reference + same paths (as a multiset: order is not compared) on the
  same distribution -> the existing invalidation, no new one (and nothing billed); same
  reference + other paths -> ``InvalidationBatchAlreadyExists`` (409).
* In-progress limits per distribution: 3,000 file paths and 15 wildcard paths (a path ending in
  ``*``) -> ``TooManyInvalidationsInProgress`` (400). A single request above a limit on its own
  -> ``BatchTooLarge`` (413).
* Validation: every path starts with ``/`` and is at most 4,000 characters; a ``*`` anywhere but
  last is a literal character, as the developer guide says ("Asterisks (*) inserted anywhere
  else are treated as a literal character match"); a path holding ``~``, literal or ``%7E``, is
  rejected ("Don't use the ~ character in your path. CloudFront doesn't support this character
  for invalidations, whether it's URL-encoded or not": the guide does not say whether AWS
  rejects it or invalidates nothing, so the model takes the strict side and fails loudly) ->
  ``InvalidArgument`` (400); ``Quantity`` must equal the number of items ->
  ``InconsistentQuantities`` (400); unknown distribution -> ``NoSuchDistribution`` (404);
  unknown invalidation -> ``NoSuchInvalidation`` (404).
* Errors use CloudFront's REST-XML shape
  ``<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>``, which
  botocore and the Rust SDK both parse into the error code.
* Every ``CreateInvalidation`` call, accepted or rejected, is logged (time, distribution,
  caller reference, paths, outcome, paths billed) for the control API.
* Faults from :mod:`local.faults` are applied first (Throttling is a rate limit: it comes before
  any validation).
"""

from __future__ import annotations

import datetime as dt
import random
import re
import string
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from .faults import Faults

NS = "http://cloudfront.amazonaws.com/doc/2020-05-31/"
MAX_FILE_PATHS_IN_PROGRESS = 3000
MAX_WILDCARDS_IN_PROGRESS = 15
MAX_PATH_LENGTH = 4000

_PATH_RE = re.compile(r"^/2020-05-31/distribution/(?P<dist>[^/]+)/invalidation(?:/(?P<inv>[^/]+))?/?$")


class CloudFrontError(Exception):
    def __init__(self, code: str, status: int, message: str, typ: str = "Sender") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.typ = typ


def _new_id() -> str:
    return "I" + "".join(random.choices(string.ascii_uppercase + string.digits, k=13))


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def is_wildcard(path: str) -> bool:
    return path.endswith("*")


def is_valid_path(path: str) -> bool:
    return (
        path.startswith("/")
        and len(path) <= MAX_PATH_LENGTH
        and "~" not in path
        and "%7e" not in path.lower()
    )


@dataclass
class Invalidation:
    id: str
    distribution_id: str
    caller_reference: str
    paths: list[str]
    created: float
    duration: float

    @property
    def completes_at(self) -> float:
        return self.created + self.duration

    def status(self, now: float) -> str:
        return "Completed" if now >= self.completes_at else "InProgress"

    def to_xml(self, now: float) -> str:
        items = "".join(f"<Path>{escape(p)}</Path>" for p in self.paths)
        return (
            f"<Id>{self.id}</Id><Status>{self.status(now)}</Status>"
            f"<CreateTime>{_iso(self.created)}</CreateTime>"
            f"<InvalidationBatch><Paths><Quantity>{len(self.paths)}</Quantity>"
            f"<Items>{items}</Items></Paths>"
            f"<CallerReference>{escape(self.caller_reference)}</CallerReference></InvalidationBatch>"
        )


@dataclass
class CloudFrontModel:
    """The invalidation state of every distribution, plus the call log."""

    distribution_exists: Callable[[str], bool]
    faults: Faults
    in_progress_seconds: float = 5.0
    clock: Callable[[], float] = time.time
    per_distribution_seconds: dict[str, float] = field(default_factory=dict)
    invalidations: dict[str, list[Invalidation]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: int = 0

    # ---- settings / inspection ---------------------------------------------------------------
    def set_in_progress_seconds(self, seconds: float, distribution_id: str | None = None) -> None:
        with self._lock:
            if distribution_id is None:
                self.in_progress_seconds = float(seconds)
            else:
                self.per_distribution_seconds[distribution_id] = float(seconds)

    def complete_all(self, distribution_id: str | None = None) -> int:
        """Mark every in-progress invalidation Completed now (a test shortcut)."""
        now = self.clock()
        n = 0
        with self._lock:
            for dist, invs in self.invalidations.items():
                if distribution_id in (None, dist):
                    for inv in invs:
                        if inv.status(now) == "InProgress":
                            inv.duration = now - inv.created
                            n += 1
        return n

    def list_calls(self, distribution_id: str | None = None, since_seq: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(c)
                for c in self.calls
                if c["seq"] > since_seq and distribution_id in (None, c["distribution_id"])
            ]

    def reset_calls(self) -> int:
        with self._lock:
            n = len(self.calls)
            self.calls.clear()
            return n

    def snapshot(self, distribution_id: str | None = None) -> list[dict[str, Any]]:
        now = self.clock()
        with self._lock:
            return [
                {
                    "id": inv.id,
                    "distribution_id": inv.distribution_id,
                    "caller_reference": inv.caller_reference,
                    "paths": list(inv.paths),
                    "status": inv.status(now),
                    "create_time": _iso(inv.created),
                }
                for dist, invs in self.invalidations.items()
                if distribution_id in (None, dist)
                for inv in invs
            ]

    # ---- operations ---------------------------------------------------------------------------
    def _fault(self, operation: str, dist: str) -> None:
        hit = self.faults.cloudfront_error(operation, dist)
        if hit:
            code, status, typ, message = hit
            raise CloudFrontError(code, status, message, typ)

    def _check_distribution(self, dist: str) -> None:
        if not self.distribution_exists(dist):
            raise CloudFrontError("NoSuchDistribution", 404, "The specified distribution does not exist.")

    def create(self, dist: str, caller_reference: str | None, paths: list[str], quantity: int | None) -> tuple[Invalidation, bool]:
        """Returns (invalidation, created_new). Raises CloudFrontError. Logs the call."""
        t = self.clock()
        entry: dict[str, Any] = {
            "time": t,
            "iso_time": _iso(t),
            "distribution_id": dist,
            "caller_reference": caller_reference,
            "paths": list(paths),
        }
        try:
            inv, created = self._create(dist, caller_reference, paths, quantity, t)
        except CloudFrontError as e:
            entry.update(outcome=e.code, status=e.status, invalidation_id=None, billed_paths=0)
            self._log(entry)
            raise
        entry.update(
            outcome="created" if created else "existing",
            status=201,
            invalidation_id=inv.id,
            billed_paths=len(paths) if created else 0,
        )
        self._log(entry)
        return inv, created

    def _log(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self.calls.append(entry)

    def _create(self, dist: str, ref: str | None, paths: list[str], quantity: int | None, now: float) -> tuple[Invalidation, bool]:
        self._fault("CreateInvalidation", dist)
        self._check_distribution(dist)
        if not ref:
            raise CloudFrontError("InvalidArgument", 400, "CallerReference is required.")
        if quantity is not None and quantity != len(paths):
            raise CloudFrontError(
                "InconsistentQuantities", 400, "The value of Quantity and the size of Items don't match."
            )
        if not paths:
            raise CloudFrontError("InvalidArgument", 400, "Your request contains no invalidation paths.")
        for p in paths:
            if not is_valid_path(p):
                raise CloudFrontError(
                    "InvalidArgument", 400, f"Your request contains one or more invalid invalidation paths: {p[:200]}"
                )
        files = sum(1 for p in paths if not is_wildcard(p))
        wild = len(paths) - files
        if files > MAX_FILE_PATHS_IN_PROGRESS or wild > MAX_WILDCARDS_IN_PROGRESS:
            raise CloudFrontError("BatchTooLarge", 413, "Invalidation batch specified is too large.")
        with self._lock:
            invs = self.invalidations.setdefault(dist, [])
            for inv in invs:
                if inv.caller_reference == ref:
                    if Counter(inv.paths) == Counter(paths):
                        return inv, False
                    raise CloudFrontError(
                        "InvalidationBatchAlreadyExists",
                        409,
                        f"Invalidation batch specified already exists: {inv.id}",
                    )
            hit = self.faults.cloudfront_error("CreateInvalidation:limit", dist)
            if hit:
                raise CloudFrontError(hit[0], hit[1], hit[3], hit[2])
            live = [i for i in invs if i.status(now) == "InProgress"]
            live_files = sum(1 for i in live for p in i.paths if not is_wildcard(p))
            live_wild = sum(1 for i in live for p in i.paths if is_wildcard(p))
            if wild and live_wild + wild > MAX_WILDCARDS_IN_PROGRESS:
                raise CloudFrontError(
                    "TooManyInvalidationsInProgress",
                    400,
                    "Processing your request will cause you to exceed the maximum number of "
                    "in-progress wildcard invalidations.",
                )
            if files and live_files + files > MAX_FILE_PATHS_IN_PROGRESS:
                raise CloudFrontError(
                    "TooManyInvalidationsInProgress",
                    400,
                    "Processing your request will cause you to exceed the maximum number of "
                    "in-progress invalidations.",
                )
            duration = self.per_distribution_seconds.get(dist, self.in_progress_seconds)
            inv = Invalidation(_new_id(), dist, ref, list(paths), now, duration)
            invs.insert(0, inv)  # newest first, like ListInvalidations
            return inv, True

    def get(self, dist: str, inv_id: str) -> Invalidation:
        self._fault("GetInvalidation", dist)
        self._check_distribution(dist)
        with self._lock:
            for inv in self.invalidations.get(dist, []):
                if inv.id == inv_id:
                    return inv
        raise CloudFrontError("NoSuchInvalidation", 404, "The specified invalidation does not exist.")

    def list(self, dist: str) -> list[Invalidation]:
        self._fault("ListInvalidations", dist)
        self._check_distribution(dist)
        with self._lock:
            return list(self.invalidations.get(dist, []))

    # ---- HTTP -----------------------------------------------------------------------------------
    @staticmethod
    def matches(path: str) -> bool:
        return bool(_PATH_RE.match(path))

    def handle(self, method: str, path: str, query: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Serve one invalidation request (path already matched by :meth:`matches`)."""
        m = _PATH_RE.match(path)
        assert m is not None
        dist = unquote(m.group("dist"))
        inv_id = m.group("inv")
        request_id = str(uuid.uuid4())
        try:
            if method == "POST" and inv_id is None:
                ref, paths, quantity = _parse_batch(body)
                inv, _ = self.create(dist, ref, paths, quantity)
                location = f"https://cloudfront.amazonaws.com/2020-05-31/distribution/{dist}/invalidation/{inv.id}"
                xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<Invalidation xmlns="{NS}">{inv.to_xml(self.clock())}</Invalidation>'
                return 201, _headers(request_id, [("Location", location)]), xml.encode()
            if method == "GET" and inv_id is not None:
                inv = self.get(dist, unquote(inv_id))
                xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<Invalidation xmlns="{NS}">{inv.to_xml(self.clock())}</Invalidation>'
                return 200, _headers(request_id), xml.encode()
            if method == "GET" and inv_id is None:
                return 200, _headers(request_id), self._list_xml(dist, query).encode()
            raise CloudFrontError("InvalidArgument", 400, f"Unsupported {method} on {path}")
        except CloudFrontError as e:
            return error_answer(e, request_id)

    def _list_xml(self, dist: str, query: str) -> str:
        q = parse_qs(query)
        marker = (q.get("Marker") or [""])[0]
        max_items = int((q.get("MaxItems") or ["100"])[0])
        invs = self.list(dist)
        start = 0
        if marker:
            ids = [i.id for i in invs]
            start = ids.index(marker) + 1 if marker in ids else len(invs)
        page = invs[start : start + max_items]
        truncated = start + max_items < len(invs)
        now = self.clock()
        items = "".join(
            f"<InvalidationSummary><Id>{i.id}</Id><CreateTime>{_iso(i.created)}</CreateTime>"
            f"<Status>{i.status(now)}</Status></InvalidationSummary>"
            for i in page
        )
        next_marker = f"<NextMarker>{page[-1].id}</NextMarker>" if truncated and page else ""
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<InvalidationList xmlns="{NS}">'
            f"<Marker>{escape(marker)}</Marker>{next_marker}<MaxItems>{max_items}</MaxItems>"
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
            f"<Quantity>{len(page)}</Quantity>"
            + (f"<Items>{items}</Items>" if page else "")
            + "</InvalidationList>"
        )


def error_answer(e: CloudFrontError, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """CloudFront's REST-XML error document, with its status and headers."""
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{NS}"><Error>'
        f"<Type>{e.typ}</Type><Code>{e.code}</Code><Message>{escape(e.message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return e.status, _headers(request_id), xml.encode()


def _headers(request_id: str, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [("Content-Type", "text/xml"), ("x-amz-request-id", request_id)] + (extra or [])


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_batch(body: bytes) -> tuple[str | None, list[str], int | None]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise CloudFrontError("MalformedInput", 400, f"Malformed XML: {e}") from e
    ref: str | None = None
    paths: list[str] = []
    quantity: int | None = None
    for child in root:
        name = _local(child.tag)
        if name == "CallerReference":
            ref = child.text or ""
        elif name == "Paths":
            for sub in child:
                sname = _local(sub.tag)
                if sname == "Quantity":
                    quantity = int((sub.text or "0").strip())
                elif sname == "Items":
                    paths = [p.text or "" for p in sub if _local(p.tag) == "Path"]
    return ref, paths, quantity
