"""A local stack for the benchmark: started in a private state dir, always stopped.

Why not ``make up``: the benchmark must not touch a stack the developer may be running in
``.local``, and must stop its own stack however it ends (an error, Ctrl-C, SIGTERM from make).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from .common import BenchError, Item, control, wait_until

ROOT = Path(__file__).resolve().parent.parent


class LocalStack:
    """``with LocalStack(...) as info:`` runs ``python -m local up`` in the background and yields
    its ``stack.json``; on exit runs ``python -m local down`` (which also kills the function
    processes), then kills the ``up`` process itself if it is somehow still there."""

    def __init__(self, state_dir: Path, build_dir: Path, template: Path, *, debounce_seconds: float,
                 poll_seconds: float, distributions: int, in_progress_seconds: float,
                 params: dict[str, str] | None = None, ready_timeout: float = 180.0) -> None:
        self.state_dir = state_dir
        self.args = [
            sys.executable, "-m", "local", "up", "--build-dir", str(build_dir), "--template", str(template),
            "--state-dir", str(state_dir), "--debounce-seconds", f"{debounce_seconds:g}", "--poll-seconds", f"{poll_seconds:g}",
            "--distributions", str(distributions), "--in-progress-seconds", f"{in_progress_seconds:g}", "--no-schedules",
            *[a for k, v in (params or {}).items() for a in ("--param", f"{k}={v}")],
        ]
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._old_term: Any = None

    def __enter__(self) -> Item:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "stack.json").unlink(missing_ok=True)
        # make sends SIGTERM on interruption: turn it into an exception so __exit__ runs
        self._old_term = signal.signal(signal.SIGTERM, _raise_on_term)
        log = open(self.state_dir / "up.log", "wb")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            wait_until(self._ready, self.ready_timeout, "the local stack to be ready")
            return json.loads((self.state_dir / "stack.json").read_text())
        except BaseException:
            self._stop()
            raise

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None or (self.state_dir / "stack.error").exists():
            tail = (self.state_dir / "up.log").read_text(errors="replace")[-2000:]
            raise BenchError(f"the local stack failed to start (exit {self.proc.poll()}):\n{tail}")
        path = self.state_dir / "stack.json"
        if not path.exists():
            return False
        try:
            return bool(control(json.loads(path.read_text())["control_url"], "health", timeout=5)["ready"])
        except (OSError, ValueError, KeyError):
            return False

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop()

    def _stop(self) -> None:
        try:
            if self.proc is not None and self.proc.poll() is None:
                subprocess.run([sys.executable, "-m", "local", "down", "--state-dir", str(self.state_dir)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False)
                try:
                    self.proc.wait(20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
        finally:
            if self._old_term is not None:
                signal.signal(signal.SIGTERM, self._old_term)
                self._old_term = None


def _raise_on_term(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")

