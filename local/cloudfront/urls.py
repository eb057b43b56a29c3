"""Which requests the local CloudFront answers: the invalidation operations of API version
2020-05-31 (``CreateInvalidation``, ``GetInvalidation``, ``ListInvalidations``); every other
CloudFront request goes on to moto."""

from __future__ import annotations

import re

INVALIDATION_PATH = re.compile(r"^/2020-05-31/distribution/(?P<dist>[^/]+)/invalidation(?:/(?P<inv>[^/]+))?/?$")


def match(path: str) -> re.Match[str] | None:
    """The distribution (``dist``) and invalidation id (``inv``, None for the collection) of an
    invalidation request's path, or None if the request is not one."""
    return INVALIDATION_PATH.match(path)


def operation(method: str, path: str) -> str | None:
    """The invalidation operation a request is (the name IAM judges), or None if it is none."""
    m = match(path)
    if m is None:
        return None
    if method == "POST":
        return "CreateInvalidation"
    return "GetInvalidation" if m.group("inv") else "ListInvalidations"
