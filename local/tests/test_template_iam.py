"""Least privilege, checked statically on the template as CloudFormation receives it.

The local stack enforces each function's role at run time (local/iam.py), so a missing grant fails
the end-to-end tests; a grant wider than needed fails nothing there. This translates the real
``template.yaml`` with aws-sam-translator and checks every role action by action: each function
may call exactly the actions its code calls, CloudFront, DynamoDB and Step Functions actions
never apply to ``*``, and CloudFront grants name distribution ARNs (which have no region).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local import sam

ROOT = Path(__file__).resolve().parents[2]
SCOPED_SERVICES = ("cloudfront:", "dynamodb:", "states:", "s3:", "sqs:")

# What each role may do on the scoped services: the SDK calls in functions/*/ and the ASL tasks.
EXPECTED = {
    "CollectKeysFunctionRole": set(),
    "DedupeFunctionRole": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        # Only with CacheTagMetadata set: see test_the_bucket_is_read_only_for_cache_tags.
        "s3:GetObject",
        "s3:ListBucket",
    },
    "CreateInvalidationFunctionRole": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "cloudfront:CreateInvalidation",
        # Only with Routes empty (routes by discovery): see test_reading_configurations_*.
        "cloudfront:GetDistributionConfig",
    },
    "PollStatusFunctionRole": {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query", "cloudfront:GetInvalidation"},
    # sqs:SendMessage: its on-failure destination (test_record_outcome_keeps_what_it_could_not_record).
    "RecordOutcomeFunctionRole": {"dynamodb:PutItem", "dynamodb:UpdateItem", "sqs:SendMessage"},
    "SweepFunctionRole": {"dynamodb:Query", "states:StartExecution"},
    "ObjectChangedStateMachineRole": {"states:StartExecution"},
    # The pipe's role: reads the ingest queue, starts the object-changed machine per batch
    # (test_both_rules_feed_the_ingest_queue_and_only_the_pipe_reads_it).
    "IngestPipeRole": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "states:StartExecution"},
    "InvalidateBatchStateMachineRole": set(),
}


MANAGED = {"AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess"}

# What a state machine's role needs to deliver its logs (Step Functions developer guide, "IAM
# policies for logging to CloudWatch Logs"); these actions take Resource "*".
LOG_DELIVERY = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    template = sam.load_template(ROOT / "template.yaml")
    packaged = sam.package(template, ROOT, "code-bucket", "code.zip")
    params = {"BucketName": "my-site", "BucketRegion": "us-east-1", "DistributionIds": "E1AAAAAAAAAAAA,E2BBBBBBBBBBBB"}
    return sam.translate(packaged, params, "us-east-1")


def statements(role: dict[str, Any], by_discovery: bool = True, cache_tags: bool = True) -> list[dict[str, Any]]:
    """The role's statements with the template's statement conditions decided: Routes empty
    (``by_discovery``) or not, CacheTagMetadata set (``cache_tags``) or not."""
    decided = {"RoutesByDiscovery": by_discovery, "ReadsCacheTags": cache_tags}
    out = []
    for policy in role["Properties"].get("Policies", []):
        doc = policy["PolicyDocument"]
        stmts = doc["Statement"]
        for stmt in stmts if isinstance(stmts, list) else [stmts]:
            if "Fn::If" in stmt:
                condition, when_true, when_false = stmt["Fn::If"]
                stmt = when_true if decided[condition] else when_false
                if stmt == {"Ref": "AWS::NoValue"}:
                    continue
            out.append(stmt)
    return out


def actions(stmt: dict[str, Any]) -> list[str]:
    a = stmt.get("Action", [])
    return [a] if isinstance(a, str) else list(a)


def roles(translated: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in translated["Resources"].items() if v["Type"] == "AWS::IAM::Role"}


def test_every_role_is_checked(translated: dict[str, Any]) -> None:
    assert set(roles(translated)) == set(EXPECTED)


@pytest.mark.parametrize("role_id", sorted(EXPECTED))
def test_each_role_has_exactly_the_actions_its_code_calls(translated: dict[str, Any], role_id: str) -> None:
    role = roles(translated)[role_id]
    granted = {a for s in statements(role) if s.get("Effect") == "Allow" for a in actions(s) if a.startswith(SCOPED_SERVICES)}
    assert granted == EXPECTED[role_id]
    for arn in role["Properties"].get("ManagedPolicyArns", []):
        if arn == {"Ref": "StateMachineLogDeliveryPolicy"}:
            continue  # the log-delivery actions, checked below
        # Only logging and X-Ray writes (actions without resource-level permissions) come managed.
        assert json.dumps(arn).rsplit("/", 1)[-1].strip('"') in MANAGED, arn


def granted_everything(translated: dict[str, Any], role: dict[str, Any]) -> set[str]:
    """Every action the role grants, inline or through a managed policy of the template."""
    stmts = statements(role)
    for arn in role["Properties"].get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and "Ref" in arn and arn["Ref"] in translated["Resources"]:
            doc = translated["Resources"][arn["Ref"]]["Properties"]["PolicyDocument"]
            stmts.extend(doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]])
    return {a for s in stmts if s.get("Effect") == "Allow" for a in actions(s)}


def test_a_state_machine_that_logs_may_deliver_its_logs(translated: dict[str, Any]) -> None:
    # Without these, stack creation fails: "The state machine IAM Role is not authorized to
    # access the Log Destination".
    machines = {k: v for k, v in translated["Resources"].items() if v["Type"] == "AWS::StepFunctions::StateMachine"}
    assert len(machines) == 2
    for machine_id, machine in machines.items():
        props = machine["Properties"]
        if not props.get("LoggingConfiguration", {}).get("Destinations"):
            continue
        role_id = props["RoleArn"]["Fn::GetAtt"][0]
        missing = LOG_DELIVERY - granted_everything(translated, translated["Resources"][role_id])
        assert not missing, (machine_id, role_id, sorted(missing))


def resolve(node: Any, params: dict[str, Any]) -> Any:
    """The few intrinsics a Resource list uses here (Ref to a parameter, Fn::Join, Fn::Split)."""
    if isinstance(node, list):
        return [resolve(n, params) for n in node]
    if isinstance(node, dict) and len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Ref" and arg in params:
            return params[arg]
        if fn == "Fn::Join":
            return arg[0].join(resolve(arg[1], params))
        if fn == "Fn::Split":
            return resolve(arg[1], params).split(arg[0])
    return node


def test_no_scoped_action_applies_to_everything(translated: dict[str, Any]) -> None:
    for role_id, role in roles(translated).items():
        for stmt in statements(role):
            scoped = [a for a in actions(stmt) if a.startswith(SCOPED_SERVICES)]
            if not scoped:
                continue
            assert not any(a.endswith("*") for a in scoped), (role_id, scoped)
            resources = stmt["Resource"] if isinstance(stmt["Resource"], list) else [stmt["Resource"]]
            for r in resources:
                # The objects of the one bucket are named by the bucket's object wildcard.
                text = json.dumps(r).replace("${BucketName}/*", "").replace("${", "").replace("arn:*:cloudfront::*:distribution/", "")
                assert r != "*" and "*" not in text, (role_id, scoped, r)


@pytest.mark.parametrize("count", [1, 3, 12])
def test_cloudfront_grants_exactly_the_configured_distributions(translated: dict[str, Any], count: int) -> None:
    # Any number of DistributionIds: a stack of 12 distributions once granted only the first 10
    # (the local stack's run-time IAM found it). Partition and account are wildcards (a
    # CloudFormation list cannot be mapped with a Sub); the distribution segment never is.
    ids = [f"E{i:02d}XXXXXXXXXXX" for i in range(count)]
    seen = 0
    for role in roles(translated).values():
        for stmt in statements(role):
            if any(a.startswith("cloudfront:") for a in actions(stmt)):
                granted = resolve(stmt["Resource"], {"DistributionIds": ids})
                assert granted == [f"arn:*:cloudfront::*:distribution/{d}" for d in ids]
                seen += 1
    assert seen == 3, "CreateInvalidation, GetInvalidation and GetDistributionConfig grants"


@pytest.mark.parametrize("by_discovery", [True, False])
def test_reading_configurations_is_granted_only_when_routes_are_discovered(
    translated: dict[str, Any], by_discovery: bool
) -> None:
    # Hand-written Routes say everything; an empty Routes plans from each distribution's
    # configuration, read by create-invalidation alone.
    for role_id, role in roles(translated).items():
        granted = {a for s in statements(role, by_discovery) for a in actions(s)}
        expected = by_discovery and role_id == "CreateInvalidationFunctionRole"
        assert ("cloudfront:GetDistributionConfig" in granted) == expected, role_id
    env = translated["Resources"]["CreateInvalidationFunction"]["Properties"]["Environment"]["Variables"]
    assert env["DISCOVERY_BUCKET"] == {"Fn::If": ["RoutesByDiscovery", {"Ref": "BucketName"}, ""]}


@pytest.mark.parametrize("cache_tags", [True, False])
def test_the_bucket_is_read_only_for_cache_tags(translated: dict[str, Any], cache_tags: bool) -> None:
    # Off by default: the stack never reads the bucket unless tags come from its metadata, and
    # then only dedupe, only HeadObject's two actions, only on this bucket.
    for role_id, role in roles(translated).items():
        grants = [(a, s["Resource"]) for s in statements(role, cache_tags=cache_tags) for a in actions(s) if a.startswith("s3:")]
        if cache_tags and role_id == "DedupeFunctionRole":
            assert grants == [
                ("s3:GetObject", {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/*"}),
                ("s3:ListBucket", {"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"}),
            ]
        else:
            assert grants == [], role_id
    env = translated["Resources"]["DedupeFunction"]["Properties"]["Environment"]["Variables"]
    assert env["CACHE_TAG_METADATA"] == {"Ref": "CacheTagMetadata"}
    condition = translated["Conditions"]["ReadsCacheTags"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CacheTagMetadata"}, ""]}]}


def test_manual_requests_come_by_their_own_rule_to_the_object_changed_machine(translated: dict[str, Any]) -> None:
    # Any source: dedupe refuses and audits an unexpected one (ManualEventSources) rather than
    # the rule dropping it unseen.
    rules = [r for r in translated["Resources"].values() if r["Type"] == "AWS::Events::Rule" and "Invalidation Requested" in json.dumps(r)]
    assert len(rules) == 1
    assert rules[0]["Properties"]["EventPattern"] == {"detail-type": ["Invalidation Requested"]}
    target = rules[0]["Properties"]["Targets"][0]
    assert target["Arn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert "DeadLetterConfig" in target
    env = translated["Resources"]["DedupeFunction"]["Properties"]["Environment"]["Variables"]
    assert env["ACCOUNT_ID"] == {"Ref": "AWS::AccountId"}
    assert env["MANUAL_EVENT_SOURCES"] == {"Fn::Join": [",", {"Ref": "ManualEventSources"}]}


def test_both_rules_feed_the_ingest_queue_and_only_the_pipe_reads_it(translated: dict[str, Any]) -> None:
    resources = translated["Resources"]
    queue = {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    rules = {k for k, r in resources.items() if r["Type"] == "AWS::Events::Rule" and r["Properties"]["Targets"][0]["Arn"] == queue}
    assert rules == {"ObjectChangedRule", "ManualRequestRule"}
    # EventBridge may send only for those two rules (the queue policy, judged by the local stack).
    (statement,) = resources["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == queue
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": [{"Fn::GetAtt": [r, "Arn"]} for r in ("ObjectChangedRule", "ManualRequestRule")]}}
    role = resources["IngestPipeRole"]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "pipes.amazonaws.com"}
    by_action = {a: s["Resource"] for s in statements(role) for a in actions(s)}
    assert by_action["sqs:ReceiveMessage"] == by_action["sqs:DeleteMessage"] == queue
    assert by_action["states:StartExecution"] == {"Ref": "ObjectChangedStateMachine"}
    pipe = resources["IngestPipe"]["Properties"]
    assert pipe["Source"] == queue and pipe["Target"] == {"Ref": "ObjectChangedStateMachine"}
    assert pipe["TargetParameters"]["StepFunctionStateMachineParameters"]["InvocationType"] == "FIRE_AND_FORGET"
    redrive = resources["IngestQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "Arn"]}
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert any(a["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["IngestDeadLetterQueue", "QueueName"]} for a in alarms)


def test_the_alarm_topic_is_one_cloudwatch_can_publish_to(translated: dict[str, Any]) -> None:
    # CloudWatch cannot use the AWS managed key alias/aws/sns (its policy cannot grant it).
    topic = translated["Resources"]["AlarmTopic"]["Properties"]
    assert topic.get("KmsMasterKeyId") in (None, ""), topic


def test_record_outcome_keeps_what_it_could_not_record(translated: dict[str, Any]) -> None:
    # EventBridge invokes it asynchronously; without a destination Lambda discards an event
    # after two retries, and a failed batch would never reach the failures index.
    resources = translated["Resources"]
    configs = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    assert [c["FunctionName"] for c in configs] == [{"Ref": "RecordOutcomeFunction"}]
    destination = configs[0]["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": ["OutcomeFailuresQueue", "Arn"]}
    role = resources["RecordOutcomeFunctionRole"]
    assert any(
        "sqs:SendMessage" in actions(s) and s["Resource"] == destination for s in statements(role)
    ), "the role may send to its destination"
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert any(
        a["Namespace"] == "AWS/SQS" and a["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["OutcomeFailuresQueue", "QueueName"]}
        for a in alarms
    ), "an alarm on the queue"


def test_the_s3_rule_matches_only_the_configured_bucket(translated: dict[str, Any]) -> None:
    rules = [r for r in translated["Resources"].values() if r["Type"] == "AWS::Events::Rule" and "aws.s3" in json.dumps(r)]
    assert len(rules) == 1
    pattern = rules[0]["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "BucketName"}]
    target = rules[0]["Properties"]["Targets"][0]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert "DeadLetterConfig" in target


def test_the_table_keeps_the_free_default_encryption_and_point_in_time_recovery(translated: dict[str, Any]) -> None:
    table = translated["Resources"]["Table"]["Properties"]
    # Absent (or SSEEnabled false): the AWS owned key, no KMS charges. SSEEnabled true would
    # switch to the billed AWS managed key.
    assert table.get("SSESpecification", {}).get("SSEEnabled", False) is False
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
