"""IAM at run time: each function signs with temporary credentials of its own role, and every
request it makes is judged against that role's policies before the service sees it.

Why not moto's own switch (``INITIAL_NO_AUTH_ACTION_COUNT``): moto then judges every DynamoDB,
Step Functions and CloudFront request against the resource ``*``, which no resource-scoped
statement matches, so a least-privilege role would be refused everything; and it would demand
credentials from every other caller (tests, the stack's own wiring). So the stack uses moto's
parts for the functions' requests only: STS sessions (``AssumeRole`` on the function's role, as
Lambda does), the SigV4 signature check and the session-token check, and moto's policy
evaluation over the role's inline and managed policies; it supplies the resource ARN each
request acts on. What it cannot judge is listed in local/README.md ("IAM").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_DISTRIBUTION_PATH = re.compile(r"^/20\d\d-\d\d-\d\d/distribution/(?P<id>[^/]+)")


@dataclass(frozen=True)
class Refusal:
    """An AWS error answer: why a request was refused, and the HTTP status its service gives."""

    code: str  # AccessDeniedException, AccessDenied, SignatureDoesNotMatch, ThrottlingException, ...
    message: str
    status: int


class Iam:
    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region

    # ---- credentials ---------------------------------------------------------------------
    def session(self, role_arn: str, session_name: str) -> tuple[str, str, str]:
        """(access key id, secret, session token) of a new session of ``role_arn``, as Lambda
        gives each execution environment."""
        from moto.sts.models import sts_backends

        assumed = sts_backends[self.account]["aws"].assume_role(
            region_name=self.region,
            role_session_name=session_name[:64],
            role_arn=role_arn,
            policy=None,
            duration=43200,
            external_id=None,
        )
        return assumed.access_key_id, assumed.secret_access_key, assumed.session_token

    # ---- judging -------------------------------------------------------------------------
    def resources(self, service: str, path: str, body: bytes) -> list[str] | None:
        """The ARNs a request acts on (IAM's ``Resource``), or None when the stack cannot tell."""
        region, account = self.region, self.account
        if service == "cloudfront":
            m = _DISTRIBUTION_PATH.match(path)
            return [f"arn:aws:cloudfront::{account}:distribution/{m.group('id')}"] if m else None
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return None
        if service == "dynamodb":
            tables = [doc["TableName"]] if "TableName" in doc else list(doc.get("RequestItems", {}))
            if not tables:
                return None  # transactions name a table per item: not judged (local/README.md)
            index = f"/index/{doc['IndexName']}" if doc.get("IndexName") else ""
            return [f"arn:aws:dynamodb:{region}:{account}:table/{t}{index}" for t in tables]
        if service == "states":
            arn = doc.get("stateMachineArn") or doc.get("executionArn")
            return [arn] if arn else None
        if service == "sqs" and doc.get("QueueUrl"):
            return [f"arn:aws:sqs:{region}:{account}:{doc['QueueUrl'].rstrip('/').rsplit('/', 1)[-1]}"]
        return None

    def judge(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, service: str, op: str
    ) -> Refusal | None:
        """None if the request may go on; else why not, as AWS words it."""
        from werkzeug.exceptions import HTTPException
        from moto.iam.access_control import IAMPolicy, IAMRequest, PermissionResult
        from moto.iam.models import iam_backends

        action = f"{service}:{op}"
        try:
            request = IAMRequest(
                account_id=self.account,
                method=method,
                path=f"{path}?{query}" if query else path,
                data={},
                body=body,
                headers=headers,
                action=op,
            )
            request.check_signature()
        except HTTPException as e:  # moto's SignatureDoesNotMatch, InvalidClientTokenId
            return Refusal(getattr(e, "error_type", "AccessDenied"), getattr(e, "message", str(e)), e.code or 403)
        except KeyError as e:  # no X-Amz-Security-Token or X-Amz-Date: not a session's request
            return Refusal("InvalidClientTokenId", f"missing {e} for a temporary credential", 403)
        who = request._access_key.arn
        if action == "sts:GetCallerIdentity":
            return None
        resources = self.resources(service, path, body)
        if resources is None:
            return Refusal(
                "AccessDenied",
                f"the local stack cannot tell which resource {action} acts on, so it refuses it "
                "(local/iam.py, Iam.resources)",
                403,
            )
        # The role's inline documents and managed policies (moto's collect_policies for an
        # assumed role hands back managed policies in a shape its own IAMPolicy cannot read).
        role = iam_backends[self.account]["aws"].get_role(request._access_key._owner_role_name)
        policies = [IAMPolicy(doc if isinstance(doc, str) else json.dumps(doc)) for doc in role.policies.values()]
        policies += [IAMPolicy(managed) for managed in role.managed_policies.values()]
        for resource in resources:
            results = [p.is_action_permitted(action, resource) for p in policies]
            if PermissionResult.DENIED in results:
                reason = "with an explicit deny in an identity-based policy"
            elif PermissionResult.PERMITTED not in results:
                reason = f"because no identity-based policy allows the {action} action"
            else:
                continue
            message = f"User: {who} is not authorized to perform: {action} on resource: {resource} {reason}"
            return Refusal("AccessDenied" if service == "cloudfront" else "AccessDeniedException", message, 403 if service == "cloudfront" else 400)
        return None


def error_response(service: str, refusal: Refusal, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """The refusal in the shape the service's SDK parses: CloudFront's XML error document
    (restXml), JSON with ``__type`` for the JSON protocols (DynamoDB, Step Functions, SQS)."""
    if service == "cloudfront":
        from .cloudfront.models import CloudFrontError
        from .cloudfront.responses import error_answer

        return error_answer(CloudFrontError(refusal.code, refusal.status, refusal.message), request_id)
    prefix = "com.amazonaws.dynamodb.v20120810#" if service == "dynamodb" else ""
    body = json.dumps({"__type": prefix + refusal.code, "message": refusal.message, "Message": refusal.message}).encode()
    return refusal.status, [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", request_id)], body


def headers_of(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers, named as moto's signature check looks them up (``X-Amz-Date``)."""
    out = {"-".join(p.capitalize() for p in k[5:].split("_")): v for k, v in environ.items() if k.startswith("HTTP_")}
    for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
        if environ.get(key):
            out[name] = environ[key]
    return out
