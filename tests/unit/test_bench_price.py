"""The price per million tasks counts every item a batched write writes."""

from bench.price import per_million

REQUESTS = {"dynamodb:PutItem": 3.0, "dynamodb:UpdateItem": 2.0, "dynamodb:BatchWriteItem": 0.1}


def test_each_item_of_a_batched_write_is_a_write_unit() -> None:
    counted = per_million(REQUESTS, 600, 10.0, 800, {"dynamodb:BatchWriteItem": 1.0})
    uncounted = per_million(REQUESTS, 600, 10.0, 800)
    assert round(counted["assumptions"]["wru_per_task"] - uncounted["assumptions"]["wru_per_task"], 3) == 0.9
    assert counted["breakdown_usd"]["DynamoDB writes"] > uncounted["breakdown_usd"]["DynamoDB writes"]
