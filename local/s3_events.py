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
EventBridge does; ``S3Events.key_encoding = "form"`` (control ``s3/key-encoding``) switches to
the classic-notification form encoding (``quote_plus``) so tests can exercise both readings.
Other event kinds (tagging, ACL, restore) are not sent.

Delivery faults (``s3_delivery`` in :mod:`local.faults`), for keys under a fault's ``prefix``
(matched on the key as stored):

* ``duplicate``: the event is delivered a second time -- same envelope ``id``, ``time`` and
  detail -- after a random delay in ``duplicate_delay`` (a timer thread), like EventBridge's
  at-least-once delivery;
* ``reorder``: each event is held until the next one under that fault arrives, which is
  delivered first (neighbours swapped); a held event nothing follows is delivered by a timer
  after ``hold_seconds``. An event held when its fault runs out (``count``/``seconds``) is
  still delivered by that timer;
* clearing the fault (``Faults.clear``) delivers what it holds and its scheduled second
  deliveries at once, so nothing is lost and nothing arrives after the clear.

Every delivery is recorded in :attr:`S3Events.sent` in delivery order; a second delivery is marked
``"redelivery": true``, an event delivered after its successor ``"reordered": true``.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from .event_targets import HISTORY, LOG, emit
from .faults import Faults, S3Delivery
from .patching import replace

REASONS = {
    "s3:ObjectCreated:Put": ("Object Created", "PutObject"),
    "s3:ObjectCreated:Post": ("Object Created", "POST Object"),
    "s3:ObjectCreated:Copy": ("Object Created", "CopyObject"),
    "s3:ObjectCreated:CompleteMultipartUpload": ("Object Created", "CompleteMultipartUpload"),
    "s3:ObjectRemoved:Delete": ("Object Deleted", "DeleteObject"),
    "s3:ObjectRemoved:DeleteMarkerCreated": ("Object Deleted", "DeleteObject"),
}

@dataclass
class _Event:
    id: str
    time: float
    detail_type: str
    detail: dict[str, Any]
    resources: list[str]
    region: str
    account: str
    fault: S3Delivery | None = None


class S3Events:
    """The S3 events the stack sends, and what the control API reads of them: ``sent`` (recent
    deliveries, in delivery order) and ``key_encoding`` (``raw`` or ``form``)."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.key_encoding = "raw"
        self.sent: list[dict[str, Any]] = []
        self._seq = itertools.count(0x0066A1B2C3D4E50000)
        self._lock = threading.Lock()
        self._hold_lock = threading.Lock()
        self._held: dict[int, tuple[_Event, threading.Timer]] = {}  # fault id -> the event it holds
        self._scheduled: dict[int, tuple[_Event, threading.Timer]] = {}  # token -> a second delivery to make
        self._tokens = itertools.count(1)
        faults.on_clear(self.flush)

    def next_sequencer(self) -> str:
        with self._lock:
            return f"{next(self._seq):018X}"

    def build_detail(self, bucket_name: str, event_name: str, key: Any, requester: str) -> tuple[str, dict[str, Any]] | None:
        kind = REASONS.get(str(getattr(event_name, "value", event_name)))
        if kind is None:
            return None
        detail_type, reason = kind
        name = key.name if self.key_encoding == "raw" else quote_plus(key.name)
        obj: dict[str, Any] = {"key": name}
        if detail_type == "Object Created":
            obj["size"] = key.size
            obj["etag"] = key.etag.replace('"', "")
        version_id = getattr(key, "version_id", None)
        if version_id and version_id != "null":
            obj["version-id"] = version_id
        obj["sequencer"] = self.next_sequencer()
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

    def send(self, account_id: str, bucket: Any, event_name: str, key: Any) -> None:
        """moto's ``_send_event_bridge_message``: one object change."""
        try:
            built = self.build_detail(bucket.name, event_name, key, account_id)
            if built is None:
                return
            detail_type, detail = built
            event = _Event(str(uuid.uuid4()), time.time(), detail_type, detail, [bucket.arn], bucket.region_name, account_id)
            event.fault = self.faults.s3_delivery_for(key.name)
            if event.fault is not None and event.fault.reorder:
                self._hold_or_swap(event)
            elif event.fault is not None:
                self._deliver_first(event)
            else:
                self._deliver(event)
        except Exception:  # noqa: BLE001 - never fail the S3 request because of a notification
            LOG.exception("S3 EventBridge notification failed")

    def _deliver(self, event: _Event, redelivery: bool = False, reordered: bool = False) -> None:
        try:
            emit(
                "aws.s3",
                event.detail_type,
                event.detail,
                event.resources,
                region=event.region,
                account=event.account,
                event_id=event.id,
                event_time=event.time,
            )
        except Exception:  # noqa: BLE001 - a timer thread must not die silently
            LOG.exception("S3 EventBridge delivery of %s failed", event.id)
        entry: dict[str, Any] = {"id": event.id, "detail-type": event.detail_type, "detail": event.detail}
        if redelivery:
            entry["redelivery"] = True
        if reordered:
            entry["reordered"] = True
        with self._lock:
            self.sent.append(entry)
            del self.sent[:-HISTORY]

    def _deliver_first(self, event: _Event, reordered: bool = False, duplicate_now: bool = False) -> None:
        """First delivery of an event under an ``s3_delivery`` fault; schedules the second one."""
        fault = event.fault
        assert fault is not None
        self._deliver(event, reordered=reordered)
        self.faults.s3_delivery_note(fault, delivered=1, reordered=int(reordered), held=-1 if fault.reorder else 0)
        if not fault.duplicate:
            return
        if duplicate_now:
            return self._redeliver_now(event)
        token = next(self._tokens)
        timer = threading.Timer(self.faults.s3_duplicate_delay(fault), self._redeliver, args=(token,))
        timer.daemon = True
        with self._hold_lock:
            self._scheduled[token] = (event, timer)
            timer.start()

    def _redeliver(self, token: int) -> None:
        with self._hold_lock:
            item = self._scheduled.pop(token, None)
        if item is not None:
            self._redeliver_now(item[0])

    def _redeliver_now(self, event: _Event) -> None:
        assert event.fault is not None
        self._deliver(event, redelivery=True)
        self.faults.s3_delivery_note(event.fault, duplicated=1, pending=-1)

    def _hold_or_swap(self, event: _Event) -> None:
        """Hold ``event`` -- or, if its fault already holds one, deliver ``event`` and then that one."""
        fault = event.fault
        assert fault is not None
        with self._hold_lock:
            previous = self._held.pop(fault.id, None)
            if previous is None:
                timer = threading.Timer(fault.hold_seconds, self._release, args=(fault.id, event))
                timer.daemon = True
                self._held[fault.id] = (event, timer)
                timer.start()
                return
        held, timer = previous
        timer.cancel()
        self._deliver_first(event)
        self._deliver_first(held, reordered=True)

    def _release(self, fault_id: int, event: _Event) -> None:
        """Timer: nothing followed the held ``event`` within ``hold_seconds``: deliver it."""
        with self._hold_lock:
            current = self._held.get(fault_id)
            if current is None or current[0] is not event:
                return
            del self._held[fault_id]
        self._deliver_first(event)

    def flush(self, kind: str | None = None, fault_id: int | None = None) -> int:
        """Deliver at once what ``s3_delivery`` faults hold or have scheduled (all of them, or the
        one with ``fault_id``); called by ``Faults.clear``. Returns the number of deliveries."""
        if kind not in (None, "s3_delivery"):
            return 0
        with self._hold_lock:
            held = [(fid, item) for fid, item in self._held.items() if fault_id in (None, fid)]
            for fid, _ in held:
                del self._held[fid]
            scheduled = sorted(
                (token, item) for token, item in self._scheduled.items() if item[0].fault and fault_id in (None, item[0].fault.id)
            )
            for token, _ in scheduled:
                del self._scheduled[token]
        for _, (_, timer) in held + scheduled:
            timer.cancel()
        for _, (event, _) in scheduled:
            self._redeliver_now(event)
        for _, (event, _) in held:
            self._deliver_first(event, duplicate_now=True)
        return len(scheduled) + sum(2 if e.fault and e.fault.duplicate else 1 for _, (e, _) in held)


def install(events: S3Events) -> None:
    """Route moto's S3 EventBridge notifications through ``events``."""
    from moto.s3 import notifications

    def wrap(original: Any) -> Any:
        def send(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
            events.send(account_id, bucket, event_name, key)

        return send

    replace(notifications, "_send_event_bridge_message", wrap)
    install_notification_readback()


EMPTY_NOTIFICATIONS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>'
)


def install_notification_readback() -> None:
    """GetBucketNotificationConfiguration shows ``EventBridgeConfiguration`` when it is on.

    Why: moto 5.2.5 stores it and sends the events, but leaves it out of the response, so a
    client checking the wiring (``cfinv doctor``) would read notifications as off. The S3 API
    reference (NotificationConfiguration): "EventBridgeConfiguration: Enables delivery of events
    to Amazon EventBridge"; GetBucketNotificationConfiguration: "If notifications are not
    enabled on the bucket, the action returns an empty NotificationConfiguration element."
    moto answers a bucket that never had a configuration with an empty
    ``GetBucketNotificationResponse`` element instead, which boto3 reads as empty but the Rust
    SDK refuses ("expected NotificationConfiguration"): that case gets the empty element too.
    """
    from moto.s3.responses import S3Response

    def wrap(original: Any) -> Any:
        def get_bucket_notification(self: Any) -> Any:
            conf = self.backend.get_bucket_notification_configuration(self.bucket_name)
            if conf is None:
                return 200, {**self.response_headers, "Content-Type": "application/xml"}, EMPTY_NOTIFICATIONS
            if conf.event_bridge is None:
                return original(self)
            serialized = self.serialized

            def with_event_bridge(action_result: Any) -> Any:
                if isinstance(action_result.result, dict):
                    action_result.result["EventBridgeConfiguration"] = {}
                return serialized(action_result)

            self.serialized = with_event_bridge
            try:
                return original(self)
            finally:
                del self.serialized

        return get_bucket_notification

    replace(S3Response, "get_bucket_notification", wrap)
