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
from urllib.parse import parse_qsl, unquote

_DISTRIBUTION_PATH = re.compile(r"^/20\d\d-\d\d-\d\d/distribution/(?P<id>[^/]+)")
# A virtual-hosted-style S3 host (<bucket>.s3.<region>.amazonaws.com); any other host (the
# stack's 127.0.0.1 endpoint, which the SDKs address path-style) names the bucket in the path.
_S3_VIRTUAL_HOST = re.compile(r"^(?P<bucket>.+)\.s3[.-](?:[a-z0-9-]+\.)?amazonaws\.com$")
# Query parameters that keep a GET or HEAD on an object an object read (any other, such as
# ?tagging or ?acl, is another operation with its own action). The Rust SDK adds x-id.
_OBJECT_READ_QUERY = {"versionId", "partNumber", "x-id"}


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    version: bool  # the request names a versionId


def s3_object(method: str, path: str, query: str, host: str) -> S3Object | None:
    """The object a GET or HEAD reads (GetObject, HeadObject), None for any other S3 request.
    ``path`` is the raw (percent-encoded) request path."""
    if method not in ("GET", "HEAD"):
        return None
    params = [k for k, _ in parse_qsl(query, keep_blank_values=True)]
    if any(k not in _OBJECT_READ_QUERY and not k.startswith("response-") for k in params):
        return None
    virtual = _S3_VIRTUAL_HOST.match(host.rsplit(":", 1)[0].lower())
    if virtual:
        bucket, key = virtual["bucket"], path[1:]
    else:
        bucket, _, key = path[1:].partition("/")
    if not bucket or not key:
        return None
    return S3Object(bucket=bucket, key=unquote(key), version="versionId" in params)


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
        request = self._request(method, path, query, headers, body, service, op)
        if isinstance(request, Refusal):
            return request
        action = f"{service}:{op}"
        if action == "sts:GetCallerIdentity":
            return None
        if service == "s3":
            # S3 API reference, HeadObject: "To use HEAD, you must have the s3:GetObject
            # permission. You need the relevant read object (or version) permission for this
            # operation"; GetObject: with a versionId "you must have the s3:GetObjectVersion
            # permission ... The s3:GetObject permission is not required in this scenario."
            target = s3_object(method, path, query, headers.get("Host", ""))
            resources = [f"arn:aws:s3:::{target.bucket}/{target.key}"] if target else None
            if target:
                action = "s3:GetObjectVersion" if target.version else "s3:GetObject"
        else:
            resources = self.resources(service, path, body)
        if resources is None:
            return Refusal(
                "AccessDenied",
                f"the local stack cannot tell which resource {action} acts on, so it refuses it "
                "(local/iam.py, Iam.resources)",
                403,
            )
        for resource in resources:
            refusal = self._decide(request._access_key._owner_role_name, request._access_key.arn, service, action, resource)
            if refusal is not None:
                return refusal
        return None

    def missing_object(self, method: str, path: str, query: str, headers: dict[str, str]) -> Refusal | None:
        """For a GetObject/HeadObject that found no key (an S3 404): the 403 S3 answers instead
        when the caller may not list the bucket, else None. S3 API reference, HeadObject (and
        GetObject alike): "If the object you request doesn't exist, the error that Amazon S3
        returns depends on whether you also have the s3:ListBucket permission. If you have the
        s3:ListBucket permission on the bucket, Amazon S3 returns an HTTP status code 404 Not
        Found error. If you don't have the s3:ListBucket permission, Amazon S3 returns an HTTP
        status code 403 Forbidden error." A missing bucket stays a 404 (NoSuchBucket)."""
        from moto.s3.models import s3_backends

        target = s3_object(method, path, query, headers.get("Host", ""))
        if target is None or target.bucket not in s3_backends[self.account]["global"].buckets:
            return None
        request = self._request(method, path, query, headers, b"", "s3", "ListBucket")
        if isinstance(request, Refusal):
            return request
        return self._decide(request._access_key._owner_role_name, request._access_key.arn, "s3", "s3:ListBucket", f"arn:aws:s3:::{target.bucket}")

    def role_refusal(self, role_arn: str, action: str, resource: str) -> Refusal | None:
        """The verdict on a call a service makes as ``role_arn`` without signing a request to
        this stack (the local pipes, ``local/pipes.py``): None if the role's policies allow it."""
        name = role_arn.rsplit("/", 1)[-1]
        return self._decide(name, f"{role_arn} (as {action.split(':')[0]})", action.split(":")[0], action, resource)

    def _request(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, service: str, op: str) -> Any:
        """moto's view of the signed request (its signature and session token checked), or the
        Refusal AWS would answer instead."""
        from werkzeug.exceptions import HTTPException
        from moto.core.exceptions import ServiceException
        from moto.iam.access_control import IAMRequest, S3IAMRequest

        # S3 signs the path as sent (no normalisation, no second encoding) and the payload hash
        # it was given: botocore's S3SigV4Auth, which S3IAMRequest uses.
        kind = S3IAMRequest if service == "s3" else IAMRequest
        try:
            request = kind(
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
        except ServiceException as e:  # the same, as moto's S3 raises them
            return Refusal(e.code, e.message, 403)
        except KeyError as e:  # no X-Amz-Security-Token or X-Amz-Date: not a session's request
            return Refusal("InvalidClientTokenId", f"missing {e} for a temporary credential", 403)
        return request

    def _decide(self, role_name: str, principal: str, service: str, action: str, resource: str) -> Refusal | None:
        """The role's verdict on ``action`` over ``resource``: None if allowed."""
        from moto.iam.access_control import IAMPolicy, PermissionResult
        from moto.iam.models import iam_backends

        # The role's inline documents and managed policies (moto's collect_policies for an
        # assumed role hands back managed policies in a shape its own IAMPolicy cannot read).
        role = iam_backends[self.account]["aws"].get_role(role_name)
        policies = [IAMPolicy(doc if isinstance(doc, str) else json.dumps(doc)) for doc in role.policies.values()]
        policies += [IAMPolicy(managed) for managed in role.managed_policies.values()]
        results = [p.is_action_permitted(action, resource) for p in policies]
        if PermissionResult.DENIED in results:
            reason = "with an explicit deny in an identity-based policy"
        elif PermissionResult.PERMITTED not in results:
            reason = f"because no identity-based policy allows the {action} action"
        else:
            return None
        message = f"User: {principal} is not authorized to perform: {action} on resource: {resource} {reason}"
        if service in ("cloudfront", "s3"):
            return Refusal("AccessDenied", message, 403)
        return Refusal("AccessDeniedException", message, 400)


def error_response(service: str, refusal: Refusal, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """The refusal in the shape the service's SDK parses: CloudFront's XML error document
    (restXml), S3's ``<Error>`` document, JSON with ``__type`` for the JSON protocols (DynamoDB,
    Step Functions, SQS)."""
    if service == "cloudfront":
        from .cloudfront.models import CloudFrontError
        from .cloudfront.responses import error_answer

        return error_answer(CloudFrontError(refusal.code, refusal.status, refusal.message), request_id)
    if service == "s3":
        from xml.sax.saxutils import escape

        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{refusal.code}</Code>'
            f"<Message>{escape(refusal.message)}</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        return refusal.status, [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], body
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
