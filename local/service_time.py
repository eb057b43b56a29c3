"""Server-side service time of the AWS requests the stack answers, per signing access key.

Why: the benchmark's cold start (spawn -> first response of a fresh function process) includes
the time the emulator itself takes to answer that process's AWS calls (moto's DynamoDB, one
Python process, takes milliseconds per call). Each function process signs with its own access
key, so the time the stack spent on the requests signed with one key is the emulator's share of
that process's first response; the rest is the process's own.

What is timed: from the server accepting the connection (the stack starts a thread per
connection and parses the request in Python: the emulator's time too, and under the GIL it can
be milliseconds) to the WSGI application's answer being complete (moto and the middleware: the
CloudFront model, faults, crash hooks); not the writing of the answer, which may overlap the
caller's next request. While that window is open the caller is only waiting for the answer, so
"first response - service time" is the caller's own time, if anything slightly overstated.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable

from .middleware import IDENTITY, drain


class ServiceTimes:
    """Count, total and maximum seconds per (access key, service, operation)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, dict[tuple[str, str], list[float]]] = {}
        self._accepted: dict[int, float] = {}  # id(connection socket) -> accept time

    def accepted(self, connection: Any) -> None:
        with self._lock:
            if len(self._accepted) > 10_000:  # connections that never sent a request
                self._accepted.clear()
            self._accepted[id(connection)] = time.perf_counter()

    def take_accepted(self, connection: Any) -> float | None:
        """The accept time of a connection, once (its first request; later ones have none)."""
        if connection is None:
            return None
        with self._lock:
            return self._accepted.pop(id(connection), None)

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


def timed(app: Callable, times: ServiceTimes) -> Callable:
    """Wraps the stack's WSGI application (the :class:`~local.middleware.Middleware`, which
    identifies each request): records the service time of every signed AWS request (control API
    requests and unsigned ones are passed through untimed)."""

    def wrapper(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        accepted = times.take_accepted(environ.get("werkzeug.socket"))
        if environ.get("PATH_INFO", "").startswith("/_local"):
            return app(environ, start_response)
        t0 = time.perf_counter()
        chunks = drain(app(environ, start_response))
        seconds = time.perf_counter() - (accepted if accepted is not None and accepted <= t0 else t0)
        key, service, op = environ.get(IDENTITY, (None, None, None))
        if key:
            times.record(key, service or "?", op or "?", seconds)
        return chunks

    return wrapper


def stamp_accepts(server: Any, times: ServiceTimes) -> None:
    """Records when ``server`` (a socketserver) accepts each connection, before the thread that
    handles it starts: the start of a request's service time (see :func:`timed`)."""
    process_request = server.process_request

    def stamped(request: Any, client_address: Any) -> None:
        times.accepted(request)
        process_request(request, client_address)

    server.process_request = stamped
