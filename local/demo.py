"""``python -m local.demo --state-dir .local``: the main job, end to end, on a running local stack.

Uploads a small site (tricky keys included) and reads two of its pages through the
distribution's edge cache, then a concurrent burst of 300 files, two overwrites and a delete;
reads the overwritten page again (still the old copy, from the cache), waits until every batch
of the distribution is COMPLETED and every invalidation Completed, reads the pages again (fresh),
then prints what was invalidated, the audit trail from the table, how the tricky keys were
encoded, and the cost: CloudFront's against one invalidation per event, and the pipeline's own.
Exit 0 on success, 1 on a failed batch or execution, or at the deadline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import boto3
from boto3.dynamodb.conditions import Key
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

PRICE_PER_PATH = 0.005  # USD per path beyond the free 1,000 paths a month
# The README's cost model (us-east-1 list prices): Step Functions Standard per state transition,
# an arm64 Lambda invocation of ~20 ms at 128 MB (request + duration), DynamoDB on demand per
# write and per strongly consistent read request unit.
PRICE_PER_TRANSITION = 0.025 / 1000
PRICE_PER_INVOCATION = 0.0000002 + 0.02 * 0.125 * 0.0000133334
PRICE_PER_WRITE = 0.625 / 1_000_000
PRICE_PER_READ = 0.125 / 1_000_000
DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
TRICKY_KEYS = ["blog/hello world.html", "blog/c++ tips.html", "blog/서울.html", "blog/🎉 party.html", "users/~alice/index.html"]
SITE_KEYS = ["index.html", "about/index.html", "css/site.css", *TRICKY_KEYS]
BURST_KEYS = [f"img/a/photo-{i:03}.jpg" for i in range(100)] + [f"img/b/thumb-{i:03}.jpg" for i in range(100)] \
    + [f"docs/page-{i:03}.html" for i in range(100)]
OVERWRITTEN = ["index.html", "css/site.css"]
DELETED = "css/old.css"
VIEWED = ["index.html", DELETED]  # read through the edge before and after
SHOWN_PATHS = 12
Item = dict[str, Any]


class DemoError(Exception):
    """A failure the demo reports in one message before exiting 1."""


def control(info: Item, command: str, body: Item | None = None) -> Any:
    """POST a command to the local stack's control API."""
    req = urllib.request.Request(f"{info['control_url']}/{command}", data=json.dumps(body or {}).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())


def query_all(table: Any, **kwargs: Any) -> list[Item]:
    """Every item of a DynamoDB Query, following LastEvaluatedKey."""
    items: list[Item] = []
    while True:
        page = table.query(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def edge_get(url: str) -> tuple[int, str, str]:
    """(status, body, X-Cache) of a viewer's GET through the edge."""
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback
            return resp.status, resp.read().decode(), resp.headers["X-Cache"]
    except urllib.error.HTTPError as e:
        return e.code, "", e.headers["X-Cache"]


def event_batches(path_items: dict[str, list[Item]]) -> dict[str, set[str]]:
    """Event id -> the batches whose path items name it (batch id -> its items)."""
    seen: dict[str, set[str]] = {}
    for batch_id, items in path_items.items():
        for item in items:
            for event_id in item.get("eventIds", ()):
                seen.setdefault(event_id, set()).add(batch_id)
    return seen


def pipeline_cost(transitions: int, invocations: int, writes: int, reads: int) -> float:
    """USD at the README's cost model prices; a write counts twice (the item and its index entry)."""
    return transitions * PRICE_PER_TRANSITION + invocations * PRICE_PER_INVOCATION + 2 * writes * PRICE_PER_WRITE \
        + reads * PRICE_PER_READ


def parse_time(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")) if iso else None


def clock(t: datetime | str | None) -> str:
    """``HH:MM:SS.mmm`` (UTC) of a time or an ISO timestamp, ``-`` if absent."""
    t = parse_time(t) if isinstance(t, str) else t
    return t.astimezone(timezone.utc).strftime("%H:%M:%S.%f")[:-3] if t else "-"


def covered(path: str, planned: Iterable[str]) -> bool:
    """Whether a planned path (exact, or a wildcard ``prefix*``) covers ``path``."""
    return any(p == path or (p.endswith("*") and path.startswith(p[:-1])) for p in planned)


def shorten(items: list[str], limit: int = SHOWN_PATHS) -> list[str]:
    """At most ``limit`` items, then ``... and N more``."""
    return items if len(items) <= limit else [*items[:limit], f"... and {len(items) - limit} more"]


def render(headers: list[str], rows: list[list[Any]], indent: str = "  ") -> str:
    """An aligned plain-text table (numbers right-aligned)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) and rows != [] for i in range(len(headers))]
    def line(row: list[str]) -> str:
        return indent + "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


class Demo:
    """One run against the stack described by ``stack.json``."""

    def __init__(self, state_dir: Path, timeout: float) -> None:
        self.info: Item = json.loads((state_dir / "stack.json").read_text())
        kw = dict(endpoint_url=self.info["endpoint_url"], region_name=self.info["region"],
                  aws_access_key_id="local", aws_secret_access_key="local", config=Config(max_pool_connections=32))
        self.s3, self.sfn, self.cf = (boto3.client(s, **kw) for s in ("s3", "stepfunctions", "cloudfront"))
        self.table = boto3.resource("dynamodb", **kw).Table(self.info["table"])
        self.bucket: str = self.info["bucket"]
        self.dist: str = self.info["routes"][0]["distributionId"]
        self.prefix: str = self.info["routes"][0]["keyPrefix"]
        self.edge: str = self.info["edges"][self.dist]
        self.timeout = timeout
        self.since_seq = 0  # CloudFront call log position when the demo started

    def batches(self) -> list[Item]:
        """Batch items of the distribution, oldest first (index byDistribution)."""
        return query_all(self.table, IndexName="byDistribution", KeyConditionExpression=Key("gsi1pk").eq(f"DIST#{self.dist}"))

    def children(self, batch_id: str, prefix: str) -> list[Item]:
        """Path (``PATH#``) or plan chunk (``PLAN#``) items of a batch, strongly consistent."""
        cond = Key("PK").eq(f"BATCH#{batch_id}") & Key("SK").begins_with(prefix)
        return query_all(self.table, KeyConditionExpression=cond, ConsistentRead=True)

    def chunks(self, batch: Item) -> list[Item]:
        """The chunks of the batch's committed plan (an uncommitted retry may have left others)."""
        return [c for c in self.children(batch["batchId"], "PLAN#") if c["SK"].startswith(f"PLAN#{batch.get('planId')}#")]

    def put(self, key: str, body: str) -> None:
        """PutObject in the watched bucket, under the route's key prefix."""
        self.s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=body.encode())

    def view(self, key: str) -> tuple[int, str, str]:
        """A viewer's GET of ``key`` through the distribution's edge cache."""
        return edge_get(f"{self.edge}/{urllib.parse.quote(key)}")

    def show_views(self, when: str) -> list[tuple[int, str, str]]:
        views = [self.view(key) for key in VIEWED]
        for key, (status, body, cache) in zip(VIEWED, views):
            print(f"  {when:<28} GET /{key:<12} {status} {cache:<22} {body or '(no body)'}")
        return views

    def upload(self) -> int:
        """Writes the site, reads it through the edge, writes the burst, the overwrites and the
        delete, reads the site again (stale); returns the number of S3 operations."""
        print(f"bucket s3://{self.bucket} -> distribution {self.dist} (debounce {self.info['settings']['debounce_seconds']:g} s), "
              f"edge {self.edge}")
        for key in [DELETED, *SITE_KEYS]:
            self.put(key, f"<!-- {key} v1 -->")
        print(f"  put {1 + len(SITE_KEYS)} site files: {', '.join([DELETED, *SITE_KEYS])}")
        self.show_views("viewer, first read:")
        self.show_views("viewer, second read:")
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda key: self.put(key, f"burst {key}"), BURST_KEYS))
        print(f"  put {len(BURST_KEYS)} files under img/a/, img/b/, docs/ with 16 threads in {time.monotonic() - started:.1f} s")
        for key in OVERWRITTEN:
            self.put(key, f"<!-- {key} v2 -->")
        self.s3.delete_object(Bucket=self.bucket, Key=self.prefix + DELETED)
        print(f"  overwrote {', '.join(OVERWRITTEN)}; deleted {DELETED}")
        if any(status != 200 or "v1" not in body for status, body, _ in self.show_views("viewer, after the changes:")):
            raise DemoError("the edge should still serve the cached v1 copies before any invalidation completes")
        return 1 + len(SITE_KEYS) + len(BURST_KEYS) + len(OVERWRITTEN) + 1

    def execution_error(self, arn: str | None) -> str:
        """``error: cause`` of a finished execution, from DescribeExecution."""
        if not arn:
            return "no execution ARN recorded"
        d = self.sfn.describe_execution(executionArn=arn)
        return f"{d['status']} {d.get('error', '?')}: {d.get('cause', '?')} ({arn})"

    def check_failures(self, batches: list[Item], since: datetime) -> None:
        """Raises on a FAILED batch, or a failed object-changed execution started since the upload."""
        for b in batches:
            if b["status"] == "FAILED":
                raise DemoError(f"batch {b['batchId']} FAILED ({b.get('lastError', 'no lastError')}); "
                                f"execution: {self.execution_error(b.get('executionArn'))}")
        arn = self.info["state_machines"]["ObjectChangedStateMachine"]
        for status in ("FAILED", "TIMED_OUT", "ABORTED"):
            for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=arn, statusFilter=status):
                for e in page["executions"]:
                    if e["startDate"] >= since:
                        raise DemoError(f"object-changed execution {e['name']}: {self.execution_error(e['executionArn'])}")

    def settled(self, batches: list[Item], expected: set[str]) -> bool:
        """Every batch COMPLETED, every expected event in a path its batch's plan covers, every
        invalidation of those plans (and every CreateInvalidation since the start) Completed."""
        if not batches or any(b["status"] != "COMPLETED" for b in batches):
            return False
        seen: set[str] = set()
        for b in batches:
            planned = [p for c in self.chunks(b) for p in c["paths"]]
            for item in self.children(b["batchId"], "PATH#"):
                if covered(item["path"], planned):
                    seen |= item.get("eventIds", set())
        if not expected <= seen:
            return False
        ids = {c["invalidationId"] for b in batches for c in self.chunks(b) if c.get("invalidationId")}
        ids |= {c["invalidation_id"] for c in self.calls() if c["outcome"] == "created"}
        return all(self.invalidation(i)["Status"] == "Completed" for i in ids)

    def calls(self) -> list[Item]:
        """CreateInvalidation calls CloudFront received since the demo started."""
        return control(self.info, "cloudfront/calls", {"distribution_id": self.dist, "since_seq": self.since_seq})["calls"]

    def invalidation(self, inv_id: str) -> Item:
        return self.cf.get_invalidation(DistributionId=self.dist, Id=inv_id)["Invalidation"]

    def run(self) -> int:
        """Upload, wait, report; the exit status."""
        old = {b["batchId"] for b in self.batches() if b["status"] in ("COMPLETED", "FAILED")}
        old_events = {e["id"] for e in control(self.info, "s3/events")["events"]}
        self.since_seq = control(self.info, "cloudfront/calls", {"distribution_id": self.dist})["last_seq"]
        usage_before = self.usage()
        t0 = datetime.now(timezone.utc)
        n_events = self.upload()
        events = [e for e in control(self.info, "s3/events")["events"]
                  if e["id"] not in old_events and e["detail"]["bucket"]["name"] == self.bucket]
        if len(events) != n_events:
            raise DemoError(f"{n_events} S3 operations but {len(events)} S3 events were emitted")
        expected = {e["id"] for e in events}
        print(f"{n_events} S3 events sent; waiting (at most {self.timeout:g} s) for every batch to be COMPLETED ...")
        deadline = time.monotonic() + self.timeout
        seen: dict[str, str] = {}
        while True:
            batches = [b for b in self.batches() if b["batchId"] not in old]
            for b in batches:
                if seen.get(b["batchId"]) != b["status"]:
                    elapsed = (datetime.now(timezone.utc) - t0).total_seconds()
                    print(f"  {elapsed:5.1f} s  batch {b['batchId']}  {seen.get(b['batchId'], 'new'):>9} -> {b['status']}")
                    seen[b["batchId"]] = b["status"]
            self.check_failures(batches, t0)
            if self.settled(batches, expected):
                break
            if time.monotonic() > deadline:
                states = ", ".join(f"{b['batchId']}={b['status']}" for b in batches) or "no batch yet"
                raise DemoError(f"timed out after {self.timeout:g} s: {states}; see {self.info['logs_dir']}/*.log")
            time.sleep(0.5)
        done = datetime.now(timezone.utc)
        views = self.show_views("viewer, after Completed:")
        stale = [key for key, (status, body, _) in zip(VIEWED, views) if (status == 200) != (key in OVERWRITTEN) or "v1" in body]
        usage = {k: v - usage_before[k] for k, v in self.usage().items()}
        usage["transitions"] = self.transitions(t0)
        self.report(batches, events, t0, done, usage)
        if stale:
            raise DemoError(f"stale after every invalidation Completed: {', '.join(stale)}")
        return 0

    def usage(self) -> dict[str, int]:
        """Lambda invocations and DynamoDB write and read requests the stack has served so far."""
        invocations = sum(f["invocations"] for f in control(self.info, "lambda/stats")["functions"])
        requests = control(self.info, "aws/requests", {"service": "dynamodb"})["requests"]
        writes = sum(r["count"] for r in requests if r["operation"] in DYNAMODB_WRITES)
        return {"invocations": invocations, "writes": writes, "reads": sum(r["count"] for r in requests) - writes}

    def transitions(self, since: datetime) -> int:
        """State transitions (states entered) of the executions started since ``since``, from
        their histories."""
        n = 0
        for arn in self.info["state_machines"].values():
            for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
                for e in page["executions"]:
                    if e["startDate"] < since:
                        continue
                    for history in self.sfn.get_paginator("get_execution_history").paginate(executionArn=e["executionArn"]):
                        n += sum(1 for h in history["events"] if h["type"].endswith("StateEntered"))
        return n

    def report(self, batches: list[Item], events: list[Item], t0: datetime, done: datetime, usage: dict[str, int]) -> None:
        """Prints the invalidations, the audit trail, the tricky keys, the cost and the time."""
        chunks = {b["batchId"]: sorted(self.chunks(b), key=lambda c: c["SK"]) for b in batches}
        path_items = {b["batchId"]: self.children(b["batchId"], "PATH#") for b in batches}
        print("\nWhat was invalidated")
        rows, lists = [], []
        for b in batches:
            for c in chunks[b["batchId"]]:
                if not c.get("invalidationId"):
                    continue
                inv = self.invalidation(c["invalidationId"])
                paths = sorted(inv["InvalidationBatch"]["Paths"].get("Items", []))
                took = (parse_time(c.get("completedAt")) - parse_time(b["openedAt"])).total_seconds()
                rows.append([inv["Id"], inv["InvalidationBatch"]["CallerReference"], inv["Status"], len(paths), f"{took:.1f} s"])
                lists.append((inv["Id"], paths))
        print(render(["INVALIDATION", "CALLER REFERENCE", "STATUS", "PATHS", "FIRST WRITE -> COMPLETED"], rows))
        for inv_id, paths in lists:
            print(f"  {inv_id}:")
            for path in shorten(paths):
                print(f"      {path}")

        print("\nAudit trail (table items BATCH#<id>/META, index byDistribution; times UTC)")
        rows = [[b["batchId"], b["status"], clock(b.get("openedAt")), clock(b.get("closedAt")), clock(b.get("submittedAt")),
                 clock(b.get("completedAt")), int(b.get("eventsReceived", 0)), int(b.get("pathsReceived", 0)),
                 int(b.get("pathsBilled", 0)), " ".join(c.get("invalidationId", "?") for c in chunks[b["batchId"]])] for b in batches]
        print(render(["BATCH", "STATUS", "OPENED", "CLOSED", "SUBMITTED", "COMPLETED", "EVENTS", "PATHS", "BILLED",
                      "INVALIDATIONS"], rows))
        in_batches = event_batches(path_items)
        twice = sum(1 for e in events if len(in_batches.get(e["id"], ())) > 1)
        total = sum(int(b.get("eventsReceived", 0)) for b in batches)
        print(f"  {len(events)} S3 events, each in a batch; the EVENTS column sums to {total}"
              + (f": {twice} events joined a batch as it closed and, by design, the next one too (docs/design.md §4)" if twice else ""))
        if len(batches) > 1:
            print(f"  {len(batches)} batches: the events' joins outlasted the {self.info['settings']['debounce_seconds']:g} s debounce "
                  "(fixed from a batch's opening), so a directory changed in two batches is billed in each")

        print("\nTricky keys (path items PATH#<sha256>: key -> path)")
        by_event: dict[str, list[Item]] = {}
        for items in path_items.values():
            for item in items:
                for event_id in item.get("eventIds", ()):
                    by_event.setdefault(event_id, []).append(item)
        for key in TRICKY_KEYS:
            items = {i["path"]: i for e in events if e["detail"]["object"]["key"] == self.prefix + key for i in by_event.get(e["id"], [])}
            as_sent = sorted(items, key=lambda p: (items[p]["key"] != self.prefix + key, p))  # the raw reading first
            shown = [p if items[p]["key"] == self.prefix + key else f"{p} (key read form-decoded: {items[p]['key']!r})" for p in as_sent]
            print(f"  {key} -> {', '.join(shown) or 'NO PATH'}")

        calls = self.calls()
        n, m = len(events), sum(1 for c in calls if c["outcome"] == "created")
        billed = sum(c["billed_paths"] for c in calls)
        extra = f" (+{len(calls) - m} repeated calls answered with the existing invalidation)" if len(calls) > m else ""
        print(f"\nCost: {n} S3 events -> {m} CreateInvalidation requests{extra}, {billed} paths billed (the classic "
              f"one-Lambda-per-event approach: {n} requests, {n} paths billed); the {n - billed} paths saved are worth "
              f"${(n - billed) * PRICE_PER_PATH:.2f} beyond the free tier (${PRICE_PER_PATH} per path after 1,000 a month)")
        cost = pipeline_cost(**usage)
        print(f"      the pipeline itself: {usage['transitions']} Step Functions transitions, {usage['invocations']} Lambda "
              f"invocations, {usage['writes']} DynamoDB writes and {usage['reads']} reads: ${cost:.4f} (${cost / n:.6f} per "
              f"event, README cost model prices); saved net of it: ${(n - billed) * PRICE_PER_PATH - cost:.2f}")
        last = max(parse_time(b["completedAt"]) for b in batches)
        print(f"Elapsed: first upload {clock(t0)} -> last batch COMPLETED {clock(last)}: {(last - t0).total_seconds():.1f} s "
              f"(all Completed seen by the demo after {(done - t0).total_seconds():.1f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", type=Path, default=Path(".local"))
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait, after the uploads, for Completed (default 120)")
    args = parser.parse_args(argv)
    if not (args.state_dir / "stack.json").exists():
        print(f"FAILED: no {args.state_dir}/stack.json: start the stack first (make up)", file=sys.stderr)
        return 1
    try:
        return Demo(args.state_dir, args.timeout).run()
    except (DemoError, BotoCoreError, ClientError, OSError) as e:
        print(f"\nFAILED: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
