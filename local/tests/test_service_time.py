"""``aws/service-time``: the stack's own time on the requests signed with one access key."""

from __future__ import annotations

import time
import uuid

import boto3
from botocore.config import Config


def _client(stack, service: str, key: str):
    return boto3.client(service, endpoint_url=stack.endpoint, region_name="us-east-1", aws_access_key_id=key,
                        aws_secret_access_key="x", config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def test_service_time_per_access_key(stack):
    key, other = f"st-{uuid.uuid4().hex[:8]}", f"st-{uuid.uuid4().hex[:8]}"
    ddb = _client(stack, "dynamodb", key)
    table = f"t-{uuid.uuid4().hex[:8]}"
    ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    t0 = time.perf_counter()
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}})
    ddb.get_item(TableName=table, Key={"pk": {"S": "a"}})
    client_seconds = time.perf_counter() - t0
    _client(stack, "dynamodb", other).list_tables()
    stack.control("health")  # the control API is not an AWS request: not timed

    mine = stack.control("aws/service-time", {"access_key": key})
    assert mine["access_key"] == key and mine["requests"] == 3
    ops = {o["operation"]: o for o in mine["operations"]}
    assert set(ops) == {"CreateTable", "PutItem", "GetItem"}
    assert all(o["service"] == "dynamodb" and o["count"] == 1 and 0 < o["max_seconds"] == o["seconds"] for o in ops.values())
    # server-side time is part of what the client waited for
    assert ops["PutItem"]["seconds"] + ops["GetItem"]["seconds"] < client_seconds
    assert abs(mine["seconds"] - sum(o["seconds"] for o in ops.values())) < 1e-9
    assert stack.control("aws/service-time", {"access_key": other})["requests"] == 1
    assert stack.control("aws/service-time", {"access_key": "never-used"}) == {
        "access_key": "never-used", "requests": 0, "seconds": 0, "operations": []}
    stack.control("aws/service-time", {}, expect=404)  # access_key is required


def test_a_connection_accept_time_is_taken_once():
    from local.service_time import ServiceTimes

    times, conn = ServiceTimes(), object()
    assert times.take_accepted(conn) is None and times.take_accepted(None) is None
    times.accepted(conn)
    t = times.take_accepted(conn)
    assert isinstance(t, float) and t <= time.perf_counter()
    assert times.take_accepted(conn) is None  # a second request on the same connection starts at its WSGI call


def test_the_stack_stamps_each_accepted_connection(stack):
    # the server's process_request records the accept: the window starts before the handler thread
    assert stack.stack._server.process_request.__name__ == "stamped"
