"""The template's Rules, evaluated by the local deploy as CloudFormation does before it creates
anything: a stack in another Region than its bucket is refused, not deployed deaf."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from local import sam
from local.deploy import RuleFailed, check_rules

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    template = sam.load_template(ROOT / "template.yaml")
    packaged = sam.package(template, ROOT, "code-bucket", "code.zip")
    return sam.translate(packaged, {"BucketName": "my-site", "BucketRegion": "eu-west-1", "DistributionIds": "E1AAAAAAAAAAAA"}, "eu-west-1")


def params(region: str) -> dict[str, str]:
    return {"BucketName": "my-site", "BucketRegion": region, "DistributionIds": "E1AAAAAAAAAAAA"}


def test_a_bucket_in_the_stacks_region_passes(translated: dict[str, Any]) -> None:
    check_rules(translated, params("eu-west-1"), "eu-west-1")


def test_a_bucket_in_another_region_is_refused_with_the_reason(translated: dict[str, Any]) -> None:
    with pytest.raises(RuleFailed, match="BucketInStackRegion.*EventBridge delivers a bucket's events only in the bucket's Region"):
        check_rules(translated, params("us-east-1"), "eu-west-1")


def test_a_rule_function_the_local_stack_does_not_know_fails_loudly() -> None:
    template = {"Rules": {"R": {"Assertions": [{"Assert": {"Fn::EachMemberIn": [[], []]}}]}}}
    with pytest.raises(RuleFailed, match="not evaluated"):
        check_rules(template, {}, "eu-west-1")
