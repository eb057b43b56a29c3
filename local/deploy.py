"""Deploy ``template.yaml`` unchanged into moto, with the inputs the stack provides.

Why: the end-to-end tests must run the real template. Steps, each needed because moto or the
local setting lacks something:

1. create the watched bucket and turn its EventBridge notifications on (the template takes the
   bucket name as a parameter, as in production where the site bucket exists already);
2. create ``K`` plain CloudFront distributions (lanes ``d<i>/``, routed by ``Routes``) and, after
   them, one distribution per :data:`PROFILES` entry, configured as its case needs (the template
   takes all their ids; ``discover=True`` leaves ``Routes`` empty, so plans follow each
   distribution's configuration);
3. ``sam build/package`` stand-in (:mod:`local.sam`): artefacts to a moto bucket;
4. SAM transform (aws-sam-translator);
5. CloudFormation ``CreateStack`` in moto; read physical ids and outputs; resources moto's
   CloudFormation left without a physical id are reported (``unsupported_resources``);
6. one process pool per function (:mod:`local.lambda_runtime`), running
   ``<build-dir>/<Metadata.BuildProperties.Binary>`` with the function's resolved environment
   and a session of its own role (:mod:`local.iam` judges every request it makes).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from . import sam
from .faults import Faults
from .iam import Iam
from .lambda_runtime import FunctionPool, RuntimeApi
from .pipes import Pipes
from .patching import replace

LOG = logging.getLogger("local.deploy")

STACK_NAME = "cf-invalidator-local"
CODE_BUCKET = "local-stack-artifacts"


class Target(Protocol):
    """What deploying needs of the running stack it deploys into (``local.stack.Stack``): where
    it answers, its clients, and the pieces each function's pool is wired to."""

    account: str
    region: str
    endpoint_url: str
    state_dir: Path
    rust_log: str
    runtime: RuntimeApi
    faults: Faults
    iam: Iam
    pipes: Pipes

    def clients(self, service: str) -> Any: ...


# Distributions whose configuration exercises what create-invalidation reads when Routes is empty
# (functions/core/src/distribution.rs); each serves its own key space of the bucket, so lanes
# stay apart. The edge (local/cloudfront/edge.py) serves them as CloudFront would.
PROFILES: dict[str, dict[str, Any]] = {
    # The cache key of /qs/* holds query strings; every other path goes to a non-S3 origin, so
    # a key outside qs/ is not this distribution's to invalidate.
    "query-strings": {
        "origin_path": "",
        "behaviors": [{"PathPattern": "/qs/*", "QueryString": True}],
        "default_to_app": True,
    },
    # The bucket's op/ is the distribution's root.
    "origin-path": {"origin_path": "/op"},
    # dro/home.html answers the distribution's root URL.
    "default-root": {"origin_path": "/dro", "default_root_object": "home.html"},
    # The bucket's tg/ is the distribution's root, and it stores cache tags. "For S3 origins ...
    # a metadata key of cache-tag would be returned as a x-amz-meta-cache-tag header. You can
    # set the HeaderName in your CacheTagConfig to x-amz-meta-cache-tag" (CloudFront developer
    # guide, "Invalidating content by cache tags").
    "tags": {"origin_path": "/tg", "cache_tag_header": "x-amz-meta-cache-tag"},
}


def _forwarded(query_string: bool) -> dict[str, Any]:
    return {"QueryString": query_string, "Cookies": {"Forward": "none"}}


def distribution_config(bucket: str, comment: str, profile: dict[str, Any] | None = None) -> dict[str, Any]:
    """A distribution serving ``bucket`` (an S3 REST origin, as the console makes it), shaped by
    a :data:`PROFILES` entry when given."""
    profile = profile or {}
    site = {
        "Id": "site",
        "DomainName": f"{bucket}.s3.amazonaws.com",
        "OriginPath": profile.get("origin_path", ""),
        "S3OriginConfig": {"OriginAccessIdentity": ""},
    }
    origins = [site]
    default_target = "site"
    if profile.get("default_to_app"):
        origins.append(
            {
                "Id": "app",
                "DomainName": "app.example.invalid",
                "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "https-only"},
            }
        )
        default_target = "app"
    behaviors = [
        {
            "PathPattern": b["PathPattern"],
            "TargetOriginId": "site",
            "ViewerProtocolPolicy": "redirect-to-https",
            "MinTTL": 0,
            "ForwardedValues": _forwarded(b["QueryString"]),
            "TrustedSigners": {"Enabled": False, "Quantity": 0},
        }
        for b in profile.get("behaviors", [])
    ]
    config: dict[str, Any] = {
        "CallerReference": f"local-{uuid.uuid4()}",
        "Comment": comment,
        "Enabled": True,
        "Origins": {"Quantity": len(origins), "Items": origins},
        "DefaultCacheBehavior": {
            "TargetOriginId": default_target,
            "ViewerProtocolPolicy": "redirect-to-https",
            "MinTTL": 0,
            "ForwardedValues": _forwarded(False),
            "TrustedSigners": {"Enabled": False, "Quantity": 0},
        },
    }
    if behaviors:
        config["CacheBehaviors"] = {"Quantity": len(behaviors), "Items": behaviors}
    if profile.get("default_root_object"):
        config["DefaultRootObject"] = profile["default_root_object"]
    if profile.get("cache_tag_header"):
        # Given at creation as on AWS: moto keeps it and answers it (local/cloudfront/models.py).
        config["CacheTagConfig"] = {"HeaderName": profile["cache_tag_header"]}
    return config


def routes_for(bucket: str, distribution_ids: list[str]) -> list[dict[str, str]]:
    """Key prefix ``d<i>/`` -> distribution i; a single distribution takes every key."""
    if len(distribution_ids) == 1:
        return [{"bucket": bucket, "keyPrefix": "", "distributionId": distribution_ids[0], "originPath": ""}]
    return [
        {"bucket": bucket, "keyPrefix": f"d{i}/", "distributionId": d, "originPath": ""}
        for i, d in enumerate(distribution_ids)
    ]


class RuleFailed(Exception):
    """A template rule's assertion is false: CloudFormation refuses the stack, as here."""


def check_rules(template: dict[str, Any], parameters: dict[str, str], region: str) -> None:
    """Evaluate the template's ``Rules`` as CloudFormation does before it creates anything
    (moto skips them). "If a parameter value isn't valid, CloudFormation doesn't create or
    update the stack" (CloudFormation User Guide, "Rules"). The rule functions this template
    uses are evaluated; any other fails loudly rather than passing unchecked."""
    declared = template.get("Parameters", {})
    pseudo = {"AWS::Region": region, "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}

    def value(node: Any) -> Any:
        if isinstance(node, str):
            return node
        if isinstance(node, list):
            return [value(n) for n in node]
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                if arg in pseudo:
                    return pseudo[arg]
                if arg in parameters:
                    return parameters[arg]
                return declared.get(arg, {}).get("Default")
            if fn == "Fn::Equals":
                a, b = (value(x) for x in arg)
                return a == b
            if fn == "Fn::Not":
                return not value(arg[0])
            if fn == "Fn::And":
                return all(value(x) for x in arg)
            if fn == "Fn::Or":
                return any(value(x) for x in arg)
            if fn == "Fn::Contains":
                return value(arg[1]) in value(arg[0])
        raise RuleFailed(f"rule function not evaluated by the local stack: {json.dumps(node)}")

    for name, rule in (template.get("Rules") or {}).items():
        if "RuleCondition" in rule and not value(rule["RuleCondition"]):
            continue
        for assertion in rule.get("Assertions", []):
            if not value(assertion["Assert"]):
                raise RuleFailed(f"template rule {name} failed: {assertion.get('AssertDescription', '')}".strip())


@dataclass
class Deployment:
    bucket: str
    distribution_ids: list[str]
    routes: list[dict[str, str]]
    parameters: dict[str, str]
    distribution_profiles: dict[str, str] = field(default_factory=dict)  # id -> PROFILES name
    resources: dict[str, dict[str, str]] = field(default_factory=dict)  # logical -> {type, physical}
    outputs: dict[str, str] = field(default_factory=dict)
    functions: dict[str, dict[str, Any]] = field(default_factory=dict)
    state_machines: dict[str, str] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    # function name -> (MaximumRetryAttempts, on-failure destination ARN or None)
    event_invoke_configs: dict[str, tuple[int, str | None]] = field(default_factory=dict)


def deploy(
    stack: Target,
    template_path: Path,
    build_dir: Path,
    *,
    bucket: str | None,
    distributions: int,
    overrides: dict[str, str],
    max_concurrency: int,
    timeout_scale: float = 1.0,
    discover: bool = False,
) -> Deployment:
    clients = stack.clients
    template = sam.load_template(template_path)
    declared = template.get("Parameters") or {}

    bucket = bucket or f"local-site-{uuid.uuid4().hex[:8]}"
    s3 = clients("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )

    cf = clients("cloudfront")
    dist_ids = []
    for i in range(distributions):
        resp = cf.create_distribution(DistributionConfig=distribution_config(bucket, f"local distribution {i}"))
        dist_ids.append(resp["Distribution"]["Id"])
    # Lanes 0..K-1 only: with Routes, a profiled distribution gets no path (its case needs its
    # configuration read, which only an empty Routes does).
    routes = [] if discover else routes_for(bucket, dist_ids)
    profiles = {}
    for name, profile in PROFILES.items():
        resp = cf.create_distribution(DistributionConfig=distribution_config(bucket, f"local profile {name}", profile))
        profiles[resp["Distribution"]["Id"]] = name
    dist_ids += list(profiles)

    provided = {
        "BucketName": bucket,
        "BucketRegion": stack.region,
        "DistributionIds": ",".join(dist_ids),
        "Routes": json.dumps(routes, separators=(",", ":")) if routes else "",
    }
    provided.update({k: str(v) for k, v in overrides.items()})
    parameters = {k: v for k, v in provided.items() if k in declared}
    ignored = sorted(set(provided) - set(declared))
    if ignored:
        LOG.warning("template declares no parameter(s) %s: not passed", ", ".join(ignored))

    s3.create_bucket(Bucket=CODE_BUCKET)
    packaged = sam.package(template, template_path.parent, CODE_BUCKET, "functions/dummy.zip")
    for key, body in packaged.artifacts.items():
        s3.put_object(Bucket=CODE_BUCKET, Key=key, Body=body)
    translated = sam.translate(packaged, parameters, stack.region)
    check_rules(translated, parameters, stack.region)
    (stack.state_dir / "translated-template.json").write_text(json.dumps(translated, indent=1))

    cfn = clients("cloudformation")
    cfn.create_stack(
        StackName=STACK_NAME,
        TemplateBody=json.dumps(translated),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    desc = cfn.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    if desc["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack status {desc['StackStatus']}: {desc.get('StackStatusReason')}")
    dep = Deployment(
        bucket=bucket, distribution_ids=dist_ids, routes=routes, parameters=parameters, distribution_profiles=profiles
    )
    dep.outputs = {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}
    summaries = []
    paginator = cfn.get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=STACK_NAME):
        summaries.extend(page["StackResourceSummaries"])
    for r in summaries:
        dep.resources[r["LogicalResourceId"]] = {"type": r["ResourceType"], "physical": r.get("PhysicalResourceId", "")}
    dep.resources.pop("", None)
    fill_gaps(stack, translated, dep)

    sfn = clients("stepfunctions")
    for logical in packaged.state_machines:
        arn = dep.resources.get(logical, {}).get("physical", "")
        sfn.describe_state_machine(stateMachineArn=arn)  # fails loudly if it is not there
        dep.state_machines[logical] = arn

    lam = clients("lambda")
    logs_dir = stack.state_dir / "logs"
    for logical, spec in packaged.functions.items():
        name = dep.resources.get(logical, {}).get("physical")
        if not name:
            raise RuntimeError(f"function {logical} was not created")
        conf = lam.get_function_configuration(FunctionName=name)
        binary = (build_dir / spec.binary).resolve()
        if not binary.exists():
            LOG.warning("binary %s for %s does not exist (yet): invocations will fail", binary, logical)
        env = base_function_env(stack, conf)
        pool = FunctionPool(
            runtime=stack.runtime,
            logical_id=logical,
            function_name=conf["FunctionName"],
            function_arn=conf["FunctionArn"],
            command=[str(binary)],
            env=env,
            timeout=float(conf.get("Timeout", spec.timeout)) * timeout_scale,
            memory=int(conf.get("MemorySize", spec.memory)),
            max_concurrency=max_concurrency,
            log_path=logs_dir / f"{logical}.log",
            should_crash=stack.faults.lambda_should_crash,
            hold_for=stack.faults.lambda_hold_for,
            admit=stack.faults.lambda_admit,
            credentials=lambda role=conf["Role"], name=conf["FunctionName"]: stack.iam.session(role, name),
        )
        retries, on_failure = dep.event_invoke_configs.get(conf["FunctionName"], (2, None))
        pool.async_retries = retries
        if on_failure:
            pool.on_failure = send_to_destination(stack, on_failure)
        stack.runtime.add_pool(pool)
        dep.functions[logical] = {
            "name": conf["FunctionName"],
            "arn": conf["FunctionArn"],
            "binary": str(binary),
            "timeout": pool.timeout,
            "log": str(pool.log_path),
        }
    return dep


def fill_gaps(stack: Target, translated: dict[str, Any], dep: Deployment) -> None:
    """Create what moto's CloudFormation skipped, resolving intrinsics with moto's own resolver.

    * ``AWS::CloudWatch::Alarm`` -> ``PutMetricAlarm`` (moto has no CFN support for alarms);
    * resources whose ``Condition`` is false are skipped, as CloudFormation does;
    * ``AWS::SQS::QueuePolicy`` -> ``SetQueueAttributes`` ``Policy`` on each queue: EventBridge
      targets send only where it allows them (``local/event_targets.py`` ``send_message``);
    * ``AWS::Pipes::Pipe`` -> a local pipe (``local/pipes.py``);
    * ``AWS::Lambda::Permission``, ``AWS::SNS::TopicPolicy``, ``AWS::SNS::Subscription``:
      nothing to do locally (moto enforces no such resource policies; an e-mail subscription
      cannot be confirmed); listed as ``not created`` in stack.json.
    """
    from moto.cloudformation.models import cloudformation_backends
    from moto.cloudformation.parsing import clean_json

    backend = cloudformation_backends[stack.account][stack.region]
    fake = next(s for s in backend.stacks.values() if s.name == STACK_NAME)
    rmap = fake.resource_map
    for logical, res in translated.get("Resources", {}).items():
        if dep.resources.get(logical, {}).get("physical"):
            continue
        cond = res.get("Condition")
        if cond and not rmap.lazy_condition_map[cond]:
            continue
        rtype = res.get("Type", "")
        if rtype == "AWS::CloudWatch::Alarm":
            props = clean_json(res.get("Properties", {}), rmap)
            props = {k: v for k, v in props.items() if v is not None}
            props.setdefault("AlarmName", f"{STACK_NAME}-{logical}")
            for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
                if key in props:
                    props[key] = [a for a in props[key] if a]
            stack.clients("cloudwatch").put_metric_alarm(**props)
            dep.resources[logical] = {"type": rtype, "physical": props["AlarmName"]}
            continue
        if rtype == "AWS::SQS::QueuePolicy":
            props = clean_json(res.get("Properties", {}), rmap)
            sqs = stack.clients("sqs")
            for url in props["Queues"]:
                sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
            dep.resources[logical] = {"type": rtype, "physical": ",".join(props["Queues"])}
            continue
        if rtype == "AWS::Pipes::Pipe":
            props = clean_json(res.get("Properties", {}), rmap)
            name = props.get("Name") or f"{STACK_NAME}-{logical}"
            stack.pipes.add(name, props)
            dep.resources[logical] = {"type": rtype, "physical": name}
            continue
        if rtype == "AWS::Lambda::EventInvokeConfig":
            # Applied by the function's pool (LambdaService.invoke_async in local/lambda_patch.py).
            props = clean_json(res.get("Properties", {}), rmap)
            on_failure = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            dep.event_invoke_configs[props["FunctionName"]] = (int(props.get("MaximumRetryAttempts", 2)), on_failure)
            dep.resources[logical] = {"type": rtype, "physical": f"{props['FunctionName']}:{props.get('Qualifier', '$LATEST')}"}
            continue
        dep.unsupported.append(f"{logical} ({rtype})")
    if dep.unsupported:
        LOG.warning("not created locally: %s", ", ".join(dep.unsupported))


def send_to_destination(stack: Target, arn: str) -> Callable[[dict[str, Any]], None]:
    """An on-failure destination: an SQS queue (the only kind the template uses)."""
    if not arn.startswith("arn:aws:sqs:"):
        raise RuntimeError(f"on-failure destination {arn}: only SQS queues are emulated")
    sqs = stack.clients("sqs")
    url = sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]

    def send(record: dict[str, Any]) -> None:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))

    return send


def base_function_env(stack: Target, conf: dict[str, Any]) -> dict[str, str]:
    """The environment of a function process: Lambda's reserved variables + the function's own."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": stack.region,
        "AWS_DEFAULT_REGION": stack.region,
        "AWS_SECRET_ACCESS_KEY": "local-secret",
        "AWS_ENDPOINT_URL": stack.endpoint_url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(stack.state_dir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(stack.state_dir / "no-aws-credentials"),
        "AWS_LAMBDA_FUNCTION_NAME": conf["FunctionName"],
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(conf.get("MemorySize", 128)),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{conf['FunctionName']}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
        "_HANDLER": conf.get("Handler", "bootstrap"),
        "RUST_LOG": stack.rust_log,
        "RUST_BACKTRACE": "1",
    }
    env.update({k: str(v) for k, v in ((conf.get("Environment") or {}).get("Variables") or {}).items()})
    return env


def install_parameter_list() -> None:
    """DescribeStacks shows a list parameter as CloudFormation does: the comma-joined string.

    Why: moto 5.2.5 resolves a ``CommaDelimitedList`` into a Python list and then prints that
    list (``['E1', 'E2']``) as the ``ParameterValue``, so a reader of ``DistributionIds``
    (``cfinv doctor``) would get one bogus id. The CloudFormation API reference (``Parameter``):
    "ParameterValue: The input value associated with the parameter. Type: String"; the input of
    a list parameter is the comma-separated string (local/README.md, "AWS behaviours checked
    against the documentation").
    """
    from moto.cloudformation.models import Stack as CfnStack

    original = CfnStack.parameter_list
    if getattr(original.fget, "_local_joined", False):
        return

    def parameter_list(self: Any) -> list[dict[str, Any]]:
        return [
            {**p, "ParameterValue": ",".join(map(str, p["ParameterValue"]))} if isinstance(p["ParameterValue"], list) else p
            for p in original.fget(self)
        ]

    parameter_list._local_joined = True  # type: ignore[attr-defined]
    CfnStack.parameter_list = property(parameter_list)  # type: ignore[method-assign,assignment]


def install_list_defaults() -> None:
    """A list parameter left to its ``Default`` is that default split at its commas.

    Why: moto 5.2.5 splits a ``CommaDelimitedList`` given as input but keeps its default as one
    string, which ``Fn::Join`` then joins character by character (``ManualEventSources``'s
    default reached dedupe as ``c,f,-,i,n,v,...``). The CloudFormation user guide (Parameters,
    ``Type``): "CommaDelimitedList: An array of literal strings that are separated by commas";
    a default is a value of the parameter's type like any input.
    """
    from moto.cloudformation.parsing import ResourceMap

    original = ResourceMap.load_parameters
    if getattr(original, "_local_list_defaults", False):
        return

    def load_parameters(self: Any) -> None:
        original(self)
        for name, slot in self._template.get("Parameters", {}).items():
            listed = slot.get("Type") == "CommaDelimitedList" or slot.get("Type", "").startswith("List<")
            value = self.resolved_parameters.get(name)
            if listed and isinstance(value, str) and name not in self.input_parameters:
                # Both copies: Ref reads the parsed one.
                self.resolved_parameters[name] = self._parsed_resources[name] = value.split(",")

    load_parameters._local_list_defaults = True  # type: ignore[attr-defined]
    ResourceMap.load_parameters = load_parameters  # type: ignore[method-assign]


def install_no_value() -> None:
    """``Fn::If`` with ``AWS::NoValue`` in a list removes the element, as CloudFormation does.

    Why: moto 5.2.5 resolves ``{"Ref": "AWS::NoValue"}`` to ``None`` and keeps it in the list,
    so a policy whose statement is conditional (the template's GetDistributionConfig grant, on
    a stack with hand-written Routes) got a ``null`` statement, on which moto's IAM evaluator
    fails every request of that role. The CloudFormation user guide (pseudo parameters):
    "AWS::NoValue: Removes the corresponding resource property when specified as a return
    value in the Fn::If intrinsic function."
    """
    from moto.cloudformation import parsing

    def wrap(original: Any) -> Any:
        def clean_json(resource_json: Any, resources_map: Any) -> Any:
            cleaned = original(resource_json, resources_map)
            if not isinstance(resource_json, list):
                return cleaned
            return [v for v, raw in zip(cleaned, resource_json) if v is not None or not _conditional(raw)]

        return clean_json

    replace(parsing, "clean_json", wrap)


def _conditional(raw: Any) -> bool:
    """Whether a template value can resolve to AWS::NoValue (an Fn::If, or the Ref itself)."""
    return isinstance(raw, dict) and ("Fn::If" in raw or raw.get("Ref") == "AWS::NoValue")
