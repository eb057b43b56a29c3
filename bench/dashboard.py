"""Draws the CloudWatch dashboard's panels (template.yaml, resource ``Dashboard``) from a local
run: the Embedded Metric Format lines the functions print, read back from the local stack's
``.local/logs/<Function>.log``, binned as CloudWatch would sum them (a shorter period: a local
run lasts minutes). The dead-letter queues' depth is an AWS/SQS metric, not a log line: it is
read from the stack's queues when ``--stack`` is given.

    .venv/bin/python -m bench.dashboard --logs .local/logs --stack .local/stack.json --out docs/dashboard.png
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

STALE_THRESHOLD_SECONDS = 900  # StaleOpenBatchAlarm's threshold in template.yaml


def read_lines(logs: Path) -> list[dict[str, Any]]:
    """Every EMF document in the logs (lines holding ``_aws.CloudWatchMetrics``)."""
    out = []
    for log in sorted(logs.glob("*.log")):
        for raw in log.read_text(errors="replace").splitlines():
            if '"_aws"' not in raw:
                continue
            try:
                doc = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(doc, dict) and doc.get("_aws", {}).get("CloudWatchMetrics"):
                out.append(doc)
    return out


def series(docs: list[dict[str, Any]]) -> dict[str, list[tuple[float, str, float]]]:
    """metric name -> [(epoch seconds, distribution or "", value)] as the directives declare."""
    out: dict[str, list[tuple[float, str, float]]] = defaultdict(list)
    for doc in docs:
        at = doc["_aws"]["Timestamp"] / 1000
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                out[metric["Name"]].append((at, doc.get("DistributionId", ""), float(doc[metric["Name"]])))
    return out


def queue_depths(stack_file: Path) -> dict[str, int]:
    """ApproximateNumberOfMessagesVisible of the stack's queues, now."""
    import boto3

    stack = json.loads(stack_file.read_text())
    sqs = boto3.client("sqs", endpoint_url=stack["endpoint_url"], region_name=stack["region"],
                       aws_access_key_id="local", aws_secret_access_key="local")
    depths = {}
    for logical, physical in stack["queues"].items():
        url = physical if physical.startswith("http") else sqs.get_queue_url(QueueName=physical)["QueueUrl"]
        # The queue attribute behind the AWS/SQS metric ApproximateNumberOfMessagesVisible.
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        depths[logical] = int(attrs["Attributes"]["ApproximateNumberOfMessages"])
    return depths


def draw(data: dict[str, list[tuple[float, str, float]]], depths: dict[str, int] | None, out: Path, period: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = min(t for points in data.values() for t, _, _ in points)

    def binned(name: str) -> tuple[list[float], list[float]]:
        sums: dict[int, float] = defaultdict(float)
        for t, _, v in data.get(name, []):
            sums[int((t - start) // period)] += v
        if not sums:
            return [], []
        keys = range(0, max(sums) + 1)
        return [k * period for k in keys], [sums[k] for k in keys]

    fig, axes = plt.subplots(3, 2, figsize=(11, 8.2), dpi=72)
    panels = [
        ("Batches (all distributions), sum per %gs" % period,
         ["BatchesOpened", "BatchesSubmitted", "BatchesCompleted", "BatchesFailed"]),
        ("Paths received / planned / billed, sum per %gs" % period, ["PathsReceived", "PathsPlanned", "PathsBilled"]),
    ]
    for ax, (title, names) in zip(axes[0], panels):
        for name in names:
            xs, ys = binned(name)
            ax.step(xs, ys, where="post", label=f"{name} ({sum(ys):g})")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    ax = axes[1][0]
    by_dist: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for t, dist, v in data.get("OpenToCompletedSeconds", []):
        by_dist[dist].append((t - start, v))
    for dist, points in sorted(by_dist.items()):
        ax.plot(*zip(*points), "o", label=dist)
    ax.set_title("Opening to Completed, seconds (per batch, per distribution)", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1][1]
    points = data.get("OldestOpenBatchAgeSeconds", [])
    if points:
        ax.plot([t - start for t, _, _ in points], [v for _, _, v in points], "o-", label="OldestOpenBatchAgeSeconds")
    ax.axhline(STALE_THRESHOLD_SECONDS, color="#d62728", linestyle="--", label="StaleOpenBatchAlarm > 900")
    ax.set_ylim(bottom=0)
    ax.set_title("Oldest stale open batch, seconds (sweep)", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[2][0]
    for name in ("BatchesFailed", "EventsFailed"):
        xs, ys = binned(name)
        ax.step(xs or [0], ys or [0], where="post", label=f"{name} ({sum(ys):g})")
    ax.set_title("Failed batches and failed events", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[2][1]
    if depths is not None:
        ax.bar(list(depths), list(depths.values()), color="#1f77b4")
        ax.set_ylim(0, max([1, *depths.values()]) + 1)
        ax.set_title("Dead-letter queues, messages visible (at the end)", fontsize=10)
    else:
        ax.set_title("Dead-letter queues: pass --stack", fontsize=10)
    for row in axes[:2]:
        for a in row:
            a.set_xlabel("seconds since the first metric line", fontsize=8)
    axes[2][0].set_xlabel("seconds since the first metric line", fontsize=8)
    fig.suptitle("cf-invalidator dashboard panels, from a local run's metric lines", fontsize=11)
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=Path, default=Path(".local/logs"))
    parser.add_argument("--stack", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    parser.add_argument("--period", type=float, default=10.0, help="seconds summed into one point")
    args = parser.parse_args()
    data = series(read_lines(args.logs))
    if not data:
        raise SystemExit(f"no metric lines in {args.logs}/*.log: run the stack with this branch's binaries")
    draw(data, queue_depths(args.stack) if args.stack else None, args.out, args.period)
    totals = {name: sum(v for _, _, v in points) for name, points in sorted(data.items())}
    print(json.dumps({"out": str(args.out), "lines": sum(len(p) for p in data.values()), "totals": totals}))


if __name__ == "__main__":
    main()
