"""The edge cache (local.cloudfront.edge) against CloudFront's documented caching and
invalidation rules, driven over HTTP like a viewer, with invalidations made through botocore."""

from __future__ import annotations

import http.client
import uuid
from urllib.parse import urlsplit

import pytest

from local.cloudfront.edge import matches


class Viewer:
    """A viewer of one distribution's edge: raw request targets, sent as given."""

    def __init__(self, stack, dist: str) -> None:
        self.stack, self.dist = stack, dist
        self.netloc = urlsplit(stack.stack.edges.start(dist)).netloc

    def request(self, target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.netloc, timeout=10)
        try:
            conn.request(method, target)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def get(self, target: str) -> tuple[str, str]:
        """(body or the status, X-Cache's first word)."""
        status, headers, body = self.request(target)
        return (body.decode() if status == 200 else str(status)), headers["X-Cache"].split()[0]

    def invalidate(self, *paths: str) -> None:
        """An invalidation that stays InProgress until ``complete``."""
        self.stack.client("cloudfront").create_invalidation(
            DistributionId=self.dist,
            InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": list(paths)}, "CallerReference": str(uuid.uuid4())},
        )

    def complete(self) -> None:
        assert self.stack.control("cloudfront/complete", {"distribution_id": self.dist})["completed"] >= 1


def distribution(stack, bucket: str, *, origin_path: str = "", root: str = "", query: bool = False) -> str:
    config = {
        "CallerReference": str(uuid.uuid4()),
        "Comment": "edge test",
        "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "s3", "DomainName": f"{bucket}.s3.amazonaws.com", "OriginPath": origin_path, "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "allow-all", "MinTTL": 0, "ForwardedValues": {"QueryString": query, "Cookies": {"Forward": "none"}}, "TrustedSigners": {"Enabled": False, "Quantity": 0}},
    }
    if root:
        config["DefaultRootObject"] = root
    dist = stack.client("cloudfront").create_distribution(DistributionConfig=config)["Distribution"]["Id"]
    stack.control("cloudfront/in-progress-seconds", {"seconds": 3600, "distribution_id": dist})
    return dist


@pytest.fixture()
def put(stack, bucket):
    s3 = stack.client("s3")
    return lambda key, body: s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="text/html")


@pytest.fixture()
def viewer(stack, bucket) -> Viewer:
    return Viewer(stack, distribution(stack, bucket))


def test_a_miss_then_a_hit_with_cloudfront_headers(stack, put, viewer):
    put("a.html", "v1")
    status, first, body = viewer.request("/a.html")
    assert (status, body, first["X-Cache"], first["Content-Type"], first["Content-Length"]) == (200, b"v1", "Miss from cloudfront", "text/html", "2")
    assert first["ETag"].startswith('"') and "Age" not in first
    status, second, body = viewer.request("/a.html")
    assert (status, body, second["X-Cache"], second["ETag"]) == (200, b"v1", "Hit from cloudfront", first["ETag"])
    assert int(second["Age"]) >= 0
    assert stack.control("edge/stats", {"distribution_id": viewer.dist})["edges"][viewer.dist] == {"hits": 1, "misses": 1, "invalidated": 0, "entries": 1}


def test_an_overwrite_stays_stale_until_the_invalidation_completes(put, viewer):
    put("page.html", "old")
    assert viewer.get("/page.html") == ("old", "Miss")
    put("page.html", "new")
    assert viewer.get("/page.html") == ("old", "Hit")
    viewer.invalidate("/page.html")
    assert viewer.get("/page.html") == ("old", "Hit"), "InProgress: the edge may still serve the stale copy"
    viewer.complete()
    assert viewer.get("/page.html") == ("new", "Miss")
    assert viewer.get("/page.html") == ("new", "Hit")


def test_an_entry_fetched_after_the_invalidation_was_created_is_kept(put, viewer):
    put("page.html", "new")
    viewer.invalidate("/page.html")
    assert viewer.get("/page.html") == ("new", "Miss")
    viewer.complete()
    assert viewer.get("/page.html") == ("new", "Hit")


def test_a_delete_is_a_cached_404_once_completed(stack, bucket, put, viewer):
    put("gone.css", "x")
    assert viewer.get("/gone.css") == ("x", "Miss")
    stack.client("s3").delete_object(Bucket=bucket, Key="gone.css")
    assert viewer.get("/gone.css") == ("x", "Hit")
    viewer.invalidate("/gone.css")
    viewer.complete()
    status, headers, body = viewer.request("/gone.css")
    assert (status, headers["X-Cache"]) == (404, "Error from cloudfront") and b"NoSuchKey" in body
    before = stack.control("edge/stats", {"distribution_id": viewer.dist})["edges"][viewer.dist]["hits"]
    assert viewer.request("/gone.css")[0] == 404
    assert stack.control("edge/stats", {"distribution_id": viewer.dist})["edges"][viewer.dist]["hits"] == before + 1, "errors are cached"


def test_a_trailing_wildcard_matches_any_suffix_case_sensitively(put, viewer):
    for key in ("img/a.png", "img/sub/b.png", "IMG/c.png", "other.png"):
        put(key, "v1")
        viewer.get(f"/{key}")
        put(key, "v2")
    viewer.invalidate("/img/*")
    viewer.complete()
    assert [viewer.get(f"/{k}")[0] for k in ("img/a.png", "img/sub/b.png", "IMG/c.png", "other.png")] == ["v2", "v2", "v1", "v1"]


def test_an_inner_asterisk_is_literal(put, viewer):
    for key in ("x/a*b.html", "x/a1b.html"):
        put(key, "v1")
        viewer.get(f"/{key}")
        put(key, "v2")
    viewer.invalidate("/x/a*b.html")
    viewer.complete()
    assert (viewer.get("/x/a*b.html")[0], viewer.get("/x/a1b.html")[0]) == ("v2", "v1")


def test_query_string_variants_in_the_key_are_kept_by_an_exact_path(stack, bucket, put):
    viewer = Viewer(stack, distribution(stack, bucket, query=True))
    put("a.png", "v1")
    assert viewer.get("/a.png")[1] == "Miss" and viewer.get("/a.png?v=2")[1] == "Miss", "one entry per query string"
    put("a.png", "v2")
    viewer.invalidate("/a.png")
    viewer.complete()
    assert (viewer.get("/a.png")[0], viewer.get("/a.png?v=2")[0]) == ("v2", "v1")
    viewer.invalidate("/a.png*")
    viewer.complete()
    assert viewer.get("/a.png?v=2") == ("v2", "Miss")


def test_without_the_query_string_in_the_key_variants_share_one_entry(put, viewer):
    put("a.png", "v1")
    assert viewer.get("/a.png?v=1") == ("v1", "Miss")
    assert viewer.get("/a.png?v=2") == ("v1", "Hit")
    put("a.png", "v2")
    viewer.invalidate("/a.png")
    viewer.complete()
    assert viewer.get("/a.png?v=3") == ("v2", "Miss")


def test_the_default_root_object_is_fresh_only_when_both_its_paths_are_invalidated(stack, bucket, put):
    viewer = Viewer(stack, distribution(stack, bucket, root="index.html"))
    put("index.html", "home v1")
    assert viewer.get("/") == ("home v1", "Miss")
    assert viewer.get("/index.html") == ("home v1", "Miss"), "a separate cache entry"
    put("index.html", "home v2")
    viewer.invalidate("/")
    viewer.complete()
    assert viewer.get("/") == ("home v1", "Hit"), "which key CloudFront files it under is undocumented"
    viewer.invalidate("/index.html")
    viewer.complete()
    assert viewer.get("/") == ("home v2", "Miss")
    assert viewer.get("/index.html") == ("home v2", "Miss")


def test_the_origin_path_prefixes_the_key(stack, bucket, put):
    viewer = Viewer(stack, distribution(stack, bucket, origin_path="/site", root="index.html"))
    put("site/a.html", "under the origin path")
    put("a.html", "outside it")
    put("site/index.html", "site home")
    assert viewer.get("/a.html")[0] == "under the origin path"
    assert viewer.get("/")[0] == "site home"
    assert viewer.get("/site/a.html")[0] == "404"


@pytest.mark.parametrize(
    ("key", "target", "invalidation", "fresh"),
    [
        ("blog/hello world.html", "/blog/hello%20world.html", "/blog/hello%20world.html", True),
        ("blog/c++ tips.html", "/blog/c++%20tips.html", "/blog/c++%20tips.html", True),
        ("blog/c++ tips.html", "/blog/c++%20tips.html", "/blog/c%2B%2B%20tips.html", False),
        ("blog/서울.html", "/blog/%EC%84%9C%EC%9A%B8.html", "/blog/%EC%84%9C%EC%9A%B8.html", True),
        ("blog/서울.html", "/blog/%EC%84%9C%EC%9A%B8.html", "/blog/%ec%84%9c%ec%9a%b8.html", False),
        ("100%.html", "/100%25.html", "/100%25.html", True),
        ("a.html", "/%61.html", "/a.html", False),
    ],
    ids=["space", "plus", "plus-encoded", "non-ascii", "hex-case", "percent", "unreserved-encoded"],
)
def test_a_viewer_url_and_an_invalidation_path_compare_as_sent(put, viewer, key, target, invalidation, fresh):
    put(key, "v1")
    assert viewer.get(target) == ("v1", "Miss"), "the origin request decodes the path"
    put(key, "v2")
    viewer.invalidate(invalidation)
    viewer.complete()
    assert viewer.get(target)[0] == ("v2" if fresh else "v1")


def test_head_answers_the_headers_without_a_body_from_the_same_cache(put, viewer):
    put("h.html", "hello")
    status, headers, body = viewer.request("/h.html", "HEAD")
    assert (status, body, headers["Content-Length"], headers["X-Cache"]) == (200, b"", "5", "Miss from cloudfront")
    assert viewer.get("/h.html") == ("hello", "Hit")


def test_the_match_rule():
    assert matches("/a*", "/a.png?v=2") and matches("/a.png", "/a.png")
    assert not matches("/a.png", "/a.png?v=2") and not matches("/A.png", "/a.png")
    assert matches("/x/a*b", "/x/a*b") is True and not matches("/x/a*b", "/x/a1b")


def test_a_completed_tag_invalidation_removes_every_entry_with_the_tag(stack, bucket, viewer):
    stack.control("cloudfront/cache-tag-header", {"distribution_id": viewer.dist, "header": "x-amz-meta-cache-tag"})
    s3 = stack.client("s3")

    def put(key: str, body: str, tags: str | None) -> None:
        extra = {"Metadata": {"cache-tag": tags}} if tags is not None else {}
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="text/html", **extra)

    put("list.html", "v1", "Product:TV, home")
    put("item.html", "v1", "product:tv")
    put("other.html", "v1", "home")
    put("plain.html", "v1", None)
    for page in ("list", "item", "other", "plain"):
        assert viewer.get(f"/{page}.html") == ("v1", "Miss")
        put(f"{page}.html", "v2", None)
    status, headers, _ = viewer.request("/list.html")
    assert headers["x-amz-meta-cache-tag"] == "Product:TV, home", "S3 returns the metadata as the header"
    viewer.invalidate("#PRODUCT:tv")
    assert viewer.get("/item.html") == ("v1", "Hit"), "InProgress: still cached"
    viewer.complete()
    # Case-insensitive: both pages tagged product:tv are gone; the others stay.
    assert viewer.get("/list.html") == ("v2", "Miss")
    assert viewer.get("/item.html") == ("v2", "Miss")
    assert viewer.get("/other.html") == ("v1", "Hit")
    assert viewer.get("/plain.html") == ("v1", "Hit")


def test_tags_are_ignored_without_a_cache_tag_config(stack, bucket, viewer):
    stack.client("s3").put_object(Bucket=bucket, Key="t.html", Body=b"v1", Metadata={"cache-tag": "home"})
    assert viewer.get("/t.html") == ("v1", "Miss")
    viewer.invalidate("#home")
    viewer.complete()
    assert viewer.get("/t.html") == ("v1", "Hit"), "Distributions without this configuration ignore cache tag headers"


def test_the_tags_profile_serves_tg_and_stores_the_tags_s3_returns(stack, bucket):
    from local.deploy import PROFILES, distribution_config

    cf = stack.client("cloudfront")
    dist = cf.create_distribution(DistributionConfig=distribution_config(bucket, "tags", PROFILES["tags"]))["Distribution"]["Id"]
    stack.control("cloudfront/in-progress-seconds", {"seconds": 3600, "distribution_id": dist})
    viewer = Viewer(stack, dist)
    s3 = stack.client("s3")
    s3.put_object(Bucket=bucket, Key="tg/p.html", Body=b"v1", ContentType="text/html", Metadata={"cache-tag": "Sale, home"})
    s3.put_object(Bucket=bucket, Key="tg/q.html", Body=b"v1", ContentType="text/html")
    # S3 "surfaces object metadata as response headers prefixed with x-amz-meta-<Key>": what
    # S3's GET answers on the wire is what the edge read in process and keeps.
    sent = s3.get_object(Bucket=bucket, Key="tg/p.html")["ResponseMetadata"]["HTTPHeaders"]
    status, headers, body = viewer.request("/p.html")
    assert (status, body) == (200, b"v1") and headers["x-amz-meta-cache-tag"] == sent["x-amz-meta-cache-tag"] == "Sale, home"
    assert viewer.get("/q.html") == ("v1", "Miss")
    for key in ("tg/p.html", "tg/q.html"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"v2", ContentType="text/html")
    viewer.invalidate("#sale")
    viewer.complete()
    assert viewer.get("/p.html") == ("v2", "Miss"), "tagged sale: gone"
    assert viewer.get("/q.html") == ("v1", "Hit"), "untagged: kept"
