"""The Rust side: criterion benchmarks, the planner on the burst's own paths, binary sizes.

Why through cargo and not a Python stand-in: the numbers must be the real code's. Criterion runs
with a short measurement time (``make bench`` has a 10-minute budget); its estimates are read
from ``target/criterion/<group>/<id>/new/estimates.json``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .common import BenchError, Item

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("collect-keys", "dedupe", "create-invalidation", "poll-status", "record-outcome", "sweep")
# criterion id -> (what it measures, elements per iteration)
CRITERION = {
    "collect/keys/1000": ("keys mapped (collect, 1 key per S3 event)", 1_000),
    "plan/collapse/100000": ("paths planned, collapse on (threshold 10)", 100_000),
    "plan/exact/100000": ("paths planned, collapse off", 100_000),
}


def run_criterion(seconds: float) -> dict[str, Item]:
    """``cargo bench -p cfinv-bench`` with ``seconds`` of measurement per benchmark; per id the
    median time per iteration (ns) with criterion's 95% interval, and elements per second."""
    cmd = ["cargo", "bench", "--locked", "-p", "cfinv-bench", "--bench", "mapping", "--",
           "--warm-up-time", "1", "--measurement-time", f"{seconds:g}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"cargo bench failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Item] = {}
    for bench_id, (what, elements) in CRITERION.items():
        est = json.loads((ROOT / "target" / "criterion" / bench_id / "new" / "estimates.json").read_text())
        med = est["median"]
        ns, lo, hi = med["point_estimate"], med["confidence_interval"]["lower_bound"], med["confidence_interval"]["upper_bound"]
        out[bench_id] = {
            "what": what,
            "elements": elements,
            "median_ns": ns,
            "ci95_ns": [lo, hi],
            "per_second": elements / (ns / 1e9),
            "per_second_ci95": [elements / (hi / 1e9), elements / (lo / 1e9)],
        }
    return out


def plan_paths(paths: list[str], collapse_threshold: int) -> Item:
    """The real planner (``target/release/plan``) on ``paths`` with the template's limits."""
    binary = ROOT / "target" / "release" / "plan"
    if not binary.exists():
        raise BenchError(f"{binary} is missing: cargo build --release -p cfinv-bench --bin plan")
    proc = subprocess.run([str(binary)], input=json.dumps({"paths": paths, "collapseThreshold": collapse_threshold}),
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"plan failed: {proc.stderr[-1000:]}")
    return json.loads(proc.stdout)


def binary_sizes(build_dir: Path) -> dict[str, int]:
    """Bytes of each function's release binary (the release profile strips symbols)."""
    sizes = {}
    for name in FUNCTIONS:
        path = build_dir / name
        if not path.exists():
            raise BenchError(f"{path} is missing: run make build")
        sizes[name] = path.stat().st_size
    return sizes
