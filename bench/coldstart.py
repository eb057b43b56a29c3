"""Cold start of each function: a fresh process, a Runtime API of our own, one event.

Why not the stack's own Lambda pool: it starts processes lazily and concurrently, so the time
of a first invocation there includes queueing in the emulator. Here each measurement is one
process started alone: ``spawn -> GET /invocation/next`` (init) and ``spawn -> POST
/invocation/<id>/response|error`` (first answer), and its peak RSS (``VmHWM`` from
``/proc/<pid>/status``, read while the process waits for the answer to its POST, i.e. after
all its work). The AWS calls the functions make go to the running local stack
(``AWS_ENDPOINT_URL``), so every number includes one round of real work, not just ``main``.

Fairness: our functions make several DynamoDB calls to moto (a Python process that takes
milliseconds per call), the baseline one CreateInvalidation to the stack's fast CloudFront
model, so the raw first response mostly measures the emulator. Both sides' calls go to the same
stack, and every run signs with an access key of its own, so the stack's ``aws/service-time``
gives the time it spent on that process's requests (server-side, from the connection's accept
to the complete answer: ``local/service_time.py``); *own time* = first response - that
emulator time, for ours and the baseline alike. What stays in own time: the process itself
(start, SDK set-up, signing, the HTTP client, one new connection per call, as the emulator
answers ``Connection: close``) and the kernel's loopback and the answer's write, so own time
is, if anything, slightly overstated.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import boto3

from .common import BenchError, Item, control, spread

API = "/2018-06-01/runtime"
HERE = Path(__file__).resolve().parent


@dataclass
class Probe:
    """What one function is started with: its command, its environment, its first event."""

    name: str
    command: list[str]
    env: dict[str, str]
    event: Any
    what: str  # what the first event makes the function do, for the report
    # a new first event for each run, when the same one would do something else the second time
    # (a batch closed by the first run is "already closed" for the next)
    fresh_event: Callable[[], Any] | None = None


@dataclass
class _Run:
    """The state of one measurement, shared with the Runtime API handler threads."""

    event: bytes
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    pid: int = 0
    t0: float = 0.0
    t_next: float | None = None
    t_done: float | None = None
    outcome: str | None = None
    body: bytes = b""
    hwm_kb: int | None = None
    done: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    served: bool = False


def _status_kb(pid: int, field_name: str) -> int | None:
    """A ``kB`` field of ``/proc/<pid>/status`` (VmHWM: peak resident set size)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _handler(run: _Run) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if not self.path.endswith("/invocation/next"):
                return self._answer(404)
            if run.served:  # the second "next": hold it until the process is stopped
                run.release.wait(60)
                return self._answer(503)
            run.served = True
            run.t_next = time.perf_counter()
            self._answer(200, run.event, {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": run.request_id,
                "Lambda-Runtime-Deadline-Ms": str(int((time.time() + 30) * 1000)),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:cold",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            })

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = self.path.rsplit("/", 1)[-1]  # response | error (init/error: "error" too)
            if run.t_done is None:
                run.t_done = time.perf_counter()
                run.hwm_kb = _status_kb(run.pid, "VmHWM")  # the process waits for this answer
                run.outcome = "init-error" if "/init/" in self.path else kind
                run.body = body
                run.done.set()
            self._answer(202, b"{}", {"Content-Type": "application/json"})

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: the process is killed while its next ``GET /next`` is held open."""


def measure_once(probe: Probe, control_url: str, timeout: float = 30.0) -> Item:
    """Starts ``probe`` once as a fresh process; returns init/first-answer times, peak RSS, and the
    AWS requests it made with the stack's service time for them."""
    event = probe.fresh_event() if probe.fresh_event else probe.event
    run = _Run(event=json.dumps(event).encode())
    server = _Server(("127.0.0.1", 0), _handler(run))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    access_key = f"cold-{probe.name}-{uuid.uuid4().hex[:12]}"  # this run's requests, and no other's
    env = {**probe.env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_port}", "AWS_ACCESS_KEY_ID": access_key}
    proc: subprocess.Popen[bytes] | None = None
    try:
        run.t0 = time.perf_counter()
        proc = subprocess.Popen(probe.command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        run.pid = proc.pid
        while not run.done.wait(0.05):
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace")[-600:] if proc.stderr else ""
                raise BenchError(f"{probe.name} exited ({proc.returncode}) before answering: {err}")
            if time.perf_counter() - run.t0 > timeout:
                raise BenchError(f"{probe.name} did not answer its first event within {timeout:.0f} s")
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        if proc is not None and proc.stderr:
            proc.stderr.close()
        run.release.set()
        server.shutdown()
        server.server_close()
    assert run.t_done is not None
    try:
        answer = json.loads(run.body or b"null")
    except ValueError:
        answer = run.body.decode(errors="replace")
    # Complete: the stack records a request before its answer is sent, and the process answered
    # its event only after reading every answer.
    served = control(control_url, "aws/service-time", {"access_key": access_key})
    first_ms = (run.t_done - run.t0) * 1000
    emulator_ms = served["seconds"] * 1000
    return {
        "init_ms": (run.t_next - run.t0) * 1000 if run.t_next else None,
        "first_response_ms": first_ms,
        "emulator_ms": emulator_ms,
        "own_ms": first_ms - emulator_ms,
        "aws_requests": served["requests"],
        "operations": {f"{o['service']}:{o['operation']}": o["count"] for o in served["operations"]},
        "peak_rss_mb": run.hwm_kb / 1024 if run.hwm_kb else None,
        "outcome": run.outcome,
        "error_type": answer.get("errorType") if isinstance(answer, dict) and run.outcome != "response" else None,
    }


def measure(probes: list[Probe], repeats: int, control_url: str, warmup: int = 1) -> dict[str, Item]:
    """``warmup`` unmeasured rounds (the binaries in the page cache, the emulator's lazy imports
    and first-call work done, dedupe's batch opened, so every measured run does the same work),
    then ``repeats`` rounds over every probe (interleaved, so a load spike hits all alike); per
    probe the median and range of each figure, the requests made and the outcomes."""
    for _ in range(warmup):
        for probe in probes:
            measure_once(probe, control_url)
    runs: dict[str, list[Item]] = {p.name: [] for p in probes}
    for _ in range(repeats):
        for probe in probes:
            runs[probe.name].append(measure_once(probe, control_url))
    out: dict[str, Item] = {}
    for probe in probes:
        rs = runs[probe.name]
        out[probe.name] = {
            "what": probe.what,
            "init_ms": spread(r["init_ms"] for r in rs if r["init_ms"] is not None),
            "first_response_ms": spread(r["first_response_ms"] for r in rs),
            "emulator_ms": spread(r["emulator_ms"] for r in rs),
            "own_ms": spread(r["own_ms"] for r in rs),
            "aws_requests": spread(r["aws_requests"] for r in rs),
            "operations": sorted({json.dumps(r["operations"], sort_keys=True) for r in rs}),
            "peak_rss_mb": spread(r["peak_rss_mb"] for r in rs if r["peak_rss_mb"] is not None),
            "outcomes": sorted({f"{r['outcome']}{':' + r['error_type'] if r['error_type'] else ''}" for r in rs}),
        }
    return out


def lambda_env(name: str, endpoint_url: str, region: str, function_env: dict[str, str]) -> dict[str, str]:
    """The environment Lambda gives a 128 MB function, pointed at the local stack."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "cold-start",
        "AWS_SECRET_ACCESS_KEY": "cold-start",
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "cold-start",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "RUST_LOG": "info",
        **{k: str(v) for k, v in function_env.items()},
    }


def baseline_command() -> list[str]:
    """The Python baseline behind its Runtime API loop, with this interpreter (it has boto3)."""
    return [sys.executable, str(HERE / "baseline" / "bootstrap.py")]


def stack_probes(info: Item, lambda_client: Any, build_dir: Path, distribution_index: int) -> list[Probe]:
    """One probe per function (the stack's own environment for it, AWS calls to the stack) and
    the Python baseline, all on distribution ``distribution_index`` (keys under ``d<i>/``)."""
    dist = info["distribution_ids"][distribution_index]
    key = f"d{distribution_index}/cold/index.html"
    bucket = info["bucket"]
    region, endpoint = info["region"], info["endpoint_url"]
    s3_event = {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
        "account": info["account"], "time": "2025-01-01T00:00:00Z", "region": region, "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {"version": "0", "bucket": {"name": bucket},
                   "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184", "sequencer": "0066A1B2C3D4E5FFFF"},
                   "request-id": "COLDSTART", "requester": info["account"], "source-ip-address": "127.0.0.1", "reason": "PutObject"},
    }
    collected = control(info["control_url"], "lambda/invoke", {"function": "CollectKeysFunction", "payload": s3_event})
    if collected.get("function_error") or not collected["payload"].get("paths"):
        raise BenchError(f"collect-keys found no path for {key}: {collected}")
    machines = info["state_machines"]
    n_paths = len(collected["payload"]["paths"])

    table = boto3.resource("dynamodb", endpoint_url=endpoint, region_name=region, aws_access_key_id="bench",
                           aws_secret_access_key="bench").Table(info["table"])
    submitted: list[str] = []  # the batches create-invalidation's runs closed and submitted

    def submit_event() -> Item:
        """The batch this round's dedupe run joined (or opened): the distribution's open-batch
        pointer (``functions/core/src/model.rs``, ``keys``). An empty batch would end
        EMPTY and never reach poll-status, so the batch must hold the run's path."""
        pointer = table.get_item(Key={"PK": f"DIST#{dist}", "SK": "OPEN"}, ConsistentRead=True).get("Item")
        if not pointer:
            raise BenchError(f"dedupe's run left no open batch for {dist}")
        batch_id = str(pointer["batchId"])
        submitted.append(batch_id)
        execution = machines["InvalidateBatchStateMachine"].replace(":stateMachine:", ":execution:") + ":" + batch_id
        return {"batchId": batch_id, "distributionId": dist, "executionArn": execution}

    def poll_event() -> Item:
        """The batch create-invalidation's run of this round submitted (probes run in order)."""
        return {"batchId": submitted[-1], "distributionId": dist, "redriveCount": 0}

    fresh: dict[str, Callable[[], Item]] = {"CreateInvalidationFunction": submit_event, "PollStatusFunction": poll_event}
    events: dict[str, tuple[Any, str]] = {
        "CollectKeysFunction": (s3_event, "maps one S3 event (no AWS call)"),
        "DedupeFunction": ({"paths": collected["payload"]["paths"]},
                           f"opens a batch for {n_paths} path(s) (the previous round's create-invalidation closed the last one)"),
        "CreateInvalidationFunction": (None, f"closes the batch dedupe's run opened, plans {n_paths} path(s), one CreateInvalidation"),
        "PollStatusFunction": (None, "the batch create-invalidation's run just submitted: one GetInvalidation"),
        "RecordOutcomeFunction": ({"version": "0", "id": str(uuid.uuid4()), "detail-type": "Step Functions Execution Status Change",
                                   "source": "aws.states", "time": "2025-01-01T00:00:00Z",
                                   "detail": {"executionArn": machines["ObjectChangedStateMachine"].replace(":stateMachine:", ":execution:") + ":cold",
                                              "stateMachineArn": machines["ObjectChangedStateMachine"], "name": "cold", "status": "FAILED",
                                              "startDate": 1735689600000, "stopDate": 1735689601000, "input": json.dumps(s3_event),
                                              "error": "Probe", "cause": "cold-start probe"}},
                                  "records a failed event: one DynamoDB write"),
        "SweepFunction": ({"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                           "account": info["account"], "time": "2025-01-01T00:00:00Z", "region": region, "resources": [], "detail": {}},
                          "looks for stale open batches: one DynamoDB query"),
    }
    probes = []
    for logical_id, (event, what) in events.items():
        name = info["functions"][logical_id]
        conf = lambda_client.get_function_configuration(FunctionName=name)
        binary = Path(info["function_details"][logical_id]["binary"]).name
        env = lambda_env(name, endpoint, region, (conf.get("Environment") or {}).get("Variables") or {})
        probes.append(Probe(binary, [str(build_dir / binary)], env, event, what, fresh.get(logical_id)))
    baseline_event = {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region, "eventTime": "2025-01-01T00:00:00.000Z",
        "eventName": "ObjectCreated:Put", "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                                                 "object": {"key": key, "size": 5, "sequencer": "0066A1B2C3D4E5FFFF"}}}]}
    env = lambda_env("baseline", endpoint, region, {"DISTRIBUTION_ID": dist})
    probes.append(Probe("python-baseline", baseline_command(), env, baseline_event, "imports boto3, one CreateInvalidation"))
    return probes
