"""The burst: the same S3 writes, seen by cf-invalidator and by the classic one-file Lambda at once.

One local stack, three distributions: keys are written under ``d0/``, which the stack routes to
distribution 0, so cf-invalidator (S3 -> EventBridge -> Step Functions -> the Rust functions)
invalidates them there. The same S3 events, read back from the stack (``s3/events``) as S3 emits
them, are given to the baseline (``bench/classic.py``), which sends ``CreateInvalidation`` for
distribution 1 of the same CloudFront model. Both are counted by the model's call log, per
distribution.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import boto3
from boto3.dynamodb.conditions import Key
from botocore.config import Config

from .classic import AsyncInvoker, Relay, Replay, load_baseline
from .common import BenchError, Item, Write, control, wait_until
from .viewers import Viewers

WRITE_OPS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
READ_OPS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}


@dataclass(frozen=True)
class Workload:
    """``writes`` new objects over ``directories`` directories, then ``overwrites`` more writes
    cycling over a few of those keys (the issue's shape: 5,000 over 50 directories + 500
    overwrites of the same 100 keys; smaller runs keep 5 overwrites per overwritten key)."""

    writes: int
    overwrites: int
    directories: int = 50
    prefix: str = "d0/"

    @property
    def overwritten_keys(self) -> int:
        return min(100, max(1, self.overwrites // 5), self.writes) if self.overwrites else 0

    def hot_keys(self) -> list[str]:
        """The keys the overwrites cycle over."""
        if not self.overwrites:
            return []
        keys = self.keys()
        step = max(1, len(keys) // self.overwritten_keys)
        return keys[::step][: self.overwritten_keys]

    @property
    def events(self) -> int:
        return self.writes + self.overwrites

    def keys(self) -> list[str]:
        return [f"{self.prefix}dir{i % self.directories:02}/page-{i:05}.html" for i in range(self.writes)]

    def sequence(self) -> list[str]:
        """Every key once, then the overwrites, round-robin over keys spread across the directories."""
        hot = self.hot_keys()
        return self.keys() + [hot[j % len(hot)] for j in range(self.overwrites)]


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class Burst:
    """Drives the workload on a running stack and measures both systems (see module doc).

    ``distributions``: the stack's distribution ids; ours is the one the workload's prefix routes
    to, the live baseline gets the next one and the nominal-rate replay the one after."""

    def __init__(self, info: Item, workload: Workload, *, writers: int = 16, max_in_flight: int = 0,
                 replay_seconds: float | None = 10.0, timeout: float = 900.0, log: Callable[[str], None] = print) -> None:
        self.info = info
        self.workload = workload
        self.writers = writers
        self.max_in_flight = max_in_flight
        self.replay_seconds = replay_seconds
        self.timeout = timeout
        self.log = log
        self.ctl = info["control_url"]
        kw = dict(endpoint_url=info["endpoint_url"], region_name=info["region"], aws_access_key_id="bench",
                  aws_secret_access_key="bench", config=Config(max_pool_connections=writers + 8, retries={"mode": "standard"}))
        self.s3, self.sfn = boto3.client("s3", **kw), boto3.client("stepfunctions", **kw)
        self.table = boto3.resource("dynamodb", **kw).Table(info["table"])
        self.bucket: str = info["bucket"]
        routes = {r["keyPrefix"]: r["distributionId"] for r in info["routes"]}
        self.ours = routes[workload.prefix]
        others = [d for d in info["distribution_ids"] if d != self.ours]
        if len(others) < 2:
            raise BenchError("the burst needs a stack with at least 3 distributions (ours, baseline, replay)")
        self.theirs, self.replay_dist = others[0], others[1]
        self.in_progress = float(info["settings"]["cloudfront_in_progress_seconds"])
        self.concurrency = int(info["settings"].get("max_concurrency", 8))
        self.writes: list[Write] = []
        self.hold: Item = {}  # what _hold_until_joined did
        edges = info.get("edges") or {}
        if self.ours not in edges or self.theirs not in edges:
            raise BenchError("the stack has no edges (stack.json `edges`): start it with this repository's local stack")
        # 20 of the overwritten keys, read through both systems' edges during the burst.
        self.viewers = Viewers({"ours": edges[self.ours], "baseline": edges[self.theirs]}, workload.hot_keys()[:20])
        self.freshness: dict[str, Item] = {}

    # ---- driving --------------------------------------------------------------------------------
    def _dedupe_invocations(self) -> int:
        """Dedupe invocations finished so far: the pool counts an invocation when it is asked
        for, so those still queued (``pending``) or running (a ``busy`` process) are taken off."""
        for f in control(self.ctl, "lambda/stats")["functions"]:
            if f["logical_id"] == "DedupeFunction":
                busy = sum(1 for p in f["processes"].values() if p["state"] == "busy")
                return int(f["invocations"]) - int(f["pending"]) - busy
        return 0

    def _write_all(self) -> None:
        """PutObject for the whole sequence with ``writers`` threads, keeping at most
        ``max_in_flight`` events in the pipeline (written, not yet through dedupe): the
        emulator is one Python process, and thousands of concurrent executions only thrash it."""
        sequence = self.workload.sequence()
        lock = threading.Condition()
        state = {"issued": 0, "done_base": self._dedupe_invocations(), "done": 0}
        stop = threading.Event()

        def watch() -> None:  # refreshes how many events went through dedupe
            while not stop.wait(0.25):
                try:
                    n = self._dedupe_invocations() - state["done_base"]
                except OSError:
                    continue
                with lock:
                    state["done"] = n
                    lock.notify_all()

        def put(key: str) -> Write:
            with lock:
                stalled = time.monotonic() + 120
                while self.max_in_flight and state["issued"] - state["done"] >= self.max_in_flight:
                    if not lock.wait(1.0) and time.monotonic() > stalled:
                        raise BenchError("the pipeline stopped taking events (no dedupe invocation for 120 s)")
                state["issued"] += 1
            w = Write(key, time.time())
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=f"{key} {w.started}".encode())
            w.ended = time.time()
            return w

        watcher = threading.Thread(target=watch, daemon=True, name="pacer")
        watcher.start()
        try:
            with ThreadPoolExecutor(max_workers=self.writers, thread_name_prefix="writer") as pool:
                self.writes = list(pool.map(put, sequence))
        finally:
            stop.set()
            watcher.join(5)

    def _running(self) -> bool:
        """Whether any execution of either state machine is still RUNNING."""
        return any(self.sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING", maxResults=1)["executions"]
                   for arn in self.info["state_machines"].values())

    def _invalidations(self, dist: str) -> list[Item]:
        return control(self.ctl, "cloudfront/invalidations", {"distribution_id": dist})["invalidations"]

    def _all_completed(self, dist: str, at_least_one: bool = False) -> bool:
        invs = self._invalidations(dist)
        return (bool(invs) or not at_least_one) and all(i["status"] == "Completed" for i in invs)

    def run(self) -> Item:
        w = self.workload
        control(self.ctl, "aws/reset-requests")
        dists = (self.ours, self.theirs, self.replay_dist)
        since = {d: control(self.ctl, "cloudfront/calls", {"distribution_id": d})["last_seq"] for d in dists}
        lambda_before = {f["logical_id"]: f["invocations"] for f in control(self.ctl, "lambda/stats")["functions"]}
        sequencers = [e["detail"]["object"]["sequencer"] for e in control(self.ctl, "s3/events")["events"]]
        invoker = AsyncInvoker(load_baseline(self.info["endpoint_url"], self.info["region"], self.theirs),
                               concurrency=self.concurrency, retry_delays=(1.0, 2.0))
        relay = Relay(self.ctl, self.bucket, w.prefix, self.info["region"], invoker, after=max(sequencers, default=None))
        replay: Replay | None = None
        # Submit held until the burst has joined (see _hold_until_joined): a no-op when the
        # debounce was long enough, the difference between 1 and N batches when it was not.
        hold = control(self.ctl, "faults/set", {"kind": "lambda_hold", "function": "CreateInvalidationFunction", "contains": self.ours})
        relay.start()
        self.viewers.start()
        try:
            self.log(f"  writing {w.writes} objects over {w.directories} directories + {w.overwrites} overwrites of "
                     f"{w.overwritten_keys} keys ({self.writers} writers, "
                     + (f"at most {self.max_in_flight} events in the pipeline" if self.max_in_flight else "unpaced") + ") ...")
            t0 = time.time()
            self._write_all()
            t_last = max(x.ended for x in self.writes)
            self.log(f"  {w.events} writes in {t_last - t0:.1f} s ({w.events / (t_last - t0):.1f}/s); "
                     f"waiting for both systems (at most {self.timeout:.0f} s) ...")
            wait_until(lambda: relay.error or relay.seen >= w.events, 60, "the relay to see every S3 event")
            if relay.error:
                raise BenchError(f"relaying S3 events to the baseline failed: {relay.error}")
            if relay.seen != w.events:
                raise BenchError(f"{w.events} writes but the relay saw {relay.seen} S3 events")
            self.hold = self._hold_until_joined(hold, t_last)
            done: dict[str, float] = {}

            def settled() -> bool:
                nonlocal replay
                now = time.time()
                if "baseline" not in done and invoker.idle() and self._all_completed(self.theirs):
                    done["baseline"] = now
                    self.log(f"  baseline settled {now - t_last:.1f} s after the last write")
                    if self.replay_seconds:
                        # while ours still waits for its debounce: same notifications, nominal rate
                        rate = w.events / self.replay_seconds
                        replay = Replay(load_baseline(self.info["endpoint_url"], self.info["region"], self.replay_dist),
                                        relay.notifications, rate, concurrency=4 * self.concurrency)
                        self.log(f"  replaying the {w.events} notifications to the baseline at {rate:.0f}/s ...")
                        replay.start()
                if replay is not None and "replay" not in done and replay.idle() and self._all_completed(self.replay_dist):
                    done["replay"] = now
                    self.log(f"  replayed baseline settled (fed in {replay.fed_in:.1f} s)")
                if "ours" not in done and not self._running() and self._all_completed(self.ours, at_least_one=True):
                    done["ours"] = now
                    self.log(f"  cf-invalidator settled {now - t_last:.1f} s after the last write")
                return len(done) == (3 if self.replay_seconds else 2)

            wait_until(settled, self.timeout, "every system to have all its invalidations Completed", interval=1.0)
            last_write = {x.key: x.ended for x in self.writes}
            self.freshness = self.viewers.finish(self.s3, self.bucket, last_write)
        finally:
            control(self.ctl, "faults/clear", {"id": hold["id"]})
            relay.close()
            invoker.close()
            if replay is not None:
                replay.close()
        return self._measure(t0, t_last, since, lambda_before, invoker, replay)

    def _joined_events(self) -> tuple[int, int]:
        """Events that have joined an OPEN batch of ours (each path item keeps its events' ids,
        beyond 100 it counts them), and how many OPEN batches there are."""
        joined = 0
        open_batches = [b["batchId"] for b in self._batches() if b.get("status") == "OPEN"]
        for batch_id in open_batches:
            paths = self._query_all(KeyConditionExpression=Key("PK").eq(f"BATCH#{batch_id}") & Key("SK").begins_with("PATH#"),
                                    ConsistentRead=True, ProjectionExpression="eventIds, moreEvents")
            joined += sum(len(i.get("eventIds", ())) + int(i.get("moreEvents", 0)) for i in paths)
        return joined, len(open_batches)

    def _events_in_two_batches(self) -> Item:
        """Events whose path went into more than one of our batches: a joiner that found its
        batch closed moved on (docs/design.md §4), so its event is in the closed batch and the
        next. Counted from the path items' event ids (a path item keeps up to 100; beyond, it
        only counts them: ``events_uncounted``)."""
        batches_of: Counter[str] = Counter()
        uncounted = 0
        for batch in self._batches():
            paths = self._query_all(KeyConditionExpression=Key("PK").eq(f"BATCH#{batch['batchId']}") & Key("SK").begins_with("PATH#"),
                                    ProjectionExpression="eventIds, moreEvents")
            batches_of.update({e for item in paths for e in item.get("eventIds", ())})
            uncounted += sum(int(item.get("moreEvents", 0)) for item in paths)
        return {"events": sum(1 for n in batches_of.values() if n > 1), "events_uncounted": uncounted}

    def _hold_until_joined(self, hold: Item, t_last: float) -> Item:
        """Keeps our distribution's Submit held until every event of the burst has joined a batch,
        then releases it.

        The debounce is sized from an assumed emulator rate; a busier machine carries the burst to
        dedupe more slowly than that, and the batch would close on part of it. What the benchmark
        counts is what the pipeline does with one burst, not how fast this machine is, so the
        batch stays OPEN (the stack's GraceSeconds is the settle timeout, so it does not go stale)
        until the burst has joined. On a machine as fast as assumed, nothing is ever held."""
        events = self.workload.events
        seen = (0, 0)

        def joined() -> bool:
            # Counting the events in the batches is a strongly consistent read of every path
            # item, under the emulator's one DynamoDB lock: polled every 2 s through a 5,000-write
            # burst it starved the very joins it waited for. So count only once nothing of the
            # burst is still on its way (no object-changed execution running, nothing queued).
            nonlocal seen
            if control(self.ctl, "sfn/running", {"contains": f'"{self.workload.prefix}'})["running"]:
                return False
            seen = self._joined_events()
            return seen[0] >= events

        try:
            wait_until(joined, self.timeout, f"all {events} events of the burst to join a batch", interval=2.0)
        except BenchError as e:
            raise BenchError(f"{e}: {seen[0]} joined, {seen[1]} OPEN batch(es)") from None
        held = next((f["held"] for f in control(self.ctl, "faults/list")["lambda_hold"] if f["id"] == hold["id"]), 0)
        control(self.ctl, "faults/clear", {"id": hold["id"]})
        released = time.time() - t_last
        self.log(f"  every event joined {released:.1f} s after the last write"
                 + (f"; {held} Submit(s) were held until then" if held else "; no Submit was held"))
        return {"submits_held": held, "joined_after_last_write_s": released}

    # ---- measuring ------------------------------------------------------------------------------
    def _system(self, dist: str, since_seq: int, t0: float, writes: list[Write]) -> Item:
        """CloudFront-side figures of one system, from the model's call log and invalidations."""
        calls = control(self.ctl, "cloudfront/calls", {"distribution_id": dist, "since_seq": since_seq})["calls"]
        invs = [i for i in self._invalidations(dist) if epoch(i["create_time"]) >= t0 - 1]
        lost = lost_writes(writes, invs)
        completes = [epoch(i["create_time"]) + self.in_progress for i in invs]
        outcomes = Counter(c["outcome"] for c in calls)
        t_last = max(x.ended or x.started for x in writes)
        return {
            "distribution_id": dist,
            "create_invalidation_calls": len(calls),
            "invalidations_created": outcomes.get("created", 0),
            "billed_paths": sum(c["billed_paths"] for c in calls),
            "rejected_calls": sum(n for o, n in outcomes.items() if o not in ("created", "existing")),
            "outcomes": dict(outcomes),
            "paths_lost": len(lost),
            "lost_examples": sorted({x.key for x in lost})[:5],
            "last_write_to_all_completed_s": (max(completes) - t_last) if completes else None,
            "timeline": {
                "calls": [{"t": c["time"] - t0, "outcome": c["outcome"], "billed": c["billed_paths"]} for c in calls],
                "completed": sorted(c - t0 for c in completes),
            },
            "plans": [{"paths": len(i["paths"]), "wildcards": sum(p.endswith("*") for p in i["paths"]),
                       "sample": sorted(i["paths"])[:6]} for i in invs[:20]],
        }

    def _histories(self) -> Item:
        """Transitions and Lambda invocations per execution, from Step Functions histories: every
        object-changed execution the ingest pipe started for this run (one per batch of events,
        with how many events it carried) and every invalidate-batch execution."""
        oc_arn = self.info["state_machines"]["ObjectChangedStateMachine"].replace(":stateMachine:", ":execution:")
        events: Counter[str] = Counter(
            d["execution_arn"] for d in control(self.ctl, "events/deliveries")["deliveries"]
            if d.get("ok") and d.get("pipe") and d.get("execution_arn", "").startswith(oc_arn + ":"))
        ingest = [{"events": n, **count_history(self._history(a))} for a, n in sorted(events.items())]
        batch_arn = self.info["state_machines"]["InvalidateBatchStateMachine"]
        batches = [e for p in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=batch_arn) for e in p["executions"]]
        per_batch = [{"name": b["name"], "status": b["status"], **count_history(self._history(b["executionArn"]))} for b in batches]
        return {"ingest_executions": ingest, "per_batch": per_batch}

    def _history(self, arn: str) -> list[Item]:
        events: list[Item] = []
        for page in self.sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
            events += page["events"]
        return events

    def _batches(self) -> list[Item]:
        return self._query_all(IndexName="byDistribution", KeyConditionExpression=Key("gsi1pk").eq(f"DIST#{self.ours}"))

    def _query_all(self, **kwargs: Any) -> list[Item]:
        """Every page of one Query on the table."""
        items: list[Item] = []
        while True:
            page = self.table.query(**kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _measure(self, t0: float, t_last: float, since: dict[str, int], lambda_before: dict[str, int],
                 invoker: AsyncInvoker, replay: Replay | None) -> Item:
        w = self.workload
        ours = self._system(self.ours, since[self.ours], t0, self.writes)
        base = self._system(self.theirs, since[self.theirs], t0, self.writes)
        ours["freshness"], base["freshness"] = self.freshness.get("ours"), self.freshness.get("baseline")
        base.update({"lambda_invocations": invoker.invocations, "invocation_errors": dict(invoker.errors),
                     "events_dropped_after_retries": len(invoker.dropped), "plans": []})
        out: Item = {
            "workload": {"writes": w.writes, "overwrites": w.overwrites, "overwritten_keys": w.overwritten_keys,
                         "directories": w.directories, "events": w.events, "distinct_paths": len(set(w.sequence()))},
            "write_seconds": t_last - t0,
            "write_rate_per_s": w.events / (t_last - t0),
            "writes_timeline": sorted(x.ended - t0 for x in self.writes),
            "in_progress_seconds": self.in_progress,
            "ours": ours,
            "baseline": base,
            "hold": self.hold,
        }
        if replay is not None:
            rep = self._system(self.replay_dist, since[self.replay_dist], t0, replay.writes)
            rep.update({"lambda_invocations": replay.invoker.invocations, "invocation_errors": dict(replay.invoker.errors),
                        "events_dropped_after_retries": len(replay.invoker.dropped), "plans": [],
                        "fed_in_s": replay.fed_in, "rate_per_s": w.events / replay.fed_in if replay.fed_in else None,
                        "started_s": replay.started - t0})
            out["baseline_replay"] = rep
        hist = self._histories()
        lambda_after = {f["logical_id"]: f["invocations"] for f in control(self.ctl, "lambda/stats")["functions"]}
        invocations = {k: v - lambda_before.get(k, 0) for k, v in lambda_after.items() if v - lambda_before.get(k, 0)}
        ddb: dict[str, Item] = {}
        for r in control(self.ctl, "aws/requests", {"service": "dynamodb"})["requests"]:
            entry = ddb.setdefault(r["function"] or "other", {"writes": 0, "reads": 0, "by_operation": {}})
            entry["by_operation"][r["operation"]] = r["count"]
            if r["operation"] in WRITE_OPS:
                entry["writes"] += r["count"]
            elif r["operation"] in READ_OPS:
                entry["reads"] += r["count"]
        ddb.pop("other", None)  # the benchmark's own reads of the table
        ours.update({
            "lambda_invocations": sum(invocations.values()),
            "lambda_invocations_by_function": invocations,
            "dynamodb_requests_by_function": ddb,
            "batches": [{"batchId": b["batchId"], "status": b["status"], "pathsReceived": int(b.get("pathsReceived", 0)),
                         "eventsReceived": int(b.get("eventsReceived", 0)), "pathsBilled": int(b.get("pathsBilled", 0))}
                        for b in self._batches()],
            "histories": hist,
            "in_two_batches": self._events_in_two_batches(),
        })
        return out


def count_history(events: list[Item]) -> Item:
    """State transitions (``*StateEntered``) and task invocations of one execution history."""
    kinds = Counter(e["type"] for e in events)
    lambda_tasks = sum(1 for e in events if e["type"] == "TaskScheduled" and e.get("taskScheduledEventDetails", {}).get("resourceType") == "lambda")
    lambda_tasks += kinds.get("LambdaFunctionScheduled", 0)
    return {
        "transitions": sum(n for k, n in kinds.items() if k.endswith("StateEntered")),
        "lambda_invocations": lambda_tasks,
        "tasks": kinds.get("TaskScheduled", 0) + kinds.get("LambdaFunctionScheduled", 0),
    }


def lost_writes(writes: list[Write], invalidations: list[Item]) -> list[Write]:
    """The writes no Completed invalidation created at or after the write covers (its exact
    path ``/<key>``, or a wildcard ``<prefix>*`` the path starts with)."""
    exact: dict[str, list[float]] = {}
    wildcards: list[tuple[str, float]] = []
    for inv in invalidations:
        if inv["status"] != "Completed":
            continue
        created = epoch(inv["create_time"])
        for p in inv["paths"]:
            if p.endswith("*"):
                wildcards.append((p[:-1], created))
            else:
                exact.setdefault(p, []).append(created)
    for times in exact.values():
        times.sort()
    lost = []
    for w in writes:
        path = "/" + w.key  # the workload's keys need no encoding: both systems send them as is
        times = exact.get(path, [])
        # create_time has millisecond resolution: compare at that resolution
        if times and times[-1] >= w.started - 0.001 and bisect.bisect_left(times, w.started - 0.001) < len(times):
            continue
        if any(path.startswith(prefix) and created >= w.started - 0.001 for prefix, created in wildcards):
            continue
        lost.append(w)
    return lost
