"""The invalidation model: every distribution's invalidations and the call log (state only;
the wire format is :mod:`local.cloudfront.responses`). The rules it enforces are listed in
:mod:`local.cloudfront`.
"""

from __future__ import annotations

import datetime as dt
import random
import string
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from ..faults import Faults

MAX_FILE_PATHS_IN_PROGRESS = 3000
MAX_WILDCARDS_IN_PROGRESS = 15
MAX_PATH_LENGTH = 4000


class CloudFrontError(Exception):
    def __init__(self, code: str, status: int, message: str, typ: str = "Sender") -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.typ = typ


def _new_id() -> str:
    return "I" + "".join(random.choices(string.ascii_uppercase + string.digits, k=13))


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


MAX_TAG_LENGTH = 256  # "The maximum length of a tag is 256 characters."
MAX_TAGS_PER_OBJECT = 50  # "CloudFront processes up to 50 tags per cached object."


def is_tag_item(item: str) -> bool:
    """A cache-tag invalidation item: "Tag invalidation items must begin with the # character"."""
    return item.startswith("#")


def is_wildcard(path: str) -> bool:
    # "Unlike path invalidations, tag invalidation items do not support the * wildcard."
    return path.endswith("*") and not is_tag_item(path)


def is_valid_tag(tag: str) -> bool:
    """'Each tag value must contain only ASCII visible characters (33-126), excluding commas.'"""
    return 0 < len(tag) <= MAX_TAG_LENGTH and all(33 <= ord(c) <= 126 and c != "," for c in tag)


def is_valid_path(path: str) -> bool:
    if is_tag_item(path):
        return is_valid_tag(path[1:])
    return (
        path.startswith("/")
        and len(path) <= MAX_PATH_LENGTH
        and "~" not in path
        and "%7e" not in path.lower()
    )


def header_tags(value: str) -> frozenset[str]:
    """The tags CloudFront stores from a cache-tag header value: "Tags are comma-separated in the
    header value. Leading and trailing whitespace around each tag is trimmed"; the first 50 only;
    case-insensitive (kept lowercase)."""
    tags = [t.strip() for t in value.split(",") if t.strip()][:MAX_TAGS_PER_OBJECT]
    return frozenset(t.lower() for t in tags if is_valid_tag(t))


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


@dataclass
class CloudFrontModel:
    """The invalidation state of every distribution, plus the call log."""

    distribution_exists: Callable[[str], bool]
    faults: Faults
    in_progress_seconds: float = 5.0
    clock: Callable[[], float] = time.time
    per_distribution_seconds: dict[str, float] = field(default_factory=dict)
    # A distribution's configuration as moto keeps it (None for an unknown id). Its
    # CacheTagConfig lives there and nowhere else: moto keeps the element a CreateDistribution
    # or UpdateDistribution request gives and answers it in GetDistribution(Config), so what
    # the API shows and what the edge honours cannot disagree.
    distribution_config: Callable[[str], Any] = lambda _id: None
    invalidations: dict[str, list[Invalidation]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: int = 0
    # Indexes over ``invalidations`` (the one-file Lambda's burst makes thousands, and each
    # create read them all): by (distribution, CallerReference), and each distribution's
    # invalidations not yet seen Completed (an invalidation only ever completes sooner:
    # complete_all), pruned at each create.
    _by_reference: dict[tuple[str, str], Invalidation] = field(default_factory=dict)
    _in_progress: dict[str, list[Invalidation]] = field(default_factory=dict)

    # ---- settings / inspection ---------------------------------------------------------------
    def set_in_progress_seconds(self, seconds: float, distribution_id: str | None = None) -> None:
        with self._lock:
            if distribution_id is None:
                self.in_progress_seconds = float(seconds)
            else:
                self.per_distribution_seconds[distribution_id] = float(seconds)

    def set_cache_tag_header(self, distribution_id: str, header: str | None) -> None:
        """Set (or, without ``header``, remove) the distribution's ``CacheTagConfig``, as an
        UpdateDistribution that changed only that element would."""
        config = self.distribution_config(distribution_id)
        if config is None:
            raise ValueError(f"no distribution {distribution_id}")
        if header:
            config.CacheTagConfig = {"HeaderName": header}
        else:
            config.__dict__.pop("CacheTagConfig", None)

    def cache_tag_header(self, distribution_id: str) -> str | None:
        """``CacheTagConfig.HeaderName`` as configured (HTTP header names compare
        case-insensitively), None without a ``CacheTagConfig``."""
        config = self.distribution_config(distribution_id)
        tag_config = getattr(config, "CacheTagConfig", None) if config is not None else None
        return (tag_config or {}).get("HeaderName") or None

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
                    "create_time": iso(inv.created),
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
            "iso_time": iso(t),
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
            inv = self._by_reference.get((dist, ref))
            if inv is not None:
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
            live = self._in_progress[dist] = [i for i in self._in_progress.get(dist, []) if i.status(now) == "InProgress"]
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
            self._by_reference[(dist, ref)] = inv
            live.append(inv)
            return inv, True

    def get(self, dist: str, inv_id: str) -> Invalidation:
        self._fault("GetInvalidation", dist)
        self._check_distribution(dist)
        with self._lock:
            for inv in self.invalidations.get(dist, []):
                if inv.id == inv_id:
                    return inv
        raise CloudFrontError("NoSuchInvalidation", 404, "The specified invalidation does not exist.")

    def completed_paths_since(self, dist: str, since: float) -> list[list[str]]:
        """The paths of each invalidation of ``dist`` created after ``since`` and Completed now
        (what an edge cache applies to an entry it fetched at ``since``: local/cloudfront/edge.py)."""
        now = self.clock()
        with self._lock:
            return [
                list(inv.paths)
                for inv in self.invalidations.get(dist, [])
                if inv.created > since and inv.status(now) == "Completed"
            ]

    def list(self, dist: str) -> list[Invalidation]:
        self._fault("ListInvalidations", dist)
        self._check_distribution(dist)
        with self._lock:
            return list(self.invalidations.get(dist, []))
