"""Command line: ``python -m local up|down|wait|status``.

* ``up`` runs the stack in the foreground (the Makefile backgrounds it), writes
  ``<state-dir>/stack.pid`` at once and ``<state-dir>/stack.json`` when ready; SIGTERM/SIGINT
  stop it cleanly (function processes included) and remove both files.
* ``down`` stops the stack whose pid is in ``stack.pid`` (SIGTERM, then SIGKILL after a grace
  period, then any function process still attached to its Runtime API); exit 0 with a message
  if nothing is running (nothing to stop is what ``down`` wants).
* ``wait`` returns 0 when ``stack.json`` exists and the control endpoint answers; 1 on timeout or
  if the stack process died (printing the tail of its log).
* ``status`` prints ``stack.json`` if the stack runs, else exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

from .stack import Settings, Stack, write_json_atomic


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].split(" ", 1)[0] != "Z"
    except OSError:
        return True


def _read_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / "stack.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _num(value: float) -> str:
    """Template numbers as CloudFormation expects them: 30, not 30.0 (ASL rejects 30.0 seconds)."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _param(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError("expected KEY=VALUE")
    k, v = text.split("=", 1)
    return k, v


def cmd_up(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    pid = _read_pid(state_dir)
    if pid and pid != os.getpid() and _alive(pid):
        print(f"local stack already running (pid {pid}); run `python -m local down --state-dir {state_dir}`", file=sys.stderr)
        return 1
    for name in ("stack.json", "stack.pid", "stack.error"):
        (state_dir / name).unlink(missing_ok=True)
    (state_dir / "stack.pid").write_text(str(os.getpid()))

    params = dict(args.param or [])
    if args.debounce_seconds is not None:
        params["DebounceSeconds"] = _num(args.debounce_seconds)
    if args.poll_seconds is not None:
        params["PollSeconds"] = _num(args.poll_seconds)
    settings = Settings(
        region=args.region,
        distributions=args.distributions,
        bucket=args.bucket,
        in_progress_seconds=args.in_progress_seconds,
        max_concurrency=args.max_concurrency,
        timeout_scale=args.timeout_scale,
        schedules=not args.no_schedules,
        rust_log=args.rust_log,
        parameters=params,
        discover=args.discover,
    )
    stack = Stack(state_dir, settings)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = 0
    try:
        stack.start_server()
        stack.deploy(Path(args.template), Path(args.build_dir))
        info = stack.describe()
        write_json_atomic(state_dir / "stack.json", info)
        print(f"local stack ready: {info['endpoint_url']} (pid {os.getpid()}, {state_dir / 'stack.json'})", flush=True)
        while not stop.wait(1.0):
            pass
    except Exception as e:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        print(f"local stack failed: {e}", file=sys.stderr)
        (state_dir / "stack.error").write_text(f"{type(e).__name__}: {e}\n\n{traceback.format_exc()}")
        code = 1
    finally:
        (state_dir / "stack.json").unlink(missing_ok=True)
        try:
            stack.stop()
        finally:
            if _read_pid(state_dir) == os.getpid():
                (state_dir / "stack.pid").unlink(missing_ok=True)
    return code


def _children_of_runtime(runtime_api: str | None) -> list[int]:
    """Function processes still attached to a stack's Runtime API (from /proc/*/environ)."""
    if not runtime_api:
        return []
    needle = f"AWS_LAMBDA_RUNTIME_API=http://{runtime_api}/".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def cmd_down(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    pid = _read_pid(state_dir)
    runtime_api = None
    try:
        runtime_api = json.loads((state_dir / "stack.json").read_text()).get("runtime_api")
    except (OSError, ValueError):
        pass
    if not pid or not _alive(pid):
        for name in ("stack.json", "stack.pid"):
            (state_dir / name).unlink(missing_ok=True)
        leftovers = _children_of_runtime(runtime_api)
        for child in leftovers:
            os.kill(child, signal.SIGKILL)
        # Nothing to stop is what `down` wants: a second `make down` succeeds too.
        print(f"no local stack running (state dir {state_dir})" + (f"; killed {len(leftovers)} orphan function process(es)" if leftovers else ""), file=sys.stderr)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + args.timeout
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        print(f"stack pid {pid} did not stop in {args.timeout}s: SIGKILL", file=sys.stderr)
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    for child in _children_of_runtime(runtime_api):
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for name in ("stack.json", "stack.pid"):
        (state_dir / name).unlink(missing_ok=True)
    print(f"local stack (pid {pid}) stopped")
    return 0


def _health(control_url: str, timeout: float = 2.0) -> bool:
    req = urllib.request.Request(control_url.rstrip("/") + "/health", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback
            return bool(json.loads(resp.read()).get("ok"))
    except Exception:  # noqa: BLE001
        return False


def cmd_wait(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        pid = _read_pid(state_dir)
        try:
            info = json.loads((state_dir / "stack.json").read_text())
        except (OSError, ValueError):
            info = None
        if info and _health(info["control_url"]):
            print(f"local stack ready: {info['endpoint_url']}")
            return 0
        error = state_dir / "stack.error"
        if error.exists():
            print(f"local stack failed to start:\n{error.read_text(errors='replace')}", file=sys.stderr)
            _print_tail(state_dir / "logs" / "stack.log")
            return 1
        if pid is not None and not _alive(pid):
            print(f"local stack process {pid} died before it was ready", file=sys.stderr)
            _print_tail(state_dir / "logs" / "stack.log")
            return 1
        time.sleep(0.2)
    print(f"local stack not ready after {args.timeout}s (state dir {state_dir})", file=sys.stderr)
    _print_tail(state_dir / "logs" / "stack.log")
    return 1


def _print_tail(path: Path, lines: int = 30) -> None:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return
    print(f"--- last lines of {path} ---", file=sys.stderr)
    for line in text:
        print(line, file=sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    state_dir = Path(args.state_dir)
    pid = _read_pid(state_dir)
    if not pid or not _alive(pid) or not (state_dir / "stack.json").exists():
        print("no local stack running", file=sys.stderr)
        return 1
    print((state_dir / "stack.json").read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the stack in the foreground")
    up.add_argument("--build-dir", default="target/release", help="where the function binaries are")
    up.add_argument("--template", default="template.yaml")
    up.add_argument("--state-dir", default=".local")
    up.add_argument("--debounce-seconds", type=float, default=None, help="template parameter DebounceSeconds")
    up.add_argument("--poll-seconds", type=float, default=None, help="template parameter PollSeconds")
    up.add_argument("--distributions", type=int, default=4, help="CloudFront distributions to create (K)")
    up.add_argument("--bucket", default=None, help="watched bucket name (default: random)")
    up.add_argument("--in-progress-seconds", type=float, default=5.0, help="CloudFront InProgress duration")
    up.add_argument("--max-concurrency", type=int, default=8, help="processes per function")
    up.add_argument(
        "--timeout-scale",
        type=float,
        default=1.0,
        help="multiply every function's timeout (the emulator answers far slower than AWS under load)",
    )
    up.add_argument("--no-schedules", action="store_true", help="do not fire rate() rules")
    up.add_argument(
        "--discover",
        action="store_true",
        help="deploy with Routes empty: every distribution plans from its own configuration",
    )
    up.add_argument("--region", default="us-east-1")
    up.add_argument("--rust-log", default="info", help="RUST_LOG when the function sets none")
    up.add_argument("--param", action="append", type=_param, metavar="KEY=VALUE", help="template parameter override")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop the stack")
    down.add_argument("--state-dir", default=".local")
    down.add_argument("--timeout", type=float, default=60.0)
    down.set_defaults(func=cmd_down)

    wait = sub.add_parser("wait", help="wait until the stack is ready")
    wait.add_argument("--state-dir", default=".local")
    wait.add_argument("--timeout", type=float, default=60.0)
    wait.set_defaults(func=cmd_wait)

    status = sub.add_parser("status", help="print stack.json if running")
    status.add_argument("--state-dir", default=".local")
    status.set_defaults(func=cmd_status)

    args = parser.parse_args(argv)
    return int(args.func(args))
