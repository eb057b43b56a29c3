"""The control API: ``POST http://127.0.0.1:<port>/_local/<command>`` with a JSON object body.

Why: end-to-end tests (Rust, with a minimal HTTP/1.1 client) must steer the emulation --
CloudFront timing and faults, Lambda crashes -- and read what happened (CreateInvalidation
calls, deliveries, dead letters) without AWS APIs for it. Every command answers JSON; errors
answer 4xx/5xx with ``{"error": "..."}``. See ``local/README.md`` for the reference.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import TYPE_CHECKING, Any, Callable

from . import event_targets, lambda_patch

if TYPE_CHECKING:
    from .cloudfront.edge import Edges
    from .cloudfront.models import CloudFrontModel
    from .event_targets import EventTargets, Scheduler
    from .faults import Faults
    from .lambda_patch import LambdaService
    from .middleware import RequestLog
    from .pipes import Pipes
    from .s3_events import S3Events
    from .service_time import ServiceTimes
    from .sfn_ext import Executions


class Control:
    """The commands, each reading or steering the collaborator it names; ``describe`` and
    ``is_ready`` are the stack's (stack.json, and whether the deployment is done), ``clients``
    makes boto3 clients for the stack's endpoint."""

    def __init__(
        self,
        *,
        account: str,
        region: str,
        describe: Callable[[], dict[str, Any]],
        is_ready: Callable[[], bool],
        clients: Callable[[str], Any],
        faults: "Faults",
        cloudfront: "CloudFrontModel",
        edges: "Edges",
        lambdas: "LambdaService",
        scheduler: "Scheduler",
        events: "EventTargets",
        pipes: "Pipes",
        s3_events: "S3Events",
        executions: "Executions",
        requests: "RequestLog",
        service_times: "ServiceTimes",
    ) -> None:
        self.account, self.region = account, region
        self.describe, self.is_ready, self.clients = describe, is_ready, clients
        self.faults, self.cloudfront, self.lambdas, self.scheduler = faults, cloudfront, lambdas, scheduler
        self.events, self.pipes, self.s3, self.executions = events, pipes, s3_events, executions
        self.requests, self.service_times = requests, service_times
        self.edges = edges
        self._denials = itertools.count(1)
        self.commands: dict[str, Callable[[dict[str, Any]], Any]] = {
            "health": self.health,
            "settings": lambda b: self.describe(),
            # CloudFront
            "cloudfront/in-progress-seconds": self.cf_in_progress,
            "cloudfront/complete": lambda b: {"completed": self.cloudfront.complete_all(b.get("distribution_id"))},
            "cloudfront/calls": self.cf_calls,
            "cloudfront/reset-calls": lambda b: {"removed": self.cloudfront.reset_calls()},
            "cloudfront/invalidations": lambda b: {"invalidations": self.cloudfront.snapshot(b.get("distribution_id"))},
            "cloudfront/hold-limit": self.cf_hold_limit,
            "cloudfront/cache-tag-header": lambda b: self.cloudfront.set_cache_tag_header(b["distribution_id"], b.get("header")) or {},
            # the viewer-facing edge caches (local/cloudfront/edge.py)
            "edge/stats": lambda b: {"edges": self.edges.stats(b.get("distribution_id"))},
            # faults
            "faults/set": self.fault_set,
            "faults/clear": lambda b: {"removed": self.faults.clear(b.get("kind"), b.get("id"))},
            "faults/list": lambda b: self.faults.list(),
            "faults/seed": lambda b: (self.faults.seed(b.get("seed")), {"ok": True})[1],
            # IAM: an operator narrowing a function's role (a real inline policy, judged by local/iam.py)
            "iam/deny": self.iam_deny,
            "iam/undo": self.iam_undo,
            # Lambda
            "lambda/invoke": self.lambda_invoke,
            "lambda/stats": lambda b: {"functions": [p.stats() for p in self.lambdas.runtime.pools.values()]},
            "lambda/async-log": lambda b: {"entries": list(self.lambdas.async_log)},
            "sweep": self.sweep,
            "schedule/fire": self.schedule_fire,
            "schedule/enable": self.schedule_enable,
            # events
            "events/deliveries": lambda b: {"deliveries": list(self.events.deliveries)},
            "events/dead-letters": lambda b: {"dead_letters": list(self.events.dead_letters)},
            "pipes/batches": lambda b: {"batches": list(self.pipes.batches)},
            "s3/events": self.s3_events,
            "s3/key-encoding": self.s3_key_encoding,
            "sfn/status-events": lambda b: {"events": list(self.executions.status_events)},
            "sfn/running": lambda b: {"running": self.executions.running(str(b["contains"])) + self.pipes.queued(str(b["contains"]))},
            "trace": self.trace,
            # AWS requests received, by calling function
            "aws/requests": lambda b: {"requests": self.requests.snapshot(b.get("service"))},
            "aws/reset-requests": lambda b: {"removed": self.requests.reset()},
            # time the stack spent answering the requests signed with one access key
            "aws/service-time": lambda b: self.service_times.snapshot(b["access_key"]),
        }

    def dispatch(self, command: str, body: dict[str, Any]) -> Any:
        handler = self.commands.get(command)
        if handler is None:
            raise KeyError(command)
        return handler(body)

    # ---- handlers ------------------------------------------------------------------------------
    def health(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid(), "ready": self.is_ready(), "time": time.time()}

    def cf_in_progress(self, body: dict[str, Any]) -> dict[str, Any]:
        seconds = float(body["seconds"])
        self.cloudfront.set_in_progress_seconds(seconds, body.get("distribution_id"))
        return {"ok": True, "seconds": seconds, "distribution_id": body.get("distribution_id")}

    def cf_calls(self, body: dict[str, Any]) -> dict[str, Any]:
        calls = self.cloudfront.list_calls(body.get("distribution_id"), int(body.get("since_seq", 0)))
        created = [c for c in calls if c["outcome"] == "created"]
        return {
            "calls": calls,
            "count": len(calls),
            "created": len(created),
            "billed_paths": sum(c["billed_paths"] for c in calls),
            "last_seq": calls[-1]["seq"] if calls else int(body.get("since_seq", 0)),
        }

    def cf_hold_limit(self, body: dict[str, Any]) -> dict[str, Any]:
        spec = {
            "code": "TooManyInvalidationsInProgress",
            "operation": "CreateInvalidation:limit",
            "distribution_id": body.get("distribution_id"),
            "seconds": body.get("seconds"),
        }
        return self.faults.add("cloudfront", spec)

    def fault_set(self, body: dict[str, Any]) -> dict[str, Any]:
        spec = dict(body)
        kind = spec.pop("kind")
        return self.faults.add(kind, spec)

    def iam_deny(self, body: dict[str, Any]) -> dict[str, Any]:
        """Put an inline policy denying ``action`` on ``resource`` on ``function``'s role (or on
        the role ``role``, a logical id or name, e.g. the pipe's), through the IAM API as an
        operator would; the next such request of its holder is refused."""
        if "role" in body:
            resources = self.describe().get("resources", {})
            role_name = resources.get(body["role"], {}).get("physical") or body["role"]
        else:
            pool = self.lambdas.runtime.pool_for(body["function"])
            if pool is None:
                raise ValueError(f"no local function {body['function']!r}")
            role = self.clients("lambda").get_function_configuration(FunctionName=pool.function_name)["Role"]
            role_name = role.rsplit("/", 1)[-1]
        policy = f"local-deny-{next(self._denials)}"
        document = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Action": body["action"], "Resource": body["resource"]}],
        }
        self.clients("iam").put_role_policy(RoleName=role_name, PolicyName=policy, PolicyDocument=json.dumps(document))
        return {"role": role_name, "policy": policy}

    def iam_undo(self, body: dict[str, Any]) -> dict[str, Any]:
        self.clients("iam").delete_role_policy(RoleName=body["role"], PolicyName=body["policy"])
        return {"ok": True}

    def lambda_invoke(self, body: dict[str, Any]) -> dict[str, Any]:
        pool = self.lambdas.runtime.pool_for(body["function"])
        if pool is None:
            raise ValueError(f"no local function {body['function']!r}")
        payload = body.get("payload", {})
        result = pool.invoke(json.dumps(payload).encode())
        return {
            "function_error": result.function_error,
            "error_type": result.error_type,
            "payload": lambda_patch.decode_payload(result.payload),
        }

    def sweep(self, body: dict[str, Any]) -> dict[str, Any]:
        """Invoke the sweep function now (synchronously) with a scheduled-event payload."""
        name = body.get("function", "SweepFunction")
        payload = {
            "version": "0",
            "id": "local-sweep",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account,
            "time": event_targets.iso(None),
            "region": self.region,
            "resources": [],
            "detail": {},
        }
        return self.lambda_invoke({"function": name, "payload": payload})

    def schedule_fire(self, body: dict[str, Any]) -> dict[str, Any]:
        fired = []
        for rule in self.scheduler.rules():
            if body.get("rule") in (None, rule.name):
                self.scheduler.fire(rule)
                fired.append(rule.name)
        return {"fired": fired}

    def schedule_enable(self, body: dict[str, Any]) -> dict[str, Any]:
        self.scheduler.enabled = bool(body.get("enabled", True))
        return {"enabled": self.scheduler.enabled}

    def s3_events(self, body: dict[str, Any]) -> dict[str, Any]:
        """Recent S3 events; with ``after_sequencer`` only the later ones (sequencers are
        fixed-width hex, so string order is event order), so a poller reads each event once."""
        after = body.get("after_sequencer")
        events = list(self.s3.sent)
        if after:
            events = [e for e in events if e["detail"]["object"]["sequencer"] > after]
        return {"events": events}

    def trace(self, body: dict[str, Any]) -> dict[str, Any]:
        """Where the changes whose event names ``contains`` (e.g. a key) went: their S3 events,
        those events' deliveries and dead letters, and the executions whose input names it. A
        test that gives up on a change prints this, so a failure says at which hop it was lost."""
        marker = str(body["contains"])
        events = [e for e in list(self.s3.sent) if marker in json.dumps(e["detail"], ensure_ascii=False)]
        ids = {e["id"] for e in events}
        return {
            "events": events,
            "deliveries": [d for d in list(self.events.deliveries) if d["event_id"] in ids],
            "dead_letters": [d for d in list(self.events.dead_letters) if d["event_id"] in ids],
            "executions": self.executions.executions_with(marker),
        }

    def s3_key_encoding(self, body: dict[str, Any]) -> dict[str, Any]:
        enc = body.get("encoding", "raw")
        if enc not in ("raw", "form"):
            raise ValueError("encoding must be 'raw' or 'form'")
        self.s3.key_encoding = enc
        return {"encoding": enc}
