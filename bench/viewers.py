"""Viewers reading some of the burst's keys through each system's edge (the local stack's
CloudFront cache in front of the bucket) while the burst runs, as real traffic keeps popular
objects cached: after an overwrite an edge serves the stale copy until an invalidation
completes. Once both systems have settled, each key is read once more and compared with what S3
holds: a stale read then is a change the system failed to invalidate."""

from __future__ import annotations

import statistics
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .common import Item

# How often each watched key is read through each edge.
READ_EVERY = 2.0


def get(edge: str, key: str) -> tuple[int, bytes]:
    url = f"{edge}/{urllib.parse.quote(key)}"
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - loopback only
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


class Viewers:
    """Reads ``keys`` through each of ``edges`` (name -> edge URL) every ``READ_EVERY`` seconds."""

    def __init__(self, edges: dict[str, str], keys: list[str]) -> None:
        self.edges = edges
        self.keys = keys
        self.reads: dict[tuple[str, str], list[tuple[float, int, bytes]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True, name="viewers")

    def _read(self) -> None:
        while not self._stop.is_set():
            for name, edge in self.edges.items():
                for key in self.keys:
                    status, body = get(edge, key)
                    self.reads.setdefault((name, key), []).append((time.time(), status, body))
            self._stop.wait(READ_EVERY)

    def start(self) -> None:
        self._thread.start()

    def finish(self, s3: Any, bucket: str, last_write: dict[str, float]) -> dict[str, Item]:
        """Stops reading; per edge: the final reads against S3's copy (stale ones listed) and the
        time from each key's last write to its first fresh read (``last_write``: key -> epoch)."""
        self._stop.set()
        self._thread.join(30)
        truth = {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in self.keys}
        out: dict[str, Item] = {}
        for name, edge in self.edges.items():
            stale, to_fresh = [], []
            for key in self.keys:
                status, body = get(edge, key)
                if status != 200 or body != truth[key]:
                    stale.append(key)
                first = next((t for t, st, b in self.reads.get((name, key), ()) if st == 200 and b == truth[key]
                              and t >= last_write[key]), None)
                if first is not None:
                    to_fresh.append(first - last_write[key])
            to_fresh.sort()
            out[name] = {
                "watched": len(self.keys),
                "stale_after_completed": len(stale),
                "stale_examples": stale[:5],
                "to_fresh_p50_s": statistics.median(to_fresh) if to_fresh else None,
                "to_fresh_p95_s": to_fresh[max(0, -(-len(to_fresh) * 95 // 100) - 1)] if to_fresh else None,
            }
        return out
