"""motofast's patch 7 keeps index partitions sorted and up to date through item writes, and hands a
Limit query only the items its page can reach: moto's answers must be unpatched moto's.

The same seeded sequence of writes — puts, updates and deletes that move items between index
partitions and within them, conditional writes that fail, transactions that succeed and that
roll back, batch writes — and after each step the same index queries (every key condition, both
directions, pages of 1 to 3 items followed to the end, filters, counts, projections) run once
with the patches and once without, each in a process of its own; the two transcripts must be equal.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

from tests.unit.moto_twins import transcripts

TABLE, PAIRS = "flat", "pairs"  # a hash-key table, and one with a range key too


def _create(ddb: Any) -> None:
    s = "S"
    ddb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": s} for n in ("id", "shard", "due", "group")],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byDue",
                "KeySchema": [
                    {"AttributeName": "shard", "KeyType": "HASH"},
                    {"AttributeName": "due", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "byGroup",
                "KeySchema": [
                    {"AttributeName": "group", "KeyType": "HASH"},
                    {"AttributeName": "id", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["note"]},
            },
        ],
    )
    ddb.create_table(
        TableName=PAIRS,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": s} for n in ("pk", "sk", "shard", "due")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byDue",
                "KeySchema": [
                    {"AttributeName": "shard", "KeyType": "HASH"},
                    {"AttributeName": "due", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


def _key(table: str, rng: random.Random) -> dict[str, Any]:
    if table == TABLE:
        return {"id": {"S": f"t{rng.randrange(40):02d}"}}
    return {"pk": {"S": f"p{rng.randrange(6)}"}, "sk": {"S": f"s{rng.randrange(8)}"}}


def _attrs(rng: random.Random) -> dict[str, Any]:
    item: dict[str, Any] = {"note": {"S": f"n{rng.randrange(5)}"}}
    if rng.random() < 0.9:
        item["shard"] = {"S": str(rng.randrange(3))}
    if rng.random() < 0.85:
        item["due"] = {"S": f"2024-{rng.randrange(1, 7):02d}"}  # repeats: ties broken by the table's keys
    if rng.random() < 0.8:
        item["group"] = {"S": f"g{rng.randrange(2)}"}
    return item


def _write(ddb: Any, rng: random.Random, log: list[Any]) -> None:
    table = rng.choice([TABLE, TABLE, PAIRS])
    key = _key(table, rng)
    kind = rng.choice(["put", "put", "update", "update", "remove", "delete", "conditional", "transact", "batch"])
    try:
        if kind == "put":
            ddb.put_item(TableName=table, Item={**key, **_attrs(rng)})
        elif kind == "update":
            a = _attrs(rng)
            names = {f"#{n}": n for n in a}
            ddb.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET " + ", ".join(f"#{n} = :{n}" for n in a),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={f":{n}": v for n, v in a.items()},
            )
        elif kind == "remove":
            ddb.update_item(TableName=table, Key=key, UpdateExpression=f"REMOVE {rng.choice(['due', 'shard'])}")
        elif kind == "delete":
            ddb.delete_item(TableName=table, Key=key)
        elif kind == "conditional":  # fails when the item exists: nothing changes
            ddb.put_item(TableName=table, Item={**key, **_attrs(rng)}, ConditionExpression="attribute_not_exists(note)")
        elif kind == "transact":  # the second item's condition may fail: then neither write happens
            other = _key(TABLE, rng)
            ddb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": {**key, **_attrs(rng)}}},
                    {
                        "Update": {
                            "TableName": TABLE,
                            "Key": other,
                            "UpdateExpression": "SET due = :d",
                            "ConditionExpression": "attribute_exists(id)",
                            "ExpressionAttributeValues": {":d": {"S": f"2024-0{rng.randrange(1, 7)}"}},
                        }
                    },
                ]
            )
        else:
            keys = dict.fromkeys(
                json.dumps(_key(table, rng), sort_keys=True) for _ in range(4)
            )  # a batch names an item once
            ddb.batch_write_item(
                RequestItems={
                    table: [
                        {"PutRequest": {"Item": {**json.loads(k), **_attrs(rng)}}}
                        if rng.random() < 0.7
                        else {"DeleteRequest": {"Key": json.loads(k)}}
                        for k in keys
                    ]
                }
            )
        log.append({"write": kind, "answer": "ok"})
    except ddb.exceptions.ClientError as e:
        log.append({"write": kind, "answer": e.response["Error"]["Code"]})


CONDITIONS = [
    ("", {}),
    ("due = :a", {":a": {"S": "2024-03"}}),
    ("due < :a", {":a": {"S": "2024-03"}}),
    ("due <= :a", {":a": {"S": "2024-03"}}),
    ("due > :a", {":a": {"S": "2024-03"}}),
    ("due >= :a", {":a": {"S": "2024-03"}}),
    ("due BETWEEN :a AND :b", {":a": {"S": "2024-02"}, ":b": {"S": "2024-05"}}),
    ("begins_with(due, :a)", {":a": {"S": "2024-0"}}),
]


def _pages(ddb: Any, params: dict[str, Any]) -> dict[str, Any]:
    """A query followed to its last page: the items in order, and the count. (Unpatched moto may end
    a page early, on an item that its key condition then refuses, with a LastEvaluatedKey and an
    empty page after it; DynamoDB does not, nor does the patched moto: so pages are not compared.)"""
    items: list[Any] = []
    count = pages = 0
    while True:
        page = ddb.query(**params)
        items += page.get("Items", [])
        count += page["Count"]
        pages += 1
        assert len(page.get("Items", [])) <= params.get("Limit", 1000)
        if "LastEvaluatedKey" not in page or pages > 60:
            return {"items": items, "count": count}
        params = {**params, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def _queries(ddb: Any, rng: random.Random, log: list[Any]) -> None:
    for table in (TABLE, PAIRS):
        shard = str(rng.randrange(3))
        condition, values = rng.choice(CONDITIONS)
        for forward in (True, False):
            for limit in (0, 1, 2, 3):
                params: dict[str, Any] = {
                    "TableName": table,
                    "IndexName": "byDue",
                    "KeyConditionExpression": "shard = :s" + (f" AND {condition}" if condition else ""),
                    "ExpressionAttributeValues": {":s": {"S": shard}, **values},
                    "ScanIndexForward": forward,
                }
                if limit:
                    params["Limit"] = limit
                log.append(_pages(ddb, params))
            filtered = {**params, "FilterExpression": "note <> :n"}
            filtered["ExpressionAttributeValues"] = {**params["ExpressionAttributeValues"], ":n": {"S": "n1"}}
            log.append(_pages(ddb, filtered))
            log.append(_pages(ddb, {**params, "Select": "COUNT"}))
    group = {":g": {"S": f"g{rng.randrange(2)}"}, ":i": {"S": "t2"}}
    for condition in ("", " AND id >= :i"):
        values = group if condition else {":g": group[":g"]}
        params = {"TableName": TABLE, "IndexName": "byGroup", "ExpressionAttributeValues": values, "Limit": 4}
        log.append(
            _pages(
                ddb,
                {
                    **params,
                    "KeyConditionExpression": "#g = :g" + condition,
                    "ExpressionAttributeNames": {"#g": "group"},
                },
            )
        )


def transcript(patched: bool, steps: int = 160, seed: int = 7) -> list[Any]:
    """What moto answers to the sequence (in this process: call it in a fresh one)."""
    import boto3
    from moto import mock_aws

    if patched:
        from chalicelib.local import motofast

        motofast.apply()
    rng = random.Random(seed)
    log: list[Any] = []
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        _create(ddb)
        for step in range(steps):
            _write(ddb, rng, log)
            if step % 4 == 3:
                _queries(ddb, rng, log)
    return log


def test_index_queries_answer_as_unpatched_moto_through_writes() -> None:
    patched, unpatched = transcripts(__file__)
    assert len(patched) == len(unpatched)
    kinds = {entry["answer"] for entry in patched if "write" in entry}
    assert "ConditionalCheckFailedException" in kinds and "TransactionCanceledException" in kinds
    for i, (a, b) in enumerate(zip(patched, unpatched, strict=True)):
        assert a == b, f"answer {i} differs"


if __name__ == "__main__":
    json.dump(transcript(sys.argv[1] == "patched"), sys.stdout)
