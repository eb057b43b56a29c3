"""``python -m local.demo --state-dir .local``: the main job, end to end, on a running local stack.

Uploads a small burst of site files (and deletes one) in the watched bucket, then follows what
the deployed template does with them: the object-changed executions, the invalidate-batch
executions, and the CreateInvalidation calls CloudFront received, until every invalidation is
Completed. Exit 0 when the burst ended in Completed invalidations and no execution failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3


def _control(info: dict[str, Any], command: str, body: dict | None = None) -> Any:
    req = urllib.request.Request(f"{info['control_url']}/{command}", data=json.dumps(body or {}).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", default=".local")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    info = json.loads((Path(args.state_dir) / "stack.json").read_text())
    kw = dict(endpoint_url=info["endpoint_url"], region_name=info["region"], aws_access_key_id="local", aws_secret_access_key="local")
    s3, sfn = boto3.client("s3", **kw), boto3.client("stepfunctions", **kw)
    prefix = info["routes"][0]["keyPrefix"]
    dist = info["routes"][0]["distributionId"]
    keys = [f"{prefix}index.html", f"{prefix}css/site.css", f"{prefix}blog/hello world.html", f"{prefix}blog/café.html", f"{prefix}img/logo.png"]
    print(f"bucket {info['bucket']} -> distribution {dist}")
    since = _control(info, "cloudfront/calls", {"distribution_id": dist})["last_seq"]
    started = time.time()
    for key in keys:
        s3.put_object(Bucket=info["bucket"], Key=key, Body=f"content of {key}".encode())
        print(f"  put    s3://{info['bucket']}/{key}")
    s3.delete_object(Bucket=info["bucket"], Key=keys[-1])
    print(f"  delete s3://{info['bucket']}/{keys[-1]}")

    machines = info["state_machines"]
    deadline = started + args.timeout
    ok = False
    while time.time() < deadline:
        runs = {name: sfn.list_executions(stateMachineArn=arn)["executions"] for name, arn in machines.items()}
        failed = [(n, e["name"], e["status"]) for n, es in runs.items() for e in es if e["status"] in ("FAILED", "TIMED_OUT", "ABORTED")]
        if failed:
            print(f"failed executions: {failed}", file=sys.stderr)
            break
        calls = _control(info, "cloudfront/calls", {"distribution_id": dist, "since_seq": since})
        invs = {i["id"]: i for i in _control(info, "cloudfront/invalidations", {"distribution_id": dist})["invalidations"]}
        created = [c for c in calls["calls"] if c["outcome"] == "created"]
        running = [e for es in runs.values() for e in es if e["status"] == "RUNNING"]
        if created and not running and all(invs[c["invalidation_id"]]["status"] == "Completed" for c in created):
            ok = True
            break
        time.sleep(0.5)

    calls = _control(info, "cloudfront/calls", {"distribution_id": dist, "since_seq": since})
    print(f"\nexecutions after {time.time() - started:.1f}s:")
    for name, arn in machines.items():
        for e in sfn.list_executions(stateMachineArn=arn)["executions"]:
            print(f"  {name:<30} {e['name'][:40]:<40} {e['status']}")
    print(f"\nCreateInvalidation calls on {dist}: {calls['count']} ({calls['created']} created, {calls['billed_paths']} paths billed)")
    for c in calls["calls"]:
        print(f"  {c['iso_time']} {c['outcome']:<10} ref={c['caller_reference']} paths={c['paths']}")
    print("\nresult:", "every change is in a Completed invalidation" if ok else "NOT completed in time")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
