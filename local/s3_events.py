"""S3 -> EventBridge events shaped as AWS documents them, with unique ids and rising sequencers.

Why: moto 5.2.5 sends every S3 EventBridge event with the same ``id``-less envelope, a constant
``sequencer`` (``617f08299329d189``) and request id, ``eTag`` where AWS writes ``etag``, a
``reason`` of ``Put``/``Delete`` where AWS writes ``PutObject``/``DeleteObject``, and a size and
etag on delete events. Duplicate-detection and ordering tests would prove nothing. This module
replaces ``moto.s3.notifications._send_event_bridge_message`` (called by moto for every object
change when the bucket has ``EventBridgeConfiguration``) with one that sends:

* a fresh uuid ``id`` (envelope) and ``request-id`` per event;
* ``sequencer``: strictly increasing, fixed-width upper-case hex (compare as strings or numbers);
* ``Object Created``: ``object.{key, size, etag, version-id?, sequencer}``;
  ``Object Deleted``: ``object.{key, version-id?, sequencer}`` and ``deletion-type``
  (``Permanently Deleted``), no size/etag;
* ``reason``: ``PutObject``, ``POST Object``, ``CopyObject``, ``CompleteMultipartUpload``,
  ``DeleteObject``;
* only to rules of the default bus (moto sent to every bus).

The key is sent as stored (no encoding) by default -- what moto does and what we believe
EventBridge does; ``key_encoding = "form"`` switches to the classic-notification form encoding
(``quote_plus``) so tests can exercise both readings. Other event kinds (tagging, ACL, restore)
are not sent.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from typing import Any
from urllib.parse import quote_plus

from . import event_targets

REASONS = {
    "s3:ObjectCreated:Put": ("Object Created", "PutObject"),
    "s3:ObjectCreated:Post": ("Object Created", "POST Object"),
    "s3:ObjectCreated:Copy": ("Object Created", "CopyObject"),
    "s3:ObjectCreated:CompleteMultipartUpload": ("Object Created", "CompleteMultipartUpload"),
    "s3:ObjectRemoved:Delete": ("Object Deleted", "DeleteObject"),
    "s3:ObjectRemoved:DeleteMarkerCreated": ("Object Deleted", "DeleteObject"),
}

_seq = itertools.count(0x0066A1B2C3D4E50000)
_lock = threading.Lock()
key_encoding = "raw"  # or "form"
sent: list[dict[str, Any]] = []  # recent events (for the control API)
_original: Any = None


def next_sequencer() -> str:
    with _lock:
        return f"{next(_seq):018X}"


def install() -> None:
    global _original
    from moto.s3 import notifications

    if _original is None:
        _original = notifications._send_event_bridge_message
        notifications._send_event_bridge_message = _send_event_bridge_message


def build_detail(bucket_name: str, event_name: str, key: Any, requester: str) -> tuple[str, dict[str, Any]] | None:
    kind = REASONS.get(str(getattr(event_name, "value", event_name)))
    if kind is None:
        return None
    detail_type, reason = kind
    name = key.name if key_encoding == "raw" else quote_plus(key.name)
    obj: dict[str, Any] = {"key": name}
    if detail_type == "Object Created":
        obj["size"] = key.size
        obj["etag"] = key.etag.replace('"', "")
    version_id = getattr(key, "version_id", None)
    if version_id and version_id != "null":
        obj["version-id"] = version_id
    obj["sequencer"] = next_sequencer()
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket_name},
        "object": obj,
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": requester,
        "source-ip-address": "127.0.0.1",
        "reason": reason,
    }
    if detail_type == "Object Deleted":
        detail["deletion-type"] = (
            "Delete Marker Created" if str(event_name).endswith("DeleteMarkerCreated") else "Permanently Deleted"
        )
    return detail_type, detail


def _send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
    try:
        built = build_detail(bucket.name, event_name, key, account_id)
        if built is None:
            return
        detail_type, detail = built
        event_id = event_targets.emit(
            "aws.s3", detail_type, detail, [bucket.arn], region=bucket.region_name, account=account_id
        )
        with _lock:
            sent.append({"id": event_id, "detail-type": detail_type, "detail": detail})
            del sent[:-2000]
    except Exception:  # noqa: BLE001 - never fail the S3 request because of a notification
        event_targets.LOG.exception("S3 EventBridge notification failed")
