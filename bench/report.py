"""Turning the measurements into what ``make bench`` prints, ``latest.json`` and the chart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .common import Item, fmt_spread, render

SYSTEMS = (("baseline", "one-file Lambda (live)"), ("baseline_replay", "one-file Lambda (replayed at burst rate)"),
           ("ours", "cf-invalidator"))
COLORS = {"baseline": "#d62728", "baseline_replay": "#ff7f0e", "ours": "#1f77b4", "writes": "#444444"}
MB = 1024 * 1024


def compact_timeline(burst: Item, bins: int = 400) -> Item:
    """Cumulative counts on a common time grid (seconds since the first write): writes, and per
    system CreateInvalidation calls, billed paths, rejected calls and Completed invalidations.
    Replaces the per-event lists, which would make ``latest.json`` megabytes long."""
    ends = [burst["writes_timeline"][-1]]
    for key, _ in SYSTEMS:
        if key in burst:
            tl = burst[key]["timeline"]
            ends += [c["t"] for c in tl["calls"]] + tl["completed"]
    end = max(ends) + 1
    step = max(0.25, math.ceil(end / bins * 4) / 4)
    grid = [round(i * step, 2) for i in range(int(end / step) + 2)]

    def cumulative(times: list[float], weights: list[float] | None = None) -> list[float]:
        pairs = sorted(zip(times, weights or [1] * len(times)))
        out, total, j = [], 0.0, 0
        for t in grid:
            while j < len(pairs) and pairs[j][0] <= t:
                total += pairs[j][1]
                j += 1
            out.append(total)
        return out

    timeline: Item = {"t": grid, "writes": cumulative(burst.pop("writes_timeline"))}
    for key, _ in SYSTEMS:
        if key not in burst:
            continue
        tl = burst[key].pop("timeline")
        calls = tl["calls"]
        timeline[key] = {
            "calls": cumulative([c["t"] for c in calls]),
            "billed_paths": cumulative([c["t"] for c in calls], [c["billed"] for c in calls]),
            "rejected": cumulative([c["t"] for c in calls if c["outcome"] not in ("created", "existing")]),
            "completed": cumulative(tl["completed"]),
            "created_at": [round(c["t"], 2) for c in calls if c["outcome"] == "created"][:20],
            "all_completed_at": round(max(tl["completed"]), 2) if tl["completed"] else None,
        }
    return timeline


def targets(r: Item) -> list[Item]:
    """Every number the issue sets a target for, against it. ``checked`` targets are deterministic
    (counts, sizes, memory) and fail ``--check``; timings are measured locally and only reported."""
    b = r["burst"]
    ours = b["ours"]
    w = b["workload"]
    events = w["events"]
    per = r["per_event"]
    cold = r["functions"]["cold"]
    base = cold["python-baseline"]
    rows: list[Item] = []

    def add(metric: str, target: str, measured: Any, ok: bool | None, note: str = "", checked: bool = True) -> None:
        rows.append({"metric": metric, "target": target, "measured": measured, "ok": ok, "note": note, "checked": checked})

    add("CreateInvalidation requests per distribution (collapse on)", "<= 2", ours["create_invalidation_calls"],
        ours["create_invalidation_calls"] <= 2)
    threshold = r["settings"]["collapse_threshold"]
    if w["writes"] / max(1, w["directories"]) >= threshold:
        add("billed paths (collapse on, wildcard = 1)", "<= 100", ours["billed_paths"], ours["billed_paths"] <= 100)
    else:  # nothing can collapse: billed = distinct paths, which is not what the target is about
        add("billed paths (collapse on, wildcard = 1)", "<= 100", ours["billed_paths"], None,
            f"n/a: a small run, fewer than {threshold} writes per directory, so nothing collapses", checked=False)
    off = r["collapse_off"]
    add("requests with collapse off (exact paths)", "<= 2", off["requests"], off["requests"] <= 2,
        f"{off['billedPaths']} exact paths; {off['mode']}")
    add("paths lost", "0", ours["paths_lost"], ours["paths_lost"] == 0, f"of {events} writes")
    two = ours["in_two_batches"]
    add("events counted in two batches", "<= 1%", f"{two['events']} ({two['events'] / events:.1%})", two["events"] <= events / 100,
        f"of {events} events, from the path items' event ids" + (f" ({two['events_uncounted']} beyond 100 per path only counted)"
                                                                  if two["events_uncounted"] else ""))
    fresh = ours["freshness"]
    add("stale reads through the edge after Completed", "0", fresh["stale_after_completed"], fresh["stale_after_completed"] == 0,
        f"{fresh['watched']} overwritten keys read every 2 s during the burst, then once more")
    # 0.05 transitions and 0.02 invocations per change are the targets of the 5,000-write burst;
    # a small run's batches are cut by the pipe's batching window, so they carry fewer events.
    full = events >= 5000
    per_change, invocations = (0.05, 0.02) if full else (0.1, 0.05)
    how = (f"all {per['ingest_executions']} object-changed executions' histories, median {per['events_per_ingest_execution']} "
           f"events each (max {per['transitions_per_ingest_execution_max']} transitions)")
    add("state transitions per S3 change (object-changed executions)", f"<= {per_change}", round(per["transitions_per_event"], 4),
        per["transitions_per_event"] <= per_change, how)
    add("Lambda invocations per S3 change (object-changed executions)", f"<= {invocations}", round(per["lambda_invocations_per_event"], 4),
        per["lambda_invocations_per_event"] <= invocations, "from the same histories")
    for name, size in r["functions"]["sizes"].items():
        add(f"binary size: {name}", "<= 8 MB", f"{size / MB:.2f} MB", size <= 8 * MB, "x86_64 release build, stripped")
    for name, c in cold.items():
        add(f"cold start answered its first event: {name}", "response", ", ".join(c["outcomes"]), c["outcomes"] == ["response"],
            "every measured run")
    b_own, b_first, b_init = (base[k]["median"] for k in ("own_ms", "first_response_ms", "init_ms"))
    for name, c in cold.items():
        if name == "python-baseline":
            continue
        own, first, init, emu = (c[k]["median"] for k in ("own_ms", "first_response_ms", "init_ms", "emulator_ms"))
        add(f"cold start, own time vs the Python baseline's own time: {name}", ">= 30x faster",
            f"{b_own / own:.0f}x ({own:.1f} vs {b_own:.0f} ms)", b_own / own >= 30,
            f"own = first response - emulator time; raw first response {first:.1f} vs {b_first:.0f} ms ({b_first / first:.0f}x), "
            f"{c['aws_requests']['median']:.0f} AWS requests taking {emu:.1f} ms in the emulator (baseline "
            f"{base['aws_requests']['median']:.0f}, {base['emulator_ms']['median']:.1f} ms); spawn -> ready {init:.1f} vs {b_init:.0f} ms "
            f"({b_init / init:.0f}x)", checked=False)
    for name, c in cold.items():
        if name == "python-baseline":
            continue
        add(f"peak RSS: {name}", "<= 24 MB", f"{c['peak_rss_mb']['median']:.1f} MB", c["peak_rss_mb"]["max"] <= 24,
            f"max of the runs {c['peak_rss_mb']['max']:.1f} MB; baseline {base['peak_rss_mb']['median']:.0f} MB")
    return rows


def seconds_pair(f: Item) -> str:
    """``p50 / p95`` of a freshness record, in seconds."""
    if not f or f.get("to_fresh_p50_s") is None:
        return "-"
    return f"{f['to_fresh_p50_s']:.0f} / {f['to_fresh_p95_s']:.0f} s"


def missed_checks(r: Item) -> list[Item]:
    """The checked (deterministic) targets this run missed: what ``--check`` fails on."""
    return [t for t in r["targets"] if t["checked"] and t["ok"] is False]


def print_report(r: Item) -> None:
    b = r["burst"]
    w = b["workload"]
    s = r["settings"]
    print("\n" + "=" * 100)
    print(f"cf-invalidator vs the one-file Lambda -- {r['generated_at']} -- {r['machine']['cpus']} CPUs, "
          f"load average {r['machine']['load_start']:.1f} at start, {r['machine']['load_end']:.1f} at end")
    print(f"Workload: {w['writes']:,} writes over {w['directories']} directories + {w['overwrites']:,} overwrites of "
          f"{w['overwritten_keys']} keys = {w['events']:,} S3 events ({w['distinct_paths']:,} distinct paths), written in "
          f"{b['write_seconds']:.0f} s ({b['write_rate_per_s']:.1f}/s: the local emulator's pace, not the issue's 10 s)")
    print(f"Stack: DebounceSeconds={s['debounce_seconds']:g} (sized so the burst is one batch), PollSeconds={s['poll_seconds']:g}, "
          f"CloudFront InProgress {s['in_progress_seconds']:g} s, CollapseThreshold={s['collapse_threshold']}")

    print("\n1. Burst: the same S3 events to both (counts are deterministic; times are the local emulator's)")
    rows = []
    for key, label in SYSTEMS:
        if key not in b:
            continue
        x = b[key]
        t = x["last_write_to_all_completed_s"]
        f = x.get("freshness") or {}
        stale = f"{f['stale_after_completed']} of {f['watched']}" if f else "-"
        rows.append([label, x["create_invalidation_calls"], x["invalidations_created"], x["billed_paths"], x["rejected_calls"],
                     x["paths_lost"], f"{t:.0f} s" if t is not None else "-", stale, seconds_pair(f)])
    off = r["collapse_off"]
    rows.append([f"cf-invalidator, collapse off ({off['mode']})", off["requests"], off["requests"], off["billedPaths"], 0,
                 off.get("paths_lost", 0), off.get("time", "-"), "-", "-"])
    print(render(["system", "CreateInvalidation calls", "invalidations", "billed paths", "rejected", "paths lost",
                  "last write -> all Completed", "stale reads after", "write -> fresh read p50 / p95"], rows))
    if "baseline_replay" in b:
        rp = b["baseline_replay"]
        print(f"  replay: the same {w['events']:,} notifications fed in {rp['fed_in_s']:.1f} s ({rp['rate_per_s']:.0f}/s) with "
              f"{4 * r['settings']['max_concurrency']} concurrent invocations; outcomes {rp['outcomes']}; "
              f"{rp['events_dropped_after_retries']} events dropped after Lambda's 2 retries")
    print(f"  cf-invalidator's plan: {b['ours']['plans'][0]['sample'] if b['ours']['plans'] else '-'}; "
          f"batches: {[(x['status'], x['pathsReceived'], x['eventsReceived']) for x in b['ours']['batches']]}")

    per = r["per_event"]
    print("\n2. Per-event overhead of cf-invalidator (Step Functions histories; AWS requests counted by the stack)")
    print(render(["", "per S3 event", "per batch"], [
        ["state transitions", f"{per['transitions_per_event']:.4f} ({per['ingest_executions']} executions of a median "
         f"{per['events_per_ingest_execution']} events)", f"{per['batch_transitions']}"],
        ["Lambda invocations", f"{per['lambda_invocations_per_event']:.4f} (all events: {per['lambda_invocations_per_event_all']:.3f})",
         f"{per['batch_lambda_invocations']}"],
        ["DynamoDB write requests", f"{per['dynamodb_writes_per_event']:.3f}", f"{per['batch_dynamodb_writes']:.0f}"],
        ["DynamoDB read requests", f"{per['dynamodb_reads_per_event']:.3f}", f"{per['batch_dynamodb_reads']:.0f}"],
    ]))

    print("\n3. Functions: release binaries; cold start of a fresh process through a Runtime API (spawn -> first response), "
          "split into the time the local stack spent answering its AWS requests (server-side) and the rest, the process's own; "
          "peak RSS; median (min-max) of repeated runs, measured locally")
    rows = []
    for name, c in r["functions"]["cold"].items():
        size = r["functions"]["sizes"].get(name)
        rows.append([name, f"{size / MB:.2f} MB" if size else "-", fmt_spread(c["init_ms"], " ms"), fmt_spread(c["first_response_ms"], " ms"),
                     f"{c['aws_requests']['median']:.0f}", fmt_spread(c["emulator_ms"], " ms"), fmt_spread(c["own_ms"], " ms"),
                     fmt_spread(c["peak_rss_mb"], " MB")])
    print(render(["function", "binary", "spawn -> ready (GET next)", "spawn -> first response (raw)", "AWS requests",
                  "in the emulator", "own (first response - emulator)", "peak RSS"], rows))
    for name, c in r["functions"]["cold"].items():
        ops = "; ".join(", ".join(f"{k} {v}" for k, v in json.loads(o).items()) or "none" for o in c["operations"])
        print(f"  {name}: {c['what']}; requests: {ops}")

    if r.get("criterion"):
        print("\n4. Planner and mapping throughput (criterion, median with its 95% interval, measured locally)")
        rows = [[k, v["what"], f"{v['median_ns'] / 1e6:.3f} ms", f"{v['per_second'] / 1e6:.2f} M/s",
                 f"{v['per_second_ci95'][0] / 1e6:.2f}-{v['per_second_ci95'][1] / 1e6:.2f} M/s"] for k, v in r["criterion"].items()]
        print(render(["benchmark", "what", "per iteration", "throughput", "95% interval"], rows))

    cost = r["cost"]
    print("\n5. Cost per month in USD (us-east-1 list prices; counts per write from this run, scaled; see bench/README.md)")
    rows = [[f"{row['writes']:,}", row["label"], row["paths"], f"{row['cloudfront']:.2f}", row["transitions"], f"{row['step_functions']:.2f}",
             f"{row['lambda']:.4f}", f"{row['dynamodb']:.4f}", f"{row['total']:.2f}"] for row in cost["rows"]]
    print(render(["writes/month", "system", "paths", "CloudFront", "transitions", "Step Functions", "Lambda", "DynamoDB", "total"], rows))

    print()
    print("Targets (checked: deterministic, --check fails on a miss; report: a local timing, never a failure)")
    print(render(["metric", "target", "measured", "", "kind", "note"],
                 [[t["metric"], t["target"], t["measured"], {True: "ok", False: "MISSED", None: "n/a"}[t["ok"]],
                   "checked" if t["checked"] else "report", t["note"]] for t in r["targets"]]))
    print(f"\nmake bench took {r['duration_s']:.0f} s; wrote {r['outputs']['json']} and {r['outputs']['chart']}")


def chart(r: Item, path: Path) -> None:
    """Two panels: requests / billed paths / rejections / losses per system (log scale), and
    the timeline of writes against each system's billed paths and completions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b = r["burst"]
    tl = b["timeline"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.6), gridspec_kw={"width_ratios": [1, 1.25]})
    metrics = [("create_invalidation_calls", "CreateInvalidation\ncalls"), ("billed_paths", "billed paths"),
               ("rejected_calls", "rejected calls"), ("paths_lost", "paths lost")]
    present = [(k, label) for k, label in SYSTEMS if k in b]
    width = 0.8 / len(present)
    for i, (key, label) in enumerate(present):
        values = [b[key][m] for m, _ in metrics]
        xs = [j + (i - (len(present) - 1) / 2) * width for j in range(len(metrics))]
        bars = ax1.bar(xs, [max(v, 0.0) for v in values], width, label=label, color=COLORS[key])
        for bar, v in zip(bars, values):
            ax1.annotate(f"{v:,}", (bar.get_x() + bar.get_width() / 2, max(v, 1)), ha="center", va="bottom", fontsize=8,
                         xytext=(0, 2), textcoords="offset points")
    ax1.set_yscale("symlog", linthresh=1)
    ax1.set_ylim(0, max(max(b[k]["create_invalidation_calls"] for k, _ in present), 10) * 4)
    ax1.set_xticks(range(len(metrics)), [label for _, label in metrics])
    ax1.set_title(f"{b['workload']['events']:,} S3 events ({b['workload']['writes']:,} writes + {b['workload']['overwrites']:,} overwrites)")
    ax1.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=len(present), frameon=False)
    ax1.grid(axis="y", alpha=0.3)

    t = tl["t"]
    ax2.plot(t, tl["writes"], color=COLORS["writes"], linestyle="--", linewidth=1.5, zorder=5, label="S3 writes (cumulative)")
    for key, label in present:
        series = tl[key]
        ax2.step(t, series["billed_paths"], where="post", color=COLORS[key], label=f"{label}: billed paths")
        if series["all_completed_at"] is not None:
            ax2.axvline(series["all_completed_at"], color=COLORS[key], linestyle=":", linewidth=1)
        if any(series["rejected"]):
            ax2.step(t, series["rejected"], where="post", color=COLORS[key], linestyle="--", label=f"{label}: rejected calls")
    ax2.set_yscale("symlog", linthresh=1)
    ax2.set_ylim(bottom=0)
    ax2.set_xlabel("seconds since the first write (dotted: all of that system's invalidations Completed)")
    ax2.set_title("Timeline: writes vs invalidations (local emulator)")
    ax2.legend(fontsize=7, loc="center left", bbox_to_anchor=(0.1, 0.3))  # the empty middle of the plot
    ax2.grid(alpha=0.3)
    fig.suptitle("cf-invalidator vs the one-file Lambda on the same local CloudFront model (make bench)", fontsize=12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
