"""A viewer-facing edge cache per distribution: what a viewer would get from CloudFront.

Why: the invalidation model proves that a path string reached a ``Completed`` invalidation; only
an edge that caches what a viewer asked for, under CloudFront's cache key, shows whether that
string frees the viewer from the stale copy. Each edge is an HTTP/1.1 server on 127.0.0.1 that
answers GET and HEAD in front of its distribution's S3 origin, read in-process from moto:

* Configuration from moto's CloudFront backend at each request: the origin (``<bucket>.s3...``
  -> bucket, ``OriginPath``), ``DefaultRootObject``, and the cache behavior whose
  ``PathPattern`` matches (else the default) for whether the query string is in the cache key.
* Cache key: the request's path exactly as the viewer sent it (no percent-decoding, hex case
  kept), plus ``?query`` where the behavior includes it. local/README.md ("The edge cache")
  gives the evidence and why the literal comparison is the strict side.
* Expiry: objects live CloudFront's default TTL (86,400 s), errors its default error-caching
  minimum TTL (10 s); the origin's Cache-Control is not read.
* Invalidations apply only once ``Completed``: an entry fetched before an invalidation was
  created, whose key one of its paths matches, is gone once that invalidation completes.
* Cache tags: where the distribution has a ``CacheTagConfig`` (kept in moto's configuration,
  read through the model), an entry keeps the tags of that origin response header (S3 returns
  the object's ``x-amz-meta-<name>`` metadata as that header), and a Completed ``#tag`` item
  removes every entry holding the tag, whatever its URL.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote

from ..lambda_runtime import LISTEN_BACKLOG
from .models import CloudFrontModel, header_tags, is_tag_item

DEFAULT_TTL = 86400.0  # CachePolicyConfig.DefaultTTL: "The default value for this field is 86400 seconds (one day)"
ERROR_TTL = 10.0  # "CloudFront caches error responses for a default duration of 10 seconds"
_S3_DOMAIN = re.compile(r"^(?P<bucket>.+)\.s3[.-](?:[a-z0-9-]+\.)?amazonaws\.com$")


class EdgeError(Exception):
    """A distribution the edge cannot serve (no such distribution, an origin that is not S3)."""


@dataclass(frozen=True)
class Route:
    """What the distribution's configuration says about one request."""

    bucket: str
    key: str  # the S3 key the origin request names
    cache_keys: tuple[str, ...]  # every key an invalidation must match to remove the entry


@dataclass
class Entry:
    status: int
    body: bytes
    headers: dict[str, str]
    fetched_at: float
    expires_at: float
    cache_keys: tuple[str, ...]
    tags: frozenset[str] = frozenset()


def matches(invalidation_path: str, cache_key: str) -> bool:
    """CloudFront's rule: a trailing ``*`` matches any suffix (query string included); any other
    path, an inner ``*`` included, matches the cache key literally and case-sensitively."""
    if invalidation_path.endswith("*"):
        return cache_key.startswith(invalidation_path[:-1])
    return cache_key == invalidation_path


def _includes_query(behavior: Any) -> bool:
    """Whether the behavior puts the query string in the cache key. moto keeps no cache
    policies, so a ``CachePolicyId`` cannot be read: it counts as including it (the strict side:
    more variants, which an exact path leaves cached)."""
    if getattr(behavior, "cache_policy_id", ""):
        return True
    forwarded = behavior.forwarded_values
    return str(getattr(forwarded, "QueryString", False)).lower() == "true"


def _behavior(config: Any, path: str) -> Any:
    """The first cache behavior whose PathPattern matches (case-sensitive ``*``/``?``), else the
    default one."""
    for behavior in (config.CacheBehaviors or {}).get("Items") or []:
        pattern = behavior.path_pattern if behavior.path_pattern.startswith("/") else "/" + behavior.path_pattern
        if fnmatch.fnmatchcase(path, pattern.replace("[", "[[]")):
            return behavior
    return config.DefaultCacheBehavior


def route(config: Any, raw_path: str, query: str) -> Route:
    """Where a viewer request goes and what it is cached under (``config`` is moto's
    DistributionConfig)."""
    behavior = _behavior(config, raw_path)
    origin = next((o for o in config.Origins["Items"] if o.id == behavior.target_origin_id), None)
    found = _S3_DOMAIN.match(origin.domain_name) if origin else None
    if not found:
        raise EdgeError(f"origin {behavior.target_origin_id!r} is not an S3 bucket")
    key_path = f"/{config.DefaultRootObject}" if raw_path == "/" and config.DefaultRootObject else raw_path
    cache_key = raw_path + (f"?{query}" if query and _includes_query(behavior) else "")
    cache_keys: tuple[str, ...] = (cache_key,)
    if key_path != raw_path:
        # Served from the default root object: whether CloudFront files it under "/" or under
        # "/index.html" is undocumented, so only an invalidation of both removes it (strict).
        cache_keys += (key_path + cache_key[len(raw_path):],)
    key = unquote(origin.origin_path.rstrip("/") + key_path)[1:]
    return Route(bucket=found["bucket"], key=key, cache_keys=cache_keys)


@dataclass
class Edge:
    """One distribution's cache and its counters."""

    distribution_id: str
    config: Callable[[str], Any]  # distribution id -> moto DistributionConfig
    read_object: Callable[[str, str], Any]  # (bucket, key) -> moto FakeKey or None
    cloudfront: CloudFrontModel
    entries: dict[str, Entry] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    invalidated: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _still_cached(self, entry: Entry, now: float) -> bool:
        """Not expired, and not removed by a Completed invalidation created after its fetch."""
        if now >= entry.expires_at:
            return False
        done = self.cloudfront.completed_paths_since(self.distribution_id, entry.fetched_at)
        items = [p for inv in done for p in inv]
        if any(is_tag_item(i) and i[1:].lower() in entry.tags for i in items):
            return False
        paths = [p for p in items if not is_tag_item(p)]
        return not all(any(matches(p, k) for p in paths) for k in entry.cache_keys)

    def get(self, raw_path: str, query: str) -> tuple[Entry, bool, float]:
        """(entry, hit, now) for a viewer request; fetches from the origin on a miss."""
        r = route(self.config(self.distribution_id), raw_path, query)
        clock = self.cloudfront.clock
        with self._lock:
            now = clock()
            entry = self.entries.get(r.cache_keys[0])
            if entry is not None and self._still_cached(entry, now):
                self.hits += 1
                return entry, True, now
            if entry is not None and now < entry.expires_at:
                self.invalidated += 1
            self.misses += 1
        fetched_at = clock()  # before the read: a change after it is a later invalidation's job
        entry = self._fetch(r, fetched_at)
        with self._lock:
            self.entries[r.cache_keys[0]] = entry
        return entry, False, fetched_at

    def _fetch(self, r: Route, fetched_at: float) -> Entry:
        obj = self.read_object(r.bucket, r.key)
        if obj is None:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
                "<Message>The specified key does not exist.</Message></Error>"
            ).encode()
            headers = {"Content-Type": "application/xml"}
            return Entry(404, body, headers, fetched_at, fetched_at + ERROR_TTL, r.cache_keys)
        headers = {"Content-Type": obj.metadata.get("Content-Type", "binary/octet-stream"), "ETag": obj.etag, "Last-Modified": obj.last_modified_RFC1123}
        tags: frozenset[str] = frozenset()
        tag_header = self.cloudfront.cache_tag_header(self.distribution_id)
        value = next((v for k, v in obj.metadata.items() if k.lower() == tag_header.lower()), None) if tag_header else None
        if value is not None:
            headers[tag_header] = value
            tags = header_tags(value)
        return Entry(200, bytes(obj.value), headers, fetched_at, fetched_at + DEFAULT_TTL, r.cache_keys, tags)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "invalidated": self.invalidated, "entries": len(self.entries)}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        raw_path, _, query = self.path.partition("?")
        try:
            entry, hit, now = self.server.edge.get(raw_path, query)
        except EdgeError as e:
            self._send(502, {"Content-Type": "text/plain"}, str(e).encode(), body)
            return
        headers = dict(entry.headers)
        # CloudFront labels an error response "Error", cached or not; the counters still tell.
        headers["X-Cache"] = f"{'Error' if entry.status >= 400 else 'Hit' if hit else 'Miss'} from cloudfront"
        if hit:
            headers["Age"] = str(int(now - entry.fetched_at))
        self._send(entry.status, headers, entry.body, body)

    def _send(self, status: int, headers: dict[str, str], payload: bytes, body: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG  # local/lambda_runtime.py says why
    edge: Edge


class Edges:
    """The edge of every distribution: started on demand, one server each."""

    def __init__(self, account: str, cloudfront: CloudFrontModel) -> None:
        self.account = account
        self.cloudfront = cloudfront
        self._servers: dict[str, _Server] = {}
        self._lock = threading.Lock()

    def _config(self, distribution_id: str) -> Any:
        from moto.cloudfront.models import cloudfront_backends

        dist = cloudfront_backends[self.account]["global"].distributions.get(distribution_id)
        if dist is None:
            raise EdgeError(f"no distribution {distribution_id}")
        return dist.distribution_config

    def _read_object(self, bucket: str, key: str) -> Any:
        from moto.s3.exceptions import MissingBucket, MissingKey
        from moto.s3.models import s3_backends

        try:
            return s3_backends[self.account]["global"].get_object(bucket, key)
        except (MissingBucket, MissingKey):
            return None

    def start(self, distribution_id: str) -> str:
        """The edge's URL, starting it if needed."""
        with self._lock:
            server = self._servers.get(distribution_id)
            if server is None:
                server = _Server(("127.0.0.1", 0), _Handler)
                server.edge = Edge(distribution_id, self._config, self._read_object, self.cloudfront)
                threading.Thread(target=server.serve_forever, daemon=True, name=f"edge-{distribution_id}").start()
                self._servers[distribution_id] = server
            return f"http://127.0.0.1:{server.server_port}"

    def urls(self) -> dict[str, str]:
        with self._lock:
            return {d: f"http://127.0.0.1:{s.server_port}" for d, s in self._servers.items()}

    def stats(self, distribution_id: str | None = None) -> dict[str, Any]:
        with self._lock:
            servers = dict(self._servers)
        return {d: s.edge.stats() for d, s in servers.items() if distribution_id in (None, d)}

    def stop(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.shutdown()
            server.server_close()

