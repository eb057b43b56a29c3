"""Which requests the local CloudFront answers: the invalidation operations of API version
2020-05-31 (``CreateInvalidation``, ``GetInvalidation``, ``ListInvalidations``); every other
CloudFront request goes on to moto."""

from __future__ import annotations

import re

INVALIDATION_PATH = re.compile(r"^/2020-05-31/distribution/(?P<dist>[^/]+)/invalidation(?:/(?P<inv>[^/]+))?/?$")
# Answered by moto; named here so that IAM judges it (create-invalidation reads it when Routes is
# empty, functions/core/src/distribution.rs).
DISTRIBUTION_CONFIG_PATH = re.compile(r"^/2020-05-31/distribution/[^/]+/config/?$")


def match(path: str) -> re.Match[str] | None:
    """The distribution (``dist``) and invalidation id (``inv``, None for the collection) of an
    invalidation request's path, or None if the request is not one."""
    return INVALIDATION_PATH.match(path)


def operation(method: str, path: str) -> str | None:
    """The operation a request is (the name IAM judges): an invalidation operation or
    ``GetDistributionConfig``; None for any other."""
    if method == "GET" and DISTRIBUTION_CONFIG_PATH.match(path):
        return "GetDistributionConfig"
    m = match(path)
    if m is None:
        return None
    if method == "POST":
        return "CreateInvalidation"
    return "GetInvalidation" if m.group("inv") else "ListInvalidations"
