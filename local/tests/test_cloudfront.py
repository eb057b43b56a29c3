"""The CloudFront invalidation model (local.cloudfront) against AWS's documented behaviour.

Driven through botocore (REST-XML, like the Rust SDK), so status codes and error shapes count.
"""

from __future__ import annotations

import time
import uuid
from xml.etree import ElementTree

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError

from .conftest import wait_for

NS = "http://cloudfront.amazonaws.com/doc/2020-05-31/"


def _dist(stack, **extra) -> str:
    cf = stack.client("cloudfront")
    resp = cf.create_distribution(
        DistributionConfig={
            "CallerReference": str(uuid.uuid4()),
            "Comment": "t",
            "Enabled": True,
            "Origins": {"Quantity": 1, "Items": [{"Id": "o", "DomainName": "b.s3.amazonaws.com", "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
            "DefaultCacheBehavior": {"TargetOriginId": "o", "ViewerProtocolPolicy": "allow-all", "MinTTL": 0, "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}}, "TrustedSigners": {"Enabled": False, "Quantity": 0}},
            **extra,
        }
    )
    return resp["Distribution"]["Id"]


def _create(stack, dist, paths, ref=None):
    return stack.client("cloudfront").create_invalidation(
        DistributionId=dist, InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": ref or str(uuid.uuid4())}
    )


def _code(excinfo) -> tuple[str, int]:
    err = excinfo.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture()
def dist(stack):
    stack.control("cloudfront/in-progress-seconds", {"seconds": 1.0})
    return _dist(stack)


def test_in_progress_then_completed(stack, dist):
    stack.control("cloudfront/in-progress-seconds", {"seconds": 1.5, "distribution_id": dist})
    resp = _create(stack, dist, ["/a.html", "/img/*"])
    inv = resp["Invalidation"]
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert resp["Location"].endswith(f"/distribution/{dist}/invalidation/{inv['Id']}")
    assert inv["Status"] == "InProgress"
    assert inv["InvalidationBatch"]["Paths"]["Items"] == ["/a.html", "/img/*"]
    cf = stack.client("cloudfront")
    assert cf.get_invalidation(DistributionId=dist, Id=inv["Id"])["Invalidation"]["Status"] == "InProgress"
    wait_for(lambda: cf.get_invalidation(DistributionId=dist, Id=inv["Id"])["Invalidation"]["Status"] == "Completed", timeout=60, what="Completed")
    listed = cf.list_invalidations(DistributionId=dist)["InvalidationList"]
    assert listed["Quantity"] == 1 and listed["Items"][0]["Id"] == inv["Id"] and listed["Items"][0]["Status"] == "Completed"


def test_caller_reference_is_idempotent_for_the_same_paths(stack, dist):
    first = _create(stack, dist, ["/x", "/y"], ref="batch-1#0")["Invalidation"]
    again = _create(stack, dist, ["/y", "/x"], ref="batch-1#0")["Invalidation"]
    assert again["Id"] == first["Id"]
    assert stack.client("cloudfront").list_invalidations(DistributionId=dist)["InvalidationList"]["Quantity"] == 1
    calls = stack.control("cloudfront/calls", {"distribution_id": dist})
    assert [c["outcome"] for c in calls["calls"]] == ["created", "existing"]
    assert calls["billed_paths"] == 2 and calls["created"] == 1


def test_caller_reference_with_other_paths_is_batch_already_exists(stack, dist):
    _create(stack, dist, ["/x"], ref="batch-2#0")
    with pytest.raises(ClientError) as e:
        _create(stack, dist, ["/x", "/z"], ref="batch-2#0")
    assert _code(e) == ("InvalidationBatchAlreadyExists", 409)
    # The same reference on another distribution is independent.
    other = _dist(stack)
    assert _create(stack, other, ["/x", "/z"], ref="batch-2#0")["Invalidation"]["Status"] == "InProgress"


def test_wildcard_limit_15_in_progress(stack, dist):
    stack.control("cloudfront/in-progress-seconds", {"seconds": 60, "distribution_id": dist})
    _create(stack, dist, [f"/w{i}/*" for i in range(10)])
    _create(stack, dist, [f"/v{i}/*" for i in range(5)] + ["/file"])
    with pytest.raises(ClientError) as e:
        _create(stack, dist, ["/one-more/*"])
    assert _code(e) == ("TooManyInvalidationsInProgress", 400)
    assert _create(stack, dist, ["/plain-file"])["Invalidation"]  # file paths still fine
    stack.control("cloudfront/complete", {"distribution_id": dist})
    assert _create(stack, dist, ["/one-more/*"])["Invalidation"]["Status"] == "InProgress"


def test_file_path_limit_3000_in_progress(stack, dist):
    stack.control("cloudfront/in-progress-seconds", {"seconds": 60, "distribution_id": dist})
    _create(stack, dist, [f"/f{i}" for i in range(2999)])
    _create(stack, dist, ["/last"])
    with pytest.raises(ClientError) as e:
        _create(stack, dist, ["/too-many"])
    assert _code(e) == ("TooManyInvalidationsInProgress", 400)
    with pytest.raises(ClientError) as e:
        _create(stack, _dist(stack), [f"/g{i}" for i in range(3001)])
    assert _code(e) == ("BatchTooLarge", 413)


def test_unknown_distribution_and_invalidation(stack, dist):
    with pytest.raises(ClientError) as e:
        _create(stack, "EDOESNOTEXIST", ["/a"])
    assert _code(e) == ("NoSuchDistribution", 404)
    with pytest.raises(ClientError) as e:
        stack.client("cloudfront").get_invalidation(DistributionId=dist, Id="INOPE")
    assert _code(e) == ("NoSuchInvalidation", 404)


def test_invalid_paths(stack, dist):
    # No `~` in an invalidation path, encoded or not (CloudFront developer guide).
    for bad in (["no-slash"], ["/~user/a"], ["/%7Euser/a"], ["/a%7e*"], ["/" + "x" * 4000]):
        with pytest.raises(ClientError) as e:
            _create(stack, dist, bad)
        assert _code(e) == ("InvalidArgument", 400)


def test_an_inner_asterisk_is_a_literal_file_path_not_a_wildcard(stack, dist):
    made = _create(stack, dist, ["/a*b.txt", "/a**"], ref="inner-star#0")["Invalidation"]
    assert made["InvalidationBatch"]["Paths"]["Items"] == ["/a*b.txt", "/a**"]
    calls = stack.control("cloudfront/calls", {"distribution_id": dist})["calls"]
    assert calls[-1]["outcome"] == "created"


def test_throttling_for_next_n_calls_then_recovers(stack, dist):
    stack.control("faults/set", {"kind": "cloudfront", "code": "Throttling", "count": 2, "distribution_id": dist})
    for _ in range(2):
        with pytest.raises(ClientError) as e:
            _create(stack, dist, ["/t"], ref="thr#0")
        assert _code(e) == ("Throttling", 400)
        assert e.value.response["Error"]["Message"] == "Rate exceeded"
    assert _create(stack, dist, ["/t"], ref="thr#0")["Invalidation"]
    outcomes = [c["outcome"] for c in stack.control("cloudfront/calls", {"distribution_id": dist})["calls"]]
    assert outcomes == ["Throttling", "Throttling", "created"]


def test_fraction_of_calls_and_service_unavailable(stack, dist):
    stack.control("faults/seed", {"seed": 7})
    stack.control("faults/set", {"kind": "cloudfront", "code": "ServiceUnavailable", "rate": 0.5, "operation": "*"})
    failures = 0
    for _ in range(40):
        try:
            stack.client("cloudfront").list_invalidations(DistributionId=dist)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ServiceUnavailable"
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            failures += 1
    assert 8 <= failures <= 32


def test_access_denied_until_cleared_and_hold_limit(stack, dist):
    fault = stack.control("faults/set", {"kind": "cloudfront", "code": "AccessDenied", "distribution_id": dist})
    other = _dist(stack)
    for _ in range(3):
        with pytest.raises(ClientError) as e:
            _create(stack, dist, ["/a"])
        assert _code(e) == ("AccessDenied", 403)
    assert _create(stack, other, ["/a"])
    stack.control("faults/clear", {"id": fault["id"]})
    assert _create(stack, dist, ["/a"], ref="after-clear")
    stack.control("cloudfront/hold-limit", {"distribution_id": dist, "seconds": 1.0})
    with pytest.raises(ClientError) as e:
        _create(stack, dist, ["/b"])
    assert _code(e) == ("TooManyInvalidationsInProgress", 400)
    assert _create(stack, dist, ["/a"], ref="after-clear")  # an existing batch is still answered
    time.sleep(1.1)
    assert _create(stack, dist, ["/b"])


def test_error_xml_shape():
    from local.cloudfront.models import CloudFrontModel
    from local.cloudfront.responses import CloudFrontResponse
    from local.faults import Faults

    model = CloudFrontModel(distribution_exists=lambda d: False, faults=Faults())
    status, headers, body = CloudFrontResponse(model).handle("POST", "/2020-05-31/distribution/E1/invalidation", "", b"<InvalidationBatch/>")
    assert status == 404
    text = body.decode()
    assert "<ErrorResponse" in text and "<Error><Type>Sender</Type><Code>NoSuchDistribution</Code><Message>" in text
    assert "<RequestId>" in text and dict(headers)["x-amz-request-id"]


def test_requests_are_named_as_iam_judges_them():
    # A request without an operation name is refused by local/iam.py ("cloudfront:"), so a
    # function reading a distribution's configuration needs it named.
    from local.cloudfront.urls import operation

    base = "/2020-05-31/distribution/E1"
    assert operation("GET", f"{base}/config") == "GetDistributionConfig"
    assert operation("POST", f"{base}/invalidation") == "CreateInvalidation"
    assert operation("GET", f"{base}/invalidation/I1") == "GetInvalidation"
    assert operation("GET", f"{base}/invalidation") == "ListInvalidations"
    assert operation("PUT", f"{base}/config") is None
def test_cache_tag_items_are_accepted_checked_and_never_wildcards(stack, dist):
    # "What you need to know when invalidating tags": items begin with #, ASCII 33-126 without
    # commas, at most 256 characters, no * wildcard.
    made = _create(stack, dist, ["#Sale", "#a*", "#" + "x" * 256])["Invalidation"]
    assert made["InvalidationBatch"]["Paths"]["Items"] == ["#Sale", "#a*", "#" + "x" * 256]
    for bad in (["#"], ["#a,b"], ["#a b"], ["#caf\u00e9"], ["#" + "x" * 257]):
        with pytest.raises(ClientError) as e:
            _create(stack, dist, bad)
        assert _code(e) == ("InvalidArgument", 400), bad
    # 16 "#x*" items are 16 file paths, not 16 wildcards over the limit of 15.
    _create(stack, dist, [f"#t{i}*" for i in range(16)])


def _raw(client, operation: str, **kwargs) -> ElementTree.Element:
    """The XML document CloudFront answered (what the Rust SDK parses), not botocore's dict."""
    raw: dict[str, bytes] = {}

    def keep(http_response, **_):
        raw["body"] = http_response.content

    event = f"after-call.cloudfront.{operation}"
    client.meta.events.register(event, keep)
    try:
        getattr(client, xform_name(operation))(**kwargs)
    finally:
        client.meta.events.unregister(event, keep)
    return ElementTree.fromstring(raw["body"])


def _tag_config(config: ElementTree.Element) -> list[str]:
    """The HeaderName of each CacheTagConfig child of a DistributionConfig element."""
    return [h.text or "" for c in config.findall(f"{{{NS}}}CacheTagConfig") for h in c.findall(f"{{{NS}}}HeaderName")]


def test_the_distribution_apis_show_its_cache_tag_config(stack):
    # API reference, DistributionConfig: "CacheTagConfig: Configuration for cache tag extraction
    # from origin responses" (CacheTagConfig: "HeaderName ... Required: Yes"); DistributionSummary
    # (ListDistributions) has no such member.
    cf = stack.client("cloudfront")
    tagged = _dist(stack, CacheTagConfig={"HeaderName": "x-amz-meta-cache-tag"})
    assert _tag_config(_raw(cf, "GetDistributionConfig", Id=tagged)) == ["x-amz-meta-cache-tag"]
    (config,) = _raw(cf, "GetDistribution", Id=tagged).findall(f"{{{NS}}}DistributionConfig")
    assert _tag_config(config) == ["x-amz-meta-cache-tag"]
    assert cf.get_distribution_config(Id=tagged)["DistributionConfig"]["CacheTagConfig"] == {"HeaderName": "x-amz-meta-cache-tag"}
    listed = _raw(cf, "ListDistributions")
    assert list(listed.iter(f"{{{NS}}}DistributionSummary")) and not list(listed.iter(f"{{{NS}}}CacheTagConfig"))
    assert stack.stack.cloudfront.cache_tag_header(tagged) == "x-amz-meta-cache-tag", "the edge reads the same store"

    # Set through the control (an UpdateDistribution stand-in), the API shows it too; without a
    # header it is gone.
    plain = _dist(stack)
    assert _tag_config(_raw(cf, "GetDistributionConfig", Id=plain)) == []
    stack.control("cloudfront/cache-tag-header", {"distribution_id": plain, "header": "X-Cache-Tag"})
    assert _tag_config(_raw(cf, "GetDistributionConfig", Id=plain)) == ["X-Cache-Tag"]
    stack.control("cloudfront/cache-tag-header", {"distribution_id": plain})
    assert _tag_config(_raw(cf, "GetDistributionConfig", Id=plain)) == []
    assert stack.stack.cloudfront.cache_tag_header(plain) is None
    stack.control("cloudfront/cache-tag-header", {"distribution_id": "ENOSUCH", "header": "x"}, expect=400)

    # "When CacheTagConfig is removed from a distribution via UpdateDistribution, CloudFront
    # stops extracting tags from origin responses."
    current = cf.get_distribution_config(Id=tagged)
    config = dict(current["DistributionConfig"])
    del config["CacheTagConfig"]
    cf.update_distribution(Id=tagged, IfMatch=current["ETag"], DistributionConfig=config)
    assert _tag_config(_raw(cf, "GetDistributionConfig", Id=tagged)) == []
    assert stack.stack.cloudfront.cache_tag_header(tagged) is None
