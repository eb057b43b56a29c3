"""A stand-in for a Rust function binary in the local stack's own tests.

It speaks the Lambda Runtime API exactly as lambda_runtime does (GET next, POST response/error,
base URL from AWS_LAMBDA_RUNTIME_API, which may carry a path) and acts on its input:

  {"action": "echo", ...}                 -> returns {"input": <event>, "env": {...selected}}
  {"action": "raise", "errorType": "X"}   -> posts an error of type X
  {"action": "exit", "code": 3}           -> exits mid-invocation
  {"action": "sleep", "seconds": 5}       -> sleeps, then echoes
  {"action": "aws", "service": "dynamodb", "op": "put_item", "args": {...}, "then": "echo"}
                                          -> one boto3 call to AWS_ENDPOINT_URL, then echo
                                             (with "report_error": true, an AWS error answer is
                                             echoed as "aws_error": {"code", "status"})
Anything else (e.g. an EventBridge/Step Functions event) is echoed.
"""
import json
import os
import sys
import time
import urllib.request

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
base = (api if api.startswith("http") else "http://" + api).rstrip("/") + "/2018-06-01/runtime"
KEEP = ("AWS_LAMBDA_FUNCTION_NAME", "AWS_REGION", "AWS_ENDPOINT_URL", "TABLE_NAME", "ROUTES", "DISTRIBUTION_IDS", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION")


def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req).read()


print(json.dumps({"level": "INFO", "msg": "fake bootstrap started", "pid": os.getpid()}), flush=True)
while True:
    with urllib.request.urlopen(base + "/invocation/next") as resp:
        req_id = resp.headers["Lambda-Runtime-Aws-Request-Id"]
        deadline = resp.headers["Lambda-Runtime-Deadline-Ms"]
        event = json.loads(resp.read() or b"null")
    print(json.dumps({"level": "INFO", "msg": "invocation", "requestId": req_id}), flush=True)
    action = event.get("action") if isinstance(event, dict) else None
    if action == "raise":
        post(f"/invocation/{req_id}/error", {"errorType": event.get("errorType", "Boom"), "errorMessage": event.get("message", "boom")})
        continue
    if action == "exit":
        sys.exit(int(event.get("code", 1)))
    if action == "sleep":
        time.sleep(float(event.get("seconds", 1)))
    aws_error = None
    if action == "aws":
        import boto3
        from botocore.exceptions import ClientError

        client = boto3.client(event["service"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])
        try:
            getattr(client, event["op"])(**event.get("args", {}))
        except ClientError as e:
            if not event.get("report_error"):
                raise
            aws_error = {"code": e.response["Error"]["Code"], "status": e.response["ResponseMetadata"]["HTTPStatusCode"], "message": e.response["Error"].get("Message")}
    children = event.get("children", []) if isinstance(event, dict) else []
    if isinstance(event, dict) and isinstance(event.get("detail"), dict) and "object" in event["detail"]:
        children = [{"name": "c-" + event["detail"]["object"]["sequencer"]}]
    out = {"children": children, "input": event, "env": {k: os.environ.get(k) for k in KEEP}, "deadline": deadline, "pid": os.getpid()}
    if aws_error is not None:
        out["aws_error"] = aws_error
    if isinstance(event, dict) and "redrive" in event:
        out["redrive"] = event["redrive"]
    post(f"/invocation/{req_id}/response", out)
