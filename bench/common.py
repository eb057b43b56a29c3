"""Small helpers shared by the benchmark's modules: the control API, statistics, tables, waiting,
the record of a write."""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

Item = dict[str, Any]
T = TypeVar("T")


class BenchError(Exception):
    """A failure the benchmark reports in one message (the stack is still stopped)."""


@dataclass
class Write:
    """One S3 write: the burst's own, or a replayed notification standing for one."""

    key: str
    started: float  # epoch seconds when the PutObject request was sent
    ended: float = 0.0  # when S3 answered (the event was emitted in between)


def control(control_url: str, command: str, body: Item | None = None, timeout: float = 60.0) -> Any:
    """POST a command to a local stack's control API and return its JSON answer."""
    req = urllib.request.Request(f"{control_url}/{command}", data=json.dumps(body or {}).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
    """Polls ``predicate`` until it returns something truthy; raises BenchError at the deadline.

    Every wait in the benchmark goes through here: no blind sleeps, each has a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def spread(values: Iterable[float]) -> Item:
    """Median and spread of repeated measurements: ``{"median", "min", "max", "n"}``."""
    vals = sorted(values)
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1], "n": len(vals)}


def fmt_spread(s: Item, unit: str = "", digits: int = 1) -> str:
    """``12.3 ms (10.1-15.2, n=10)`` from :func:`spread` output."""
    if not s or s.get("median") is None:
        return "-"
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}-{s['max']:.{digits}f}, n={s['n']})"


def render(headers: list[str], rows: list[list[Any]], indent: str = "  ") -> str:
    """An aligned plain-text table; columns whose every cell is a number are right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return indent + "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])
