"""DescribeStacks as CloudFormation answers it (local/deploy.py ``install_parameter_list``)."""

from __future__ import annotations

import json
import uuid
from typing import Any

TEMPLATE = {
    "Parameters": {
        "DistributionIds": {"Type": "CommaDelimitedList"},
        "Routes": {"Type": "String"},
    },
    "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
    "Outputs": {"Joined": {"Value": {"Fn::Join": ["|", {"Ref": "DistributionIds"}]}}},
}


def describe(stack: Any, parameters: dict[str, str]) -> dict[str, Any]:
    cfn = stack.client("cloudformation")
    name = f"params-{uuid.uuid4().hex[:8]}"
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(TEMPLATE),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    return cfn.describe_stacks(StackName=name)["Stacks"][0]


def test_a_list_parameter_is_described_as_the_string_it_was_given(stack: Any) -> None:
    described = describe(stack, {"DistributionIds": "E1,E2", "Routes": '[{"a":1},{"b":2}]'})
    values = {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}
    # moto 5.2.5 alone printed the resolved list: "['E1', 'E2']".
    assert values == {"DistributionIds": "E1,E2", "Routes": '[{"a":1},{"b":2}]'}
    # The template still reads the parameter as a list.
    assert described["Outputs"] == [{"OutputKey": "Joined", "OutputValue": "E1|E2"}]


def test_a_one_item_list_parameter_is_that_item(stack: Any) -> None:
    described = describe(stack, {"DistributionIds": "E1", "Routes": "[]"})
    values = {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}
    assert values["DistributionIds"] == "E1"
