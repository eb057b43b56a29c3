"""A minimal Lambda Runtime API loop for the Python baseline, as AWS's Python runtime runs it.

Why: the cold-start benchmark starts every function the same way -- a fresh process pointed at a
Runtime API (``AWS_LAMBDA_RUNTIME_API``) -- and times it until it posts its first response. For
the baseline that means importing ``lambda_function`` (which imports boto3 and creates its
client: the real cold cost), then ``GET .../invocation/next``, the handler, and
``POST .../invocation/<id>/response`` (or ``/error``). AWS's own runtime interface client does a
little more (logging setup, X-Ray); this loop is the lower bound of the baseline's cold start.
"""

import json
import os
import sys
import traceback
import urllib.request

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
base = (api if api.startswith("http") else "http://" + api).rstrip("/") + "/2018-06-01/runtime"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lambda_function  # noqa: E402 - after the path is set: this import is what is measured


class Context:
    """The few LambdaContext fields a handler may read."""

    def __init__(self, request_id: str, deadline_ms: str, arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "baseline")
        self._deadline_ms = int(deadline_ms or 0)


def post(path: str, body: object) -> None:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req).read()


while True:
    with urllib.request.urlopen(base + "/invocation/next") as resp:
        request_id = resp.headers["Lambda-Runtime-Aws-Request-Id"]
        context = Context(request_id, resp.headers.get("Lambda-Runtime-Deadline-Ms", "0"), resp.headers.get("Lambda-Runtime-Invoked-Function-Arn", ""))
        event = json.loads(resp.read() or b"null")
    try:
        result = lambda_function.lambda_handler(event, context)
    except Exception as e:  # noqa: BLE001 - reported to the Runtime API like the real runtime does
        post(f"/invocation/{request_id}/error", {"errorType": type(e).__name__, "errorMessage": str(e), "stackTrace": traceback.format_exc().splitlines()})
        continue
    post(f"/invocation/{request_id}/response", result)
