"""Run Lambda functions as local processes behind a Lambda Runtime API of our own.

Why: moto without Docker only echoes the input of a function. The functions here are Rust
release binaries built on ``lambda_runtime``; they speak the Lambda Runtime API
(``GET /2018-06-01/runtime/invocation/next``, ``POST .../invocation/{id}/response``,
``POST .../invocation/{id}/error``, ``POST .../runtime/init/error``). This module serves that API
on a free 127.0.0.1 port and keeps a pool of processes per function, like Lambda's sandboxes:

* processes start lazily (first invocation) and scale up to ``max_concurrency`` (default 8);
  each handles one invocation at a time;
* each process gets its own base path: ``AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:<port>/<pid>``
  (``lambda_runtime_api_client`` 1.1 keeps the base path of that URI), so the server knows which
  process asks for work, and its own access key id, so the stack can tell which process made an
  AWS call (see :mod:`local.faults`, crash-after);
* a function error is returned like Lambda does (the runtime's ``{"errorType","errorMessage"}``
  body, flagged ``Unhandled``); a process that exits mid-invocation -> ``Runtime.ExitError``
  and the pool replaces it; an invocation longer than the function's ``Timeout`` ->
  ``Sandbox.Timedout`` and the process is killed (Lambda restarts the sandbox too);
* stdout/stderr of every process of a function go to ``<logs>/<LogicalId>.log``, with
  ``START``/``END``/``REPORT``-like lines from the pool between them.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

LOG = logging.getLogger("local.lambda")

_API = "/2018-06-01/runtime"


@dataclass
class InvokeResult:
    payload: bytes
    function_error: str | None = None  # "Unhandled" on error, like Lambda's X-Amz-Function-Error
    error_type: str | None = None


@dataclass
class Invocation:
    payload: bytes
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    trace_id: str = field(default_factory=lambda: f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0")
    done: threading.Event = field(default_factory=threading.Event)
    result: InvokeResult | None = None
    crash: str | None = None  # None | "start" | "end" (see FunctionPool.after_dispatch/complete)
    started: float | None = None
    deadline: float | None = None

    def finish(self, result: InvokeResult) -> bool:
        if self.done.is_set():
            return False
        self.result = result
        self.done.set()
        return True


@dataclass
class Process:
    id: str
    pool: "FunctionPool"
    popen: subprocess.Popen | None = None
    access_key: str = ""
    state: str = "starting"  # starting | idle | busy | dead
    current: Invocation | None = None
    polled: bool = False
    init_error: dict[str, Any] | None = None


def _error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


class FunctionPool:
    """The processes of one function and the queue of its pending invocations."""

    def __init__(
        self,
        *,
        runtime: "RuntimeApi",
        logical_id: str,
        function_name: str,
        function_arn: str,
        command: list[str],
        env: dict[str, str],
        timeout: float,
        memory: int = 128,
        max_concurrency: int = 8,
        log_path: Path,
        should_crash: Callable[[set[str], bytes], str | None] | None = None,
        hold_for: Callable[[set[str], bytes], threading.Event | None] | None = None,
        admit: Callable[[set[str], bytes], Callable[[], None]] | None = None,
        credentials: Callable[[], tuple[str, str, str]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.logical_id = logical_id
        self.function_name = function_name
        self.function_arn = function_arn
        self.command = command
        self.env = env
        self.timeout = float(timeout)
        self.memory = memory
        self.max_concurrency = max_concurrency
        self.log_path = log_path
        # should_crash(names, payload) -> None | "start" | "end"
        self.should_crash = should_crash or (lambda names, payload: None)
        # hold_for(names, payload) -> None | an event to wait for before the invocation is queued
        self.hold_for = hold_for or (lambda names, payload: None)
        # admit(names, payload) -> release, or raises (a throttle fault: Lambda refuses the call)
        self.admit = admit or (lambda names, payload: lambda: None)
        # credentials() -> (key id, secret, session token) of a new session of the function's
        # role, one per process as Lambda gives one per execution environment (local/iam.py).
        self.credentials = credentials
        self.names = {logical_id, function_name, function_arn}
        # Asynchronous invocation config (AWS::Lambda::EventInvokeConfig): retries after a
        # function error, and where the record of an invocation that exhausted them goes.
        self.async_retries = 2
        self.on_failure: Callable[[dict[str, Any]], None] | None = None
        self._cond = threading.Condition()
        self._pending: collections.deque[Invocation] = collections.deque()
        self.processes: dict[str, Process] = {}
        self._stopping = False
        self.invocations = 0
        self.errors = 0
        self.crashes = 0
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(log_path, "ab", buffering=0)  # noqa: SIM115 - lives with the pool

    # ---- public -----------------------------------------------------------------------------
    def invoke(self, payload: bytes, wait_timeout: float | None = None) -> InvokeResult:
        """Run one invocation; blocks until it ends (response, error, crash or timeout)."""
        inv = Invocation(payload=payload or b"{}")
        hold = self.hold_for(self.names, inv.payload)
        if hold is not None:
            self._write_log(f"HOLD RequestId: {inv.id} (lambda_hold fault)")
            hold.wait()
        release = self.admit(self.names, inv.payload)
        try:
            return self._run(inv, wait_timeout)
        finally:
            release()

    def _run(self, inv: "Invocation", wait_timeout: float | None) -> InvokeResult:
        inv.crash = self.should_crash(self.names, inv.payload)
        with self._cond:
            if self._stopping:
                return InvokeResult(_error_body("ServiceException", "local stack is stopping"), "Unhandled", "ServiceException")
            self.invocations += 1
            self._pending.append(inv)
            self._ensure_capacity()
            self._cond.notify_all()
        # Wait for pick-up and completion; the timeout clock starts at pick-up (see _on_timeout).
        if not inv.done.wait(wait_timeout):
            with self._cond:
                if inv in self._pending:
                    self._pending.remove(inv)
            inv.finish(InvokeResult(_error_body("TooManyRequestsException", "no capacity"), "Unhandled", "TooManyRequestsException"))
        assert inv.result is not None
        if inv.result.function_error:
            self.errors += 1
        return inv.result

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {
                "logical_id": self.logical_id,
                "function_name": self.function_name,
                "processes": {p.id: {"pid": p.popen.pid if p.popen else None, "state": p.state} for p in self.processes.values()},
                "pending": len(self._pending),
                "invocations": self.invocations,
                "errors": self.errors,
                "crashes": self.crashes,
            }

    def pids(self) -> list[int]:
        with self._cond:
            return [p.popen.pid for p in self.processes.values() if p.popen and p.popen.poll() is None]

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            procs = list(self.processes.values())
            pending = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for inv in pending:
            inv.finish(InvokeResult(_error_body("ServiceException", "local stack stopped"), "Unhandled", "ServiceException"))
        for p in procs:
            _terminate(p.popen)
        self._log_file.close()

    # ---- process management ---------------------------------------------------------------
    def _ensure_capacity(self) -> None:
        """Spawn processes while pending work exceeds ready + starting processes (under lock)."""
        ready = sum(1 for p in self.processes.values() if p.state in ("idle", "starting"))
        while ready < len(self._pending) and len(self.processes) < self.max_concurrency and not self._stopping:
            self._spawn()
            ready += 1

    def _spawn(self) -> None:
        proc_id = self.runtime.new_process_id()
        env = dict(self.env)
        if self.credentials is not None:
            access_key, secret, token = self.credentials()
            env.update(AWS_SECRET_ACCESS_KEY=secret, AWS_SESSION_TOKEN=token)
        else:
            access_key = "LKIA" + proc_id.upper().replace("-", "")[:16].ljust(16, "X")
        p = Process(id=proc_id, pool=self, access_key=access_key)
        env.update(
            AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{self.runtime.port}/{proc_id}",
            AWS_ACCESS_KEY_ID=access_key,
            AWS_LAMBDA_LOG_STREAM_NAME=f"local/{proc_id}",
        )
        self._write_log(f"INIT_START process {proc_id} ({' '.join(self.command)})")
        # Registered before it starts: a fast binary asks for its first event at once, and an
        # unknown process gets a 404 without a request id, on which lambda_runtime panics.
        self.processes[proc_id] = p
        self.runtime.register(p)
        try:
            p.popen = subprocess.Popen(  # noqa: S603 - our own binaries
                self.command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=self._log_file,
                cwd=str(Path(self.command[0]).parent) if os.path.sep in self.command[0] else None,
                start_new_session=True,
            )
        except OSError as e:
            self.processes.pop(proc_id, None)
            self.runtime.unregister(p)
            self._write_log(f"INIT_FAILED process {proc_id}: {e}")
            # Fail the oldest pending invocation so callers are not stuck forever.
            if self._pending:
                self._pending.popleft().finish(
                    InvokeResult(_error_body("Runtime.InvalidEntrypoint", str(e)), "Unhandled", "Runtime.InvalidEntrypoint")
                )
            return
        threading.Thread(target=self._watch, args=(p,), daemon=True, name=f"watch-{proc_id}").start()

    def _watch(self, p: Process) -> None:
        assert p.popen is not None
        code = p.popen.wait()
        with self._cond:
            p.state = "dead"
            self.processes.pop(p.id, None)
            self.runtime.unregister(p)
            inv = p.current
            how = f"signal: {signal.Signals(-code).name.lower()[3:]}" if code < 0 else f"exit status {code}"
            if inv is not None and not inv.done.is_set():
                self.crashes += 1
                msg = f"RequestId: {inv.id} Error: Runtime exited with error: {how}"
                inv.finish(InvokeResult(_error_body("Runtime.ExitError", msg), "Unhandled", "Runtime.ExitError"))
                self._write_log(f"END RequestId: {inv.id} (process {p.id} exited: {how})")
            elif not p.polled and not self._stopping and self._pending:
                # Died during init: fail one pending invocation rather than loop forever.
                err = p.init_error or {"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited during init: {how}"}
                self._pending.popleft().finish(
                    InvokeResult(json.dumps(err).encode(), "Unhandled", str(err.get("errorType")))
                )
            if not self._stopping:
                self._write_log(f"PROCESS_EXIT {p.id} {how}")
                self._ensure_capacity()
            self._cond.notify_all()

    def _write_log(self, line: str) -> None:
        try:
            self._log_file.write((line + "\n").encode())
        except ValueError:
            pass  # closed at shutdown

    # ---- Runtime API callbacks (HTTP handler threads) -----------------------------------------
    def next_invocation(self, p: Process, poll: float = 1.0) -> Invocation | None:
        with self._cond:
            p.polled = True
            if p.current is not None and not p.current.done.is_set():
                # Asked for more work without answering: Lambda treats it as a failure.
                p.current.finish(InvokeResult(_error_body("Runtime.NoResponse", "the runtime asked for the next event without answering"), "Unhandled", "Runtime.NoResponse"))
            p.current = None
            p.state = "idle"
            self._cond.notify_all()
            while not self._pending:
                if self._stopping or p.state == "dead" or (p.popen and p.popen.poll() is not None):
                    return None
                self._cond.wait(poll)
            inv = self._pending.popleft()
            p.state = "busy"
            p.current = inv
            inv.started = time.time()
            inv.deadline = inv.started + self.timeout
        timer = threading.Timer(self.timeout, self._on_timeout, args=(p, inv))
        timer.daemon = True
        timer.start()
        self._write_log(f"START RequestId: {inv.id} Version: $LATEST")
        return inv

    def crash_now(self, p: Process, inv: Invocation, when: str) -> None:
        """Apply an armed crash fault: kill the process while it holds the invocation."""
        self._write_log(f"FAULT crash process {p.id} at the {when} of RequestId: {inv.id}")
        _kill(p.popen)
        if p.popen is not None:
            p.popen.wait()

    def complete(self, p: Process, request_id: str, body: bytes, error: bool) -> bool:
        inv = p.current
        if inv is not None and inv.id == request_id and inv.crash == "end":
            # Crash after the work was done, before the answer is delivered.
            self.crash_now(p, inv, "end")
            return False
        with self._cond:
            inv = p.current
            if inv is None or inv.id != request_id:
                return False
            if error:
                try:
                    parsed = json.loads(body or b"{}")
                    etype = str(parsed.get("errorType") or "Unhandled")
                except (ValueError, AttributeError):
                    etype, body = "Unhandled", _error_body("Unhandled", body.decode(errors="replace"))
                result = InvokeResult(body, "Unhandled", etype)
            else:
                result = InvokeResult(body)
            took = (time.time() - (inv.started or time.time())) * 1000
            ok = inv.finish(result)
            self._write_log(f"END RequestId: {inv.id}")
            self._write_log(
                f"REPORT RequestId: {inv.id} Duration: {took:.2f} ms"
                + (f" Error: {result.error_type}" if error else "")
            )
            return ok

    def _on_timeout(self, p: Process, inv: Invocation) -> None:
        if inv.done.is_set():
            return
        msg = f"RequestId: {inv.id} Error: Task timed out after {self.timeout:.2f} seconds"
        if inv.finish(InvokeResult(_error_body("Sandbox.Timedout", msg), "Unhandled", "Sandbox.Timedout")):
            self._write_log(f"END RequestId: {inv.id}\nREPORT RequestId: {inv.id} Status: timeout")
            if p.popen is not None:
                _kill(p.popen)


def _kill(popen: subprocess.Popen | None) -> None:
    if popen is None or popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            popen.kill()
        except ProcessLookupError:
            pass


def _terminate(popen: subprocess.Popen | None, grace: float = 2.0) -> None:
    if popen is None or popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        popen.terminate()
    try:
        popen.wait(grace)
    except subprocess.TimeoutExpired:
        _kill(popen)
        try:
            popen.wait(grace)
        except subprocess.TimeoutExpired:
            pass


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        LOG.debug("runtime-api: " + format, *args)

    def _reply(self, status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _route(self) -> tuple[Process | None, str]:
        parts = self.path.split("?", 1)[0].lstrip("/").split("/", 1)
        proc = self.server.api.lookup(parts[0])
        rest = "/" + parts[1] if len(parts) > 1 else "/"
        return proc, rest

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self) -> None:  # noqa: N802
        proc, rest = self._route()
        if proc is None:
            return self._reply(404, _error_body("UnknownProcess", self.path))
        if rest != f"{_API}/invocation/next":
            return self._reply(404, _error_body("NotFound", rest))
        inv = proc.pool.next_invocation(proc)
        if inv is None:
            return self._reply(500, _error_body("ServiceException", "stopping"))
        if inv.crash == "start":
            # The process dies as it takes the event: nothing of the invocation ran.
            proc.pool.crash_now(proc, inv, "start")
            return
        headers = {
            "Lambda-Runtime-Aws-Request-Id": inv.id,
            "Lambda-Runtime-Deadline-Ms": str(int((inv.deadline or time.time()) * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": proc.pool.function_arn,
            "Lambda-Runtime-Trace-Id": inv.trace_id,
        }
        self._reply(200, inv.payload, headers)

    def do_POST(self) -> None:  # noqa: N802
        proc, rest = self._route()
        body = self._body()
        if proc is None:
            return self._reply(404, _error_body("UnknownProcess", self.path))
        if rest == f"{_API}/init/error":
            try:
                proc.init_error = json.loads(body or b"{}")
            except ValueError:
                proc.init_error = {"errorType": "Runtime.InitError", "errorMessage": body.decode(errors="replace")}
            proc.pool._write_log(f"INIT_ERROR process {proc.id}: {body.decode(errors='replace')}")
            return self._reply(202, b'{"status":"OK"}')
        prefix = f"{_API}/invocation/"
        if rest.startswith(prefix):
            request_id, _, kind = rest[len(prefix) :].partition("/")
            if kind in ("response", "error"):
                proc.pool.complete(proc, request_id, body, error=(kind == "error"))
                return self._reply(202, b'{"status":"OK"}')
        return self._reply(404, _error_body("NotFound", rest))


# The listen backlog of the stack's servers (this one and moto's). A busy stack opens
# connections faster than one accept thread, sharing the GIL with thousands of execution
# threads, accepts them: with a backlog of 128 (werkzeug's) the kernel dropped connection
# attempts by the thousand during `make e2e` (ListenOverflows in /proc/net/netstat), and a caller
# whose retransmitted SYNs were dropped too lost its request: a Rust SDK connect timeout, or a
# Step Functions task's lost connection. The kernel caps it at net.core.somaxconn (4096 by
# default since Linux 5.4).
LISTEN_BACKLOG = 4096


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG
    api: "RuntimeApi"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A killed process leaves broken connections behind: expected, not worth a traceback.
        LOG.debug("runtime-api connection error from %s", client_address, exc_info=True)


class RuntimeApi:
    """The Runtime API server shared by every function pool."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._server = _Server((host, 0), _Handler)
        self._server.api = self
        self.port = self._server.server_address[1]
        self._procs: dict[str, Process] = {}
        self._by_key: dict[str, Process] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.pools: dict[str, FunctionPool] = {}
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="runtime-api")
        self._thread.start()

    def new_process_id(self) -> str:
        return f"p{next(self._ids):04d}{uuid.uuid4().hex[:8]}"

    def register(self, p: Process) -> None:
        with self._lock:
            self._procs[p.id] = p
            self._by_key[p.access_key] = p

    def unregister(self, p: Process) -> None:
        with self._lock:
            self._procs.pop(p.id, None)
            self._by_key.pop(p.access_key, None)

    def lookup(self, proc_id: str) -> Process | None:
        with self._lock:
            return self._procs.get(proc_id)

    def process_by_access_key(self, key: str) -> Process | None:
        with self._lock:
            return self._by_key.get(key)

    def add_pool(self, pool: FunctionPool) -> None:
        self.pools[pool.function_name] = pool

    def pool_for(self, name_or_arn: str) -> FunctionPool | None:
        if name_or_arn in self.pools:
            return self.pools[name_or_arn]
        for pool in self.pools.values():
            if name_or_arn in pool.names:
                return pool
        # arn:aws:lambda:region:acct:function:name[:qualifier]
        if name_or_arn.startswith("arn:") and ":function:" in name_or_arn:
            name = name_or_arn.split(":function:", 1)[1].split(":", 1)[0]
            return self.pools.get(name)
        return None

    def pids(self) -> list[int]:
        return [pid for pool in self.pools.values() for pid in pool.pids()]

    def stop(self) -> None:
        for pool in list(self.pools.values()):
            pool.stop()
        self._server.shutdown()
        self._server.server_close()
