"""local/iam.py: a function's signed request is judged against its role as AWS judges it.

Each case signs a request with a session of a role (botocore's SigV4, as an SDK does) and asks
the judge, in process, with moto's IAM and STS behind it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.auth import SigV4Auth
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
