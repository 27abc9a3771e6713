"""infra/ and .chalice/policy.json agree with the code: the models, the stage names, the AWS calls."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import xform_name
from botocore.client import BaseClient
from moto import mock_aws

from chalicelib.adapters.hint_queues import SqsHintQueues, dlq_name
from chalicelib.adapters.tables import all_tables
from chalicelib.config import Settings
from chalicelib.domain.dispatch import Hint, queue_name
from chalicelib.domain.model import format_date
from infra import template
from tests.harness import Harness

PROJECT = Path(__file__).resolve().parents[2]
CHALICE_CONFIG = json.loads((PROJECT / ".chalice" / "config.json").read_text())
POLICY = json.loads((PROJECT / ".chalice" / "policy.json").read_text())
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
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 10,
        "MaximumRecordAgeInSeconds": 86400,
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [template.STREAM_FAILURE_QUEUE_ID, "Arn"]}}},
    }
    assert "FunctionResponseTypes" not in event  # the handler returns no batchItemFailures


def test_the_app_registers_the_stream_handler_infra_overrides() -> None:
    from app import app

    handlers = {e.name: type(e).__name__ for e in app.event_sources}
    assert handlers.get(template.STREAM_HANDLER) == "DynamoDBEventConfig"


# --- chalice package ----------------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
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
    (project / ".chalice").mkdir()
    for name in ("config.json", "policy.json"):
        shutil.copy(PROJECT / ".chalice" / name, project / ".chalice" / name)
    (project / "requirements.txt").write_text("")
    (project / "merge.json").write_text(json.dumps(merge_template("dev")))
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


def test_every_function_role_carries_policy_json(packaged: Path) -> None:
    resources = json.loads(packaged.read_text())["Resources"]
    function_roles = {
        r["Properties"]["Role"]["Fn::GetAtt"][0] for r in resources.values() if r["Type"] == "AWS::Serverless::Function"
    }
    assert template.PROVISIONER_FUNCTION_ID + "Role" in function_roles
    roles = {rid for rid, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert roles == function_roles | {template.WORKER_ROLE_ID}  # the workers' role is the merge's own
    for role_id in function_roles:
        assert [p["PolicyDocument"] for p in resources[role_id]["Properties"]["Policies"]] == [POLICY]


def test_packaged_template_passes_cfn_lint(packaged: Path) -> None:
    cfn_lint = find_tool("cfn-lint")
    if cfn_lint is None:
        pytest.skip("cfn-lint is not installed")
    result = subprocess.run([cfn_lint, str(packaged)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# --- policy.json --------------------------------------------------------------------------------


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def allowed(action: str, resource: str, policy: dict[str, Any] = POLICY) -> bool:
    """Whether the policy (policy.json by default) allows `action` on `resource` (Allow statements with
    Action/Resource only)."""
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        if any(fnmatchcase(action.lower(), a.lower()) for a in as_list(statement["Action"])) and any(
            fnmatchcase(resource, r) for r in as_list(statement["Resource"])
        ):
            return True
    return False


def test_policy_uses_only_what_this_checker_understands() -> None:
    for statement in POLICY["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}
        assert statement["Effect"] == "Allow"


def test_policy_grants_no_wildcard_actions_and_no_account_wide_resources_beyond_list_calls() -> None:
    for statement in POLICY["Statement"]:
        actions = as_list(statement["Action"])
        assert all("*" not in a for a in actions)
        services = {"dynamodb", "sqs", "logs", "events", "s3", "secretsmanager", "ec2", "iam"}
        assert {a.split(":")[0] for a in actions} <= services
        if "*" in as_list(statement["Resource"]):
            # These actions have no resource-level permissions in IAM.
            assert set(actions) <= {"dynamodb:ListStreams", "sqs:ListQueues", "ec2:DescribeInstances"}
        if any(a.startswith("iam:") for a in actions):  # only passing the workers' own role
            assert actions == ["iam:PassRole"] and as_list(statement["Resource"]) == ["arn:aws:iam::*:role/taskqueue-*"]


SQS_BATCH_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def iam_requests(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs an API call is authorised against."""
    if service in ("dynamodb", "dynamodbstreams"):

        def table(name: str, index: str | None = None) -> str:
            arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
            return f"{arn}/index/{index}" if index else arn

        if operation == "TransactWriteItems":
            return [
                (f"dynamodb:{TRANSACT_ACTIONS[k]}", table(v["TableName"]))
                for i in params["TransactItems"]
                for k, v in i.items()
            ]
        if operation == "TransactGetItems":
            return [("dynamodb:GetItem", table(i["Get"]["TableName"])) for i in params["TransactItems"]]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{operation}", table(name)) for name in params["RequestItems"]]
        if "StreamArn" in params:
            return [(f"dynamodb:{operation}", params["StreamArn"])]
        if "TableName" in params:
            return [(f"dynamodb:{operation}", table(params["TableName"], params.get("IndexName")))]
        return [(f"dynamodb:{operation}", "*")]
    if service == "sqs":
        action = f"sqs:{SQS_BATCH_ACTIONS.get(operation, operation)}"
        if "QueueUrl" in params:
            return [(action, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{params['QueueUrl'].rsplit('/', 1)[1]}")]
        if "QueueName" in params:
            return [(action, f"arn:aws:sqs:{REGION}:{ACCOUNT}:{params['QueueName']}")]
        return [(action, "*")]
    if service == "s3" and operation == "DeleteObjects":
        # Authorised per object, as s3:DeleteObject (there is no s3:DeleteObjects action).
        bucket = params["Bucket"]
        return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{o['Key']}") for o in params["Delete"]["Objects"]]
    if service == "s3" and "Key" in params:
        return [(f"s3:{operation}", f"arn:aws:s3:::{params['Bucket']}/{params['Key']}")]
    if service == "events" and operation == "PutEvents":
        buses = {e.get("EventBusName", "default") for e in params["Entries"]}
        return [("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{b}") for b in sorted(buses)]
    raise AssertionError(f"the code calls {service}:{operation}: add it to .chalice/policy.json and to this test")


APP_CODE = str(PROJECT / "chalicelib") + os.sep
NOT_APP_CODE = str(PROJECT / "chalicelib" / "local") + os.sep  # the embedded stack stands in for AWS


def made_by_app_code() -> bool:
    """Whether the innermost project frame of the current call is Lambda code (not the event pump)."""
    frame = sys._getframe(2)
    while frame is not None:
        path = os.path.realpath(frame.f_code.co_filename)
        if path.startswith(APP_CODE):
            return not path.startswith(NOT_APP_CODE)
        frame = frame.f_back  # type: ignore[assignment]
    return False


@pytest.fixture
def app_aws_calls(stack: Harness, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    """Every AWS call the Lambda code makes while the test runs (a spy, not a mock: calls go through)."""
    calls: list[tuple[str, str, dict[str, Any]]] = []
    original = BaseClient._make_api_call

    def spy(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if made_by_app_code():
            calls.append((client.meta.service_model.service_name, operation, params))
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", spy)
    yield calls


def test_policy_allows_every_aws_call_the_code_makes_in_a_task_lifecycle(
    stack: Harness, app_aws_calls: list[tuple[str, str, dict[str, Any]]]
) -> None:
    task_id = stack.create()
    claims = stack.claim()
    assert [c["status"]["taskId"] for c in claims] == [task_id]
    assert stack.call("POST", f"/task/{task_id}/runs/0/completed").status_code == 200
    assert stack.status(task_id)["state"] == "completed"
    stack.sweep()  # the sweeper, and the stream handler on the completion

    services = {service for service, _, _ in app_aws_calls}
    assert {"dynamodb", "sqs"} <= services  # the spy saw the code's calls
    requests = {request for service, op, params in app_aws_calls for request in iam_requests(service, op, params)}
    assert sorted(request for request in requests if not allowed(*request)) == []


def test_policy_allows_every_sqs_operation_in_the_code() -> None:
    """Static backstop for SQS paths a lifecycle run may not reach (e.g. queue creation races)."""
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
        prefix = stage_env(stage)["TASKQUEUE_QUEUE_PREFIX"]
        for queue in (queue_name(prefix, "proj/linux", "lowest"), dlq_name(prefix)):
            for op in used:
                [(action, resource)] = iam_requests("sqs", op, {"QueueName": queue} if op != "ListQueues" else {})
                assert allowed(action, resource), (stage, action, resource)


@pytest.mark.parametrize("stage", STAGES)
def test_policy_allows_what_lambda_itself_needs_for_the_stage(stage: str) -> None:
    names = template.stage_names(stage)
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{names.tasks_table}"
    stream = f"{table}/stream/2026-11-28T13:00:00.000"
    # The event source mapping reads the stream with the function's role...
    for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"):
        assert allowed(action, stream)
    assert allowed("dynamodb:ListStreams", "*")
    # ...and sends the failed batches' metadata to the failure queue with it too.
    assert allowed("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:{names.stream_failure_queue}")
    for action in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"):
        assert allowed(action, f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/taskqueue-{stage}-x:*")


def test_policy_allows_every_aws_call_the_code_makes_for_an_s3_artifact(
    stack: Harness, app_aws_calls: list[tuple[str, str, dict[str, Any]]]
) -> None:
    task_id = stack.create()
    stack.claim()
    expires = format_date(stack.clock.now() + timedelta(hours=1))
    body = {"storageType": "s3", "expires": expires, "contentType": "text/plain"}
    created = stack.call("POST", f"/task/{task_id}/runs/0/artifacts/public%2Flog.txt", body)
    assert created.status_code == 200, created.body
    assert stack.call("GET", f"/task/{task_id}/runs/0/artifacts/public%2Flog.txt").status_code == 303
    stack.advance(2 * 3600)
    stack.sweep()  # deletes the object (DeleteObjects) and the row
    assert stack.call("GET", f"/task/{task_id}/runs/0/artifacts/public%2Flog.txt").status_code == 404

    assert "s3" in {service for service, _, _ in app_aws_calls}
    requests = {request for service, op, params in app_aws_calls for request in iam_requests(service, op, params)}
    # Presigned URLs are no API calls: the signer's role must allow what they do.
    key = f"arn:aws:s3:::{stack.settings.artifact_bucket}/{task_id}/0/public/log.txt"
    requests |= {("s3:PutObject", key), ("s3:GetObject", key)}
    assert sorted(request for request in requests if not allowed(*request)) == []


# --- the artifact bucket ------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_artifact_bucket_is_private_named_per_account_and_given_to_the_functions_that_use_it(stage: str) -> None:
    resources = merge_template(stage)["Resources"]
    bucket = resources[template.ARTIFACT_BUCKET_ID]
    props = bucket["Properties"]
    assert bucket["Type"] == "AWS::S3::Bucket"
    base = stage_env(stage)["TASKQUEUE_ARTIFACT_BUCKET"]
    assert props["BucketName"] == {"Fn::Sub": f"{base}-${{AWS::AccountId}}-${{AWS::Region}}"}
    assert allowed("s3:GetObject", f"arn:aws:s3:::{base}-{ACCOUNT}-{REGION}/t/0/public/x")
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
    assert allowed("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf")
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
    for function_id in template.ARTIFACT_FUNCTION_IDS:
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
def test_provisioner_functions_write_the_stage_api_url_into_user_data_unless_an_operator_gives_one(stage: str) -> None:
    import taskcluster

    from app import app

    merge = merge_template(stage)
    resources = merge["Resources"]
    api_stage = CHALICE_CONFIG["stages"][stage]["api_gateway_stage"]
    for function_id in ("Provisioner", "Ec2Events"):
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
    assert "TASKQUEUE_PUBLIC_ROOT_URL" not in environment(resources, "APIHandler")  # it launches nothing


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
    assert allowed("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{name}")  # policy.json: RunInstances passes it


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
    # Scoped to taskqueue's secrets (policy.json is shared by every function; see infra/README.md).
    assert not allowed("secretsmanager:GetSecretValue", secret.replace(":secret:taskqueue-", ":secret:other-"), policy)
    assert not allowed("secretsmanager:ListSecrets", "*", policy)
    role_name = resources[template.WORKER_ROLE_ID]["Properties"]["RoleName"]
    assert allowed("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/{role_name}", policy)
    assert not allowed("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", policy)
