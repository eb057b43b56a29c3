"""The stack process: moto server + extensions + deployment + ``stack.json``.

Why one process: every extension patches moto's in-process models, so they must live where
moto runs. ``Stack.start`` binds a free port first, sets ``MOTO_PORT`` to it (moto's Step
Functions interpreter calls ``http://localhost:$MOTO_PORT``), turns on
``stepfunctions.execute_state_machine``, installs the patches, deploys, and writes
``<state-dir>/stack.json`` atomically (tmp + rename) as the readiness signal.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION_DEFAULT = "us-east-1"


@dataclass
class Settings:
    region: str = REGION_DEFAULT
    distributions: int = 4
    bucket: str | None = None
    in_progress_seconds: float = 5.0
    max_concurrency: int = 8
    # Function timeouts are sized for AWS, where a DynamoDB call takes milliseconds; moto on a
    # loaded 2-core machine can take seconds per call. >1 stretches every function's timeout.
    timeout_scale: float = 1.0
    schedules: bool = True
    rust_log: str = "info"
    parameters: dict[str, str] = field(default_factory=dict)  # template parameter overrides
    # Routes empty: plans follow each distribution's configuration (local/README.md).
    discover: bool = False


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


class Stack:
    def __init__(self, state_dir: Path, settings: Settings) -> None:
        self.state_dir = state_dir.resolve()
        self.settings = settings
        self.region = settings.region
        self.account = "123456789012"
        self.rust_log = settings.rust_log
        self.ready = False
        self.deployment: Any = None
        self.port = 0
        self.endpoint_url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------------
    def start_server(self) -> None:
        """Start moto + extensions (no deployment yet)."""
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._configure_logging()
        import warnings

        # moto warns once per unsupported CloudFormation type; deploy reports those itself.
        warnings.filterwarnings("ignore", message="Tried to parse .* not supported by moto")
        logging.captureWarnings(True)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        os.environ["AWS_DEFAULT_REGION"] = self.region
        os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "false")

        from moto.moto_api._internal.models import moto_api_backend
        from moto.moto_server.werkzeug_app import MotoRequestHandler, create_backend_app
        from werkzeug.serving import ThreadedWSGIServer

        from . import asl_fixes, dynamodb_query, event_targets, lambda_patch, pipes, s3_events, sfn_ext, speedups
        from .cloudfront.edge import Edges
        from .deploy import install_list_defaults, install_no_value, install_parameter_list
        from .cloudfront.models import CloudFrontModel
        from .cloudfront.responses import CloudFrontResponse
        from .control import Control
        from .dispatch import CachedDispatcher
        from .faults import Faults
        from .iam import Iam
        from .lambda_runtime import LISTEN_BACKLOG, RuntimeApi
        from .middleware import Middleware, RequestLog
        from .service_time import ServiceTimes, stamp_accepts, timed
        from .sqs_redrive import MessageMoves

        self.faults = Faults()
        self.iam = Iam(self.account, self.region)
        self.runtime = RuntimeApi()
        self.lambdas = lambda_patch.LambdaService(self.runtime)
        self.events = event_targets.EventTargets(self.faults, self.lambdas)
        self.pipes = pipes.Pipes(self.faults, self.iam, self.events, self.account, self.region)
        self.s3_events = s3_events.S3Events(self.faults)
        self.executions = sfn_ext.Executions()
        self.cloudfront = CloudFrontModel(
            distribution_exists=self._distribution_exists,
            distribution_config=self._distribution_config,
            faults=self.faults,
            in_progress_seconds=self.settings.in_progress_seconds,
        )
        self.edges = Edges(self.account, self.cloudfront)
        self.requests = RequestLog()
        self.message_moves = MessageMoves()
        self.service_times = ServiceTimes()
        self.scheduler = event_targets.Scheduler(self.events, self.account, self.region, enabled=self.settings.schedules)
        control = Control(
            account=self.account,
            region=self.region,
            describe=self.describe,
            is_ready=lambda: self.ready,
            clients=self.clients,
            faults=self.faults,
            cloudfront=self.cloudfront,
            edges=self.edges,
            lambdas=self.lambdas,
            scheduler=self.scheduler,
            events=self.events,
            pipes=self.pipes,
            s3_events=self.s3_events,
            executions=self.executions,
            requests=self.requests,
            service_times=self.service_times,
        )
        middleware = Middleware(
            CachedDispatcher(create_backend_app),
            control=control.dispatch,
            runtime=self.runtime,
            iam=self.iam,
            faults=self.faults,
            cloudfront=CloudFrontResponse(self.cloudfront),
            requests=self.requests,
            message_moves=self.message_moves,
        )
        app = timed(middleware, self.service_times)

        class Server(ThreadedWSGIServer):
            request_queue_size = LISTEN_BACKLOG  # werkzeug's 128 overflows (local/lambda_runtime.py)

        self._server = Server("127.0.0.1", 0, app, handler=MotoRequestHandler)
        stamp_accepts(self._server, self.service_times)
        self.port = self._server.server_port
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        os.environ["MOTO_PORT"] = str(self.port)

        # Not "lambda": {"use_docker": False}: that swaps in moto's echo-only backend and bypasses our pools.
        moto_api_backend.set_config({"stepfunctions": {"execute_state_machine": True}})
        lambda_patch.install(self.lambdas)
        event_targets.install(self.events)
        s3_events.install(self.s3_events)
        sfn_ext.install(self.executions)
        asl_fixes.install()
        dynamodb_query.install()
        speedups.install()
        install_parameter_list()
        install_list_defaults()
        install_no_value()

        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="moto-server")
        self._thread.start()
        self.scheduler.start()

    def deploy(self, template: Path, build_dir: Path) -> None:
        from .deploy import deploy

        self.deployment = deploy(
            self,
            template,
            build_dir,
            bucket=self.settings.bucket,
            distributions=self.settings.distributions,
            overrides=self.settings.parameters,
            max_concurrency=self.settings.max_concurrency,
            timeout_scale=self.settings.timeout_scale,
            discover=self.settings.discover,
        )
        for dist in self.deployment.distribution_ids:
            self.edges.start(dist)
        self.pipes.start()  # once every function's pool is there to run what they start
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        try:
            self.scheduler.stop()
            self.pipes.stop()
        except AttributeError:
            pass
        if getattr(self, "runtime", None) is not None:
            self.runtime.stop()
        if getattr(self, "edges", None) is not None:
            self.edges.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ---- helpers ------------------------------------------------------------------------------
    def clients(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )

    def _distribution_exists(self, dist_id: str) -> bool:
        from moto.cloudfront.models import cloudfront_backends

        return dist_id in cloudfront_backends[self.account]["global"].distributions

    def _distribution_config(self, dist_id: str) -> Any:
        from moto.cloudfront.models import cloudfront_backends

        dist = cloudfront_backends[self.account]["global"].distributions.get(dist_id)
        return dist.distribution_config if dist is not None else None

    def _configure_logging(self) -> None:
        log_file = self.state_dir / "logs" / "stack.log"
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        # moto's per-request logs are noise; errors stay visible.
        for name in ("werkzeug", "moto", "botocore", "boto3", "urllib3"):
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.ERROR)

    def describe(self) -> dict[str, Any]:
        from . import deploy as deploy_module

        dep = self.deployment
        settings = {
            "region": self.region,
            "distributions": self.settings.distributions,
            "cloudfront_in_progress_seconds": self.cloudfront.in_progress_seconds,
            "max_concurrency": self.settings.max_concurrency,
            "timeout_scale": self.settings.timeout_scale,
            "schedules": self.scheduler.enabled,
            "parameters": dep.parameters if dep else {},
        }
        for key, name in (
            ("debounce_seconds", "DebounceSeconds"),
            ("grace_seconds", "GraceSeconds"),
            ("poll_seconds", "PollSeconds"),
        ):
            if dep and name in dep.parameters:
                settings[key] = float(dep.parameters[name])
        out: dict[str, Any] = {
            "pid": os.getpid(),
            "endpoint_url": self.endpoint_url,
            "control_url": f"{self.endpoint_url}/_local",
            "runtime_api": f"127.0.0.1:{self.runtime.port}",
            "region": self.region,
            "account": self.account,
            "state_dir": str(self.state_dir),
            "logs_dir": str(self.state_dir / "logs"),
            "settings": settings,
            "started_at": time.time(),
        }
        if dep:
            out.update(
                stack_name=deploy_module.STACK_NAME,
                bucket=dep.bucket,
                distribution_ids=dep.distribution_ids,
                edges=self.edges.urls(),
                distribution_profiles=dep.distribution_profiles,
                routes=dep.routes,
                routes_json=json.dumps(dep.routes, separators=(",", ":")),
                table=_first(dep, "AWS::DynamoDB::Table"),
                tables={k: v["physical"] for k, v in dep.resources.items() if v["type"] == "AWS::DynamoDB::Table"},
                state_machines=dep.state_machines,
                functions={k: v["name"] for k, v in dep.functions.items()},
                function_details=dep.functions,
                dlq_url=_dlq_url(dep),
                queues={k: v["physical"] for k, v in dep.resources.items() if v["type"] == "AWS::SQS::Queue"},
                rules={k: v["physical"] for k, v in dep.resources.items() if v["type"] == "AWS::Events::Rule"},
                pipes={k: self.pipes.pipes[v["physical"]].describe() for k, v in dep.resources.items() if v["type"] == "AWS::Pipes::Pipe"},
                outputs=dep.outputs,
                resources=dep.resources,
                unsupported_resources=dep.unsupported,
            )
        return out


def _first(dep: Any, rtype: str) -> str | None:
    for v in dep.resources.values():
        if v["type"] == rtype:
            return v["physical"]
    return None


def _dlq_url(dep: Any) -> str | None:
    """The rules' dead-letter queue (EventBridge's), else the first one named like a DLQ."""
    queues = {k: v["physical"] for k, v in dep.resources.items() if v["type"] == "AWS::SQS::Queue"}
    if "EventsDeadLetterQueue" in queues:
        return queues["EventsDeadLetterQueue"]
    for k, url in queues.items():
        if "dead" in k.lower() or "dlq" in k.lower():
            return url
    return next(iter(queues.values()), None)
