"""The state machines' retry policy, checked statically on statemachine/*.asl.json.

A deploy-sized burst throttles Lambda (``Lambda.TooManyRequestsException``: "When Lambda hits
the maximum number of invocations", Step Functions developer guide) and StartExecution (a token
bucket). Those retries must outlast a burst, minutes rather than the 60 s cap of the other
transient errors, or the object-changed execution fails and its change needs a redrive.
``ExecutionAlreadyExists`` means the batch's flush is already running or done: it must reach
the Catch, never a retrier.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
MACHINES = sorted((ROOT / "statemachine").glob("*.asl.json"))


def tasks(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield name, state
        if state.get("Type") == "Map":
            yield from tasks(state["ItemProcessor"]["States"])


def all_tasks() -> list[tuple[str, dict[str, Any]]]:
    return [t for path in MACHINES for t in tasks(json.loads(path.read_text())["States"])]


def longest_wait(retrier: dict[str, Any]) -> float:
    """Seconds of waiting before the retrier gives up, jitter aside."""
    interval, rate = retrier.get("IntervalSeconds", 1), retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    return sum(min(interval * rate**n, cap) for n in range(retrier.get("MaxAttempts", 3)))


def retrier_for(state: dict[str, Any], error: str) -> dict[str, Any] | None:
    return next((r for r in state.get("Retry", []) if error in r["ErrorEquals"] or "States.ALL" in r["ErrorEquals"]), None)


@pytest.mark.parametrize("name,state", [t for t in all_tasks() if t[1]["Resource"].endswith(":lambda:invoke")], ids=lambda v: v if isinstance(v, str) else "")
def test_lambda_throttling_is_retried_for_minutes_with_jitter(name: str, state: dict[str, Any]) -> None:
    retrier = retrier_for(state, "Lambda.TooManyRequestsException")
    assert retrier is not None, name
    assert longest_wait(retrier) >= 15 * 60, (name, retrier)
    assert retrier.get("JitterStrategy") == "FULL", name


def test_start_flush_retries_throttling_and_catches_an_existing_flush() -> None:
    [(_, flush)] = [t for t in all_tasks() if t[0] == "StartFlush"]
    assert retrier_for(flush, "StepFunctions.ExecutionAlreadyExistsException") is None
    assert [c["ErrorEquals"] for c in flush["Catch"]] == [["StepFunctions.ExecutionAlreadyExistsException"]]
    for transient in (
        "StepFunctions.ThrottlingException",
        "StepFunctions.ExecutionLimitExceededException",
        "StepFunctions.AWSStepFunctionsException",
        "StepFunctions.SdkClientException",
        "StepFunctions.ServiceUnavailableException",
        "States.Timeout",
    ):
        retrier = retrier_for(flush, transient)
        assert retrier is not None and longest_wait(retrier) >= 15 * 60, transient
