"""motofast's patches to moto's expression handling (11-19) change its cost, never its answers: a
sequence of DynamoDB requests — updates of every kind, conditions that hold and fail, every
ReturnValues, invalid expressions (each one twice: a failure is never remembered), binary values
nested in maps — answers the same on the patched stand-in (this process: conftest applies motofast)
as on moto without the patches (a fresh interpreter that never imports motofast).
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from tests.unit.moto_twins import unpatched_scenario

TABLE = "expressions"

# A claim-like update: the first time it applies, the second time its condition fails.
CLAIM: tuple[str, str, dict[str, str], dict[str, Any]] = (
    "SET #s = :s, #l[0].#st = :st ADD #n :one",
    "#s = :pending AND #l[0].runId = :zero",
    {"#s": "state", "#l": "runs", "#st": "started", "#n": "count"},
    {
        ":s": {"S": "running"},
        ":st": {"S": "2026-01-01"},
        ":one": {"N": "1"},
        ":pending": {"S": "pending"},
        ":zero": {"N": "0"},
    },
)
# (UpdateExpression, ConditionExpression or None, names, values, ReturnValues)
UPDATES: list[tuple[str, str | None, dict[str, str], dict[str, Any], str]] = [
    (
        "SET #s = :s, #n = :n, #l = :l, #m = :m",
        "attribute_not_exists(pk)",
        {"#s": "state", "#n": "count", "#l": "runs", "#m": "meta"},
        {
            ":s": {"S": "pending"},
            ":n": {"N": "1"},
            ":l": {"L": [{"M": {"runId": {"N": "0"}}}]},
            ":m": {"M": {"bin": {"B": b"\x00\x01"}, "tags": {"SS": ["a", "b"]}}},
        },
        "ALL_NEW",
    ),
    (*CLAIM, "UPDATED_NEW"),
    (*CLAIM, "ALL_OLD"),  # the same claim again: its condition fails now
    (
        "SET #l = list_append(#l, :more), #d = if_not_exists(#d, :d) REMOVE #m.#t",
        None,
        {"#l": "runs", "#d": "deadline", "#m": "meta", "#t": "tags"},
        {":more": {"L": [{"M": {"runId": {"N": "1"}}}]}, ":d": {"S": "2027"}},
        "UPDATED_OLD",
    ),
    (
        "SET #n = #n + :one, #m.#k = :v DELETE #x :gone",
        "size(#l) > :one",
        {"#n": "count", "#m": "meta", "#k": "new", "#l": "runs", "#x": "set"},
        {":one": {"N": "1"}, ":v": {"S": "x"}, ":gone": {"SS": ["q"]}},
        "NONE",
    ),
    # the same expression, other values: nothing of the first call's values may stay in the parsed tree
    *[
        (
            "SET #a = :a, #b = :b, #c = list_append(:c, :c), #d = if_not_exists(#d, :a)",
            None,
            {"#a": "a", "#b": "b", "#c": "c", "#d": "d"},
            {":a": {"S": v}, ":b": {"N": str(len(v))}, ":c": {"L": [{"S": v}]}},
            "ALL_NEW",
        )
        for v in ("one", "two", "three")
    ],
    # the same condition, other values: each holds only with its own values
    *[
        ("SET #a = :new", "#a = :old", {"#a": "a"}, {":old": {"S": old}, ":new": {"S": new}}, "UPDATED_OLD")
        for old, new in (("three", "four"), ("four", "five"))
    ],
    # one condition of every kind, kept (50) from its first request: each request's own values decide
    *[
        (
            "SET #z = :lo",
            "attribute_type(#a, :t) AND NOT (#a IN (:x, :y)) AND (size(#a) BETWEEN :lo AND :hi OR begins_with(#a, :x))",
            {"#a": "a", "#z": "z"},
            {":t": {"S": kind}, ":x": {"S": x}, ":y": {"S": "zz"}, ":lo": {"N": "1"}, ":hi": {"N": hi}},
            "ALL_NEW",
        )
        for kind, x, hi in (("S", "q", "9"), ("N", "q", "9"), ("S", "five", "2"), ("S", "fi", "2"), ("S", "q", "2"))
    ],
    # the same condition, a value of another type; then a placeholder it has no value for, twice
    ("SET #z = :v", "#z < :v", {"#z": "z"}, {":v": {"N": "5"}}, "UPDATED_NEW"),
    ("SET #z = :v", "#z < :v", {"#z": "z"}, {":v": {"S": "5"}}, "UPDATED_NEW"),
    ("SET #z = :v", "#z < :w", {"#z": "z"}, {":v": {"N": "6"}}, "NONE"),
    ("SET #z = :v", "#z < :w", {"#z": "z"}, {":v": {"N": "6"}}, "NONE"),
    # the same condition with other names: another attribute is compared
    ("SET #z = :v", "#z < :v", {"#z": "a"}, {":v": {"S": "zzz"}}, "ALL_OLD"),
    ("SET #a = :a, #a = :b", None, {"#a": "a"}, {":a": {"S": "a"}, ":b": {"S": "b"}}, "NONE"),
    # invalid: each is sent twice
    ("SET #s = :s SET #n = :n", None, {"#s": "state", "#n": "count"}, {":s": {"S": "a"}, ":n": {"N": "2"}}, "NONE"),
    ("SET #m = :m, #m.#k = :v", None, {"#m": "meta", "#k": "k"}, {":m": {"M": {}}, ":v": {"S": "v"}}, "NONE"),
    ("SET #p = :p", None, {"#p": "pk"}, {":p": {"S": "other"}}, "NONE"),
    ("SET #s = :s", None, {"#s": "state", "#unused": "x"}, {":s": {"S": "a"}}, "NONE"),
    ("SET #s = :s", None, {"#s": "state"}, {":s": {"S": "a"}, ":unused": {"S": "b"}}, "NONE"),
    ("SET #s = :missing", None, {"#s": "state"}, {":s": {"S": "a"}}, "NONE"),
    ("SET #s = = :s", None, {"#s": "state"}, {":s": {"S": "a"}}, "NONE"),
    ("SET #s = :s", "#s = = :s", {"#s": "state"}, {":s": {"S": "a"}}, "NONE"),
    ("REMOVE #l[1], #l[0]", "attribute_exists(#l)", {"#l": "runs"}, {}, "ALL_NEW"),
]


def _answer(call: Any, **params: Any) -> Any:
    try:
        out = call(**params)
    except ClientError as e:
        return {"error": e.response["Error"]["Code"], "message": e.response["Error"].get("Message"),
                "item": e.response.get("Item")}  # fmt: skip
    except Exception as e:  # moto raises some errors into the caller in-process
        return {"raised": type(e).__name__, "message": str(e)}
    out.pop("ResponseMetadata", None)
    return out


def scenario() -> list[Any]:
    """The answers to the sequence, on whatever moto this process has (inside a mock)."""
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    answers: list[Any] = []
    for key in ("a", "b"):  # the same expressions on two items: the second round finds them parsed
        for update, condition, names, values, returns in UPDATES:
            params: dict[str, Any] = {
                "TableName": TABLE,
                "Key": {"pk": {"S": key}},
                "UpdateExpression": update,
                "ExpressionAttributeNames": names,
                "ReturnValues": returns,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
            if values:
                params["ExpressionAttributeValues"] = values
            if condition is not None:
                params["ConditionExpression"] = condition
            answers.append(_answer(ddb.update_item, **params))
        answers.append(_answer(ddb.get_item, TableName=TABLE, Key={"pk": {"S": key}}))
        answers.append(_answer(ddb.batch_get_item, RequestItems={TABLE: {"Keys": [{"pk": {"S": key}}]}})["Responses"])
    answers.append(_answer(ddb.get_item, TableName=TABLE, Key={"pk": {"S": "none"}}))
    answers.append(_answer(ddb.get_item, TableName="no-such-table", Key={"pk": {"S": "a"}}))
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=it)["Records"]
    answers.append([(r["eventName"], r["dynamodb"].get("OldImage"), r["dynamodb"].get("NewImage")) for r in records])
    return answers


def _json(answers: list[Any]) -> list[Any]:
    plain: list[Any] = json.loads(json.dumps(answers, sort_keys=True, default=repr))
    return plain


def test_the_patched_stand_in_answers_as_moto_without_the_patches() -> None:
    with mock_aws():
        patched = _json(scenario())
    unpatched = unpatched_scenario("tests.unit.test_motofast_expressions")
    assert len(patched) == len(unpatched)
    for i, (ours, theirs) in enumerate(zip(patched, unpatched, strict=True)):
        assert ours == theirs, f"answer {i} differs"
    # The sequence did exercise both kinds of answer.
    assert any("error" in a for a in patched if isinstance(a, dict))
    assert any("Attributes" in a for a in patched if isinstance(a, dict))
