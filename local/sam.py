"""Emulate ``sam build`` + ``sam package`` for the local stack, then translate SAM -> CloudFormation.

Why: moto's CloudFormation does not run the SAM transform, and the template refers to local
artefacts (``CodeUri: .`` built by cargo-lambda, ``DefinitionUri: statemachine/x.asl.json``).
The real SAM CLI would build and upload them; here we

* replace every ``AWS::Serverless::Function`` ``CodeUri`` (own or from ``Globals``) with a tiny
  dummy zip in a moto bucket (the code never runs inside moto: ``lambda_runtime`` runs the
  release binary ``<build-dir>/<Metadata.BuildProperties.Binary>`` instead);
* upload every ``AWS::Serverless::StateMachine`` ``DefinitionUri`` (a local file) to the same
  bucket and point ``DefinitionUri`` at it, as ``sam package`` does.  SAM then emits
  ``DefinitionS3Location`` + ``DefinitionSubstitutions``, and ``deploy`` substitutes the text
  exactly like CloudFormation (placeholders may stand unquoted, e.g. ``"Seconds": ${Poll}``,
  which an inline ``Definition`` object could not express);
* run ``samtranslator.translator.transform.transform`` with a managed-policy loader that needs
  no IAM (AWS managed policy names map to their well-known ARNs).
"""

from __future__ import annotations

import copy
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FUNCTION_TYPE = "AWS::Serverless::Function"
STATE_MACHINE_TYPE = "AWS::Serverless::StateMachine"


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that understands CloudFormation short-form tags (!Ref, !GetAtt, ...)."""


def _construct_tag(loader: yaml.Loader, tag_suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: str | Path) -> dict[str, Any]:
    """Load a CloudFormation/SAM template (YAML or JSON) with short-form intrinsics expanded."""
    text = Path(path).read_text()
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


class _AnyManagedPolicies(dict):
    """Managed-policy map for the translator: any name is an AWS managed policy ARN."""

    def __missing__(self, key: str) -> str:
        return f"arn:aws:iam::aws:policy/{key}"

    def get(self, key: str, default: Any = None) -> Any:  # noqa: D401
        return self[key]


class _LocalPolicyLoader:
    def load(self) -> dict[str, str]:
        return _AnyManagedPolicies()


@dataclass
class FunctionSpec:
    """What the local stack needs to run one SAM function as a process."""

    logical_id: str
    binary: str  # Metadata.BuildProperties.Binary, else the logical id
    timeout: int = 3
    memory: int = 128


@dataclass
class Packaged:
    """A SAM template after the local build/package step."""

    template: dict[str, Any]
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    state_machines: list[str] = field(default_factory=list)
    # S3 objects (key -> body) to upload to the code bucket before the stack is created.
    artifacts: dict[str, bytes] = field(default_factory=dict)


def dummy_zip() -> bytes:
    """A minimal deployment package (moto stores it; nothing executes it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("bootstrap", "#!/bin/sh\necho 'local stack: code runs outside moto'\n")
    return buf.getvalue()


def package(template: dict[str, Any], base_dir: str | Path, code_bucket: str, code_key: str) -> Packaged:
    """Return a copy of ``template`` ready for the translator (see module docstring)."""
    tpl = copy.deepcopy(template)
    base = Path(base_dir)
    globals_fn = (tpl.get("Globals") or {}).get("Function") or {}
    if "CodeUri" in globals_fn:
        globals_fn["CodeUri"] = {"Bucket": code_bucket, "Key": code_key}
    out = Packaged(template=tpl)
    out.artifacts[code_key] = dummy_zip()
    for logical_id, res in (tpl.get("Resources") or {}).items():
        rtype = res.get("Type")
        props = res.setdefault("Properties", {})
        if rtype == FUNCTION_TYPE:
            if "InlineCode" not in props and ("CodeUri" in props or "CodeUri" not in globals_fn):
                props["CodeUri"] = {"Bucket": code_bucket, "Key": code_key}
            build = (res.get("Metadata") or {}).get("BuildProperties") or {}
            timeout = props.get("Timeout", globals_fn.get("Timeout", 3))
            memory = props.get("MemorySize", globals_fn.get("MemorySize", 128))
            out.functions[logical_id] = FunctionSpec(
                logical_id=logical_id,
                binary=str(build.get("Binary") or logical_id),
                timeout=int(timeout) if isinstance(timeout, (int, str)) else 3,
                memory=int(memory) if isinstance(memory, (int, str)) else 128,
            )
        elif rtype == STATE_MACHINE_TYPE:
            uri = props.pop("DefinitionUri", None)
            if isinstance(uri, str):
                text = (base / uri).read_text()
                key = f"statemachine/{logical_id}/{Path(uri).name}"
                out.artifacts[key] = text.encode()
                props["DefinitionUri"] = {"Bucket": code_bucket, "Key": key}
            elif uri is not None:
                raise ValueError(f"{logical_id}: DefinitionUri must be a local file for the local stack")
            out.state_machines.append(logical_id)
    return out


def translate(packaged: Packaged, parameters: dict[str, Any], region: str) -> dict[str, Any]:
    """Run the SAM transform (aws-sam-translator) on a packaged template."""
    import os

    from samtranslator.translator.transform import transform

    # The translator (pseudo parameters, ARN partition) asks boto3 for the region.
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        return transform(copy.deepcopy(packaged.template), dict(parameters), _LocalPolicyLoader())
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved
