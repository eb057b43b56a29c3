"""Shared fixtures: one in-process stack (moto + extensions, no template) for the module tests.

The stack under test is the real one (:class:`local.stack.Stack`), minus the deployment, so each
test creates just the resources it needs through the AWS APIs, like a client would.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest
from botocore.config import Config

HERE = Path(__file__).parent
FAKE = HERE / "fake_bootstrap.py"


def wait_for(predicate: Callable[[], Any], timeout: float = 120.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def make_fake_binary(directory: Path, name: str) -> Path:
    """An executable that runs fake_bootstrap.py with this interpreter (stands in for a Rust binary)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    path.chmod(0o755)
    return path


class StackHandle:
    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.endpoint = stack.endpoint_url

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )

    def control(self, command: str, body: dict | None = None, expect: int = 200) -> Any:
        req = urllib.request.Request(
            f"{self.endpoint}/_local/{command}", data=json.dumps(body or {}).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, data = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        assert status == expect, (status, data)
        return json.loads(data)

    def add_function(self, logical_id: str, tmp: Path, timeout: float = 5, env: dict | None = None, max_concurrency: int = 4, role: str | None = None) -> Any:
        """Create a Lambda function in moto and a pool running the fake bootstrap for it. With
        ``role`` (an IAM role ARN) its processes sign with sessions of that role, so local/iam.py
        judges their requests as a deployed function's; without, they are not judged."""
        from local.deploy import base_function_env
        from local.lambda_runtime import FunctionPool

        lam = self.client("lambda")
        iam = self.client("iam")
        function_role = role or iam.create_role(RoleName=f"r-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        from local.sam import dummy_zip

        name = f"{logical_id}-{uuid.uuid4().hex[:6]}"
        conf = lam.create_function(
            FunctionName=name,
            Runtime="provided.al2023",
            Handler="bootstrap",
            Role=function_role,
            Code={"ZipFile": dummy_zip()},
            Timeout=int(timeout),
            Environment={"Variables": env or {}},
        )
        binary = make_fake_binary(tmp / "bin", logical_id)
        pool = FunctionPool(
            runtime=self.stack.runtime,
            logical_id=logical_id,
            function_name=conf["FunctionName"],
            function_arn=conf["FunctionArn"],
            command=[str(binary)],
            env=base_function_env(self.stack, conf),
            timeout=float(timeout),
            max_concurrency=max_concurrency,
            log_path=self.stack.state_dir / "logs" / f"{logical_id}.log",
            should_crash=self.stack.faults.lambda_should_crash,
            hold_for=self.stack.faults.lambda_hold_for,
            admit=self.stack.faults.lambda_admit,
            credentials=(lambda: self.stack.iam.session(role, name)) if role else None,
        )
        self.stack.runtime.add_pool(pool)
        return pool

    def state_machine(self, definition: dict, name: str | None = None) -> str:
        sfn = self.client("stepfunctions")
        return sfn.create_state_machine(
            name=name or f"sm-{uuid.uuid4().hex[:8]}",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]

    def run(self, sm_arn: str, payload: Any = None, name: str | None = None, timeout: float = 120) -> dict:
        sfn = self.client("stepfunctions")
        arn = sfn.start_execution(stateMachineArn=sm_arn, name=name or uuid.uuid4().hex, input=json.dumps(payload or {}))["executionArn"]
        return self.finish(arn, timeout)

    def finish(self, exec_arn: str, timeout: float = 120) -> dict:
        sfn = self.client("stepfunctions")
        return wait_for(
            lambda: (d := sfn.describe_execution(executionArn=exec_arn))["status"] != "RUNNING" and d,
            timeout=timeout,
            what=f"execution {exec_arn} to end",
        )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from local.stack import Settings, Stack

    state = tmp_path_factory.mktemp("stack")
    st = Stack(state, Settings(in_progress_seconds=1.0, schedules=False))
    st.start_server()
    st.ready = True
    handle = StackHandle(st)
    yield handle
    st.stop()


@pytest.fixture(autouse=True)
def _clear_faults(request: pytest.FixtureRequest) -> Any:
    yield
    if "stack" in request.fixturenames:
        request.getfixturevalue("stack").stack.faults.clear()


@pytest.fixture()
def bucket(stack):
    """A fresh bucket that sends its object changes to EventBridge."""
    name = f"site-{uuid.uuid4().hex[:8]}"
    s3 = stack.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}})
    return name
