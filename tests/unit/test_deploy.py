"""infra/deploy.py's parts (the whole of it runs against a moto server in test_deploy_check.py)."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from moto import mock_aws

from chalicelib import container
from chalicelib.config import Settings
from chalicelib.domain.credentials import token_key_from
from infra import deploy, policies, template

PROJECT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((PROJECT / ".chalice" / "config.json").read_text())
REGION = "us-east-1"


def outputs() -> deploy.Outputs:
    return deploy.Outputs(
        stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/taskqueue-dev-tasks/stream/2026",
        stream_failure_queue_arn="arn:aws:sqs:us-east-1:123456789012:taskqueue-dev-tasks-stream-failures",
        release_queue_arn="arn:aws:sqs:us-east-1:123456789012:taskqueue-dev-release",
        bucket="taskqueue-dev-artifacts-123456789012-us-east-1",
        secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:taskqueue-dev-root-client-AbCdEf",
        instance_profile_arn="arn:aws:iam::123456789012:instance-profile/taskqueue-dev-worker",
        worker_role_arn="arn:aws:iam::123456789012:role/taskqueue-dev-worker",
        event_bus="taskqueue-dev-events",
    )


@pytest.fixture
def project(tmp_path: Path) -> deploy.Project:
    """A copy of .chalice/ to write to."""
    shutil.copytree(
        PROJECT / ".chalice", tmp_path / ".chalice", ignore=shutil.ignore_patterns("deployed", "deployments")
    )
    return deploy.Project(tmp_path)


# --- the stage's section of config.json ---------------------------------------------------------


def test_a_new_stage_is_laid_out_as_dev_with_its_own_prefix() -> None:
    dev = CONFIG["stages"]["dev"]
    new = deploy.new_stage_section("dev")
    assert new["lambda_functions"] == dev["lambda_functions"]
    assert new["environment_variables"] == dev["environment_variables"]
    assert new["api_gateway_stage"] == dev["api_gateway_stage"]
    assert template.StageSettings.from_config(new) == template.StageSettings.from_config(dev)
    config = copy.deepcopy(CONFIG)
    assert deploy.ensure_stage(config, "qa1") is True
    assert deploy.ensure_stage(config, "qa1") is False  # there already
    names = template.stage_names("qa1", config)
    assert names.prefix == "taskqueue-qa1-"
    assert all((n + "-").startswith(names.prefix) for n in names.named_resources().values())


@pytest.mark.parametrize("stage", ["Dev", "dev-x", "1st", "a" * 17, ""])
def test_stage_names_make_deploy_adds_are_letters_and_digits(stage: str) -> None:
    with pytest.raises(deploy.DeployError):
        deploy.ensure_stage(copy.deepcopy(CONFIG), stage)


def test_a_stage_whose_prefix_overlaps_another_s_is_refused() -> None:
    config = copy.deepcopy(CONFIG)
    config["stages"]["custom"] = {"environment_variables": {"TASKQUEUE_QUEUE_PREFIX": "taskqueue-ab-"}}
    with pytest.raises(deploy.DeployError, match="overlaps"):
        deploy.ensure_stage(config, "ab")


def test_outputs_go_where_chalice_reads_them_and_go_again_on_destroy() -> None:
    config = copy.deepcopy(CONFIG)
    out = outputs()
    deploy.apply_outputs(config, "dev", out, "https://abc.execute-api.us-east-1.amazonaws.com/api")
    from chalice.config import Config

    # Chalice applies the stage's environment before importing app.py: the stream ARN is stage-wide.
    assert Config(chalice_stage="dev", config_from_disk=config).environment_variables[template.ENV_STREAM] == (
        out.stream_arn
    )
    env = {
        f: Config(chalice_stage="dev", function_name=f, config_from_disk=config).environment_variables
        for f in template.FUNCTIONS
    }
    assert {f for f, e in env.items() if template.ENV_SECRET in e} == {"api_handler", "provisioner"}
    assert env["provisioner"][template.ENV_PROFILE] == out.instance_profile_arn
    assert env["ec2_events"][template.ENV_ROOT_URL] == "https://abc.execute-api.us-east-1.amazonaws.com/api"
    assert env["api_handler"][template.ENV_BUCKET] == out.bucket
    assert env["tasks_stream"][template.ENV_BUCKET] == "taskqueue-dev-artifacts"  # not its business
    settings = Settings.from_env(env["provisioner"])
    assert (settings.root_secret_arn, settings.worker_instance_profile) == (out.secret_arn, out.instance_profile_arn)
    template.stage_names("dev", config)  # the names still agree
    deploy.remove_outputs(config, "dev")
    assert config == CONFIG


def test_reserved_concurrency_is_opt_in_and_must_fit_the_account() -> None:
    for stage in CONFIG["stages"]:
        assert deploy.reserved_concurrency(CONFIG, stage) == {}  # fits any account, a new one too
    config = copy.deepcopy(CONFIG)
    config["stages"]["prod"]["lambda_functions"]["api_handler"]["reserved_concurrency"] = 200
    config["stages"]["prod"]["lambda_functions"]["sweeper"]["reserved_concurrency"] = 2
    reserved = deploy.reserved_concurrency(config, "prod")
    assert reserved == {"api_handler": 200, "sweeper": 2}
    names = template.stage_names("prod")

    class Lambda:
        def __init__(self, limit: int) -> None:
            self.limit = limit

        def get_account_settings(self) -> dict[str, Any]:
            return {"AccountLimit": {"ConcurrentExecutions": self.limit, "UnreservedConcurrentExecutions": self.limit}}

        def get_function_concurrency(self, FunctionName: str) -> dict[str, Any]:
            return {}

    lines: list[str] = []
    settings = template.stage_settings("prod")
    deploy.check_concurrency(FakeAws(**{"lambda": Lambda(1000)}), names, reserved, lines.append, settings)
    assert "202 of the 900" in lines[-1]
    with pytest.raises(deploy.DeployError, match="reserves 202"):
        deploy.check_concurrency(FakeAws(**{"lambda": Lambda(10)}), names, reserved, lines.append, settings)
    # One kind of call cannot exhaust the API's reservation: claimWork's long polls hold at most half.
    held = deploy.claim_work_concurrency(settings, 28)
    assert held <= 200 // 2
    with pytest.raises(deploy.DeployError, match="claimWork could hold"):
        deploy.check_concurrency(FakeAws(), names, {"api_handler": 2 * held - 2}, lines.append, settings)


class FakeAws(deploy.Aws):
    def __init__(self, **clients: Any) -> None:
        super().__init__(session=boto3.Session(region_name=REGION))
        self._clients.update(clients)


# --- the base stack -------------------------------------------------------------------------------


class Cfn:
    """CloudFormation with one stack, recording what is asked of it."""

    def __init__(self, body: dict[str, Any] | None, parameters: list[dict[str, str]]) -> None:
        self.body = body
        self.parameters = parameters
        self.calls: list[str] = []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        self.calls.append("describe_stacks")
        outputs = [{"OutputKey": k, "OutputValue": f"value of {k}"} for k in (self.body or {}).get("Outputs", {})]
        return {"Stacks": [{"StackStatus": "CREATE_COMPLETE", "Parameters": self.parameters, "Outputs": outputs}]}

    def get_template(self, StackName: str) -> dict[str, Any]:
        return {"TemplateBody": json.dumps(self.body)}

    def update_stack(self, **args: Any) -> None:
        self.calls.append("update_stack")
        self.body = json.loads(args["TemplateBody"])

    def get_waiter(self, name: str) -> Any:
        class Waiter:
            def wait(self, **args: Any) -> None:
                return None

        return Waiter()


def test_re_running_make_deploy_leaves_an_unchanged_base_stack_alone() -> None:
    names = template.stage_names("dev")
    body = template.build_base_stack(names, template.stage_tables(names, REGION))
    settings = template.stage_settings("dev")
    parameters = [{"ParameterKey": template.ALARM_TOPIC_PARAM, "ParameterValue": settings.alarm_topic_arn}]
    cfn = Cfn(copy.deepcopy(body), parameters)
    lines: list[str] = []
    first = deploy.deploy_base_stack(FakeAws(cloudformation=cfn), names, body, settings, lines.append)
    assert "update_stack" not in cfn.calls and lines == [f"base stack {names.base_stack}: up to date"]
    changed = copy.deepcopy(body)
    changed["Resources"][template.DISPATCH_DLQ_ID]["Properties"]["MessageRetentionPeriod"] = 60
    again = deploy.deploy_base_stack(FakeAws(cloudformation=cfn), names, changed, settings, lines.append)
    assert cfn.calls.count("update_stack") == 1 and lines[-1].endswith("updating")
    assert first == again


def test_a_stage_destroyed_without_purge_is_not_recreated_over_its_data() -> None:
    names = template.stage_names("dev")
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(
            TableName=names.tasks_table,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        aws = deploy.Aws(boto3.Session(region_name=REGION))
        assert deploy.retained_resources(aws, names) == [f"table {names.tasks_table}"]
        with pytest.raises(deploy.DeployError, match="PURGE=1"):
            deploy.deploy_base_stack(aws, names, {}, template.StageSettings(), lambda line: None)
        deploy.purge_retained(aws, names, lambda line: None)
        assert deploy.retained_resources(aws, names) == []


# --- the root secret's tokenKey -----------------------------------------------------------------


def test_the_token_key_added_is_the_one_stored_clients_already_derive_from() -> None:
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name=REGION)
        arn = sm.create_secret(
            Name="taskqueue-dev-root-client", SecretString=json.dumps({"clientId": "root", "accessToken": "t0"})
        )["ARN"]
        settings = Settings(root_secret_arn=arn, region=REGION)
        before = container.root_credentials(settings, BotoConfig())
        aws = deploy.Aws(boto3.Session(region_name=REGION))
        assert deploy.ensure_token_key(aws, arn) is True
        assert deploy.ensure_token_key(aws, arn) is False  # once
        after = container.root_credentials(settings, BotoConfig())
        assert after.token_key == before.token_key == token_key_from("t0")
        # the root token rotates: stored clients' tokens (and registration tokens) stay valid
        value = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
        sm.put_secret_value(SecretId=arn, SecretString=json.dumps({**value, "accessToken": "t1"}))
        rotated = container.root_credentials(settings, BotoConfig())
        assert rotated.access_token == "t1" and rotated.token_key == before.token_key


# --- the API stage's throttling -----------------------------------------------------------------


def test_the_api_stage_is_throttled_per_stage_and_claim_work_apart() -> None:
    settings = template.StageSettings(
        api_throttle=template.Throttle(50, 100), claim_work_throttle=template.Throttle(5, 10)
    )
    assert deploy.api_stage_patch(settings) == [
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "50"},
        {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": "100"},
        {
            "op": "replace",
            "path": "/~1api~1queue~1v1~1claim-work~1{taskQueueId}/POST/throttling/rateLimit",
            "value": "5",
        },
        {
            "op": "replace",
            "path": "/~1api~1queue~1v1~1claim-work~1{taskQueueId}/POST/throttling/burstLimit",
            "value": "10",
        },
    ]
    assert (
        template.stage_settings("prod").api_throttle.rate_limit > template.stage_settings("dev").api_throttle.rate_limit
    )


def test_make_deploy_writes_the_policy_files_of_a_new_stage(project: deploy.Project) -> None:
    config = project.load()
    deploy.ensure_stage(config, "qa1")
    names = template.stage_names("qa1", config)
    written = deploy.ensure_policy_files(config, names, project)
    assert len(written) == len(template.FUNCTIONS)
    for function in template.FUNCTIONS:
        path = project.directory / ".chalice" / policies.policy_file("qa1", function)
        assert json.loads(path.read_text()) == policies.function_policy(names, function)
    assert deploy.ensure_policy_files(config, names, project) == []  # nothing to change the second time


def test_a_bad_stage_name_stops_make_deploy_before_anything_is_written(project: deploy.Project) -> None:
    before = project.config_path.read_text()
    assert deploy.main(["deploy", "--stage", "Bad-Name", "--project-dir", str(project.directory)]) == 1
    assert project.config_path.read_text() == before


# --- the front door -------------------------------------------------------------------------------


def _api_function(names: template.StageNames) -> None:
    """The API function as chalice deploy leaves it (moto: a role and a zip suffice)."""
    import io
    import zipfile

    role = boto3.client("iam").create_role(
        RoleName="api", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("app.py", "app = None\n")
    boto3.client("lambda").create_function(
        FunctionName=names.function_name(template.API_HANDLER),
        Runtime="python3.12",
        Role=role,
        Handler="app.app",
        Code={"ZipFile": code.getvalue()},
    )


def test_a_function_url_front_door_comes_and_goes_as_the_stage_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    names = template.stage_names("dev")
    rest = template.StageSettings()
    door = template.StageSettings(front_door=template.FRONT_DOOR_FUNCTION_URL)
    with mock_aws():
        aws = deploy.Aws(boto3.Session(region_name=REGION))
        _api_function(names)
        assert deploy.configure_front_door(aws, names, rest) is None  # nothing to make, nothing to remove
        url = deploy.configure_front_door(aws, names, door)
        assert url and ".lambda-url." in url and not url.endswith("/")
        assert deploy.configure_front_door(aws, names, door) == url  # idempotent: the same URL, no new statement
        lam = boto3.client("lambda")
        config = lam.get_function_url_config(FunctionName=names.function_name(template.API_HANDLER))
        assert config["AuthType"] == template.FUNCTION_URL_CONFIG["AuthType"] == "NONE"
        statements = deploy._policy_statements(aws, names.function_name(template.API_HANDLER))
        assert sorted(statements) == sorted(p["StatementId"] for p in template.FUNCTION_URL_PERMISSIONS)
        # The same permissions as the package route's AWS::Lambda::Permission resources.
        merge = template.function_url_resources()
        for permission in template.FUNCTION_URL_PERMISSIONS:
            properties = merge[to_cfn_name(permission["StatementId"])]["Properties"]
            assert {k: v for k, v in properties.items() if k != "FunctionName"} == {
                k: v for k, v in permission.items() if k != "StatementId"
            }
        lines = deploy.status(deploy.Project(), "dev", aws)
        assert f"front door: function URL {url} (public permissions: taskqueue-function-url, " in "\n".join(lines)
        assert deploy.configure_front_door(aws, names, rest) is None
        assert deploy.function_url(aws, names) is None
        assert deploy._policy_statements(aws, names.function_name(template.API_HANDLER)) == {}
        assert "front door: the REST API (no function URL)" in deploy.status(deploy.Project(), "dev", aws)


def to_cfn_name(statement_id: str) -> str:
    from chalice.utils import to_cfn_resource_name

    return to_cfn_resource_name(statement_id)


def test_a_function_url_stage_needs_claim_work_not_to_wait() -> None:
    names = template.stage_names("dev")
    door = template.StageSettings(front_door=template.FRONT_DOOR_FUNCTION_URL)
    lines: list[str] = []
    deploy.check_concurrency(FakeAws(), names, {}, lines.append, door, 28, 0.0)
    assert "not throttled at the edge" in lines[0]
    with pytest.raises(deploy.DeployError, match="TASKQUEUE_CLAIM_WORK_TIMEOUT"):
        deploy.check_concurrency(FakeAws(), names, {}, lines.append, door, 28, 20.0)


def test_front_door_is_rest_unless_the_stage_says_function_url() -> None:
    assert template.StageSettings().front_door == "rest"
    for stage in CONFIG["stages"]:
        assert template.stage_settings(stage).front_door == "rest"
    section = {template.SETTINGS_KEY: {"front_door": "function_url"}}
    assert template.StageSettings.from_config(section).front_door == "function_url"
    with pytest.raises(ValueError, match="front_door"):
        template.StageSettings.from_config({template.SETTINGS_KEY: {"front_door": "http_api"}})
