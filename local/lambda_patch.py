"""Route moto's Lambda ``Invoke`` to the local process pools (:mod:`local.lambda_runtime`).

Why: every way a function runs goes through ``moto.awslambda.models.LambdaFunction.invoke``
(the ``Invoke`` API, Step Functions ``lambda:invoke`` / ARN tasks, which call that API on the
stack's own endpoint). Without Docker moto only echoes; this patch hands the payload to the
function's pool instead and answers the way Lambda does:

* success: HTTP 200, the function's response as payload;
* function error / crash / timeout: HTTP 200, ``X-Amz-Function-Error: Unhandled`` and the
  ``{"errorType", "errorMessage"}`` body, so Step Functions ``Retry``/``Catch`` match
  ``errorType`` (moto's own path would say ``Handled``);
* ``InvocationType: Event``: HTTP 202 at once and the invocation runs in the background, retried
  twice on error as Lambda's asynchronous invocation does (delays shortened, see
  ``ASYNC_RETRY_DELAYS``).

Functions without a pool (not created by the local stack) keep moto's behaviour.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .faults import LambdaThrottled
from .lambda_runtime import FunctionPool, RuntimeApi
from .patching import replace

LOG = logging.getLogger("local.lambda")

# Lambda retries a failed asynchronous invocation twice, about 1 and 2 minutes later; locally
# the delays are shortened so tests stay fast.
ASYNC_RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0)


class LambdaService:
    """Lambda's side of the stack: the pools that run the functions (``runtime``) and
    asynchronous invocations, whose outcomes ``async_log`` keeps for the control API."""

    def __init__(self, runtime: RuntimeApi) -> None:
        self.runtime = runtime
        self.async_log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="lambda-async")

    def invoke(self, function: Any, body: Any, request_headers: Any, response_headers: Any, original: Any) -> bytes:
        """moto's ``LambdaFunction.invoke``, run by the function's pool (``original`` for
        functions without one)."""
        pool = self.runtime.pool_for(function.function_name)
        if pool is None:
            return original(function, body, request_headers, response_headers)
        payload = body.encode() if isinstance(body, str) else (body or b"{}")
        inv_type = (request_headers or {}).get("x-amz-invocation-type") or (request_headers or {}).get(
            "X-Amz-Invocation-Type", "RequestResponse"
        )
        if inv_type == "Event":
            self.invoke_async(pool, payload, source="Invoke(Event)")
            return b""
        if inv_type == "DryRun":
            return b""
        try:
            result = pool.invoke(payload)
        except LambdaThrottled as e:
            raise _too_many_requests(str(e)) from e
        if result.function_error:
            response_headers["x-amz-function-error"] = result.function_error
        response_headers["x-amz-executed-version"] = "$LATEST"
        return result.payload

    def invoke_async(self, pool: FunctionPool, payload: bytes, source: str) -> None:
        """Asynchronous invocation as Lambda does it: after a function error, ``pool.async_retries``
        more attempts (default 2; AWS waits about 1 and 2 minutes, here 1 s and 2 s); an invocation
        that exhausts them is discarded, or its record goes to ``pool.on_failure`` (the function's
        on-failure destination). Outcomes go to ``async_log``."""

        def run() -> None:
            attempts = 0
            while True:
                attempts += 1
                try:
                    result = pool.invoke(payload)
                except LambdaThrottled:
                    # Lambda keeps a throttled asynchronous event in its queue and tries again.
                    attempts -= 1
                    time.sleep(ASYNC_RETRY_DELAYS[0])
                    continue
                entry = {
                    "time": time.time(),
                    "function": pool.logical_id,
                    "source": source,
                    "attempt": attempts,
                    "ok": result.function_error is None,
                    "error_type": result.error_type,
                }
                with self._lock:
                    self.async_log.append(entry)
                    del self.async_log[:-1000]
                if result.function_error is None:
                    return
                LOG.warning(
                    "async invocation of %s failed (attempt %d, %s): %s",
                    pool.logical_id,
                    attempts,
                    source,
                    result.payload[:500].decode(errors="replace"),
                )
                if attempts > min(pool.async_retries, len(ASYNC_RETRY_DELAYS)):
                    if pool.on_failure is not None:
                        pool.on_failure(failure_record(pool, payload, result, attempts))
                    return
                time.sleep(ASYNC_RETRY_DELAYS[attempts - 1])

        self._executor.submit(run)


def install(service: LambdaService) -> None:
    """Route moto's ``LambdaFunction.invoke`` to ``service``."""
    from moto.awslambda.models import LambdaFunction

    def wrap(original: Any) -> Any:
        def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
            return service.invoke(self, body, request_headers, response_headers, original)

        return invoke

    replace(LambdaFunction, "invoke", wrap)


def _too_many_requests(message: str) -> Exception:
    """Lambda's answer at a function's concurrency limit: HTTP 429 TooManyRequestsException
    (Step Functions names it ``Lambda.TooManyRequestsException``)."""
    from moto.awslambda.exceptions import LambdaClientError

    error = LambdaClientError("TooManyRequestsException", message)
    error.code = 429
    return error


def failure_record(pool: FunctionPool, payload: bytes, result: Any, attempts: int) -> dict[str, Any]:
    """The invocation record Lambda sends to an on-failure destination (Lambda developer guide,
    "Capturing records of Lambda asynchronous invocations")."""
    return {
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{pool.function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": decode_payload(payload),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": result.function_error},
        "responsePayload": decode_payload(result.payload),
    }


def decode_payload(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")
