"""CloudFront's REST-XML wire format for the invalidation operations: parse the request, call
the model, answer as CloudFront does (201 + ``Location``, the ``ErrorResponse`` document)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from . import urls
from .models import CloudFrontError, CloudFrontModel, Invalidation, iso

NS = "http://cloudfront.amazonaws.com/doc/2020-05-31/"

Answer = tuple[int, list[tuple[str, str]], bytes]


class CloudFrontResponse:
    def __init__(self, model: CloudFrontModel) -> None:
        self.model = model

    def handle(self, method: str, path: str, query: str, body: bytes) -> Answer:
        """Serve one invalidation request (a path :func:`local.cloudfront.urls.match` accepts)."""
        m = urls.match(path)
        assert m is not None
        dist = unquote(m.group("dist"))
        inv_id = m.group("inv")
        request_id = str(uuid.uuid4())
        try:
            if method == "POST" and inv_id is None:
                ref, paths, quantity = _parse_batch(body)
                inv, _ = self.model.create(dist, ref, paths, quantity)
                location = f"https://cloudfront.amazonaws.com/2020-05-31/distribution/{dist}/invalidation/{inv.id}"
                return 201, _headers(request_id, [("Location", location)]), self._invalidation(inv)
            if method == "GET" and inv_id is not None:
                inv = self.model.get(dist, unquote(inv_id))
                return 200, _headers(request_id), self._invalidation(inv)
            if method == "GET" and inv_id is None:
                return 200, _headers(request_id), self._list(dist, query).encode()
            raise CloudFrontError("InvalidArgument", 400, f"Unsupported {method} on {path}")
        except CloudFrontError as e:
            return error_answer(e, request_id)

    def _invalidation(self, inv: Invalidation) -> bytes:
        items = "".join(f"<Path>{escape(p)}</Path>" for p in inv.paths)
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Invalidation xmlns="{NS}">'
            f"<Id>{inv.id}</Id><Status>{inv.status(self.model.clock())}</Status>"
            f"<CreateTime>{iso(inv.created)}</CreateTime>"
            f"<InvalidationBatch><Paths><Quantity>{len(inv.paths)}</Quantity>"
            f"<Items>{items}</Items></Paths>"
            f"<CallerReference>{escape(inv.caller_reference)}</CallerReference></InvalidationBatch>"
            "</Invalidation>"
        ).encode()

    def _list(self, dist: str, query: str) -> str:
        q = parse_qs(query)
        marker = (q.get("Marker") or [""])[0]
        max_items = int((q.get("MaxItems") or ["100"])[0])
        invs = self.model.list(dist)
        start = 0
        if marker:
            ids = [i.id for i in invs]
            start = ids.index(marker) + 1 if marker in ids else len(invs)
        page = invs[start : start + max_items]
        truncated = start + max_items < len(invs)
        now = self.model.clock()
        items = "".join(
            f"<InvalidationSummary><Id>{i.id}</Id><CreateTime>{iso(i.created)}</CreateTime>"
            f"<Status>{i.status(now)}</Status></InvalidationSummary>"
            for i in page
        )
        next_marker = f"<NextMarker>{page[-1].id}</NextMarker>" if truncated and page else ""
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<InvalidationList xmlns="{NS}">'
            f"<Marker>{escape(marker)}</Marker>{next_marker}<MaxItems>{max_items}</MaxItems>"
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
            f"<Quantity>{len(page)}</Quantity>"
            + (f"<Items>{items}</Items>" if page else "")
            + "</InvalidationList>"
        )


def error_answer(e: CloudFrontError, request_id: str) -> Answer:
    """CloudFront's REST-XML error document, with its status and headers."""
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{NS}"><Error>'
        f"<Type>{e.typ}</Type><Code>{e.code}</Code><Message>{escape(e.message)}</Message>"
        f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return e.status, _headers(request_id), xml.encode()


def _headers(request_id: str, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [("Content-Type", "text/xml"), ("x-amz-request-id", request_id)] + (extra or [])


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_batch(body: bytes) -> tuple[str | None, list[str], int | None]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise CloudFrontError("MalformedInput", 400, f"Malformed XML: {e}") from e
    ref: str | None = None
    paths: list[str] = []
    quantity: int | None = None
    for child in root:
        name = _local(child.tag)
        if name == "CallerReference":
            ref = child.text or ""
        elif name == "Paths":
            for sub in child:
                sname = _local(sub.tag)
                if sname == "Quantity":
                    quantity = int((sub.text or "0").strip())
                elif sname == "Items":
                    paths = [p.text or "" for p in sub if _local(p.tag) == "Path"]
    return ref, paths, quantity
