"""motofast's patches 21 (an item's size checked once) and 22 (random strings in one draw) change
moto's cost, never its answers: an item of many attributes is stored up to moto's size limit and
refused one byte over it, with moto's error, whether it is put or grows by an update; request ids
keep their length and characters, and moto's seed still fixes them.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.moto_api._internal import mock_random

TABLE = "sizes"
LIMIT = 405_000  # moto's item size limit, in its own measure (attribute names and values, in bytes)


@pytest.fixture
def ddb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def _item(size: int) -> dict[str, Any]:
    """An item of 100 attributes whose size is `size` (pk "x": 3 bytes; each other name 4)."""
    item: dict[str, Any] = {"pk": {"S": "x"}}
    for i in range(98):
        item[f"k{i:03}"] = {"S": "v" * 4000}
    item["k099"] = {"S": "v" * (size - 3 - 98 * 4004 - 4)}
    return item


def _refused(call: Any) -> str:
    with pytest.raises(ClientError) as refused:
        call()
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    return str(refused.value.response["Error"]["Message"])


def test_an_item_is_stored_up_to_the_size_limit_and_refused_beyond_it(ddb: Any) -> None:
    ddb.put_item(TableName=TABLE, Item=_item(LIMIT))
    assert len(ddb.get_item(TableName=TABLE, Key={"pk": {"S": "x"}})["Item"]) == 100

    message = _refused(lambda: ddb.put_item(TableName=TABLE, Item=_item(LIMIT + 1)))

    assert message == "Item size has exceeded the maximum allowed size"
    assert ddb.get_item(TableName=TABLE, Key={"pk": {"S": "x"}})["Item"] == _item(LIMIT)


def test_an_update_may_grow_an_item_to_the_limit_and_no_further(ddb: Any) -> None:
    ddb.put_item(TableName=TABLE, Item=_item(LIMIT - 10))

    def add(value: str) -> Any:  # a new attribute "z": its name 1 byte, its value len(value)
        return ddb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "x"}},
            UpdateExpression="SET z = :v",
            ExpressionAttributeValues={":v": {"S": value}},
        )

    message = _refused(lambda: add("v" * 10))
    add("v" * 9)

    assert message == "Item size to update has exceeded the maximum allowed size"
    assert ddb.get_item(TableName=TABLE, Key={"pk": {"S": "x"}})["Item"] == {**_item(LIMIT - 10), "z": {"S": "v" * 9}}


def test_request_ids_keep_their_shape_and_follow_the_seed(ddb: Any) -> None:
    def request_ids() -> list[str]:
        return [ddb.list_tables()["ResponseMetadata"]["RequestId"] for _ in range(3)]

    mock_random.seed(7)
    first = request_ids()
    mock_random.seed(7)
    again = request_ids()

    assert first == again
    assert len(set(first)) == 3
    assert all(len(i) == 52 and set(i) <= set(string.ascii_letters + string.digits) for i in first)
    assert len(mock_random.get_random_hex(12)) == 12
    assert set(mock_random.get_random_hex(64)) <= set("0123456789abcdef")
