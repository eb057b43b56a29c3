"""Dollars per month, from the burst's measured counts and AWS's public list prices.

Counts (paths billed, state transitions, Lambda invocations, DynamoDB requests) are measured
per S3 write in the burst and scaled linearly; what cannot be measured locally is an explicit,
labelled assumption (Lambda durations, DynamoDB index writes and read units). Free tiers other
than CloudFront's 1,000 paths are left out: they are per account and shared with everything else.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from .common import Item

PRICES: Item = {
    "region": "us-east-1",
    "cloudfront_per_path": 0.005,  # after the first 1,000 paths a month (wildcard = 1 path)
    "cloudfront_free_paths": 1000,
    "sfn_per_transition": 0.025 / 1000,  # Standard workflows
    "lambda_per_request": 0.20 / 1_000_000,
    "lambda_per_gb_s_arm64": 0.0000133334,
    "lambda_per_gb_s_x86": 0.0000166667,
    "dynamodb_per_wru": 0.625 / 1_000_000,  # on-demand
    "dynamodb_per_rru": 0.125 / 1_000_000,
    "sources": [
        "https://aws.amazon.com/cloudfront/pricing/ (invalidation requests)",
        "https://aws.amazon.com/step-functions/pricing/",
        "https://aws.amazon.com/lambda/pricing/",
        "https://aws.amazon.com/dynamodb/pricing/on-demand/",
    ],
}

ASSUMPTIONS: Item = {
    "ours_ms_per_invocation": 20,  # Rust, a DynamoDB round trip or two; the emulator's durations are its own
    "baseline_ms_per_invocation": 100,  # Python + one CreateInvalidation round trip
    "memory_gb": 0.125,  # 128 MB, both
    "ours_arch": "arm64",  # template.yaml
    "baseline_arch": "x86_64",  # the classic function's default
    "index_writes": "+1 WRU per new path item (byPath), +2 per rewritten one (its index key changes), +2 per other write (batch items: byDistribution, byStatus): an upper bound",
    "read_units": "1 RRU per GetItem (strongly consistent, < 4 KB) and per Query, plus 1 per 8 path items read by the batch's Query",
    "shape": "bursts like the benchmark's (per-write counts scaled linearly); 'isolated' = every write alone in its batch",
}

VOLUMES = (1_000, 100_000, 1_000_000)


def per_write(burst: Item) -> dict[str, Item]:
    """Per-write unit counts of each system (and shape), from one burst's measurements."""
    events = burst["workload"]["events"]
    ours = burst["ours"]
    hist = ours["histories"]
    ingest = hist["ingest_executions"]
    per_event = sum(h["transitions"] for h in ingest) / events if ingest else 5
    batch_hist = hist["per_batch"] or [{"transitions": 6, "lambda_invocations": 2}]
    batch_transitions = sum(b["transitions"] for b in batch_hist)
    ddb = ours["dynamodb_requests_by_function"]
    table_writes = sum(f["writes"] for f in ddb.values())
    dedupe = ddb.get("DedupeFunction", {"writes": 0, "reads": 0, "by_operation": {}})
    path_updates = dedupe["by_operation"].get("UpdateItem", 0)
    new_paths = sum(b["pathsReceived"] for b in ours["batches"]) or burst["workload"]["distinct_paths"]
    index_writes = new_paths + 2 * max(0, path_updates - new_paths) + 2 * (table_writes - path_updates)
    gets = sum(f["by_operation"].get("GetItem", 0) for f in ddb.values())
    queries = sum(f["by_operation"].get("Query", 0) for f in ddb.values())
    rru = gets + queries + math.ceil(new_paths / 8)
    batches = max(1, len(batch_hist))
    batch_fns = ("CreateInvalidationFunction", "PollStatusFunction", "RecordOutcomeFunction")
    batch_invocations = sum(ours["lambda_invocations_by_function"].get(f, 0) for f in batch_fns) / batches
    batch_writes = sum(ddb.get(f, {}).get("writes", 0) for f in batch_fns) / batches
    batch_reads = sum(ddb.get(f, {}).get("reads", 0) for f in batch_fns) / batches
    base = burst["baseline"]
    return {
        "ours": {
            "paths": ours["billed_paths"] / events,
            "transitions": per_event + batch_transitions / events,
            "invocations": ours["lambda_invocations"] / events,
            "wru": (table_writes + index_writes) / events,
            "rru": rru / events,
        },
        "ours_isolated": {
            "paths": 1.0,
            "transitions": per_event + statistics.median(b["transitions"] for b in batch_hist),
            "invocations": 2 + batch_invocations,
            # the opener: pointer (1) + batch item (1 + 2 index) + path item (1 + 1 index), then
            # the batch's own writes (each 1 + at most 2 index entries)
            "wru": 6 + 3 * batch_writes,
            # pointer + batch reads by dedupe, the batch functions' reads, the one-path Query
            "rru": 2 + batch_reads + 1,
        },
        "baseline": {
            "paths": base["billed_paths"] / events,
            "transitions": 0.0,
            "invocations": base["lambda_invocations"] / events,
            "wru": 0.0,
            "rru": 0.0,
        },
    }


def monthly(units: Item, writes: int, *, ms: float, arch: str) -> Item:
    """Dollars for ``writes`` S3 writes in a month at ``units`` per write."""
    p = PRICES
    paths = units["paths"] * writes
    invocations = units["invocations"] * writes
    gb_s = invocations * ms / 1000 * ASSUMPTIONS["memory_gb"]
    out = {
        "paths": round(paths),
        "cloudfront": max(0.0, paths - p["cloudfront_free_paths"]) * p["cloudfront_per_path"],
        "transitions": round(units["transitions"] * writes),
        "step_functions": units["transitions"] * writes * p["sfn_per_transition"],
        "lambda": invocations * p["lambda_per_request"] + gb_s * p[f"lambda_per_gb_s_{'arm64' if arch == 'arm64' else 'x86'}"],
        "dynamodb": units["wru"] * writes * p["dynamodb_per_wru"] + units["rru"] * writes * p["dynamodb_per_rru"],
    }
    out["total"] = out["cloudfront"] + out["step_functions"] + out["lambda"] + out["dynamodb"]
    return out


def cost_table(burst: Item) -> Item:
    """``{"per_write": {...}, "rows": [{system, writes, paths, cloudfront, ..., total}]}``."""
    units = per_write(burst)
    rows: list[dict[str, Any]] = []
    for writes in VOLUMES:
        for system, label, ms, arch in (
            ("baseline", "one-file Lambda", ASSUMPTIONS["baseline_ms_per_invocation"], ASSUMPTIONS["baseline_arch"]),
            ("ours", "cf-invalidator (bursts)", ASSUMPTIONS["ours_ms_per_invocation"], ASSUMPTIONS["ours_arch"]),
            ("ours_isolated", "cf-invalidator (isolated writes)", ASSUMPTIONS["ours_ms_per_invocation"], ASSUMPTIONS["ours_arch"]),
        ):
            rows.append({"system": system, "label": label, "writes": writes, **monthly(units[system], writes, ms=ms, arch=arch)})
    return {"per_write": units, "rows": rows, "prices": PRICES, "assumptions": ASSUMPTIONS}
