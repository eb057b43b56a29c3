"""The demo's pure helpers (no stack, no Rust binaries)."""

from __future__ import annotations

from datetime import datetime, timezone

from local.demo import clock, covered, render, shorten


def test_a_wildcard_covers_what_starts_with_its_prefix() -> None:
    planned = ["/img/a/*", "/index.html"]
    assert covered("/img/a/photo-001.jpg", planned)
    assert covered("/index.html", planned)
    assert not covered("/img/b/thumb-001.jpg", planned)
    assert not covered("/index.htm", planned)


def test_long_lists_are_shortened() -> None:
    assert shorten(["a", "b"], 2) == ["a", "b"]
    assert shorten([str(i) for i in range(15)], 12)[-1] == "... and 3 more"
    assert len(shorten([str(i) for i in range(15)], 12)) == 13


def test_times_show_as_utc_clock_with_milliseconds() -> None:
    assert clock("2026-11-25T04:02:35.065Z") == "04:02:35.065"
    assert clock(datetime(2026, 11, 25, 4, 2, 35, 65000, tzinfo=timezone.utc)) == "04:02:35.065"
    assert clock(None) == "-"


def test_tables_are_aligned_and_numbers_right_aligned() -> None:
    lines = render(["NAME", "N"], [["a", 5], ["bbb", 12]]).splitlines()
    assert lines == ["  NAME   N", "  ----  --", "  a      5", "  bbb   12"]
