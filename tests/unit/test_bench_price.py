"""The price per million tasks counts every item a batched write writes."""

from bench.price import per_million

REQUESTS = {"dynamodb:PutItem": 3.0, "dynamodb:UpdateItem": 2.0, "dynamodb:BatchWriteItem": 0.1}


def test_each_item_of_a_batched_write_is_a_write_unit() -> None:
    counted = per_million(REQUESTS, 600, 10.0, 800, {"dynamodb:BatchWriteItem": 1.0})
    uncounted = per_million(REQUESTS, 600, 10.0, 800)
    assert round(counted["assumptions"]["wru_per_task"] - uncounted["assumptions"]["wru_per_task"], 3) == 0.9
    assert counted["breakdown_usd"]["DynamoDB writes"] > uncounted["breakdown_usd"]["DynamoDB writes"]


def test_each_front_door_has_its_total_and_rest_stays_the_headline() -> None:
    rest = per_million(REQUESTS, 600, 10.0, 800)
    doors = rest["front_doors"]
    assert rest["front_door"] == "rest" and rest["usd_per_million_tasks"] == doors["rest"]["usd_per_million_tasks"]
    assert doors["rest"]["front_door_usd"] == rest["breakdown_usd"]["API Gateway"] == 7.11  # 2.03 requests × $3.50
    assert doors["function_url"]["front_door_usd"] == 0.0  # Lambda's own invocation is already counted
    assert round(doors["rest"]["usd_per_million_tasks"] - doors["function_url"]["usd_per_million_tasks"], 2) == 7.11
    chosen = per_million(REQUESTS, 600, 10.0, 800, front_door="function_url")
    assert chosen["usd_per_million_tasks"] == doors["function_url"]["usd_per_million_tasks"]
    assert chosen["breakdown_usd"]["Lambda requests"] == rest["breakdown_usd"]["Lambda requests"]


def test_an_idle_claim_work_worker_costs_no_api_gateway_through_a_function_url() -> None:
    from bench.price import idle_claim_work_month

    rest = idle_claim_work_month(60.0, 10.0)
    function_url = idle_claim_work_month(60.0, 10.0, front_door="function_url")
    assert function_url["breakdown_usd"]["API Gateway"] == 0.0
    assert function_url["usd_per_month"] == round(rest["usd_per_month"] - rest["breakdown_usd"]["API Gateway"], 2)
