"""The dashboard graphs what the functions publish: its metric names, namespace and dimensions
are read from the Rust source (functions/core/src/metrics.rs) and from the template itself, so a
renamed metric or a new alarm fails here instead of leaving an empty graph."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from local import sam

ROOT = Path(__file__).resolve().parents[2]
METRICS_RS = ROOT / "functions" / "core" / "src" / "metrics.rs"


def rust_metrics() -> dict[str, str]:
    """Constant -> metric name, as metrics.rs declares them (`count("X")` / `seconds("X")`)."""
    found = dict(re.findall(r'pub const (\w+): Metric = (?:count|seconds)\("(\w+)"\);', METRICS_RS.read_text()))
    assert len(found) >= 10, found
    return found


def rust_str_const(name: str) -> str:
    match = re.search(rf'pub const {name}: &str = "([^"]+)";', METRICS_RS.read_text())
    assert match, name
    return match.group(1)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return sam.load_template(ROOT / "template.yaml")


def body(template: dict[str, Any]) -> dict[str, Any]:
    """The DashboardBody with its Fn::Sub variables filled in as CloudFormation would."""
    text, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    stack = variables["Stack"]["Fn::Sub"].replace("${AWS::StackName}", "my-stack")
    text = text.replace("${Dims}", variables["Dims"]).replace("${Stack}", stack)
    text = re.sub(r"\$\{([\w:.]+)\}", r"\1", text)
    return json.loads(text)


def graphed(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(namespace, metric name) of every metric and SEARCH expression on the dashboard."""
    out = []
    for widget in dashboard["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                expr = row[0]["expression"]
                namespace = re.search(r"\{(\w+),", expr).group(1)
                out.append((namespace, re.search(r'MetricName="(\w+)"', expr).group(1)))
            else:
                out.append((row[0], row[1]))
    return out


def test_the_dashboard_graphs_every_metric_the_functions_publish_and_no_other(template: dict[str, Any]) -> None:
    dashboard = body(template)
    namespace = rust_str_const("NAMESPACE")
    names = {name for ns, name in graphed(dashboard) if ns == namespace}
    # A graph of an alarm's metric (annotations.alarms) shows that alarm's metric.
    for widget in dashboard["widgets"]:
        for arn in widget["properties"].get("annotations", {}).get("alarms", []):
            alarm = template["Resources"][arn.rsplit(":", 1)[1]]["Properties"]
            assert alarm["Namespace"] == namespace
            names.add(alarm["MetricName"])
    assert names == set(rust_metrics().values())


def test_every_declared_metric_is_published_by_a_function() -> None:
    # A function publishes in its lib.rs or through core code it shares (join.rs for dedupe).
    files = [p for p in (ROOT / "functions").glob("*/src/*.rs") if p.name != "metrics.rs"]
    sources = "\n".join(p.read_text() for p in files)
    for constant in rust_metrics():
        assert re.search(rf"\b{constant}\b", sources), f"{constant} is declared but no function publishes it"


def test_searches_name_the_dimensions_the_lines_carry(template: dict[str, Any]) -> None:
    dims = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"][1]["Dims"]
    keys = set(dims.strip("{}").split(",")[1:])
    assert keys == {rust_str_const("STACK"), rust_str_const("DISTRIBUTION")}
    assert dims.split(",")[0].strip("{") == rust_str_const("NAMESPACE")


def test_the_alarm_widget_lists_every_alarm_and_the_queue_graph_every_queue(template: dict[str, Any]) -> None:
    dashboard = body(template)
    resources = template["Resources"]
    alarms = {name for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    listed = {arn.rsplit(":", 1)[1] for w in dashboard["widgets"] if w["type"] == "alarm" for arn in w["properties"]["alarms"]}
    assert listed == alarms
    queues = {name for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    graphed_queues = {row[3].removesuffix(".QueueName") for w in dashboard["widgets"] for row in w["properties"].get("metrics", []) if row[0] == "AWS/SQS"}
    assert graphed_queues == queues


def test_the_outputs_link_the_dashboard(template: dict[str, Any]) -> None:
    url = template["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert "#dashboards/dashboard/${Dashboard}" in url and "region=${AWS::Region}" in url
