"""``python -m local up|wait|down`` end to end, on a small SAM template shaped like the real one.

S3 put -> EventBridge rule (SAM EventBridgeRule event) -> state machine (DefinitionUri with
unquoted substitutions) -> Lambda processes -> Map + states:startExecution -> child machine ->
status-change events -> a Lambda target. Then ``down`` leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from local.deploy import PROFILES

from .conftest import HERE, make_fake_binary, wait_for


def _run(*args: str, timeout: float = 330) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "local", *args], cwd=HERE.parent.parent, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    build = tmp / "release"
    for name in ("echo", "fail", "record"):
        make_fake_binary(build, name)
    state = tmp / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "local", "up", "--build-dir", str(build), "--template", str(HERE / "fixtures" / "template.yaml"),
         "--state-dir", str(state), "--distributions", "2", "--poll-seconds", "0", "--debounce-seconds", "1", "--no-schedules"],
        cwd=HERE.parent.parent, stdout=open(tmp / "up.log", "w"), stderr=subprocess.STDOUT,
    )
    waited = _run("wait", "--state-dir", str(state), "--timeout", "300")
    assert waited.returncode == 0, (waited.stderr, (tmp / "up.log").read_text())
    info = json.loads((state / "stack.json").read_text())
    yield info, state, proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)


def test_stack_json_shape(up):
    info, state, proc = up
    assert info["pid"] == proc.pid == int((state / "stack.pid").read_text())
    for key in ("endpoint_url", "control_url", "region", "bucket", "distribution_ids", "routes", "table", "state_machines", "functions", "dlq_url", "settings"):
        assert key in info, key
    # The plain lanes first, then one distribution per profile, which no route names.
    assert len(info["distribution_ids"]) == 2 + len(PROFILES)
    assert info["distribution_profiles"] == dict(zip(info["distribution_ids"][2:], PROFILES))
    cf = boto3.client("cloudfront", endpoint_url=info["endpoint_url"], region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    configs = {p: cf.get_distribution_config(Id=d)["DistributionConfig"] for d, p in info["distribution_profiles"].items()}
    assert configs["tags"]["CacheTagConfig"] == {"HeaderName": "x-amz-meta-cache-tag"}
    assert configs["tags"]["Origins"]["Items"][0]["OriginPath"] == "/tg"
    assert [p for p, c in configs.items() if "CacheTagConfig" in c] == ["tags"]
    assert [r["keyPrefix"] for r in info["routes"]] == ["d0/", "d1/"]
    assert set(info["state_machines"]) == {"MainStateMachine", "ChildStateMachine"}
    assert set(info["functions"]) == {"EchoFunction", "FailFunction", "RecordFunction"}
    assert info["settings"]["poll_seconds"] == 0 and info["settings"]["parameters"]["DebounceSeconds"] == "1"
    cw = boto3.client("cloudwatch", endpoint_url=info["endpoint_url"], region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    assert [a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]] == ["cf-invalidator-local-FailedAlarm"]


def test_s3_change_runs_the_whole_flow(up):
    info, _, _ = up
    kw = dict(endpoint_url=info["endpoint_url"], region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    s3, sfn = boto3.client("s3", **kw), boto3.client("stepfunctions", **kw)
    s3.put_object(Bucket=info["bucket"], Key="d0/a b.html", Body=b"x")
    main, child = info["state_machines"]["MainStateMachine"], info["state_machines"]["ChildStateMachine"]
    done = lambda arn: [e for e in sfn.list_executions(stateMachineArn=arn)["executions"] if e["status"] != "RUNNING"]  # noqa: E731
    main_runs = wait_for(lambda: done(main), timeout=120, what="main execution")
    assert main_runs[0]["status"] == "SUCCEEDED", sfn.describe_execution(executionArn=main_runs[0]["executionArn"])
    child_runs = wait_for(lambda: done(child), timeout=120, what="child execution")
    assert child_runs[0]["status"] == "SUCCEEDED" and child_runs[0]["name"].startswith("c-")
    out = json.loads(sfn.describe_execution(executionArn=child_runs[0]["executionArn"])["output"])
    assert out["input"]["redrive"] == 0
    env = out["env"]
    assert env["TABLE_NAME"] == info["table"] and env["DISTRIBUTION_IDS"] == ",".join(info["distribution_ids"])
    assert json.loads(env["ROUTES"]) == info["routes"]
    # The status-change rule (SAM EventBridgeRule on RecordFunction) ran the function.
    log = Path(info["logs_dir"]) / "RecordFunction.log"
    wait_for(lambda: log.exists() and log.read_text().count("REPORT RequestId") >= 2, timeout=120, what="RecordFunction invocations")


def test_control_api_and_down(up):
    import urllib.request

    info, state, proc = up
    req = urllib.request.Request(info["control_url"] + "/health", data=b"{}", method="POST")
    assert json.loads(urllib.request.urlopen(req).read())["ok"] is True
    sweep = urllib.request.Request(info["control_url"] + "/lambda/invoke", data=json.dumps({"function": "EchoFunction", "payload": {"action": "echo"}}).encode(), method="POST")
    pid = json.loads(urllib.request.urlopen(sweep).read())["payload"]["pid"]
    os.kill(pid, 0)  # a function process runs
    down = _run("down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    assert proc.wait(60) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (state / "stack.json").exists() and not (state / "stack.pid").exists()
    again = _run("down", "--state-dir", str(state))
    assert again.returncode == 0 and "no local stack running" in again.stderr
