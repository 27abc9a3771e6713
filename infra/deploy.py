"""`make deploy`, `make destroy`: a whole stage on AWS with `chalice deploy`, in one command each.

`python -m infra.deploy deploy --stage dev` (what `make deploy STAGE=dev` runs):

1. A stage missing from .chalice/config.json is added, every name carrying `taskqueue-<stage>-`.
   The stage's per-function IAM policies are written (infra/policies.py) and named in its
   `lambda_functions` (Chalice's per-function `iam_policy_file`).
2. Reserved concurrency the stage asks for (Chalice's `reserved_concurrency`, opt-in) is checked
   against what the account can still reserve, before anything is created.
3. The base stack (`taskqueue-<stage>-base`, infra/template.py `build_base_stack`): what Chalice
   cannot create. Created, updated, or left alone when nothing changed.
4. The root secret gets its `tokenKey` (once): rotating the root token then keeps stored clients'
   tokens and workers' registration tokens valid.
5. The stack's outputs go where Chalice reads them: the stage's section of .chalice/config.json
   (the stream ARN Chalice's event source uses, stage-wide, since Chalice applies the stage's
   environment before it imports app.py; the bucket, secret, instance profile and root URL into
   the functions that use them, as template.FUNCTION_ENVIRONMENT says).
6. `chalice deploy --stage <stage>`. The first time, the REST API's URL (the root URL workers are
   given, unless the front door is a function URL) exists only afterwards: it goes into config.json
   and into the functions that use it.
7. The stage's front door (`front_door`): with "function_url", a Lambda function URL on the API
   function (AuthType NONE) and its public permissions, and the root URL becomes it; with "rest",
   none (removed if there was one).
8. What Chalice cannot express: the stream's event-source mapping (item failures, bisect, retries,
   record age, on-failure destination, parallelization) and the API stage's throttling (the
   stage's rate and burst, claimWork's own), and every function's log group with the stage's
   retention (Chalice's `log_retention_in_days` names the API function's group wrongly: it makes
   `/aws/lambda/<app>-<stage>-api_handler`, but the function is `<app>-<stage>`).

A plain `chalice deploy --stage dev` afterwards redeploys the code and keeps all of it: everything
it needs is in config.json, and it leaves the mapping's and the stage's other settings alone.

`python -m infra.deploy token-key --stage dev`: step 4 alone, after the `make package` route.

`python -m infra.deploy destroy --stage dev [--purge]`: `chalice delete`, the base stack and the
dispatch queues the code created; the tables, the bucket, the secret and the log groups are kept
(the first three are `Retain`ed) unless `--purge`. `python -m infra.deploy status --stage dev` prints what exists.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from chalice.config import Config

from chalicelib.config import Settings
from chalicelib.domain.credentials import token_key_from
from infra import policies, template
from infra.template import (
    ENV_PROFILE,
    ENV_ROOT_URL,
    ENV_SECRET,
    ENV_STREAM,
    FUNCTION_ENVIRONMENT,
    FUNCTIONS,
    SETTINGS_KEY,
    STAGE_NAME_PATTERN,
    STREAM_HANDLER,
    StageNames,
    StageSettings,
)

PROJECT_DIR = template.PROJECT_DIR
UNRESERVED_MINIMUM = 100  # Lambda keeps this much of an account's concurrency unreserved
# claimWork's wait on a deployed stage: none, since Lambda bills the wait (workers wait between
# empty answers instead, README.md "Finding work"); and what a call may last beyond its wait (the
# 3 s the API keeps for its claims, chalicelib/handlers/work_api.py, and 1 s to API Gateway's cut).
STAGE_CLAIM_WORK_TIMEOUT = "0"
CLAIM_WORK_AFTER_WAIT = 4.0
Out = Callable[[str], None]


class DeployError(Exception):
    """Something the user must fix; the message says what."""


# --- .chalice/config.json -------------------------------------------------------------------------


@dataclass
class Project:
    directory: Path = PROJECT_DIR

    @property
    def config_path(self) -> Path:
        return self.directory / ".chalice" / "config.json"

    def load(self) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self.config_path.read_text())
        return config

    def save(self, config: dict[str, Any]) -> None:
        text = json.dumps(config, indent=2) + "\n"
        if self.config_path.read_text() != text:
            self.config_path.write_text(text)

    def deployed(self, stage: str) -> dict[str, dict[str, Any]]:
        """Chalice's record of what it deployed (.chalice/deployed/<stage>.json), by resource name."""
        path = self.directory / ".chalice" / "deployed" / f"{stage}.json"
        if not path.exists():
            return {}
        return {r["name"]: r for r in json.loads(path.read_text()).get("resources", [])}


def new_stage_section(stage: str, app_name: str = "taskqueue") -> dict[str, Any]:
    """The section `make deploy` adds for a stage config.json does not have (dev's layout)."""
    if not re.fullmatch(STAGE_NAME_PATTERN, stage):
        raise DeployError(f"stage name {stage!r}: lower-case letters and digits, a letter first, at most 16")
    prefix = template.stage_prefix(stage, app_name)
    timeouts = {template.API_HANDLER: 28, template.STREAM_HANDLER: 60, template.SWEEPER_HANDLER: 120}
    return {
        "api_gateway_stage": "api",
        "lambda_functions": {
            function: {
                **({"lambda_timeout": timeouts[function]} if function in timeouts else {}),
                "iam_policy_file": policies.policy_file(stage, function),
            }
            for function in FUNCTIONS
        },
        "environment_variables": {
            "TASKQUEUE_TASKS_TABLE": f"{prefix}tasks",
            "TASKQUEUE_QUEUE_PREFIX": prefix,
            "TASKQUEUE_GRAPH_TABLE": f"{prefix}graph",
            "TASKQUEUE_ARTIFACTS_TABLE": f"{prefix}artifacts",
            "TASKQUEUE_ARTIFACT_BUCKET": f"{prefix}artifacts",
            "TASKQUEUE_AUTH_TABLE": f"{prefix}auth",
            "TASKQUEUE_WORKERS_TABLE": f"{prefix}workers",
            "TASKQUEUE_POOLS_TABLE": f"{prefix}pools",
            "TASKQUEUE_EVENT_BUS": f"{prefix}events",
            # Waiting is billed on Lambda: claimWork answers at once, workers wait between calls.
            "TASKQUEUE_CLAIM_WORK_TIMEOUT": STAGE_CLAIM_WORK_TIMEOUT,
        },
        SETTINGS_KEY: StageSettings().to_config(),
    }


def ensure_stage(config: dict[str, Any], stage: str) -> bool:
    """Add the stage if config.json lacks it; True if it was added. Refuses a stage whose prefix
    would be a prefix of another's (or the reverse): IAM patterns of one would match the other."""
    stages = config.setdefault("stages", {})
    if stage in stages:
        return False
    section = new_stage_section(stage, config.get("app_name", "taskqueue"))
    prefix = section["environment_variables"]["TASKQUEUE_QUEUE_PREFIX"]
    for other in stages:
        other_prefix = Config(chalice_stage=other, config_from_disk=config).environment_variables.get(
            "TASKQUEUE_QUEUE_PREFIX", ""
        )
        if other_prefix and (other_prefix.startswith(prefix) or prefix.startswith(other_prefix)):
            raise DeployError(f"stage {stage!r}: its prefix {prefix!r} overlaps stage {other!r}'s {other_prefix!r}")
    stages[stage] = section
    return True


def ensure_policy_files(config: dict[str, Any], names: StageNames, project: Project) -> list[Path]:
    """Each function names its own policy file; the files hold what infra/policies.py makes."""
    functions = config["stages"][names.stage].setdefault("lambda_functions", {})
    for function in FUNCTIONS:
        functions.setdefault(function, {})["iam_policy_file"] = policies.policy_file(names.stage, function)
    return policies.write_policies(names, project.directory)


@dataclass(frozen=True)
class Outputs:
    """What the base stack made, as `make deploy` hands it to Chalice."""

    stream_arn: str
    stream_failure_queue_arn: str
    release_queue_arn: str
    bucket: str
    secret_arn: str
    instance_profile_arn: str
    worker_role_arn: str
    event_bus: str

    @classmethod
    def from_stack(cls, outputs: dict[str, str]) -> Outputs:
        return cls(
            outputs[template.OUT_STREAM_ARN],
            outputs[template.OUT_STREAM_FAILURE_QUEUE_ARN],
            outputs[template.OUT_RELEASE_QUEUE_ARN],
            outputs[template.OUT_BUCKET],
            outputs[template.OUT_SECRET_ARN],
            outputs[template.OUT_INSTANCE_PROFILE_ARN],
            outputs[template.OUT_WORKER_ROLE_ARN],
            outputs[template.OUT_EVENT_BUS],
        )


def apply_outputs(config: dict[str, Any], stage: str, outputs: Outputs, root_url: str) -> None:
    """Write the base stack's outputs where Chalice reads them (the stage's section)."""
    section = config["stages"][stage]
    section.setdefault("environment_variables", {})[ENV_STREAM] = outputs.stream_arn
    values = {
        template.ENV_BUCKET: outputs.bucket,
        ENV_SECRET: outputs.secret_arn,
        ENV_PROFILE: outputs.instance_profile_arn,
        ENV_ROOT_URL: root_url,
    }
    functions = section.setdefault("lambda_functions", {})
    for function, variables in FUNCTION_ENVIRONMENT.items():
        env = functions.setdefault(function, {}).setdefault("environment_variables", {})
        for variable in variables:
            if values[variable]:
                env[variable] = values[variable]
            else:
                env.pop(variable, None)


def remove_outputs(config: dict[str, Any], stage: str) -> None:
    """Forget a destroyed stage's outputs (the names and settings stay)."""
    section = config.get("stages", {}).get(stage)
    if not section:
        return
    section.get("environment_variables", {}).pop(ENV_STREAM, None)
    for function, variables in FUNCTION_ENVIRONMENT.items():
        env = section.get("lambda_functions", {}).get(function, {}).get("environment_variables")
        if env is None:
            continue
        for variable in variables:
            env.pop(variable, None)
        if not env:
            del section["lambda_functions"][function]["environment_variables"]


def configured_root_url(config: dict[str, Any], stage: str) -> str:
    env = config["stages"][stage].get("lambda_functions", {}).get(template.PROVISIONER_HANDLER, {})
    return str(env.get("environment_variables", {}).get(ENV_ROOT_URL, ""))


def reserved_concurrency(config: dict[str, Any], stage: str) -> dict[str, int]:
    """What the stage's functions reserve (Chalice's `reserved_concurrency`: opt-in, none by default)."""
    reserved = {}
    for function in FUNCTIONS:
        value = Config(chalice_stage=stage, function_name=function, config_from_disk=config).reserved_concurrency
        if value is not None:
            reserved[function] = int(value)
    return reserved


# --- AWS ------------------------------------------------------------------------------------------


@dataclass
class Aws:
    """The clients a deployment uses (AWS_ENDPOINT_URL, region and credentials as boto3 finds them)."""

    session: boto3.Session = field(default_factory=boto3.Session)
    _clients: dict[str, Any] = field(default_factory=dict)

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service)  # type: ignore[call-overload]
        return self._clients[service]

    @property
    def region(self) -> str:
        region = self.session.region_name
        if not region:
            raise DeployError("no AWS region: set AWS_DEFAULT_REGION (or a profile's region)")
        return str(region)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def describe_stack(aws: Aws, name: str) -> dict[str, Any] | None:
    try:
        stacks = aws("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except ClientError as e:
        if "does not exist" in _message(e):
            return None
        raise
    stack: dict[str, Any] = stacks[0]
    return None if stack["StackStatus"] == "DELETE_COMPLETE" else stack


def _wait(aws: Aws, waiter: str, name: str) -> None:
    aws("cloudformation").get_waiter(waiter).wait(StackName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 360})


def deploy_base_stack(aws: Aws, names: StageNames, body: dict[str, Any], settings: StageSettings, out: Out) -> Outputs:
    cfn = aws("cloudformation")
    name = names.base_stack
    text = json.dumps(body, indent=1, sort_keys=True)
    parameters = [{"ParameterKey": template.ALARM_TOPIC_PARAM, "ParameterValue": settings.alarm_topic_arn}]
    args = {
        "StackName": name,
        "TemplateBody": text,
        "Parameters": parameters,
        "Capabilities": ["CAPABILITY_NAMED_IAM"],
        "Tags": [{"Key": "taskqueue:stage", "Value": names.stage}],
    }
    stack = describe_stack(aws, name)
    if stack is not None and stack["StackStatus"] == "ROLLBACK_COMPLETE":
        out(f"base stack {name}: its creation failed earlier; deleting it to start again")
        cfn.delete_stack(StackName=name)
        _wait(aws, "stack_delete_complete", name)
        stack = None
    if stack is None:
        retained = retained_resources(aws, names)
        if retained:
            raise DeployError(
                f"stage {names.stage} was destroyed without --purge: its data is still there "
                f"({', '.join(retained)}), and CloudFormation will not create resources of the same names. "
                f"Delete them (make destroy STAGE={names.stage} PURGE=1) or deploy another stage."
            )
        out(f"base stack {name}: creating")
        cfn.create_stack(**args)
        _wait(aws, "stack_create_complete", name)
    else:
        current = cfn.get_template(StackName=name)["TemplateBody"]
        current_text = current if isinstance(current, str) else json.dumps(current)
        same_parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])} == {
            p["ParameterKey"]: p["ParameterValue"] for p in parameters
        }
        if _same_json(current_text, text) and same_parameters:
            out(f"base stack {name}: up to date")
        else:
            out(f"base stack {name}: updating")
            try:
                cfn.update_stack(**args)
                _wait(aws, "stack_update_complete", name)
            except ClientError as e:
                if "No updates are to be performed" not in _message(e):
                    raise
    stack = describe_stack(aws, name)
    assert stack is not None
    return Outputs.from_stack({o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])})


def _same_json(a: str, b: str) -> bool:
    try:
        return bool(json.loads(a) == json.loads(b))
    except ValueError:
        return False


def retained_resources(aws: Aws, names: StageNames) -> list[str]:
    """The stage's data that outlives its stack (tables, bucket, secret), where it exists."""
    found = []
    ddb = aws("dynamodb")
    for table in names.tables:
        try:
            ddb.describe_table(TableName=table)
            found.append(f"table {table}")
        except ClientError as e:
            if _code(e) != "ResourceNotFoundException":
                raise
    found += [f"bucket {b}" for b in stage_buckets(aws, names)]
    secret = stage_secret(aws, names)
    if secret:
        found.append(f"secret {secret['Name']}")
    return found


def stage_buckets(aws: Aws, names: StageNames) -> list[str]:
    buckets = aws("s3").list_buckets().get("Buckets", [])
    return sorted(b["Name"] for b in buckets if b["Name"].startswith(names.artifact_bucket_base + "-"))


def stage_secret(aws: Aws, names: StageNames) -> dict[str, Any] | None:
    try:
        secret: dict[str, Any] = aws("secretsmanager").describe_secret(SecretId=names.root_secret)
    except ClientError as e:
        if _code(e) == "ResourceNotFoundException":
            return None
        raise
    return None if secret.get("DeletedDate") else secret


def ensure_token_key(aws: Aws, secret_arn: str) -> bool:
    """Give the root secret a `tokenKey` if it has none: the key stored clients' tokens (and workers'
    registration tokens) derive from. It is the one the functions derived from the current token
    so far, so nothing issued before changes; from then on, rotating `accessToken` alone keeps them
    all valid. True if the secret was changed."""
    sm = aws("secretsmanager")
    value = json.loads(sm.get_secret_value(SecretId=secret_arn)["SecretString"])
    if value.get("tokenKey"):
        return False
    value["tokenKey"] = token_key_from(str(value["accessToken"]))
    sm.put_secret_value(SecretId=secret_arn, SecretString=json.dumps(value))
    return True


def claim_work_concurrency(
    settings: StageSettings, api_timeout: int, claim_wait: float = float(STAGE_CLAIM_WORK_TIMEOUT)
) -> int:
    """The most API function instances claimWork calls can hold at once under its throttle: its
    burst, plus its rate for as long as one call may last: its wait (the stage's
    TASKQUEUE_CLAIM_WORK_TIMEOUT) plus the time it keeps for its claims and answer, at most the
    API function's timeout."""
    throttle = settings.claim_work_throttle
    longest = min(float(api_timeout), claim_wait + CLAIM_WORK_AFTER_WAIT)
    return math.ceil(throttle.burst_limit + throttle.rate_limit * longest)


def check_concurrency(
    aws: Aws,
    names: StageNames,
    reserved: dict[str, int],
    out: Out,
    settings: StageSettings | None = None,
    api_timeout: int = 28,
    claim_wait: float = float(STAGE_CLAIM_WORK_TIMEOUT),
) -> None:
    """Refuse, before anything is created, reservations the account cannot make, and an API
    reservation that claimWork's polls alone could exhaust."""
    settings = settings or StageSettings()
    api = reserved.get(template.API_HANDLER)
    if settings.front_door == template.FRONT_DOOR_FUNCTION_URL:
        # No edge throttle before a function URL: what keeps claim polls from holding the API's
        # instances is that claimWork does not wait (one look at the hint queues, about 10 ms).
        if claim_wait > 0:
            raise DeployError(
                f"front_door function_url: claimWork would wait up to {claim_wait:g} s with no throttle "
                "in front of it; set TASKQUEUE_CLAIM_WORK_TIMEOUT to 0 for the stage"
            )
        out(
            "claimWork: not throttled at the edge (function URL); it does not wait, and "
            + (f"the API function's reservation ({api}) bounds every call" if api else "nothing else bounds it")
        )
    else:
        held_by_claims = claim_work_concurrency(settings, api_timeout, claim_wait)
        if api is not None and held_by_claims > api // 2:
            raise DeployError(
                f"claimWork could hold {held_by_claims} of the API function's {api} reserved instances (more than "
                "half): lower claim_work_throttle or reserve more"
            )
        out(f"claimWork: at most {held_by_claims} API instances at once (claim_work_throttle)")
    if not reserved:
        out("reserved concurrency: none (opt-in: reserved_concurrency per function in config.json)")
        return
    lam = aws("lambda")
    limits = lam.get_account_settings()["AccountLimit"]
    unreserved = int(limits["UnreservedConcurrentExecutions"])
    held = 0  # what the stage's functions already reserve comes back to it
    for function in FUNCTIONS:
        try:
            current = lam.get_function_concurrency(FunctionName=names.function_name(function))
        except ClientError as e:
            if _code(e) != "ResourceNotFoundException":
                raise
            continue
        held += int(current.get("ReservedConcurrentExecutions") or 0)
    available = unreserved + held - UNRESERVED_MINIMUM
    wanted = sum(reserved.values())
    if wanted > available:
        raise DeployError(
            f"reserved concurrency: stage {names.stage} reserves {wanted} ({reserved}) but the account "
            f"(limit {limits['ConcurrentExecutions']}) has {max(available, 0)} left to reserve (Lambda keeps "
            f"{UNRESERVED_MINIMUM} unreserved). Lower reserved_concurrency in .chalice/config.json, or ask "
            "AWS for a higher concurrency limit."
        )
    out(f"reserved concurrency: {wanted} of the {available} the account can reserve ({reserved})")


STREAM_SOURCE = f"{STREAM_HANDLER}-dynamodb-event-source"  # Chalice's name of the mapping in deployed/<stage>.json


def configure_stream_mapping(
    aws: Aws, project: Project, names: StageNames, outputs: Outputs, settings: StageSettings
) -> dict[str, Any]:
    """The tasks stream's event-source mapping: what the merge template's override sets on the other route."""
    source = project.deployed(names.stage).get(STREAM_SOURCE, {})
    if source.get("stream_arn") != outputs.stream_arn or not source.get("event_uuid"):
        raise DeployError(f"chalice deploy recorded no mapping of {STREAM_HANDLER} on {outputs.stream_arn}: {source}")
    result: dict[str, Any] = aws("lambda").update_event_source_mapping(
        UUID=source["event_uuid"],
        **template.stream_event_settings(settings),
        DestinationConfig={"OnFailure": {"Destination": outputs.stream_failure_queue_arn}},
    )
    return result


def api_stage_patch(settings: StageSettings) -> list[dict[str, str]]:
    """template.api_method_settings as UpdateStage's patch operations."""
    ops = []
    for method in template.api_method_settings(settings):
        path = "/*/*" if method["ResourcePath"] == "/*" else f"{method['ResourcePath']}/{method['HttpMethod']}"
        ops.append(
            {"op": "replace", "path": f"{path}/throttling/rateLimit", "value": str(method["ThrottlingRateLimit"])}
        )
        ops.append(
            {"op": "replace", "path": f"{path}/throttling/burstLimit", "value": str(method["ThrottlingBurstLimit"])}
        )
    return ops


def configure_api_stage(aws: Aws, rest_api_id: str, names: StageNames, settings: StageSettings) -> None:
    aws("apigateway").update_stage(
        restApiId=rest_api_id, stageName=names.api_gateway_stage, patchOperations=api_stage_patch(settings)
    )


def function_url(aws: Aws, names: StageNames) -> str | None:
    """The API function's function URL without its trailing slash, or None when it has none."""
    try:
        config = aws("lambda").get_function_url_config(FunctionName=names.function_name(template.API_HANDLER))
    except ClientError as e:
        if _code(e) != "ResourceNotFoundException":
            raise
        return None
    return str(config["FunctionUrl"]).rstrip("/")


def _policy_statements(aws: Aws, function_name: str) -> dict[str, dict[str, Any]]:
    """The function's resource policy, statement by Sid (empty when it has none)."""
    try:
        policy = aws("lambda").get_policy(FunctionName=function_name)["Policy"]
    except ClientError as e:
        if _code(e) != "ResourceNotFoundException":
            raise
        return {}
    document = json.loads(policy) if isinstance(policy, str) else policy
    return {str(st.get("Sid")): st for st in document.get("Statement", [])}


def configure_front_door(aws: Aws, names: StageNames, settings: StageSettings) -> str | None:
    """The stage's front door (`front_door`): with "function_url", the API function's function URL
    and its public permissions (template.FUNCTION_URL_*, as the merge template has them), created or
    brought up to date; with "rest", none of them (removed if a function URL stage went back).
    Returns the function URL, or None."""
    lam = aws("lambda")
    name = names.function_name(template.API_HANDLER)
    existing = function_url(aws, names)
    statements = _policy_statements(aws, name)
    if settings.front_door != template.FRONT_DOOR_FUNCTION_URL:
        for permission in template.FUNCTION_URL_PERMISSIONS:
            if permission["StatementId"] in statements:
                lam.remove_permission(FunctionName=name, StatementId=permission["StatementId"])
        if existing is not None:
            lam.delete_function_url_config(FunctionName=name)
        return None
    if existing is None:
        lam.create_function_url_config(FunctionName=name, **template.FUNCTION_URL_CONFIG)
    else:
        lam.update_function_url_config(FunctionName=name, **template.FUNCTION_URL_CONFIG)
    for permission in template.FUNCTION_URL_PERMISSIONS:
        if permission["StatementId"] not in statements:
            lam.add_permission(FunctionName=name, **permission)
    return function_url(aws, names)


def set_function_variable(aws: Aws, names: StageNames, variable: str, value: str) -> None:
    """Set one variable of the functions template.FUNCTION_ENVIRONMENT gives it, keeping the rest."""
    lam = aws("lambda")
    for function, variables in FUNCTION_ENVIRONMENT.items():
        if variable not in variables:
            continue
        name = names.function_name(function)
        env = lam.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": {**env, variable: value}})
        lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60})


def configure_log_groups(aws: Aws, names: StageNames, settings: StageSettings) -> None:
    logs = aws("logs")
    for function in FUNCTIONS:
        group = f"/aws/lambda/{names.function_name(function)}"
        try:
            logs.create_log_group(logGroupName=group)
        except ClientError as e:
            if _code(e) != "ResourceAlreadyExistsException":
                raise
        logs.put_retention_policy(logGroupName=group, retentionInDays=settings.log_retention_days)


def chalice_command() -> str:
    beside = Path(sys.executable).parent / "chalice"
    found = str(beside) if beside.exists() else shutil.which("chalice")
    if not found:
        raise DeployError("the chalice command is not installed (make install)")
    return found


def run_chalice(project: Project, *args: str) -> None:
    command = [chalice_command(), "--project-dir", str(project.directory), *args]
    print("$ chalice " + " ".join(args), flush=True)
    if subprocess.run(command, check=False).returncode != 0:
        raise DeployError(f"chalice {' '.join(args)} failed (its output is above)")


# --- the commands ---------------------------------------------------------------------------------


def deploy(
    project: Project,
    stage: str,
    aws: Aws,
    out: Out = print,
    chalice: Callable[..., None] = run_chalice,
) -> dict[str, str]:
    """Bring the stage up (or up to date); returns its root URL and root secret's ARN."""
    config = project.load()
    if ensure_stage(config, stage):
        out(f"stage {stage}: added to .chalice/config.json (prefix {template.stage_prefix(stage)})")
    names = template.stage_names(stage, config)
    settings = template.stage_settings(stage, config)
    for path in ensure_policy_files(config, names, project):
        out(f"policy: wrote {path.relative_to(project.directory)}")
    project.save(config)
    api_config = Config(chalice_stage=stage, function_name=template.API_HANDLER, config_from_disk=config)
    api_timeout = api_config.lambda_timeout
    claim_wait = Settings.from_env(api_config.environment_variables or {}).claim_work_timeout
    check_concurrency(
        aws, names, reserved_concurrency(config, stage), out, settings, int(api_timeout or 60), claim_wait
    )
    body = template.build_base_stack(names, template.stage_tables(names, aws.region))
    outputs = deploy_base_stack(aws, names, body, settings, out)
    if ensure_token_key(aws, outputs.secret_arn):
        out("root secret: tokenKey added (rotating the root token keeps stored clients valid)")

    function_urls = settings.front_door == template.FRONT_DOOR_FUNCTION_URL

    def root_url() -> str:
        if settings.public_root_url:
            return settings.public_root_url
        if function_urls:
            return function_url(aws, names) or ""
        api = project.deployed(stage).get("rest_api", {})
        return str(api.get("rest_api_url", "")).rstrip("/")

    before = configured_root_url(config, stage)
    apply_outputs(config, stage, outputs, root_url() or before)
    project.save(config)
    chalice(project, "deploy", "--stage", stage)
    door = configure_front_door(aws, names, settings)
    out(
        f"front door: function URL {door} (auth NONE: Hawk is checked by the API; the REST API stays, unused)"
        if door
        else "front door: the REST API (no function URL)"
    )
    if root_url() != configured_root_url(config, stage):
        # The front door's URL exists only now the first time: into config.json for every later
        # `chalice deploy`, and into the functions that use it, as chalice deploy would.
        out(f"root URL for workers: {root_url()}")
        apply_outputs(config, stage, outputs, root_url())
        project.save(config)
        set_function_variable(aws, names, ENV_ROOT_URL, root_url())
    mapping = configure_stream_mapping(aws, project, names, outputs, settings)
    out(
        f"stream mapping {mapping['UUID']}: item failures reported, bisect on error, "
        f"{template.STREAM_MAX_RETRIES} retries, records up to "
        f"{template.STREAM_MAX_RECORD_AGE} s old, failures to {outputs.stream_failure_queue_arn}, "
        f"parallelization {settings.stream_parallelization}"
    )
    api = project.deployed(stage).get("rest_api")
    if api is None:
        raise DeployError(f"chalice deploy recorded no REST API in .chalice/deployed/{stage}.json")
    configure_api_stage(aws, api["rest_api_id"], names, settings)
    out(
        f"API stage {names.api_gateway_stage}: {settings.api_throttle.rate_limit} requests/s, burst "
        f"{settings.api_throttle.burst_limit}; claimWork {settings.claim_work_throttle.rate_limit}/s, burst "
        f"{settings.claim_work_throttle.burst_limit}"
    )
    configure_log_groups(aws, names, settings)
    out(f"log groups: kept {settings.log_retention_days} days")
    url = root_url()
    out("")
    out(f"stage {stage} is up")
    out(f"  root URL:    {url}   (TASKCLUSTER_ROOT_URL={url})")
    out("  root client: TASKCLUSTER_CLIENT_ID=root, TASKCLUSTER_ACCESS_TOKEN = the secret's accessToken:")
    out(f"    aws secretsmanager get-secret-value --secret-id {outputs.secret_arn} --query SecretString --output text")
    return {"root_url": url, "secret_arn": outputs.secret_arn}


def destroy(
    project: Project,
    stage: str,
    aws: Aws,
    purge: bool = False,
    out: Out = print,
    chalice: Callable[..., None] = run_chalice,
) -> list[str]:
    """Remove the stage; returns what is kept (nothing with `purge`)."""
    config = project.load()
    names = template.stage_names(stage, config)
    if project.deployed(stage):
        chalice(project, "delete", "--stage", stage)
    else:
        out(f"chalice: nothing deployed for stage {stage}")
    if describe_stack(aws, names.base_stack) is not None:
        out(f"base stack {names.base_stack}: deleting (tables, bucket and secret are retained)")
        aws("cloudformation").delete_stack(StackName=names.base_stack)
        _wait(aws, "stack_delete_complete", names.base_stack)
    sqs = aws("sqs")
    for url in sqs.list_queues(QueueNamePrefix=names.prefix).get("QueueUrls", []):
        if fnmatch.fnmatchcase(url.rsplit("/", 1)[1], names.dispatch_queue_pattern):
            sqs.delete_queue(QueueUrl=url)
            out(f"dispatch queue {url.rsplit('/', 1)[1]}: deleted")
    if purge:
        purge_retained(aws, names, out)
    remove_outputs(config, stage)
    project.save(config)
    kept = retained_resources(aws, names) + [f"log group {g['logGroupName']}" for g in log_groups(aws, names)]
    out(f"stage {stage} is down" + (f"; kept: {', '.join(kept)} (PURGE=1 deletes them)" if kept else ""))
    return kept


def purge_retained(aws: Aws, names: StageNames, out: Out) -> None:
    ddb = aws("dynamodb")
    for table in names.tables:
        try:
            ddb.delete_table(TableName=table)
            out(f"table {table}: deleted")
        except ClientError as e:
            if _code(e) != "ResourceNotFoundException":
                raise
    s3 = aws("s3")
    for bucket in stage_buckets(aws, names):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        s3.delete_bucket(Bucket=bucket)
        out(f"bucket {bucket}: deleted")
    secret = stage_secret(aws, names)
    if secret:
        aws("secretsmanager").delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
        out(f"secret {secret['Name']}: deleted")
    for group in log_groups(aws, names):
        aws("logs").delete_log_group(logGroupName=group["logGroupName"])
        out(f"log group {group['logGroupName']}: deleted")


def status(project: Project, stage: str, aws: Aws) -> list[str]:
    """What exists of the stage: functions with their environment, policies, event sources,
    schedules, the API stage's throttling, log retention, the base stack and the retained data."""
    config = project.load()
    names = template.stage_names(stage, config)
    lines: list[str] = []
    stack = describe_stack(aws, names.base_stack)
    lines.append(f"base stack {names.base_stack}: {stack['StackStatus'] if stack else 'none'}")
    lam, iam, events = aws("lambda"), aws("iam"), aws("events")
    configurations = {}
    for function in FUNCTIONS:
        try:
            configurations[function] = lam.get_function_configuration(FunctionName=names.function_name(function))
        except ClientError as e:
            if _code(e) != "ResourceNotFoundException":
                raise
    environments = {f: fn.get("Environment", {}).get("Variables", {}) for f, fn in configurations.items()}
    shared = set.intersection(*(set(env.items()) for env in environments.values())) if environments else set()
    if shared:
        lines.append("environment of every function:")
        lines += [f"    {key}={value}" for key, value in sorted(shared)]
    for function in FUNCTIONS:
        name = names.function_name(function)
        fn = configurations.get(function)
        if fn is None:
            lines.append(f"function {name}: none")
            continue
        concurrency = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
        lines.append(
            f"function {name}: timeout {fn['Timeout']} s, memory {fn['MemorySize']} MB, "
            f"reserved concurrency {concurrency if concurrency is not None else 'none'}"
        )
        for key, value in sorted(set(environments[function].items()) - shared):
            lines.append(f"    env {key}={value}")
        role = fn["Role"].rsplit("/", 1)[1]
        for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
            if isinstance(document, str):
                document = json.loads(document)
            lines.append(f"    role {role}, policy {policy_name}:")
            lines += [f"      {line}" for line in policy_lines(document)]
        for mapping in lam.list_event_source_mappings(FunctionName=fn["FunctionArn"]).get("EventSourceMappings", []):
            destination = mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination", "-")
            lines.append(
                f"    event source {mapping['EventSourceArn']}: batch {mapping.get('BatchSize')}, "
                f"item failures {'ReportBatchItemFailures' in mapping.get('FunctionResponseTypes', [])}, "
                f"bisect {mapping.get('BisectBatchOnFunctionError', False)}, "
                f"retries {mapping.get('MaximumRetryAttempts', '-')}, "
                f"max age {mapping.get('MaximumRecordAgeInSeconds', '-')} s, "
                f"parallelization {mapping.get('ParallelizationFactor', '-')}, on failure {destination}"
            )
        for rule_name in events.list_rule_names_by_target(TargetArn=fn["FunctionArn"]).get("RuleNames", []):
            rule = events.describe_rule(Name=rule_name)
            what = rule.get("ScheduleExpression") or rule.get("EventPattern")
            lines.append(f"    rule {rule_name}: {what}")
    url = function_url(aws, names) if template.API_HANDLER in configurations else None
    if url is None:
        lines.append("front door: the REST API (no function URL)")
    else:
        statements = _policy_statements(aws, names.function_name(template.API_HANDLER))
        public = [sid for sid in statements if sid in {p["StatementId"] for p in template.FUNCTION_URL_PERMISSIONS}]
        lines.append(f"front door: function URL {url} (public permissions: {', '.join(sorted(public)) or 'none'})")
    api = project.deployed(stage).get("rest_api")
    if api:
        try:
            api_stage = aws("apigateway").get_stage(restApiId=api["rest_api_id"], stageName=names.api_gateway_stage)
            for path, method in sorted(api_stage.get("methodSettings", {}).items()):
                lines.append(
                    f"API {api['rest_api_id']} stage {names.api_gateway_stage} {path}: "
                    f"rate {method.get('throttlingRateLimit')}/s, burst {method.get('throttlingBurstLimit')}"
                )
        except ClientError as e:
            if _code(e) != "NotFoundException":
                raise
            lines.append(f"API {api['rest_api_id']}: none")
    else:
        lines.append("API: none")
    for group in log_groups(aws, names):
        lines.append(f"log group {group['logGroupName']}: retention {group.get('retentionInDays', 'never expires')} d")
    retained = retained_resources(aws, names)
    lines.append(f"data: {', '.join(retained) if retained else 'none'}")
    return lines


def log_groups(aws: Aws, names: StageNames) -> list[dict[str, Any]]:
    """The stage's functions' log groups (one query per function: the API's name is a prefix of others')."""
    logs = aws("logs")
    found = []
    for function in FUNCTIONS:
        name = f"/aws/lambda/{names.function_name(function)}"
        found += [
            g for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] if g["logGroupName"] == name
        ]
    return found


def policy_lines(document: dict[str, Any]) -> list[str]:
    lines = []
    for statement in document.get("Statement", []):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        condition = f" if {json.dumps(statement['Condition'])}" if statement.get("Condition") else ""
        lines.append(f"{statement.get('Sid', '-')}: {', '.join(actions)} on {', '.join(resources)}{condition}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "command",
        choices=["deploy", "destroy", "status", "token-key"],
        help="token-key: give the stage's root secret its tokenKey (done by deploy; for the package route)",
    )
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--purge", action="store_true", help="destroy: also delete the tables, bucket and secret")
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR)
    args = parser.parse_args(argv)
    project = Project(args.project_dir.resolve())
    aws = Aws()
    try:
        if args.command == "deploy":
            deploy(project, args.stage, aws)
        elif args.command == "destroy":
            destroy(project, args.stage, aws, purge=args.purge)
        elif args.command == "token-key":
            secret = stage_secret(aws, template.stage_names(args.stage, project.load()))
            if secret is None:
                raise DeployError(f"stage {args.stage} has no root secret")
            changed = ensure_token_key(aws, secret["ARN"])
            print(f"{secret['Name']}: " + ("tokenKey added" if changed else "has a tokenKey already"))
        else:
            for line in status(project, args.stage, aws):
                print(line)
    except (DeployError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
