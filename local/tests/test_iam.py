"""local/iam.py: a function's signed request is judged against its role as AWS judges it.

Each case signs a request with a session of a role (botocore's SigV4, as an SDK does) and asks
the judge, in process, with moto's IAM and STS behind it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto import mock_aws

from local.iam import Iam

ACCOUNT, REGION = "123456789012", "us-east-1"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Audit"
HOST = "127.0.0.1:4566"


@pytest.fixture()
def iam() -> Any:
    with mock_aws():
        import boto3

        client = boto3.client("iam", region_name=REGION)
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        client.create_role(RoleName="fn-role", AssumeRolePolicyDocument=json.dumps(trust))
        grants = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["dynamodb:UpdateItem", "dynamodb:Query"], "Resource": TABLE},
                {
                    "Effect": "Allow",
                    "Action": "cloudfront:CreateInvalidation",
                    "Resource": ["arn:*:cloudfront::*:distribution/E1AAAA"],
                },
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::site/*"},
            ]
        }
        client.put_role_policy(RoleName="fn-role", PolicyName="grants", PolicyDocument=json.dumps(grants))
        yield Iam(ACCOUNT, REGION), client


def signed(session: tuple[str, str, str], service: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    request = AWSRequest(method=method, url=f"http://{HOST}{path}", data=body, headers={"Host": HOST, **headers})
    SigV4Auth(Credentials(*session), service, REGION).add_auth(request)
    return dict(request.headers.items())


def dynamodb(iam: Iam, session: tuple[str, str, str], op: str, doc: dict[str, Any], tamper: bool = False) -> Any:
    body = json.dumps(doc).encode()
    headers = signed(session, "dynamodb", "POST", "/", body, {"X-Amz-Target": f"DynamoDB_20120810.{op}", "Content-Type": "application/x-amz-json-1.0"})
    return iam.judge("POST", "/", "", headers, body + (b" " if tamper else b""), "dynamodb", op)


def cloudfront(iam: Iam, session: tuple[str, str, str], distribution: str) -> Any:
    path = f"/2020-05-31/distribution/{distribution}/invalidation"
    body = b"<InvalidationBatch/>"
    headers = signed(session, "cloudfront", "POST", path, body, {"Content-Type": "application/xml"})
    return iam.judge("POST", path, "", headers, body, "cloudfront", "CreateInvalidation")


def test_what_the_role_grants_passes(iam: Any) -> None:
    judge, _ = iam
    session = judge.session(f"arn:aws:iam::{ACCOUNT}:role/fn-role", "fn")
    assert dynamodb(judge, session, "UpdateItem", {"TableName": "Audit", "Key": {}}) is None
    assert cloudfront(judge, session, "E1AAAA") is None


def test_another_resource_or_action_is_refused_as_aws_words_it(iam: Any) -> None:
    judge, _ = iam
    session = judge.session(f"arn:aws:iam::{ACCOUNT}:role/fn-role", "fn")
    other = dynamodb(judge, session, "UpdateItem", {"TableName": "Other", "Key": {}})
    assert other.code == "AccessDeniedException" and other.status == 400
    assert other.message == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/fn-role/fn is not authorized to perform: dynamodb:UpdateItem "
        f"on resource: arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Other "
        "because no identity-based policy allows the dynamodb:UpdateItem action"
    )
    # An index is its own resource: a grant on the table does not reach it.
    index = dynamodb(judge, session, "Query", {"TableName": "Audit", "IndexName": "byStatus"})
    assert index is not None and f"{TABLE}/index/byStatus" in index.message
    assert dynamodb(judge, session, "DeleteItem", {"TableName": "Audit", "Key": {}}) is not None
    denied = cloudfront(judge, session, "E2BBBB")
    assert (denied.code, denied.status) == ("AccessDenied", 403)


def test_an_explicit_deny_wins(iam: Any) -> None:
    judge, client = iam
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "cloudfront:CreateInvalidation", "Resource": "arn:aws:cloudfront::*:distribution/E1AAAA"}]}
    client.put_role_policy(RoleName="fn-role", PolicyName="deny", PolicyDocument=json.dumps(deny))
    session = judge.session(f"arn:aws:iam::{ACCOUNT}:role/fn-role", "fn")
    denied = cloudfront(judge, session, "E1AAAA")
    assert denied is not None and denied.message.endswith("with an explicit deny in an identity-based policy")


def test_a_forged_signature_or_token_is_refused(iam: Any) -> None:
    judge, _ = iam
    key, secret, token = judge.session(f"arn:aws:iam::{ACCOUNT}:role/fn-role", "fn")
    tampered = dynamodb(judge, (key, secret, token), "UpdateItem", {"TableName": "Audit"}, tamper=True)
    assert tampered is not None and tampered.code == "SignatureDoesNotMatch"
    wrong_token = dynamodb(judge, (key, secret, token + "x"), "UpdateItem", {"TableName": "Audit"})
    assert wrong_token is not None and wrong_token.code == "InvalidClientTokenId"


def test_a_request_whose_resource_it_cannot_tell_is_refused(iam: Any) -> None:
    judge, _ = iam
    session = judge.session(f"arn:aws:iam::{ACCOUNT}:role/fn-role", "fn")
    denied = dynamodb(judge, session, "TransactWriteItems", {"TransactItems": []})
    assert denied is not None and "cannot tell which resource" in denied.message


def s3(iam: Iam, session: tuple[str, str, str], method: str, path: str, query: str = "", host: str = HOST) -> Any:
    """A GET or HEAD on an object, signed as botocore's S3 client signs it (path as sent)."""
    request = AWSRequest(method=method, url=f"http://{host}{path}" + (f"?{query}" if query else ""), data=b"", headers={"Host": host})
    S3SigV4Auth(Credentials(*session), "s3", REGION).add_auth(request)
    op = {"HEAD": "HeadObject", "GET": "GetObject"}[method]
    return iam.judge(method, path, query, dict(request.headers.items()), b"", "s3", op)


def test_head_object_is_judged_as_s3_get_object_on_the_object(iam: Any) -> None:
    # S3 API reference, HeadObject: "To use HEAD, you must have the s3:GetObject permission."
    judge, _ = iam
    session = judge.session(f"arn:aws:iam::{ACCOUNT}:role/fn-role", "fn")
    assert s3(judge, session, "HEAD", "/site/blog/a%20b.html") is None
    assert s3(judge, session, "GET", "/site/blog/a%20b.html", "x-id=GetObject") is None
    assert s3(judge, session, "HEAD", "/a%20b.html", host="site.s3.us-east-1.amazonaws.com") is None, "virtual-hosted style"
    other = s3(judge, session, "HEAD", "/other/blog/a%20b.html")
    assert (other.code, other.status) == ("AccessDenied", 403)
    assert other.message == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/fn-role/fn is not authorized to perform: s3:GetObject "
        "on resource: arn:aws:s3:::other/blog/a b.html because no identity-based policy allows the s3:GetObject action"
    )
    # A version is its own permission: "you must have the s3:GetObjectVersion permission".
    versioned = s3(judge, session, "HEAD", "/site/a.html", "versionId=v1")
    assert versioned is not None and "s3:GetObjectVersion" in versioned.message
    # Another operation on the object (GetObjectTagging) is not a read of it: not guessed.
    tagging = s3(judge, session, "GET", "/site/a.html", "tagging=")
    assert tagging is not None and "cannot tell which resource" in tagging.message
    key, secret, token = session
    forged = s3(judge, (key, secret, token + "x"), "HEAD", "/site/a.html")
    assert forged is not None and forged.status == 403


def test_a_missing_object_is_a_403_without_list_bucket(iam: Any) -> None:
    # HeadObject: "If you don't have the s3:ListBucket permission, Amazon S3 returns an HTTP
    # status code 403 Forbidden error."
    import boto3

    judge, client = iam
    boto3.client("s3", region_name=REGION).create_bucket(Bucket="site")
    session = judge.session(f"arn:aws:iam::{ACCOUNT}:role/fn-role", "fn")
    request = AWSRequest(method="HEAD", url=f"http://{HOST}/site/gone.html", data=b"", headers={"Host": HOST})
    S3SigV4Auth(Credentials(*session), "s3", REGION).add_auth(request)
    headers = dict(request.headers.items())
    hidden = judge.missing_object("HEAD", "/site/gone.html", "", headers)
    assert hidden is not None and (hidden.code, hidden.status) == ("AccessDenied", 403)
    assert "s3:ListBucket on resource: arn:aws:s3:::site " in hidden.message
    assert judge.missing_object("HEAD", "/nobucket/gone.html", "", headers) is None, "NoSuchBucket stays a 404"
    grant = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::site"}]}
    client.put_role_policy(RoleName="fn-role", PolicyName="list", PolicyDocument=json.dumps(grant))
    assert judge.missing_object("HEAD", "/site/gone.html", "", headers) is None


def test_a_function_heads_an_object_as_its_role_allows(stack, bucket, tmp_path) -> None:
    """Through the stack, from a function process signing with its role's session."""
    iam_client = stack.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    name = f"reader-{uuid.uuid4().hex[:8]}"
    role = iam_client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    read = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    iam_client.put_role_policy(RoleName=name, PolicyName="read", PolicyDocument=json.dumps(read))
    pool = stack.add_function("S3Reader", tmp_path, role=role)
    stack.client("s3").put_object(Bucket=bucket, Key="here/a b.html", Body=b"x", Metadata={"cache-tag": "home"})

    def call(op: str, key: str, in_bucket: str = bucket) -> Any:
        event = {"action": "aws", "service": "s3", "op": op, "args": {"Bucket": in_bucket, "Key": key}, "report_error": True}
        out = stack.client("lambda").invoke(FunctionName=pool.function_name, Payload=json.dumps(event).encode())
        return json.loads(out["Payload"].read()).get("aws_error")

    assert call("head_object", "here/a b.html") is None
    assert call("get_object", "here/a b.html") is None
    assert call("head_object", "gone.html")["status"] == 403, "no s3:ListBucket: S3 does not say the key is missing"
    assert call("get_object", "gone.html")["code"] == "AccessDenied"
    assert call("head_object", "x.html", in_bucket=f"{bucket}-other")["status"] == 403
    listing = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}]}
    iam_client.put_role_policy(RoleName=name, PolicyName="list", PolicyDocument=json.dumps(listing))
    assert call("head_object", "gone.html")["status"] == 404
    assert call("get_object", "gone.html")["code"] == "NoSuchKey"
