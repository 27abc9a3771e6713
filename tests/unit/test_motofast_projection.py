"""motofast's patch 31 copies the kept attributes of a projection as they are, when they are
top-level strings, booleans or nulls: the answers must be unpatched moto's. Items of every kind of
attribute are read through each kind of index projection and through ProjectionExpressions (top
level, repeated, missing, nested, list elements), once with the patches and once without, each in
a process of its own; the transcripts must be equal.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.unit.moto_twins import transcripts

ITEMS: list[dict[str, Any]] = [
    {"s": "a", "t": "x", "b": True, "z": None, "n": 1.5, "l": [1, "two", {"m": "3"}], "m": {"k": "v", "n": 2}},
    {"s": "b", "t": "x", "b": False, "note": "", "ss": {"p", "q"}, "ns": {1, 2}},
    {"s": "c", "t": "x", "n": 100, "bin": b"\x00\x01"},
    {"s": "d", "t": "x"},
]
PROJECTIONS = ["s", "s, t, b, z", "z, b, t, s", "missing, s", "n", "s, l", "l[1], s", "m.k, s", "ss, ns, bin, note"]


def transcript(patched: bool) -> list[Any]:
    """What moto answers (in this process: call it in a fresh one)."""
    import boto3
    from moto import mock_aws

    if patched:
        from chalicelib.local import motofast

        motofast.apply()
    log: list[Any] = []
    with mock_aws():
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        indexes = []
        for name, projection in (
            ("keys", {"ProjectionType": "KEYS_ONLY"}),
            ("some", {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["b", "z", "n", "note", "missing"]}),
            ("all", {"ProjectionType": "ALL"}),
        ):
            schema = [{"AttributeName": "t", "KeyType": "HASH"}, {"AttributeName": "s", "KeyType": "RANGE"}]
            indexes.append({"IndexName": name, "KeySchema": schema, "Projection": projection})
        table = ddb.create_table(
            TableName="items",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "s", "AttributeType": "S"},
                {"AttributeName": "t", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "s", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=indexes,
        )
        from decimal import Decimal

        for item in ITEMS:
            table.put_item(Item=json.loads(json.dumps(item, default=list), parse_float=Decimal) | _sets(item))
        client = ddb.meta.client
        for name in ("keys", "some", "all"):
            log.append(client.query(TableName="items", IndexName=name, KeyConditionExpression="t = :t",
                                    ExpressionAttributeValues={":t": "x"})["Items"])  # fmt: skip
        index: dict[str, Any] = {"IndexName": "all", "KeyConditionExpression": "t = :t",
                                 "ExpressionAttributeValues": {":t": "x"}}  # fmt: skip
        for expression in PROJECTIONS:
            reads: list[tuple[Any, dict[str, Any]]] = [
                (client.scan, {}),
                (client.get_item, {"Key": {"s": "a"}}),
                (client.query, index),
            ]
            for read, params in reads:
                try:
                    answer = read(TableName="items", ProjectionExpression=expression, **params)
                    log.append(answer.get("Items", answer.get("Item")))
                except client.exceptions.ClientError as e:
                    log.append(e.response["Error"]["Code"])
    plain: list[Any] = json.loads(json.dumps(log, default=_plain))
    return plain


def _sets(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if isinstance(v, (set, bytes))}


def _plain(value: Any) -> Any:
    if isinstance(value, set):
        return sorted(value, key=str)
    if hasattr(value, "value"):  # boto3's Binary
        return list(value.value)
    return str(value)


def test_projections_answer_as_unpatched_moto() -> None:
    patched, unpatched = transcripts(__file__)
    assert patched[1][0] == {"s": "a", "t": "x", "b": True, "z": None, "n": "1.5"}  # the INCLUDE index
    for i, (a, b) in enumerate(zip(patched, unpatched, strict=True)):
        assert json.dumps(a) == json.dumps(b), f"answer {i} differs"  # attributes in the same order too


if __name__ == "__main__":
    json.dump(transcript(sys.argv[1] == "patched"), sys.stdout)
