"""local.dynamodb_query: Query reads only its partition or index key, and answers as before."""

from __future__ import annotations

import uuid


def _table(stack):
    ddb = stack.client("dynamodb")
    name = f"t-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("PK", "SK", "gpk", "gsk")],
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "byG",
            "KeySchema": [{"AttributeName": "gpk", "KeyType": "HASH"}, {"AttributeName": "gsk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    )
    # 5 partitions x 12 items; every third item is in the index, under g0 or g1.
    for p in range(5):
        for i in range(12):
            item = {"PK": {"S": f"P{p}"}, "SK": {"S": f"S#{i:02}"}}
            if i % 3 == 0:
                item |= {"gpk": {"S": f"g{p % 2}"}, "gsk": {"S": f"{11 - i:02}-{p}"}}
            ddb.put_item(TableName=name, Item=item)
    return ddb, name


def _pages(ddb, **kwargs):
    keys, pages = [], 0
    while True:
        page = ddb.query(**kwargs)
        pages += 1
        keys += [(i["PK"]["S"], i["SK"]["S"]) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return keys, pages
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_a_partition_query_returns_its_items_in_order_page_by_page(stack):
    ddb, name = _table(stack)
    keys, pages = _pages(ddb, TableName=name, Limit=5, KeyConditionExpression="PK = :p AND begins_with(SK, :s)",
                         ExpressionAttributeValues={":p": {"S": "P3"}, ":s": {"S": "S#"}})
    assert keys == [("P3", f"S#{i:02}") for i in range(12)]
    assert pages == 3
    keys, _ = _pages(ddb, TableName=name, ScanIndexForward=False, KeyConditionExpression="PK = :p",
                     ExpressionAttributeValues={":p": {"S": "P1"}})
    assert keys == [("P1", f"S#{i:02}") for i in reversed(range(12))]
    assert _pages(ddb, TableName=name, KeyConditionExpression="PK = :p", ExpressionAttributeValues={":p": {"S": "nope"}})[0] == []


def test_an_index_query_returns_only_its_key_in_index_order_page_by_page(stack):
    ddb, name = _table(stack)
    keys, pages = _pages(ddb, TableName=name, IndexName="byG", Limit=4, KeyConditionExpression="gpk = :g",
                         ExpressionAttributeValues={":g": {"S": "g1"}})
    # g1 holds partitions 1 and 3, items 0, 3, 6, 9; sorted by gsk ("11-1" < "11-3" < "08-1"...: ascending).
    expected = sorted(((f"{11 - i:02}-{p}", (f"P{p}", f"S#{i:02}")) for p in (1, 3) for i in (0, 3, 6, 9)))
    assert keys == [k for _, k in expected]
    assert pages == 2
    keys, _ = _pages(ddb, TableName=name, IndexName="byG", KeyConditionExpression="gpk = :g AND gsk < :x",
                     ExpressionAttributeValues={":g": {"S": "g0"}, ":x": {"S": "05"}})
    assert sorted(keys) == sorted((f"P{p}", f"S#{i:02}") for p in (0, 2, 4) for i in (9,))
