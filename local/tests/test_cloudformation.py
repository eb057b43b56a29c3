"""Parameters as CloudFormation resolves and describes them (local/deploy.py
``install_parameter_list``, ``install_list_defaults``)."""

from __future__ import annotations

import ast
import json
import uuid
from typing import Any

TEMPLATE = {
    "Parameters": {
        "DistributionIds": {"Type": "CommaDelimitedList"},
        "Routes": {"Type": "String"},
        "Sources": {"Type": "CommaDelimitedList", "Default": "a.b,c-d"},
    },
    "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
    "Outputs": {
        "Joined": {"Value": {"Fn::Join": ["|", {"Ref": "DistributionIds"}]}},
        "Sources": {"Value": {"Fn::Join": ["|", {"Ref": "Sources"}]}},
    },
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
    assert values == {"DistributionIds": "E1,E2", "Routes": '[{"a":1},{"b":2}]', "Sources": "a.b,c-d"}
    # The template still reads the parameter as a list, its default too (moto alone joined the
    # default's characters: "a|.|b|,|c|-|d").
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    assert outputs == {"Joined": "E1|E2", "Sources": "a.b|c-d"}


def test_a_one_item_list_parameter_is_that_item(stack: Any) -> None:
    described = describe(stack, {"DistributionIds": "E1", "Routes": "[]"})
    values = {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}
    assert values["DistributionIds"] == "E1"


def test_an_if_that_resolves_to_no_value_removes_its_list_element(stack: Any) -> None:
    # local/deploy.py ``install_no_value``: moto alone kept a null statement, on which its IAM
    # evaluator failed every request of the role.
    statement = {"Effect": "Allow", "Action": "sqs:GetQueueUrl", "Resource": "*"}
    template = {
        "Parameters": {"Extra": {"Type": "String"}},
        "Conditions": {"WithExtra": {"Fn::Equals": [{"Ref": "Extra"}, "yes"]}},
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []},
                    "Policies": [{
                        "PolicyName": "p",
                        "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                            statement,
                            {"Fn::If": ["WithExtra", {**statement, "Action": "sqs:ListQueues"}, {"Ref": "AWS::NoValue"}]},
                        ]},
                    }],
                },
            }
        },
    }
    cfn, iam = stack.client("cloudformation"), stack.client("iam")
    for extra, actions in (("no", ["sqs:GetQueueUrl"]), ("yes", ["sqs:GetQueueUrl", "sqs:ListQueues"])):
        name = f"novalue-{uuid.uuid4().hex[:8]}"
        cfn.create_stack(StackName=name, TemplateBody=json.dumps(template),
                         Parameters=[{"ParameterKey": "Extra", "ParameterValue": extra}], Capabilities=["CAPABILITY_IAM"])
        role = next(r["PhysicalResourceId"] for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"])
        document = iam.get_role_policy(RoleName=role, PolicyName="p")["PolicyDocument"]
        # moto keeps a CloudFormation-made inline policy as the printed Python dict.
        document = ast.literal_eval(document) if isinstance(document, str) else document
        assert [s["Action"] for s in document["Statement"]] == actions, extra
