"""Server-side service time of the AWS requests the stack answers, per signing access key.

Why: the benchmark's cold start (spawn -> first response of a fresh function process) includes
the time the emulator itself takes to answer that process's AWS calls (moto's DynamoDB, one
Python process, takes milliseconds per call). Each function process signs with its own access
key, so the time the stack spent on the requests signed with one key is the emulator's share of
that process's first response; the rest is the process's own.

What is timed: from the WSGI application being called to its answer being complete (moto and
the middleware: the CloudFront model, faults, crash hooks), not the HTTP parsing and socket
writes around it. It is a lower bound of the emulator's time, so a figure computed as "first
response - service time" is an upper bound of the caller's own time.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable

from .middleware import request_identity


class ServiceTimes:
    """Count, total and maximum seconds per (access key, service, operation)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, dict[tuple[str, str], list[float]]] = {}

    def record(self, key: str, service: str, operation: str, seconds: float) -> None:
        with self._lock:
            cell = self._by_key.setdefault(key, {}).setdefault((service, operation), [0, 0.0, 0.0])
            cell[0] += 1
            cell[1] += seconds
            cell[2] = max(cell[2], seconds)

    def snapshot(self, key: str) -> dict[str, Any]:
        """``{"access_key", "requests", "seconds", "operations": [{"service", "operation",
        "count", "seconds", "max_seconds"}]}`` for the requests signed with ``key``."""
        with self._lock:
            cells = sorted((self._by_key.get(key) or {}).items())
            ops = [{"service": s, "operation": o, "count": int(c[0]), "seconds": c[1], "max_seconds": c[2]} for (s, o), c in cells]
        return {"access_key": key, "requests": sum(o["count"] for o in ops), "seconds": sum(o["seconds"] for o in ops), "operations": ops}

    def reset(self) -> int:
        with self._lock:
            n = len(self._by_key)
            self._by_key.clear()
        return n


def timed(app: Callable, times: ServiceTimes) -> Callable:
    """Wraps the stack's WSGI application: records the service time of every signed AWS
    request (control API requests and unsigned ones are passed through untimed)."""

    def wrapper(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/_local"):
            return app(environ, start_response)
        t0 = time.perf_counter()
        result = app(environ, start_response)
        try:
            chunks = list(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        seconds = time.perf_counter() - t0
        key, service, op = request_identity(environ)
        if key:
            times.record(key, service or "?", op or "?", seconds)
        return chunks

    return wrapper
