"""`make deploy-check`: make deploy, chalice deploy and make destroy of a stage against a moto server.

The check runs in a process of its own (it patches its moto server, which must not leak into this
one) and writes what existed after each step; this test asserts on that, beside the check's own
assertions (its exit status).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from infra import policies, template

PROJECT = Path(__file__).resolve().parents[2]


def test_deploy_redeploy_switch_front_doors_and_destroy_a_stage_on_the_stand_in(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "infra.deploy_check", "--report", str(report)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    took = time.monotonic() - started
    print(result.stdout[-20000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "deploy-check passed" in result.stdout
    assert "patched in the stand-in" in result.stdout  # it says what it patched
    steps: list[dict[str, Any]] = json.loads(report.read_text())["steps"]
    assert [s["step"] for s in steps] == [
        "make deploy",
        "chalice deploy",
        "make deploy (function URL)",
        "chalice deploy (function URL)",
        "make deploy (REST again)",
        "make destroy",
        "make destroy PURGE=1",
    ]
    deployed, redeployed, function_url, function_url_redeployed, rest_again, destroyed, purged = (
        s["state"] for s in steps
    )

    for state in (deployed, redeployed, function_url, function_url_redeployed, rest_again):
        functions = state["functions"]
        assert sorted(functions) == sorted(template.FUNCTIONS)
        stream_arn = state["stream_arn"]
        assert stream_arn and "/stream/" in stream_arn and "placeholder" not in stream_arn
        assert {f["env"]["TASKQUEUE_TASKS_STREAM_ARN"] for f in functions.values()} == {stream_arn}
        [mapping] = [m for m in state["mappings"] if m["function"] == template.STREAM_HANDLER]
        assert mapping["EventSourceArn"] == stream_arn
        assert mapping["BisectBatchOnFunctionError"] is True
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["DestinationConfig"]["OnFailure"]["Destination"].endswith(
            "taskqueue-check-tasks-stream-failures"
        )
        rules = {f: [r.get("ScheduleExpression") for r in rs] for f, rs in state["rules"].items() if rs}
        assert rules[template.SWEEPER_HANDLER] == rules[template.PROVISIONER_HANDLER] == ["rate(1 minute)"]
        assert state["throttling"]["*/*"]["throttlingRateLimit"] > 0
        assert {f: len(fn["policies"]) for f, fn in functions.items()} == {f: 1 for f in template.FUNCTIONS}
        launchers = {f for f, fn in functions.items() if "ec2:RunInstances" in json.dumps(fn["policies"])}
        assert launchers == {template.PROVISIONER_HANDLER}
        readers = {f for f, fn in functions.items() if "secretsmanager:GetSecretValue" in json.dumps(fn["policies"])}
        assert readers == {template.API_HANDLER, template.PROVISIONER_HANDLER}
        assert all(fn["env"]["TASKQUEUE_EVENT_BUS"] == "taskqueue-check-events" for fn in functions.values())
        assert "tokenKey" in state["secret"]["keys"]
        assert set(state["log_groups"].values()) == {template.StageSettings().log_retention_days}
    # The front door: the REST API's URL is the root URL, then the function URL (with its public
    # permissions, kept by a plain chalice deploy), then the REST API's again, nothing left of the URL.
    wanted = {p["StatementId"] for p in template.FUNCTION_URL_PERMISSIONS}
    for state in (deployed, redeployed, rest_again):
        assert state["function_url"] is None and state["function_url_permissions"] == {}
        root_urls = {fn["env"].get(template.ENV_ROOT_URL) for fn in state["functions"].values()} - {None}
        assert root_urls == {state["rest_api_url"].rstrip("/")}
    for state in (function_url, function_url_redeployed):
        url = state["function_url"]
        assert url and ".lambda-url.us-east-1.on.aws" in url and not url.endswith("/")
        assert set(state["function_url_permissions"]) == wanted
        root_urls = {fn["env"].get(template.ENV_ROOT_URL) for fn in state["functions"].values()} - {None}
        assert root_urls == {url}
    assert function_url_redeployed["function_url"] == function_url["function_url"]
    assert redeployed["throttling"] == deployed["throttling"]
    assert [m["UUID"] for m in redeployed["mappings"]] == [m["UUID"] for m in deployed["mappings"]]

    assert destroyed["functions"] == {} and destroyed["mappings"] == [] and destroyed["base_stack"] is None
    assert any(r.startswith("table taskqueue-check-tasks") for r in destroyed["retained"])
    assert purged["retained"] == []
    assert policies.policy_file("check", "api_handler").startswith("policies/check/")
    print(f"deploy-check took {took:.0f}s")
