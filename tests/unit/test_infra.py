"""infra/ and .chalice/ agree with the code: the models, the stage names, both routes' templates.

The functions' IAM policies against the AWS calls each makes: tests/unit/test_deploy_policies.py.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import xform_name
from moto import mock_aws

from chalicelib.adapters.hint_queues import SqsHintQueues, dlq_name
from chalicelib.adapters.tables import all_tables
from chalicelib.config import Settings
from chalicelib.domain.dispatch import Hint, queue_name
from infra import policies, template
from tests.harness import allowed, as_list, iam_requests

PROJECT = Path(__file__).resolve().parents[2]
CHALICE_CONFIG = json.loads((PROJECT / ".chalice" / "config.json").read_text())
STAGES = sorted(CHALICE_CONFIG["stages"])
REGION = "us-east-1"
ACCOUNT = "123456789012"


def stage_env(stage: str) -> dict[str, str]:
    """The stage's environment, merged by hand (independently of infra/, which uses Chalice's code)."""
    return {
        **CHALICE_CONFIG["environment_variables"],
        **CHALICE_CONFIG["stages"][stage].get("environment_variables", {}),
    }


def merge_template(stage: str) -> dict[str, Any]:
    return template.generate(stage, REGION)


def base_stack(stage: str) -> dict[str, Any]:
    return template.generate_base(stage, REGION)


def function_policy(stage: str, function: str) -> dict[str, Any]:
    return policies.function_policy(template.stage_names(stage), function)


# --- the tables ---------------------------------------------------------------------------------


def as_create_table_params(props: dict[str, Any]) -> dict[str, Any]:
    """An AWS::DynamoDB::Table's properties back in CreateTable spelling."""
    params = {k: props[k] for k in ("TableName", "BillingMode", "AttributeDefinitions", "KeySchema")}
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if key in props:
            params[key] = props[key]
    if "StreamSpecification" in props:
        params["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    return params


@pytest.mark.parametrize("stage", STAGES)
def test_every_table_is_exactly_what_all_tables_derives_from_the_models(stage: str) -> None:
    table_name = stage_env(stage)["TASKQUEUE_TASKS_TABLE"]
    resources = merge_template(stage)["Resources"]
    tables = {r["Properties"]["TableName"]: r for r in resources.values() if r.get("Type") == "AWS::DynamoDB::Table"}
    env = stage_env(stage)
    expected = all_tables(Settings.from_env({**env, "AWS_DEFAULT_REGION": REGION}))
    assert Settings.from_env(env).tasks_table == table_name

    assert sorted(tables) == sorted(params["TableName"] for params, _ in expected)
    for params, ttl_attribute in expected:
        props = tables[params["TableName"]]["Properties"]
        assert as_create_table_params(props) == params
        if ttl_attribute:
            assert props["TimeToLiveSpecification"] == {"AttributeName": ttl_attribute, "Enabled": True}
        else:
            assert "TimeToLiveSpecification" not in props
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


@pytest.mark.parametrize("stage", STAGES)
def test_tasks_table_is_named_by_the_stage_and_kept_when_the_stack_goes(stage: str) -> None:
    table = merge_template(stage)["Resources"][template.TASKS_TABLE_ID]
    assert table["Properties"]["TableName"] == stage_env(stage)["TASKQUEUE_TASKS_TABLE"]
    assert table["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_a_create_table_parameter_infra_cannot_express_is_an_error() -> None:
    (params, ttl_attribute), *_ = all_tables(Settings(tasks_table="t", region=REGION))
    with pytest.raises(ValueError, match="SSESpecification"):
        template.table_resource({**params, "SSESpecification": {"Enabled": True}}, ttl_attribute)


# --- the queues ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_dispatch_dead_letter_queue_is_named_by_dlq_name_of_the_stage_prefix(stage: str) -> None:
    dlq = merge_template(stage)["Resources"][template.DISPATCH_DLQ_ID]
    assert dlq["Type"] == "AWS::SQS::Queue"
    assert dlq["Properties"]["QueueName"] == dlq_name(stage_env(stage)["TASKQUEUE_QUEUE_PREFIX"])


@pytest.mark.parametrize("stage", STAGES)
def test_infra_queue_names_can_never_be_dispatch_queue_names(stage: str) -> None:
    prefix = stage_env(stage)["TASKQUEUE_QUEUE_PREFIX"]
    resources = merge_template(stage)["Resources"]
    for queue_id in (template.DISPATCH_DLQ_ID, template.STREAM_FAILURE_QUEUE_ID):
        name = resources[queue_id]["Properties"]["QueueName"]
        assert name.startswith(prefix)
        assert not re.search(r"_\d$", name)  # every dispatch queue ends in "_<priority level>"


def test_dispatch_queues_created_by_the_code_redrive_to_the_queue_infra_creates() -> None:
    props = merge_template("dev")["Resources"][template.DISPATCH_DLQ_ID]["Properties"]
    prefix = stage_env("dev")["TASKQUEUE_QUEUE_PREFIX"]
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        # As CloudFormation creates it; the code then calls CreateQueue on the same name, which SQS
        # refuses (QueueAlreadyExists) if the attributes it sends differ.
        attributes = {k: str(v) for k, v in props.items() if k != "QueueName"}
        dlq_url = sqs.create_queue(QueueName=props["QueueName"], Attributes=attributes)["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

        SqsHintQueues(sqs, prefix).send([Hint("task-a", 0, "proj/linux", "lowest")])

        url = sqs.get_queue_url(QueueName=queue_name(prefix, "proj/linux", "lowest"))["QueueUrl"]
        redrive = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
        assert json.loads(redrive["RedrivePolicy"])["deadLetterTargetArn"] == dlq_arn


# --- the stream event source --------------------------------------------------------------------


def test_tasks_stream_reads_the_tables_stream_and_sets_poison_batches_aside() -> None:
    override = merge_template("dev")["Resources"][template.STREAM_FUNCTION_ID]
    assert "Type" not in override  # it only adds to the function Chalice generates
    event = override["Properties"]["Events"][template.STREAM_EVENT_ID]["Properties"]
    assert event == {
        "Stream": {"Fn::GetAtt": [template.TASKS_TABLE_ID, "StreamArn"]},
        "FunctionResponseTypes": ["ReportBatchItemFailures"],  # the handler returns batchItemFailures
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 10,
        "MaximumRecordAgeInSeconds": 21600,  # set aside while the stream (24 h) still holds them
        "ParallelizationFactor": template.stage_settings("dev").stream_parallelization,
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [template.STREAM_FAILURE_QUEUE_ID, "Arn"]}}},
    }


def test_the_app_registers_the_stream_handler_infra_overrides() -> None:
    from app import app

    handlers = {e.name: type(e).__name__ for e in app.event_sources}
    assert handlers.get(template.STREAM_HANDLER) == "DynamoDBEventConfig"


# --- chalice package ----------------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def chalice_package(tmp_path_factory: pytest.TempPathFactory, merge: dict[str, Any]) -> Path:
    """`chalice package --merge-template` run on a copy of the project, offline.

    The copy has an empty requirements.txt: the template does not depend on the bundled
    libraries, and without them Chalice needs no pip download (0.6 s instead of a network fetch).
    """
    chalice = find_tool("chalice")
    if chalice is None:
        pytest.skip("the chalice CLI is not installed")
    project = tmp_path_factory.mktemp("project")
    shutil.copy(PROJECT / "app.py", project / "app.py")
    shutil.copytree(PROJECT / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        PROJECT / ".chalice", project / ".chalice", ignore=shutil.ignore_patterns("deployed", "deployments")
    )
    (project / "requirements.txt").write_text("")
    (project / "merge.json").write_text(json.dumps(merge))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_DEFAULT_REGION=REGION, PIP_NO_INDEX="1")
    result = subprocess.run(
        [chalice, "package", "--stage", "dev", "--merge-template", "merge.json", "out"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return project / "out" / "sam.json"


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chalice_package(tmp_path_factory, merge_template("dev"))


def test_a_function_url_stage_packages_onto_chalice_s_api_function_and_passes_cfn_lint(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    names = template.stage_names("dev")
    door = template.StageSettings(front_door=template.FRONT_DOOR_FUNCTION_URL)
    sam = chalice_package(tmp_path_factory, template.build_template(names, template.stage_tables(names, REGION), door))
    resources = json.loads(sam.read_text())["Resources"]
    api = template.function_logical_id(template.API_HANDLER)
    assert resources[api]["Type"] == "AWS::Serverless::Function"  # what the URL and permissions name
    assert resources[template.FUNCTION_URL_ID]["Properties"]["TargetFunctionArn"] == {"Fn::GetAtt": [api, "Arn"]}
    permissions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    public = [p for p in permissions if p["Properties"]["Principal"] == "*"]
    assert sorted(p["Properties"]["Action"] for p in public) == ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"]
    cfn_lint = find_tool("cfn-lint")
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed")
    result = subprocess.run([cfn_lint, str(sam)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_merge_template_lands_on_the_resources_chalice_generates(packaged: Path) -> None:
    sam = json.loads(packaged.read_text())
    resources = sam["Resources"]
    assert {k for k, r in resources.items() if "Type" not in r} == set()  # no override missed its target
    function = resources[template.STREAM_FUNCTION_ID]
    assert function["Type"] == "AWS::Serverless::Function"
    assert function["Properties"]["Handler"].endswith(f".{template.STREAM_HANDLER}")
    [(event_id, event)] = function["Properties"]["Events"].items()
    assert (event_id, event["Type"]) == (template.STREAM_EVENT_ID, "DynamoDB")
    # The deep merge keeps Chalice's keys and must not leave two intrinsics side by side.
    assert event["Properties"]["Stream"] == {"Fn::GetAtt": [template.TASKS_TABLE_ID, "StreamArn"]}
    assert event["Properties"]["BatchSize"] == 100
    assert event["Properties"]["BisectBatchOnFunctionError"] is True
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    for resource_id in merge_template("dev")["Resources"]:
        assert resource_id in resources


def test_the_provisioner_runs_every_minute_and_ec2_s_interruptions_and_state_changes_reach_it(
    packaged: Path,
) -> None:
    from chalicelib.handlers.provisioning import EC2_EVENT_PATTERN, SPOT_WARNING, STATE_CHANGE

    resources = json.loads(packaged.read_text())["Resources"]
    [schedule] = resources[template.PROVISIONER_FUNCTION_ID]["Properties"]["Events"].values()
    assert schedule == {"Type": "Schedule", "Properties": {"Schedule": "rate(1 minute)"}}
    [rule] = resources["Ec2Events"]["Properties"]["Events"].values()
    assert rule["Type"] == "CloudWatchEvent" and rule["Properties"]["Pattern"] == EC2_EVENT_PATTERN
    assert EC2_EVENT_PATTERN == {"source": ["aws.ec2"], "detail-type": [SPOT_WARNING, STATE_CHANGE]}


def test_every_function_role_carries_that_function_s_own_policy(packaged: Path) -> None:
    resources = json.loads(packaged.read_text())["Resources"]
    role_of = {
        rid: r["Properties"]["Role"]["Fn::GetAtt"][0]
        for rid, r in resources.items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    assert sorted(role_of) == sorted(to_cfn(f) for f in template.FUNCTIONS)
    assert len(set(role_of.values())) == len(role_of)  # a role each
    roles = {rid for rid, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert roles == set(role_of.values()) | {template.WORKER_ROLE_ID}  # the workers' role is the merge's own
    for function in template.FUNCTIONS:
        documents = [p["PolicyDocument"] for p in resources[role_of[to_cfn(function)]]["Properties"]["Policies"]]
        assert documents == [function_policy("dev", function)], function


def to_cfn(handler: str) -> str:
    return template.function_logical_id(handler)


def test_packaged_template_passes_cfn_lint(packaged: Path) -> None:
    cfn_lint = find_tool("cfn-lint")
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed")
    result = subprocess.run([cfn_lint, str(packaged)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --- one definition, two routes ----------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_the_base_stack_and_the_merge_template_make_the_very_same_resources(stage: str) -> None:
    """`make deploy`'s base stack and `make package`'s merge template come from base_resources: the
    resources Chalice cannot create are the same, key for key; the merge adds only overrides of
    Chalice's own resources (no Type), the REST API's settings and the functions' log groups."""
    base, merge = base_stack(stage)["Resources"], merge_template(stage)["Resources"]
    names = template.stage_names(stage)
    assert base.keys() <= merge.keys()
    for resource_id, resource in base.items():
        if resource_id == "TasksStreamIteratorAgeAlarm":  # names the stream function: a Ref, or its name
            dimension = resource["Properties"]["Dimensions"][0]
            assert dimension["Value"] == names.function_name(template.STREAM_HANDLER)
            resource = copy.deepcopy(resource)
            resource["Properties"]["Dimensions"][0]["Value"] = {"Ref": template.STREAM_FUNCTION_ID}
        assert merge[resource_id] == resource, resource_id
    extra = {rid: r for rid, r in merge.items() if rid not in base}
    for resource_id, resource in extra.items():
        assert "Type" not in resource or resource["Type"] == "AWS::Logs::LogGroup", resource_id
    assert base_stack(stage)["Parameters"].keys() <= merge_template(stage)["Parameters"].keys()
    # A function URL stage adds its front door on Chalice's API function, and only that: `make
    # deploy` makes the same through Lambda's API (test_deploy.py, the deploy check).
    door = template.StageSettings(front_door=template.FRONT_DOOR_FUNCTION_URL)
    with_door = template.build_template(names, template.stage_tables(names, REGION), door)["Resources"]
    assert {rid: r for rid, r in with_door.items() if rid not in merge} == template.function_url_resources()


def test_a_function_url_stage_gives_workers_the_function_url() -> None:
    names = template.stage_names("dev")
    door = template.StageSettings(front_door=template.FRONT_DOOR_FUNCTION_URL)
    merge = template.build_template(names, template.stage_tables(names, REGION), door)
    url = template.public_root_url(names, door)
    assert merge["Outputs"]["WorkerRootUrl"]["Value"] == url
    for function in ("Provisioner", "Ec2Events", "APIHandler"):
        assert merge["Resources"][function]["Properties"]["Environment"]["Variables"][template.ENV_ROOT_URL] == url
    has_param, param, door_url = url["Fn::If"]
    assert (has_param, param) == (template.HAS_PUBLIC_ROOT_URL, {"Ref": template.PUBLIC_ROOT_URL_PARAM})
    # https:// and the FunctionUrl's host: "https://<id>.lambda-url.<region>.on.aws/" split on "/", item 2.
    [(_, [_, [scheme, host]])] = door_url.items()
    assert scheme == "https://" and host["Fn::Select"][0] == 2
    assert host["Fn::Select"][1]["Fn::Split"][1] == {"Fn::GetAtt": [template.FUNCTION_URL_ID, "FunctionUrl"]}
    index, separator = host["Fn::Select"][0], host["Fn::Select"][1]["Fn::Split"][0]
    function_url = "https://abc.lambda-url.us-east-1.on.aws/"  # as AWS gives FunctionUrl: a trailing slash
    assert scheme + function_url.split(separator)[index] == "https://abc.lambda-url.us-east-1.on.aws"
    rest = template.build_template(names, template.stage_tables(names, REGION))
    assert template.FUNCTION_URL_ID not in rest["Resources"] and "FunctionUrl" not in rest["Outputs"]


def test_both_routes_give_each_function_the_same_variables() -> None:
    merge = merge_template("dev")["Resources"]
    for function in template.FUNCTIONS:
        variables = merge.get(to_cfn(function), {}).get("Properties", {}).get("Environment", {}).get("Variables", {})
        assert set(variables) == set(template.FUNCTION_ENVIRONMENT.get(function, ())), function
    from infra import deploy

    config = copy.deepcopy(CHALICE_CONFIG)
    outputs = deploy.Outputs(*(f"value-{n}" for n in range(8)))
    deploy.apply_outputs(config, "dev", outputs, "https://x.example.com/api")
    for function in template.FUNCTIONS:
        env = config["stages"]["dev"]["lambda_functions"].get(function, {}).get("environment_variables", {})
        assert set(env) == set(template.FUNCTION_ENVIRONMENT.get(function, ())), function
    assert config["stages"]["dev"]["environment_variables"][template.ENV_STREAM] == outputs.stream_arn


@pytest.mark.parametrize("stage", STAGES)
def test_the_base_stack_gives_make_deploy_every_output_it_reads(stage: str) -> None:
    outputs = base_stack(stage)["Outputs"]
    from infra import deploy

    read = {getattr(template, n) for n in dir(template) if n.startswith("OUT_")}
    assert read <= set(outputs)
    assert len(read) == len(deploy.Outputs.__dataclass_fields__)


def test_base_stack_passes_cfn_lint(tmp_path: Path) -> None:
    cfn_lint = find_tool("cfn-lint")
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed")
    paths = []
    for stage in STAGES:
        path = tmp_path / f"base-{stage}.json"
        path.write_text(json.dumps(base_stack(stage)))
        paths.append(str(path))
    result = subprocess.run([cfn_lint, *paths], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --- stages never collide ---------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_every_name_a_stage_gives_carries_its_prefix(stage: str) -> None:
    names = template.stage_names(stage)
    assert names.prefix == template.stage_prefix(stage)
    for what, name in names.named_resources().items():
        assert (name + "-").startswith(names.prefix), what
    assert names.event_bus == f"{names.prefix}events"  # not one bus for every stage
    base = json.dumps(base_stack(stage))
    other_prefixes = [template.stage_prefix(s) for s in STAGES if s != stage]
    assert not any(p in base for p in other_prefixes)


def test_no_stage_prefix_is_another_s() -> None:
    prefixes = [template.stage_names(s).prefix for s in STAGES]
    for a in prefixes:
        for b in prefixes:
            assert a == b or not b.startswith(a)


def test_a_name_without_the_stage_prefix_is_refused() -> None:
    config = copy.deepcopy(CHALICE_CONFIG)
    config["stages"]["dev"]["environment_variables"]["TASKQUEUE_EVENT_BUS"] = "taskqueue-events"
    with pytest.raises(ValueError, match="without the stage's prefix"):
        template.stage_names("dev", config)


def test_stage_settings_are_checked() -> None:
    assert template.StageSettings.from_config({}) == template.StageSettings()
    for bad in (
        {"api_throttle": {"rate_limit": 0, "burst_limit": 1}},
        {
            "claim_work_throttle": {"rate_limit": 100, "burst_limit": 10},
            "api_throttle": {"rate_limit": 10, "burst_limit": 10},
        },
        {"stream_parallelization": 11},
        {"log_retention_days": 8},
        {"public_root_url": "https://x.example.com/"},
        {"no_such_setting": 1},
    ):
        with pytest.raises(ValueError):
            template.StageSettings.from_config({template.SETTINGS_KEY: bad})
    for stage in STAGES:
        template.stage_settings(stage)  # the committed ones are valid


@pytest.mark.parametrize("stage", STAGES)
def test_the_merge_template_throttles_the_api_and_keeps_the_logs_as_the_stage_says(stage: str) -> None:
    settings = template.stage_settings(stage)
    resources = merge_template(stage)["Resources"]
    assert resources[template.REST_API_ID] == {"Properties": {"MethodSettings": template.api_method_settings(settings)}}
    [every, claim] = template.api_method_settings(settings)
    assert (every["ResourcePath"], every["HttpMethod"]) == ("/*", "*")
    assert claim["ResourcePath"] == "/~1api~1queue~1v1~1claim-work~1{taskQueueId}" and claim["HttpMethod"] == "POST"
    assert every["ThrottlingRateLimit"] == settings.api_throttle.rate_limit
    assert claim["ThrottlingBurstLimit"] == settings.claim_work_throttle.burst_limit
    groups = {
        r["Properties"]["LogGroupName"]["Fn::Sub"]: r
        for r in resources.values()
        if r.get("Type") == "AWS::Logs::LogGroup"
    }
    assert set(groups) == {"/aws/lambda/${" + to_cfn(f) + "}" for f in template.FUNCTIONS}
    assert {g["Properties"]["RetentionInDays"] for g in groups.values()} == {settings.log_retention_days}


def test_the_claim_work_route_is_the_app_s() -> None:
    from app import app

    assert "POST" in app.routes[template.CLAIM_WORK_ROUTE]


def test_infra_knows_every_function_chalice_makes_of_the_app() -> None:
    from app import app

    assert {template.API_HANDLER, *(s.name for s in app.event_sources)} == set(template.FUNCTIONS)


def test_packaged_api_is_throttled_and_its_functions_log_groups_kept(packaged: Path) -> None:
    resources = json.loads(packaged.read_text())["Resources"]
    api = resources[template.REST_API_ID]
    assert api["Type"] == "AWS::Serverless::Api"
    assert api["Properties"]["MethodSettings"] == template.api_method_settings(template.stage_settings("dev"))
    assert api["Properties"]["StageName"] == template.stage_names("dev").api_gateway_stage
    for function in template.FUNCTIONS:
        assert resources[f"{to_cfn(function)}LogGroup"]["Type"] == "AWS::Logs::LogGroup"


# --- what the functions may do (the calls themselves: test_deploy_policies.py) ------------------


def test_every_sqs_operation_in_the_code_is_allowed_to_some_function_on_the_queues_it_names() -> None:
    """Static backstop for SQS paths the drive of test_deploy_policies.py may not reach."""
    operations = {xform_name(op): op for op in botocore.session.get_session().get_service_model("sqs").operation_names}
    used: set[str] = set()
    for path in (PROJECT / "chalicelib").rglob("*.py"):
        if str(path).startswith(NOT_APP_CODE):
            continue
        text = path.read_text()
        used.update(operations[m] for m in re.findall(r"_sqs\.([a-z_]+)\(", text) if m in operations)
        used.update(operations[m] for m in re.findall(r"get_paginator\(\"([a-z_]+)\"\)", text) if m in operations)
    assert used, "no SQS calls found: has the SQS adapter moved?"
    for stage in STAGES:
        names = template.stage_names(stage)
        every = [function_policy(stage, f) for f in template.FUNCTIONS]
        queues = (queue_name(names.prefix, "proj/linux", "lowest"), names.dispatch_dlq, names.release_queue)
        for op in used:
            requests = [
                request
                for queue in queues
                for request in iam_requests("sqs", op, {"QueueName": queue} if op != "ListQueues" else {})
            ]
            assert any(allowed(a, r, p) for a, r in requests for p in every), (stage, op)


NOT_APP_CODE = str(PROJECT / "chalicelib" / "local") + os.sep


@pytest.mark.parametrize("stage", STAGES)
def test_the_stream_function_may_do_what_lambda_does_for_it(stage: str) -> None:
    names = template.stage_names(stage)
    policy = function_policy(stage, template.STREAM_HANDLER)
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{names.tasks_table}"
    stream = f"{table}/stream/2026-11-28T13:00:00.000"
    # The event source mapping reads the stream with the function's role...
    for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"):
        assert allowed(action, stream, policy)
    assert allowed("dynamodb:ListStreams", "*", policy)
    # ...and sends the failed batches' metadata to the failure queue with it too.
    assert allowed("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{names.stream_failure_queue}", policy)
    release = function_policy(stage, template.RELEASE_HANDLER)
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{names.release_queue}"
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert allowed(action, queue, release)  # the release function's event source
    for function in template.FUNCTIONS:
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{names.function_name(function)}"
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            assert allowed(action, f"{group}:log-stream:2026/12/02/abc", function_policy(stage, function))
        other = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/someone-else:log-stream:x"
        assert not allowed("logs:PutLogEvents", other, function_policy(stage, function))


# --- the artifact bucket ------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_artifact_bucket_is_private_named_per_account_and_given_to_the_functions_that_use_it(stage: str) -> None:
    resources = merge_template(stage)["Resources"]
    bucket = resources[template.ARTIFACT_BUCKET_ID]
    props = bucket["Properties"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    base = stage_env(stage)["TASKQUEUE_QUEUE_PREFIX"] + "artifacts"
    assert props["BucketName"] == {"Fn::Sub": f"{base}-${{AWS::AccountId}}-${{AWS::Region}}"}
    key = f"arn:aws:s3:::{base}-{ACCOUNT}-{REGION}/t/0/public/x"
    assert allowed("s3:GetObject", key, function_policy(stage, template.API_HANDLER))
    assert allowed("s3:DeleteObject", key, function_policy(stage, template.SWEEPER_HANDLER))
    # Downloads are presigned, public/ ones too: nothing is readable without a signature.
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    policy = resources[template.ARTIFACT_BUCKET_POLICY_ID]["Properties"]["PolicyDocument"]
    assert [s["Effect"] for s in policy["Statement"]] == ["Deny"]
    for function_id in ("APIHandler", "Sweeper"):
        variables = resources[function_id]["Properties"]["Environment"]["Variables"]
        assert variables["TASKQUEUE_ARTIFACT_BUCKET"] == {"Ref": template.ARTIFACT_BUCKET_ID}


@pytest.mark.parametrize("stage", STAGES)
def test_the_root_client_is_a_generated_secret_only_the_api_and_provisioner_functions_read(stage: str) -> None:
    resources = merge_template(stage)["Resources"]
    secret = resources[template.ROOT_SECRET_ID]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "accessToken"
    assert json.loads(generated["SecretStringTemplate"]) == {"clientId": "root"}
    assert "SecretString" not in secret["Properties"]  # the token is never in the template
    holders = {
        rid
        for rid, r in resources.items()
        if "TASKQUEUE_ROOT_SECRET_ARN" in r.get("Properties", {}).get("Environment", {}).get("Variables", {})
    }
    # The provisioner derives the launches' registration tokens from it; ec2_events never needs it.
    assert holders == {"APIHandler", "Provisioner"}
    for holder in holders:
        assert resources[holder]["Properties"]["Environment"]["Variables"]["TASKQUEUE_ROOT_SECRET_ARN"] == {
            "Ref": template.ROOT_SECRET_ID
        }
    name = secret["Properties"]["Name"]
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf"
    readers = {
        f for f in template.FUNCTIONS if allowed("secretsmanager:GetSecretValue", arn, function_policy(stage, f))
    }
    assert readers == {template.API_HANDLER, template.PROVISIONER_HANDLER}
    assert "TASKQUEUE_ROOT_ACCESS_TOKEN" not in json.dumps(resources)


@pytest.mark.parametrize("stage", STAGES)
def test_artifact_bucket_lifecycle_backstop_matches_the_longest_s3_artifact_the_api_accepts(stage: str) -> None:
    rules = merge_template(stage)["Resources"][template.ARTIFACT_BUCKET_ID]["Properties"]["LifecycleConfiguration"]
    by_id = {r["Id"]: r for r in rules["Rules"]}
    assert by_id["artifact-max-age"]["ExpirationInDays"] == Settings.from_env(stage_env(stage)).artifact_max_days
    assert by_id["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}


def test_no_lifecycle_expiry_when_s3_artifacts_may_live_for_ever() -> None:
    names = template.stage_names("dev")
    unlimited = template.StageNames(**{**names.__dict__, "artifact_max_days": 0})
    rules = template.artifact_bucket_resources(unlimited)[template.ARTIFACT_BUCKET_ID]["Properties"]
    assert [r["Id"] for r in rules["LifecycleConfiguration"]["Rules"]] == ["abort-incomplete-uploads"]


def test_packaged_functions_get_the_generated_bucket_name_beside_chalice_s_variables(packaged: Path) -> None:
    resources = json.loads(packaged.read_text())["Resources"]
    for function_id in ("APIHandler", "Sweeper"):
        variables = resources[function_id]["Properties"]["Environment"]["Variables"]
        assert variables["TASKQUEUE_ARTIFACT_BUCKET"] == {"Ref": template.ARTIFACT_BUCKET_ID}
        assert variables["TASKQUEUE_TASKS_TABLE"] == stage_env("dev")["TASKQUEUE_TASKS_TABLE"]


# --- the provisioner and its workers ------------------------------------------------------------


class Cfn:
    """Evaluates the intrinsics the templates use, for one deployment's parameters (a value that is
    an intrinsic, or a list of them; other dicts are returned as they are)."""

    def __init__(self, tmpl: dict[str, Any], parameters: dict[str, str] | None = None) -> None:
        self.conditions = tmpl.get("Conditions", {})
        self.refs = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            **{name: p.get("Default", "") for name, p in tmpl.get("Parameters", {}).items()},
            **(parameters or {}),
        }
        # What Ref / GetAtt give for the resources these tests look at.
        self.refs.update({"RestAPI": "abc123defg", template.ROOT_SECRET_ID: self.secret_arn(tmpl)})
        self.attributes = {
            (template.WORKER_INSTANCE_PROFILE_ID, "Arn"): f"arn:aws:iam::{ACCOUNT}:instance-profile/"
            + tmpl["Resources"][template.WORKER_INSTANCE_PROFILE_ID]["Properties"]["InstanceProfileName"]
        }

    @staticmethod
    def secret_arn(tmpl: dict[str, Any]) -> str:
        name = tmpl["Resources"][template.ROOT_SECRET_ID]["Properties"]["Name"]
        return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf"

    def condition(self, name: str) -> bool:
        return bool(self(self.conditions[name]))

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict) or len(value) != 1:
            return value
        [(fn, arg)] = value.items()
        if fn == "Ref":
            return self.refs[arg]
        if fn == "Fn::GetAtt":
            return self.attributes[tuple(arg)]
        if fn == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.refs[m[1]]), arg)
        if fn == "Fn::If":
            return self(arg[1] if self.condition(arg[0]) else arg[2])
        if fn == "Fn::Not":
            return not self(arg[0])
        if fn == "Fn::Equals":
            return self(arg[0]) == self(arg[1])
        return value


def environment(resources: dict[str, Any], function_id: str) -> dict[str, Any]:
    variables: dict[str, Any] = resources[function_id]["Properties"]["Environment"]["Variables"]
    return variables


def api_gateway_path(url: str, stage: str) -> str:
    """The path Chalice routes for a request to `url` on API Gateway (the stage's own path removed)."""
    match = re.fullmatch(rf"https://abc123defg\.execute-api\.{REGION}\.amazonaws\.com/{stage}(/.*)", url)
    assert match, url
    return match[1]


@pytest.mark.parametrize("stage", STAGES)
def test_provisioner_and_api_functions_get_the_stage_api_url_unless_an_operator_gives_one(stage: str) -> None:
    import taskcluster

    from app import app

    merge = merge_template(stage)
    resources = merge["Resources"]
    api_stage = CHALICE_CONFIG["stages"][stage]["api_gateway_stage"]
    for function_id in ("Provisioner", "Ec2Events", "APIHandler"):
        root_url = environment(resources, function_id)["TASKQUEUE_PUBLIC_ROOT_URL"]
        deployed = Cfn(merge)(root_url)
        assert deployed == f"https://abc123defg.execute-api.{REGION}.amazonaws.com/{api_stage}"
        # The clients' URLs under that root reach the app's routes (no stage path dropped or doubled).
        for client, method in ((taskcluster.Queue, "ping"), (taskcluster.WorkerManager, "ping")):
            url = client({"rootUrl": deployed}).buildUrl(method)
            assert api_gateway_path(url, api_stage) in app.routes, url
        # A custom domain (or any other front) replaces it: one stack parameter.
        custom = Cfn(merge, {template.PUBLIC_ROOT_URL_PARAM: "https://tc.example.com"})
        assert custom(root_url) == "https://tc.example.com"
    assert merge["Parameters"][template.PUBLIC_ROOT_URL_PARAM]["Default"] == ""
    pattern = merge["Parameters"][template.PUBLIC_ROOT_URL_PARAM]["AllowedPattern"]
    for good in ("", "https://tc.example.com", "https://abc.execute-api.us-east-1.amazonaws.com/api"):
        assert re.fullmatch(pattern, good), good
    for bad in ("tc.example.com", "https://tc.example.com/", "ftp://tc.example.com"):
        assert not re.fullmatch(pattern, bad), bad


def test_packaged_root_url_is_chalice_s_endpoint_url_without_its_trailing_slash(packaged: Path) -> None:
    sam = json.loads(packaged.read_text())
    assert sam["Resources"][template.REST_API_ID]["Type"] == "AWS::Serverless::Api"
    root_url = environment(sam["Resources"], "Provisioner")["TASKQUEUE_PUBLIC_ROOT_URL"]
    endpoint = Cfn(sam)(sam["Outputs"]["EndpointURL"]["Value"])
    assert endpoint.endswith("/")
    assert Cfn(sam)(root_url) == endpoint.rstrip("/")


@pytest.mark.parametrize("stage", STAGES)
def test_workers_role_is_assumed_by_ec2_and_passable_by_the_provisioner(stage: str) -> None:
    resources = merge_template(stage)["Resources"]
    role = resources[template.WORKER_ROLE_ID]
    assert role["Type"] == "AWS::IAM::Role"
    assert role["Properties"]["AssumeRolePolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    assert "ManagedPolicyArns" not in role["Properties"]
    name = role["Properties"]["RoleName"]
    assert name == stage_env(stage)["TASKQUEUE_QUEUE_PREFIX"] + "worker"
    passing = {"iam:PassedToService": "ec2.amazonaws.com"}  # RunInstances passes it
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/{name}"
    passers = {f for f in template.FUNCTIONS if allowed("iam:PassRole", role_arn, function_policy(stage, f), passing)}
    assert passers == {template.PROVISIONER_HANDLER}


def worker_policy(stage: str) -> dict[str, Any]:
    """The workers' role policy, its intrinsics evaluated."""
    merge = merge_template(stage)
    [policy] = merge["Resources"][template.WORKER_ROLE_ID]["Properties"]["Policies"]
    document: dict[str, Any] = copy.deepcopy(policy["PolicyDocument"])
    for statement in document["Statement"]:
        statement["Resource"] = Cfn(merge)(statement["Resource"])
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}
        assert statement["Effect"] == "Allow"
    return document


def reference_worker_sqs_operations() -> set[str]:
    """The SQS operations worker/ calls (`self.sqs.<op>(` and paginators)."""
    operations = {xform_name(op): op for op in botocore.session.get_session().get_service_model("sqs").operation_names}
    used: set[str] = set()
    for path in (PROJECT / "worker").rglob("*.py"):
        text = path.read_text()
        used.update(operations[m] for m in re.findall(r"sqs\.([a-z_]+)\(", text) if m in operations)
        used.update(operations[m] for m in re.findall(r"get_paginator\(\"([a-z_]+)\"\)", text) if m in operations)
    return used


@pytest.mark.parametrize("stage", STAGES)
def test_workers_may_take_hints_from_the_stage_dispatch_queues_and_nothing_else(stage: str) -> None:
    policy = worker_policy(stage)
    prefix = stage_env(stage)["TASKQUEUE_QUEUE_PREFIX"]
    names = template.stage_names(stage)
    used = reference_worker_sqs_operations()
    assert {"ReceiveMessage", "DeleteMessageBatch", "ChangeMessageVisibility", "ListQueues"} <= used
    # Exactly the actions the reference worker's calls are authorised as, no more.
    actions = {a for s in policy["Statement"] for a in as_list(s["Action"])}
    needed = {
        action for op in used for action, _ in iam_requests("sqs", op, {"QueueName": queue_name(prefix, "p/w", "high")})
    }
    assert actions == needed
    for statement in policy["Statement"]:
        if "*" in as_list(statement["Resource"]):
            assert as_list(statement["Action"]) == ["sqs:ListQueues"]  # no resource-level permissions

    def arn(queue: str) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}"

    task_queues = ("proj/linux", "aws-provisioner-v1/gecko-t-win10-64", "p" * 38 + "/" + "w" * 38)  # the last: hashed
    dispatch = [queue_name(prefix, tq, p) for tq in task_queues for p in ("highest", "high", "low", "lowest")]
    for op in used:
        for queue in dispatch:
            [(action, resource)] = iam_requests("sqs", op, {"QueueName": queue} if op != "ListQueues" else {})
            assert allowed(action, resource, policy), (action, resource)
    others = [names.dispatch_dlq, names.release_queue, names.release_dlq, names.stream_failure_queue]
    others += [queue_name(f"taskqueue-{s}-", "proj/linux", "high") for s in STAGES if s != stage]
    for queue in others:
        for action in sorted(needed - {"sqs:ListQueues"}):
            assert not allowed(action, arn(queue), policy), (action, queue)
    for action in ("sqs:SendMessage", "sqs:PurgeQueue", "sqs:DeleteQueue", "sqs:CreateQueue", "sqs:GetQueueUrl"):
        assert not allowed(action, arn(dispatch[0]), policy), action


@pytest.mark.parametrize("stage", STAGES)
def test_instance_profile_holds_the_workers_role_and_the_provisioner_launches_with_its_arn(stage: str) -> None:
    merge = merge_template(stage)
    resources = merge["Resources"]
    profile = resources[template.WORKER_INSTANCE_PROFILE_ID]
    assert profile["Type"] == "AWS::IAM::InstanceProfile"
    assert profile["Properties"]["Roles"] == [{"Ref": template.WORKER_ROLE_ID}]
    assert profile["Properties"]["InstanceProfileName"] == resources[template.WORKER_ROLE_ID]["Properties"]["RoleName"]
    for function_id in ("Provisioner", "Ec2Events"):
        value = environment(resources, function_id)["TASKQUEUE_WORKER_INSTANCE_PROFILE"]
        assert value == {"Fn::GetAtt": [template.WORKER_INSTANCE_PROFILE_ID, "Arn"]}

    # Ec2Provider names the profile in RunInstances by what the variable holds: an ARN.
    from chalicelib.adapters.ec2_provider import Ec2Provider
    from chalicelib.domain.pools import LaunchConfig, WorkerPool
    from chalicelib.domain.provisioning import Launch

    profile_arn = Cfn(merge)(value)
    assert Settings.from_env({"TASKQUEUE_WORKER_INSTANCE_PROFILE": profile_arn}).worker_instance_profile == profile_arn
    calls: list[dict[str, Any]] = []

    class FakeEc2:
        def run_instances(self, **spec: Any) -> dict[str, Any]:
            calls.append(spec)
            return {"Instances": []}

    now = datetime(2026, 11, 28, tzinfo=UTC)
    pool = WorkerPool("proj/linux", "aws", "d", "ops@example.com", False, {}, now, now)
    launch = Launch(LaunchConfig("lc1", REGION, {"ImageId": "ami-1", "InstanceType": "m5.large"}, 2), 1)
    Ec2Provider(lambda region: FakeEc2(), profile_arn).launch(pool, launch, {}, "token")
    assert [c["IamInstanceProfile"] for c in calls] == [{"Arn": profile_arn}]


def test_packaged_provisioner_environment_configures_what_the_provisioner_needs(packaged: Path) -> None:
    sam = json.loads(packaged.read_text())
    resources = sam["Resources"]
    cfn = Cfn(sam)
    settings = Settings.from_env({k: cfn(v) for k, v in environment(resources, "Provisioner").items()})
    assert settings.public_root_url == f"https://abc123defg.execute-api.{REGION}.amazonaws.com/api"
    assert settings.root_secret_arn == Cfn.secret_arn(sam)
    assert settings.worker_instance_profile == f"arn:aws:iam::{ACCOUNT}:instance-profile/taskqueue-dev-worker"
    assert settings.queue_prefix == stage_env("dev")["TASKQUEUE_QUEUE_PREFIX"]  # Chalice's variables kept
    events = Settings.from_env({k: cfn(v) for k, v in environment(resources, "Ec2Events").items()})
    assert (events.public_root_url, events.worker_instance_profile) == (
        settings.public_root_url,
        settings.worker_instance_profile,
    )
    assert events.root_secret_arn == ""  # it launches nothing: no registration tokens to derive


def test_packaged_provisioner_role_may_read_the_root_secret_and_pass_the_workers_role_only(packaged: Path) -> None:
    sam = json.loads(packaged.read_text())
    resources = sam["Resources"]
    role_id = resources["Provisioner"]["Properties"]["Role"]["Fn::GetAtt"][0]
    [policy] = [p["PolicyDocument"] for p in resources[role_id]["Properties"]["Policies"]]
    secret = Cfn.secret_arn(sam)
    assert allowed("secretsmanager:GetSecretValue", secret, policy)
    # Scoped to the stage's own secret: not another stage's, nor anything else's.
    assert not allowed("secretsmanager:GetSecretValue", secret.replace("-dev-", "-prod-"), policy)
    assert not allowed("secretsmanager:GetSecretValue", secret.replace(":secret:taskqueue-", ":secret:other-"), policy)
    assert not allowed("secretsmanager:ListSecrets", "*", policy)
    role_name = resources[template.WORKER_ROLE_ID]["Properties"]["RoleName"]
    passing = {"iam:PassedToService": "ec2.amazonaws.com"}
    assert allowed("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{role_name}", policy, passing)
    assert not allowed("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/taskqueue-prod-worker", policy, passing)
    assert not allowed("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", policy, passing)
    api_role = resources["APIHandler"]["Properties"]["Role"]["Fn::GetAtt"][0]
    [api_policy] = [p["PolicyDocument"] for p in resources[api_role]["Properties"]["Policies"]]
    assert not allowed("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{role_name}", api_policy, passing)
