"""The WSGI layer in front of moto: control API, IAM for the functions' requests, CloudFront
invalidations, crash-after hooks.

Why a middleware rather than more moto patches: CloudFront's error shapes and status codes,
and killing a function process *after* an AWS operation took effect but *before* the process
reads the answer, both need the raw HTTP exchange. Everything else passes through to moto's
own WSGI application untouched.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import threading
import traceback
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import parse_qs

from .cloudfront import urls as cloudfront_urls
from .iam import Refusal, error_response, headers_of
from .sqs_redrive import MessageMoves, MoveRefused

if TYPE_CHECKING:
    from .cloudfront.responses import CloudFrontResponse
    from .faults import Faults
    from .iam import Iam
    from .lambda_runtime import RuntimeApi

LOG = logging.getLogger("local.http")

_CRED = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/")
_S3_OPS = {"PUT": "PutObject", "GET": "GetObject", "DELETE": "DeleteObject", "HEAD": "HeadObject", "POST": "PostObject"}


# Where Middleware leaves a request's (access key, service, operation) for the layers around it.
IDENTITY = "local.identity"


def request_identity(environ: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(access key id, service, operation) of an AWS request, best effort."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = _CRED.search(auth)
    key, service = (m.group(1), m.group(2)) if m else (None, None)
    target = environ.get("HTTP_X_AMZ_TARGET")
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    op: str | None = None
    if target:
        op = target.rsplit(".", 1)[-1]
    elif service == "cloudfront":
        op = cloudfront_urls.operation(method, path)
    elif service == "lambda" and path.endswith("/invocations"):
        op = "Invoke"
    elif service == "s3":
        op = _S3_OPS.get(method)
    else:
        qs = parse_qs(environ.get("QUERY_STRING", ""))
        if "Action" in qs:
            op = qs["Action"][0]
    return key, service, op


class RequestLog:
    """Counts AWS requests by (calling function, service, operation).

    Why: the benchmark reports DynamoDB writes per S3 event as measured, not as read from the
    code. The caller is the function whose process signed the request (each process signs with
    its own access key id); anything else (a test, the benchmark driver) counts as ``None``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str | None, str, str]] = Counter()

    def record(self, function: str | None, service: str, operation: str) -> None:
        with self._lock:
            self._counts[(function, service, operation)] += 1

    def snapshot(self, service: str | None = None) -> list[dict[str, Any]]:
        """``[{"function", "service", "operation", "count"}]``, optionally for one service."""
        with self._lock:
            items = sorted(self._counts.items(), key=lambda kv: (kv[0][0] or "", kv[0][1], kv[0][2]))
        return [
            {"function": f, "service": s, "operation": o, "count": n}
            for (f, s, o), n in items
            if service in (None, s)
        ]

    def reset(self) -> int:
        with self._lock:
            n = sum(self._counts.values())
            self._counts.clear()
        return n


def drain(result: Iterable[bytes]) -> list[bytes]:
    """All of a WSGI response's chunks, closing it as PEP 3333 asks."""
    try:
        return list(result)
    finally:
        close = getattr(result, "close", None)
        if close:
            close()


class Middleware:
    """In front of ``app`` (moto): ``control`` answers ``/_local/<command>`` (with the JSON body),
    ``runtime`` tells which function process signed a request, ``iam`` judges it, ``faults``
    may throttle or crash it, ``cloudfront`` answers the invalidation operations, ``requests``
    counts them all."""

    def __init__(
        self,
        app: Callable,
        *,
        control: Callable[[str, dict[str, Any]], Any],
        runtime: "RuntimeApi",
        iam: "Iam",
        faults: "Faults",
        cloudfront: "CloudFrontResponse",
        requests: RequestLog,
        message_moves: MessageMoves,
    ) -> None:
        self.app = app
        self.control = control
        self.runtime, self.iam, self.faults = runtime, iam, faults
        self.cloudfront, self.requests = cloudfront, requests
        self.message_moves = message_moves
        # moto's DynamoDB is not thread-safe: a Query iterating a table while another request
        # adds an item fails with "dictionary changed size during iteration", an HTTP 500 that
        # real DynamoDB does not give for it. One DynamoDB request at a time keeps its answers
        # right (under the GIL this costs little).
        self._dynamodb = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_local/") or path == "/_local":
            return self._control(environ, start_response)
        key, service, op = environ[IDENTITY] = request_identity(environ)
        proc = self.runtime.process_by_access_key(key) if key else None
        if service and op:
            self.requests.record(proc.pool.logical_id if proc else None, service, op)
        method = environ["REQUEST_METHOD"]
        judged = proc is not None and proc.pool.credentials is not None and bool(service)
        raw_path = environ.get("RAW_URI", path).split("?", 1)[0]
        if judged:
            # A deployed function's request: judged against its role first, as AWS does
            # (local/iam.py). Pools without a role (the stack's own tests) are not judged.
            refusal = self.iam.judge(
                method, raw_path, environ.get("QUERY_STRING", ""), headers_of(environ), _buffered_body(environ), service, op or ""
            )
            if refusal is not None:
                proc.pool._write_log(f"IAM {refusal.code}: {refusal.message}")
                LOG.warning("IAM refused %s: %s", proc.pool.logical_id, refusal.message)
                return _answer(start_response, *error_response(service, refusal, str(uuid.uuid4())), head=method == "HEAD")
        if service == "states" and op == "StartExecution" and self.faults.start_throttle:
            # Any caller's StartExecution (a Task's states:startExecution, the sweep) draws on the
            # token bucket of a start_throttle fault.
            if not self.faults.start_admitted(_buffered_body(environ)):
                throttled = Refusal("ThrottlingException", "Rate exceeded", 400)
                return _answer(start_response, *error_response(service, throttled, str(uuid.uuid4())))
        if service == "sqs" and op in ("StartMessageMoveTask", "ListMessageMoveTasks"):
            # moto has neither: the DLQ redrive of local/sqs_redrive.py.
            try:
                request = json.loads(_buffered_body(environ) or b"{}")
                answer = (self.message_moves.start if op == "StartMessageMoveTask" else self.message_moves.list)(request)
            except MoveRefused as refused:
                return _answer(start_response, *error_response(service, refused.refusal, str(uuid.uuid4())))
            return _answer(start_response, 200, [("Content-Type", "application/x-amz-json-1.0")], json.dumps(answer).encode())
        if cloudfront_urls.match(path):
            body = _buffered_body(environ)
            try:
                status, headers, out = self.cloudfront.handle(environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""), body)
            except Exception:  # noqa: BLE001
                LOG.exception("CloudFront emulation failed")
                status, headers, out = 500, [("Content-Type", "text/plain")], traceback.format_exc().encode()
            self._maybe_crash(proc, service, op, status, path, body)
            return _answer(start_response, status, headers, out)

        # A crash_after fault may look for a string in the body.
        sent_body = _buffered_body(environ) if proc is not None and self.faults.has_crash_after() else None

        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            captured["status"], captured["headers"], captured["exc_info"] = status, headers, exc_info
            return lambda data: None  # moto never uses write()

        with self._dynamodb if service == "dynamodb" else contextlib.nullcontext():
            chunks = drain(self.app(environ, capture))
        status_code = int(str(captured.get("status", "500")).split(" ", 1)[0])
        if judged and status_code == 404 and service == "s3" and op in ("GetObject", "HeadObject"):
            # No such key: S3 says so only to a caller that may list the bucket (local/iam.py).
            refusal = self.iam.missing_object(method, raw_path, environ.get("QUERY_STRING", ""), headers_of(environ))
            if refusal is not None:
                proc.pool._write_log(f"IAM {refusal.code}: {refusal.message}")
                return _answer(start_response, *error_response(service, refusal, str(uuid.uuid4())), head=method == "HEAD")
        if status_code >= 500:
            LOG.error("moto answered %s to %s %s (%s/%s)", status_code, environ.get("REQUEST_METHOD"), path, service, op)
        self._maybe_crash(proc, service, op, status_code, path, sent_body)
        start_response(captured.get("status", "500 Internal Server Error"), captured.get("headers", []), captured.get("exc_info"))
        return chunks

    def _maybe_crash(
        self, proc: Any, service: str | None, op: str | None, status: int, path: str, body: bytes | None
    ) -> None:
        """Kill the calling function process (``proc``, None for other callers) if a crash-after
        fault matches this success (``path`` and ``body`` of the request are what a fault's
        ``contains`` is looked for in)."""
        if proc is None or not service or not op or status >= 300 or not self.faults.has_crash_after():
            return
        if self.faults.crash_after_matches(proc.pool.names, service, op, path, body):
            proc.pool._write_log(f"FAULT crash process {proc.id} after {service}:{op} succeeded")
            from .lambda_runtime import _kill

            _kill(proc.popen)
            if proc.popen is not None:
                try:
                    proc.popen.wait(5)
                except Exception:  # noqa: BLE001
                    pass

    def _control(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        command = environ["PATH_INFO"][len("/_local/") :].strip("/")
        raw = _read_body(environ)
        try:
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            status, out = 200, self.control(command, body)
        except KeyError as e:
            status, out = 404, {"error": f"unknown command or missing field: {e}"}
        except (ValueError, TypeError) as e:
            status, out = 400, {"error": str(e)}
        except Exception as e:  # noqa: BLE001
            LOG.exception("control command %s failed", command)
            status, out = 500, {"error": f"{type(e).__name__}: {e}"}
        return _answer(start_response, status, [("Content-Type", "application/json")], json.dumps(out, default=str).encode())


_BODY = "local.body"


def _buffered_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once and kept (several layers look into it); moto then reads it
    from a fresh stream, as ``_read_body`` does not rewind."""
    body = environ.get(_BODY)
    if body is None:
        body = environ[_BODY] = _read_body(environ)
        if environ.get("CONTENT_LENGTH"):
            environ["CONTENT_LENGTH"] = str(len(body))
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _answer(start_response: Callable, status: int, headers: list[tuple[str, str]], out: bytes, head: bool = False) -> list[bytes]:
    """A complete answer; an answer to HEAD has no body (RFC 9110), which werkzeug's server
    would otherwise write."""
    if head:
        out = b""
    start_response(f"{status} {_reason(status)}", headers + [("Content-Length", str(len(out)))])
    return [out]


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        n = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        n = 0
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    if n:
        return stream.read(n)
    if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked" or environ.get("wsgi.input_terminated"):
        return stream.read()
    return b""


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
