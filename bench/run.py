"""``python -m bench``: the whole benchmark in one run (what ``make bench`` runs).

1. criterion (mapping and planner throughput) and the release binaries' sizes;
2. a local stack with 4 distributions in a private state dir: cold starts of every function and
   of the Python baseline (distribution 3), then the burst (ours on 0, the baseline live on 1,
   the baseline replayed at the issue's burst rate on 2), then the stack is stopped;
3. collapse off: the real planner on the burst's own paths (or, with ``--collapse-off-writes``,
   a second stack run with ``CollapseThreshold=0``);
4. the cost model, the targets, ``bench/results/latest.json``, the chart, the printed report.

``--check`` (CI, on a small run): exit 1 when a deterministic target is missed (counts per
distribution and per event, paths lost, binary sizes, peak RSS, every cold start answered);
timings stay report-only. Its results go under the state dir, not ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import boto3

from . import coldstart, cost, report, rust
from .burst import Burst, Workload
from .common import BenchError, Item
from .stack import LocalStack

ROOT = Path(__file__).resolve().parent.parent


def debounce_for(events: int, assumed_rate: float, margin: float = 15.0) -> int:
    """A debounce long enough for the whole burst to land in one batch at ``assumed_rate``
    events per second (the emulator's pace on a busy 2-core machine), plus a margin."""
    return int(math.ceil(events / assumed_rate + margin))


def per_event(burst: Item) -> Item:
    """Per-event and per-batch overhead of cf-invalidator from the burst's histories and counts."""
    ours = burst["ours"]
    events = burst["workload"]["events"]
    ingest = ours["histories"]["ingest_executions"] or [{"events": 1, "transitions": 0, "lambda_invocations": 0}]
    batches = ours["histories"]["per_batch"] or [{"transitions": 0, "lambda_invocations": 0}]
    ddb = ours["dynamodb_requests_by_function"]
    dedupe = ddb.get("DedupeFunction", {"writes": 0, "reads": 0})
    batch_fns = ("CreateInvalidationFunction", "PollStatusFunction", "RecordOutcomeFunction")
    n_batches = max(1, len(ours["batches"]))
    inv = ours["lambda_invocations_by_function"]
    return {
        "ingest_executions": len(ingest),
        "events_per_ingest_execution": statistics.median(h["events"] for h in ingest),
        "transitions_per_event": sum(h["transitions"] for h in ingest) / events,
        "transitions_per_ingest_execution_max": max(h["transitions"] for h in ingest),
        "lambda_invocations_per_event": sum(h["lambda_invocations"] for h in ingest) / events,
        "lambda_invocations_per_event_all": (inv.get("CollectKeysFunction", 0) + inv.get("DedupeFunction", 0)) / events,
        "dynamodb_writes_per_event": dedupe["writes"] / events,
        "dynamodb_reads_per_event": dedupe["reads"] / events,
        "batch_transitions": statistics.median(b["transitions"] for b in batches),
        "batch_lambda_invocations": statistics.median(b["lambda_invocations"] for b in batches) + inv.get("RecordOutcomeFunction", 0) / n_batches,
        "batch_dynamodb_writes": sum(ddb.get(f, {}).get("writes", 0) for f in batch_fns) / n_batches,
        "batch_dynamodb_reads": sum(ddb.get(f, {}).get("reads", 0) for f in batch_fns) / n_batches,
        "dynamodb_writes_counted": "requests received by the local stack, per calling function (control API aws/requests)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=5000, help="new objects in the burst (default 5000, the issue's)")
    parser.add_argument("--overwrites", type=int, default=None, help="overwrites after them (default writes/10)")
    parser.add_argument("--directories", type=int, default=50)
    parser.add_argument("--assumed-rate", type=float, default=12.0,
                        help="events/s the emulator is assumed to take at worst; sizes the debounce (default 12: 13-18/s "
                             "measured on 2 cores, the low end under other load)")
    parser.add_argument("--debounce-seconds", type=float, default=None, help="override the debounce sizing")
    parser.add_argument("--poll-seconds", type=float, default=None,
                        help="PollSeconds (default: the InProgress time + 1, so a batch needs one poll, like the deployed 60 s)")
    parser.add_argument("--in-progress-seconds", type=float, default=15.0, help="CloudFront InProgress time of the model")
    parser.add_argument("--max-in-flight", type=int, default=0,
                        help="pace the writers: events written but not yet through a dedupe invocation, at most (0: "
                             "unpaced; the ingest queue takes the burst, and a dedupe invocation now joins a whole batch)")
    parser.add_argument("--replay-seconds", type=float, default=10.0, help="replay the baseline's events within this time (0: no replay)")
    parser.add_argument("--cold-repeats", type=int, default=10)
    parser.add_argument("--criterion-seconds", type=float, default=2.0, help="criterion measurement time per benchmark (0: skip)")
    parser.add_argument("--collapse-off-writes", type=int, default=0,
                        help="also run a second stack with CollapseThreshold=0 and this many writes (0: the planner alone)")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "target" / "release")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local" / "bench")
    parser.add_argument("--out", type=Path, default=None,
                        help="where latest.json and burst.png go (default bench/results/; with --check <state dir>/results/)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a deterministic target is missed (timings stay report-only); for CI on a small run")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the systems to settle")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BenchError as e:
        print(f"\nFAILED: {e}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    t_start = time.monotonic()
    load_start = os.getloadavg()[0]
    overwrites = args.writes // 10 if args.overwrites is None else args.overwrites
    workload = Workload(args.writes, overwrites, args.directories, prefix="d0/")
    debounce = args.debounce_seconds or debounce_for(workload.events, args.assumed_rate)
    build_dir = args.build_dir.resolve()
    args.poll_seconds = args.poll_seconds or args.in_progress_seconds + 1

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t_start:6.1f} s] {msg}", flush=True)

    sizes = rust.binary_sizes(build_dir)
    crit: Item = {}
    if args.criterion_seconds > 0:
        log(f"criterion: collect and plan ({args.criterion_seconds:g} s per benchmark) ...")
        crit = rust.run_criterion(args.criterion_seconds)

    # A batch whose Submit the burst holds (bench/burst.py) must not go stale meanwhile.
    grace = {"GraceSeconds": f"{args.timeout:.0f}"}
    log(f"starting a local stack in {args.state_dir} (DebounceSeconds={debounce}, 4 distributions) ...")
    with LocalStack(args.state_dir, build_dir, ROOT / "template.yaml", debounce_seconds=debounce, poll_seconds=args.poll_seconds,
                    distributions=4, in_progress_seconds=args.in_progress_seconds, params=grace) as info:
        collapse_threshold = int(info["settings"]["parameters"].get("CollapseThreshold", 10))
        lam = boto3.client("lambda", endpoint_url=info["endpoint_url"], region_name=info["region"],
                           aws_access_key_id="bench", aws_secret_access_key="bench")
        log(f"cold starts: every function and the Python baseline, {args.cold_repeats} rounds ...")
        cold = coldstart.measure(coldstart.stack_probes(info, lam, build_dir, distribution_index=3), args.cold_repeats,
                                 info["control_url"])
        log("burst ...")
        burst = Burst(info, workload, max_in_flight=args.max_in_flight, replay_seconds=args.replay_seconds or None,
                      timeout=args.timeout, log=log).run()
    log("stack stopped")

    paths = sorted({"/" + k for k in workload.sequence()})
    collapse_off: Item = {**rust.plan_paths(paths, 0), "mode": "planner alone, on the burst's paths"}
    collapse_on_check = rust.plan_paths(paths, collapse_threshold)
    if args.collapse_off_writes:
        off_workload = Workload(args.collapse_off_writes, args.collapse_off_writes // 10, args.directories, prefix="d0/")
        off_debounce = debounce_for(off_workload.events, args.assumed_rate)
        log(f"collapse off: a second stack with CollapseThreshold=0, {off_workload.events} events ...")
        with LocalStack(args.state_dir, build_dir, ROOT / "template.yaml", debounce_seconds=off_debounce, poll_seconds=args.poll_seconds,
                        distributions=4, in_progress_seconds=args.in_progress_seconds, params={**grace, "CollapseThreshold": "0"}) as info:
            off = Burst(info, off_workload, max_in_flight=args.max_in_flight, replay_seconds=None, timeout=args.timeout, log=log).run()
        o = off["ours"]
        collapse_off = {"mode": f"stack run, {off_workload.events} events", "requests": o["create_invalidation_calls"],
                        "billedPaths": o["billed_paths"], "paths_lost": o["paths_lost"], "rejected": o["rejected_calls"],
                        "time": f"{o['last_write_to_all_completed_s']:.0f} s", "outcomes": o["outcomes"]}

    burst["timeline"] = report.compact_timeline(burst)
    out = (args.out or (args.state_dir / "results" if args.check else ROOT / "bench" / "results")).resolve()
    results: Item = {
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "make bench" + (f" BENCH_WRITES={args.writes}" if args.writes != 5000 else "") + (" BENCH_ARGS=--check" if args.check else ""),
        "machine": {"cpus": os.cpu_count(), "load_start": load_start, "load_end": os.getloadavg()[0]},
        "settings": {"debounce_seconds": debounce, "poll_seconds": args.poll_seconds, "in_progress_seconds": args.in_progress_seconds,
                     "collapse_threshold": collapse_threshold, "max_in_flight": args.max_in_flight, "replay_seconds": args.replay_seconds,
                     "assumed_rate": args.assumed_rate, "max_concurrency": 8, "cold_repeats": args.cold_repeats, "cold_warmup_rounds": 1,
                     "criterion_seconds": args.criterion_seconds},
        "burst": burst,
        "collapse_off": collapse_off,
        "collapse_on_planner_check": collapse_on_check,
        "per_event": per_event(burst),
        "functions": {"sizes": sizes, "cold": cold},
        "criterion": crit,
        "outputs": {"json": os.path.relpath(out / "latest.json", ROOT), "chart": os.path.relpath(out / "burst.png", ROOT)},
    }
    results["cost"] = cost.cost_table(burst)
    results["targets"] = report.targets(results)
    results["duration_s"] = time.monotonic() - t_start
    out.mkdir(parents=True, exist_ok=True)
    report.chart(results, out / "burst.png")
    results["duration_s"] = time.monotonic() - t_start
    (out / "latest.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    report.print_report(results)
    if args.check:
        missed = report.missed_checks(results)
        for t in missed:
            print(f"CHECK FAILED: {t['metric']}: {t['measured']} (target {t['target']})", file=sys.stderr)
        print(f"--check: {'FAILED' if missed else 'ok'}, {sum(t['checked'] for t in results['targets']) - len(missed)} of "
              f"{sum(t['checked'] for t in results['targets'])} checked targets met", flush=True)
        return 1 if missed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
