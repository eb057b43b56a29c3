"""The demo's pure helpers (no stack, no Rust binaries)."""

from __future__ import annotations

from datetime import datetime, timezone

from local.demo import clock, covered, event_batches, pipeline_cost, render, shorten


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


def test_an_event_in_two_batches_is_found_in_both() -> None:
    items = {"b1": [{"eventIds": {"e1", "e2"}}], "b2": [{"eventIds": {"e2"}}, {"path": "/x"}]}
    assert event_batches(items) == {"e1": {"b1"}, "e2": {"b1", "b2"}}


def test_the_pipeline_cost_of_one_change_is_the_readmes() -> None:
    # README "Cost model": 5 transitions, 2 invocations, 1 path write (+1 for its index) and 2
    # strongly consistent reads: "about $0.00013" per change.
    assert round(pipeline_cost(transitions=5, invocations=2, writes=1, reads=2), 5) == 0.00013
    assert pipeline_cost(transitions=0, invocations=0, writes=0, reads=0) == 0
