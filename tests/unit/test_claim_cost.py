"""An idle worker's monthly cost (bench/price.py) computes what its formula says, and the stages
carry what keeps it low: claimWork's wait of 0 s and a claimWork throttle that lets N idle
workers poll every 5 s while their polls hold only a small share of the API's instances."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from chalice.config import Config

from bench import price
from chalicelib.config import Settings
from infra import deploy, template
from worker.claiming import CLAIM_WORK_INTERVAL

PROJECT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((PROJECT / ".chalice" / "config.json").read_text())
MONTH = 730 * 3600
GB_S, APIGW, LAMBDA_REQ, SQS = 0.0000166667, 3.50e-6, 0.20e-6, 0.40e-6


def test_an_idle_claim_work_worker_costs_calls_times_the_price_of_one_call() -> None:
    got = price.idle_claim_work_month(5.0, 30.0, 0.5, sqs_per_call=1.0)
    calls = MONTH / 5.0
    assert calls == got["calls_per_month"] == 525_600
    per_call = APIGW + LAMBDA_REQ + 0.030 * 0.5 * GB_S + SQS
    assert got["usd_per_call"] == pytest.approx(per_call)
    assert got["usd_per_month"] == round(calls * per_call, 2) == 2.29
    assert got["breakdown_usd"]["API Gateway"] == pytest.approx(calls * APIGW, abs=1e-4)
    assert got["concurrency_held"] == pytest.approx(0.030 / 5.0)


def test_lambda_duration_is_billed_by_the_millisecond_rounded_up() -> None:
    assert price.api_call_usd(2.1, 1.0)["Lambda duration"] == pytest.approx(0.003 * GB_S)
    assert price.api_call_usd(3.0, 1.0)["Lambda duration"] == pytest.approx(0.003 * GB_S)


def test_the_20s_long_poll_it_replaces_costs_what_the_issue_says() -> None:
    assert price.long_poll_month(20.0, 0.5) == pytest.approx(22.4, abs=0.1)  # "≈ $22/month at 512 MB"
    assert price.long_poll_month(20.0, 1.0) == pytest.approx(44.3, abs=0.1)


@pytest.mark.parametrize(("memory_gb", "billed_ms"), [(0.5, 150.0), (1.0, 75.0)])
def test_an_idle_claim_work_worker_stays_within_3_usd_at_call_lengths_well_above_the_measured(
    memory_gb: float, billed_ms: float
) -> None:
    assert price.idle_claim_work_month(CLAIM_WORK_INTERVAL, billed_ms, memory_gb)["usd_per_month"] <= 3.0


def test_the_break_even_duration_is_where_the_month_costs_the_budget() -> None:
    ms = price.break_even_ms(3.0, 5.0, 0.5, 1.0)
    assert 150 < ms < 250
    month = MONTH / 5.0 * (APIGW + LAMBDA_REQ + SQS + ms / 1000 * 0.5 * GB_S)
    assert month == pytest.approx(3.0)


def test_an_idle_sqs_worker_pays_only_its_own_sqs_requests() -> None:
    one = price.idle_sqs_month()
    assert one["sqs_requests_per_month"] == MONTH / 20 * 2  # a 20 s long poll and a ListQueues per 20 s
    assert one["usd_per_month"] == round(MONTH / 20 * 2 * SQS, 2) == 0.11
    several = price.idle_sqs_month(priorities=3)
    assert several["sqs_requests_per_month"] == MONTH + MONTH / 5  # a 1 s receive a second, ListQueues every 5 s
    assert several["usd_per_month"] < 3.0


# --- the stages -------------------------------------------------------------------------------------
def stage_env(stage: str) -> dict[str, str]:
    env = Config(chalice_stage=stage, function_name="api_handler", config_from_disk=CONFIG).environment_variables
    return dict(env or {})


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_deployed_stages_answer_claim_work_at_once(stage: str) -> None:
    assert stage_env(stage)["TASKQUEUE_CLAIM_WORK_TIMEOUT"] == deploy.STAGE_CLAIM_WORK_TIMEOUT == "0"
    assert Settings.from_env(stage_env(stage)).claim_work_timeout == 0.0


def test_a_stage_make_deploy_adds_answers_claim_work_at_once_too() -> None:
    section = deploy.new_stage_section("qa1")
    assert section["environment_variables"]["TASKQUEUE_CLAIM_WORK_TIMEOUT"] == "0"
    dev = template.StageSettings.from_config(CONFIG["stages"]["dev"])
    assert template.StageSettings.from_config(section).claim_work_throttle == dev.claim_work_throttle


# (stage, idle claim-work workers its claimWork throttle serves at one call per 5 s, API instances
# a 200-instance reservation would give, as infra/README.md suggests)
SIZING = [("dev", 20), ("prod", 75)]


@pytest.mark.parametrize(("stage", "workers"), SIZING)
def test_the_claim_work_throttle_fits_the_polls_of_n_idle_workers(stage: str, workers: int) -> None:
    settings = template.stage_settings(stage, CONFIG)
    throttle = settings.claim_work_throttle
    assert throttle.rate_limit >= workers / CLAIM_WORK_INTERVAL
    assert throttle.rate_limit <= settings.api_throttle.rate_limit / 4  # most of the stage's rate is left


@pytest.mark.parametrize(("stage", "workers"), SIZING)
def test_claim_polls_can_hold_only_a_small_share_of_the_api_instances(stage: str, workers: int) -> None:
    settings = template.stage_settings(stage, CONFIG)
    wait = Settings.from_env(stage_env(stage)).claim_work_timeout
    # Worst case under the throttle: every call lasting its wait plus the 4 s it keeps for claims.
    held = deploy.claim_work_concurrency(settings, 28, wait)
    throttle = settings.claim_work_throttle
    assert held == math.ceil(throttle.burst_limit + throttle.rate_limit * (wait + deploy.CLAIM_WORK_AFTER_WAIT))
    assert held <= 200 // 2  # make deploy refuses a reservation claimWork could hold half of
    # In steady state (Little's law), at the stand-in's measured ~10 ms a call: a fraction of one instance.
    assert throttle.rate_limit * 0.010 < 1
    # The same throttle with the 20 s long poll would hold far more.
    assert deploy.claim_work_concurrency(settings, 28, 20.0) > held


def test_the_long_poll_bound_is_the_api_timeout() -> None:
    settings = template.StageSettings(claim_work_throttle=template.Throttle(2, 4))
    assert deploy.claim_work_concurrency(settings, 28, 30.0) == 4 + 2 * 28


def test_the_price_per_task_counts_api_gateway_rest_and_shows_the_http_api_figure_beside_it() -> None:
    got = price.per_million({}, 700, 20.0)
    requests = 2 + 1 / 32  # createTask, reportCompleted, a 32nd of claimWork(32)
    assert got["breakdown_usd"]["API Gateway"] == pytest.approx(requests * 3.50, abs=0.005)
    assert got["api_gateway_if_http_api_usd"] == pytest.approx(requests * 1.00, abs=0.005)
    assert "api_gateway_if_http_api_usd" not in got["breakdown_usd"]  # not in the total
