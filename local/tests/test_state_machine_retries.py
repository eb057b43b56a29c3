"""The state machines' retry policy, checked statically on statemachine/*.asl.json.

A deploy-sized burst throttles Lambda (``Lambda.TooManyRequestsException``: "When Lambda hits
the maximum number of invocations", Step Functions developer guide) and StartExecution (a token
bucket). Those retries must outlast a burst, minutes rather than the 60 s cap of the other
transient errors, or the object-changed execution fails and its change needs a redrive. With
full jitter (the retrier "calculates the delay to be a random number between 0 and the
computed backoff for the given retry attempt count", AWS CDK reference, ``JitterType.FULL``)
each wait is uniform up to its backoff, so what counts is the
wait the retrier outlasts in all but about one run in a thousand, not the sum of the backoffs:
at 12 attempts (5 s, x2, up to 300 s) a throttled task gave up after less than 10 minutes often
enough to fail one execution of 300 in the Lambda-throttle fault row.
``ExecutionAlreadyExists`` means the batch's flush is already running or done: it must reach
the Catch, never a retrier.
"""

from __future__ import annotations

import json
import math
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


def surely_waits(retrier: dict[str, Any]) -> float:
    """Seconds the retrier keeps retrying in all but about one run in a thousand: under full
    jitter the total wait is a sum of uniform waits, taken here as its mean less three standard
    deviations (without jitter, the plain sum of the backoffs)."""
    interval, rate = retrier.get("IntervalSeconds", 1), retrier.get("BackoffRate", 2.0)
    cap = retrier.get("MaxDelaySeconds", float("inf"))
    backoffs = [min(interval * rate**n, cap) for n in range(retrier.get("MaxAttempts", 3))]
    if retrier.get("JitterStrategy") != "FULL":
        return sum(backoffs)
    mean = sum(b / 2 for b in backoffs)
    deviation = math.sqrt(sum(b * b / 12 for b in backoffs))
    return mean - 3 * deviation


def retrier_for(state: dict[str, Any], error: str) -> dict[str, Any] | None:
    return next((r for r in state.get("Retry", []) if error in r["ErrorEquals"] or "States.ALL" in r["ErrorEquals"]), None)


@pytest.mark.parametrize("name,state", [t for t in all_tasks() if t[1]["Resource"].endswith(":lambda:invoke")], ids=lambda v: v if isinstance(v, str) else "")
def test_lambda_throttling_is_retried_for_minutes_with_jitter(name: str, state: dict[str, Any]) -> None:
    retrier = retrier_for(state, "Lambda.TooManyRequestsException")
    assert retrier is not None, name
    assert retrier.get("JitterStrategy") == "FULL", name
    assert surely_waits(retrier) >= 15 * 60, (name, retrier)


@pytest.mark.parametrize("name,state", [t for t in all_tasks() if t[1]["Resource"].endswith(":lambda:invoke")], ids=lambda v: v if isinstance(v, str) else "")
def test_lambda_service_errors_are_retried_for_a_minute_at_least(name: str, state: dict[str, Any]) -> None:
    """The Step Functions developer guide ("Handle Lambda service exceptions") retries these
    four (2 s, x2, 6 attempts); a change lost to a minute of them would need a redrive, so the
    retrier surely outlasts one (on the local stack, a burst drops connections for that long)."""
    for error in (
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
    ):
        retrier = retrier_for(state, error)
        assert retrier is not None and surely_waits(retrier) >= 60, (name, error, retrier)


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
        assert retrier is not None and surely_waits(retrier) >= 15 * 60, transient
