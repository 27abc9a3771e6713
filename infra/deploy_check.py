"""`make deploy-check`: the deployment commands a user runs, against a local AWS stand-in.

It starts moto's server of its own on a free loopback port, copies the project into a temporary
directory (so nothing here changes: the copy's config.json gains the `check` stage), then runs
there, with AWS_ENDPOINT_URL pointing at the stand-in and nothing else changed:

1. `make deploy STAGE=check`            (infra/deploy.py: base stack, config, chalice deploy, settings)
2. `chalice deploy --stage check`       (a plain redeploy must keep everything working)
3. `make deploy STAGE=check` with `"front_door": "function_url"` (a function URL on the API function,
   its public permissions, the root URL given to workers becomes it), then a plain `chalice deploy`
   (which must keep them)
4. `make deploy STAGE=check` with `"front_door": "rest"` again (the function URL and its permissions go)
5. `make destroy STAGE=check`           (the stage goes; its tables, bucket and secret stay)
6. `make destroy STAGE=check PURGE=1`   (and then those too)

and prints what exists after each step (infra/deploy.py `status`), checking it. Chalice bundles
requirements.txt with pip: here from wheels made of this virtualenv (infra/wheelhouse.py,
PIP_NO_INDEX=1 PIP_FIND_LINKS=…), so the check needs no network.

Where moto lacks something a real account has, the stand-in (never the deploy code) is patched
here, and the output says so: see `STAND_IN_PATCHES`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from infra import deploy, policies, template, wheelhouse

PROJECT_DIR = template.PROJECT_DIR
STAGE = "check"
REGION = "us-east-1"
COPIED = ("app.py", "requirements.txt", "requirements-dev.txt", "Makefile", "chalicelib", "infra", ".chalice")
SKIPPED = ("__pycache__", "build", "deployed", "deployments", "*.pyc")


# --- the stand-in and its patches -----------------------------------------------------------------

STAND_IN_PATCHES = (
    "CloudFormation: AWS::SecretsManager::Secret (GenerateSecretString), AWS::CloudWatch::Alarm and "
    "AWS::S3::BucketPolicy, which moto's CloudFormation skips, are created through moto's own services",
    "API Gateway: ImportRestApi/PutRestApi accept Chalice's Swagger 2.0 document (moto takes OpenAPI 3 only, "
    "and wants a uri and httpMethod on mock integrations too)",
    "API Gateway: CreateDeployment on an existing stage keeps the stage's method settings (throttling), as "
    "API Gateway does (moto makes the stage anew)",
)


_PATCHED_MODELS: list[type] = []


def patch_stand_in() -> None:
    """Teach moto (in this process, where its server runs) what the deployment needs of AWS."""
    from moto.apigateway.models import APIGatewayBackend, RestAPI
    from moto.cloudformation import parsing
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core.common_models import CloudFormationModel
    from moto.s3.models import s3_backends
    from moto.secretsmanager.models import secretsmanager_backends

    class Secret(CloudFormationModel):
        __module__ = "moto.secretsmanager.deploy_check"  # moto's instance tracker names the service by it

        def __init__(self, arn: str) -> None:
            self.arn = arn

        @property
        def physical_resource_id(self) -> str:
            return self.arn  # Ref gives a secret's ARN

        @staticmethod
        def cloudformation_name_type() -> str:
            return "Name"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::SecretsManager::Secret"

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> Any:
            props = cloudformation_json["Properties"]
            generate = props.get("GenerateSecretString")
            value = props.get("SecretString")
            if generate:
                fields = json.loads(generate.get("SecretStringTemplate", "{}"))
                fields[generate["GenerateStringKey"]] = secrets.token_urlsafe(33)[: generate.get("PasswordLength", 32)]
                value = json.dumps(fields)
            created = secretsmanager_backends[account_id][region_name].create_secret(
                name=props.get("Name", resource_name),
                secret_string=value,
                secret_binary=None,
                description=props.get("Description"),
                tags=None,
                kms_key_id=None,
                client_request_token=None,
                replica_regions=[],
                force_overwrite=False,
            )
            return cls(json.loads(created)["ARN"] if isinstance(created, str) else created["ARN"])

    class Alarm(CloudFormationModel):
        __module__ = "moto.cloudwatch.deploy_check"  # moto's instance tracker names the service by it

        def __init__(self, name: str) -> None:
            self.name = name

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::Alarm"

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> Any:
            p = cloudformation_json["Properties"]
            name = p.get("AlarmName", resource_name)
            cloudwatch_backends[account_id][region_name].put_metric_alarm(
                name=name,
                namespace=p["Namespace"],
                metric_name=p["MetricName"],
                comparison_operator=p["ComparisonOperator"],
                evaluation_periods=int(p["EvaluationPeriods"]),
                period=int(p["Period"]),
                threshold=float(p["Threshold"]),
                statistic=p["Statistic"],
                description=p.get("AlarmDescription", ""),
                dimensions=p.get("Dimensions", []),
                alarm_actions=[a for a in p.get("AlarmActions") or [] if isinstance(a, str)],
                treat_missing_data=p.get("TreatMissingData"),
            )
            return cls(name)

        @classmethod
        def delete_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])

    class BucketPolicy(CloudFormationModel):
        __module__ = "moto.s3.deploy_check"  # moto's instance tracker names the service by it

        def __init__(self, bucket: str) -> None:
            self.bucket = bucket

        @property
        def physical_resource_id(self) -> str:
            return self.bucket

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::S3::BucketPolicy"

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> Any:
            p = cloudformation_json["Properties"]
            s3_backends[account_id]["global"].put_bucket_policy(p["Bucket"], json.dumps(p["PolicyDocument"]).encode())
            return cls(p["Bucket"])

        @classmethod
        def delete_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            return None

    # CloudFormationModel.__subclasses__() holds its subclasses weakly: keep them alive.
    _PATCHED_MODELS.extend([Secret, Alarm, BucketPolicy])
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()

    put_rest_api = APIGatewayBackend.put_rest_api

    def as_openapi3(doc: dict[str, Any]) -> dict[str, Any]:
        if "swagger" not in doc:
            return doc
        doc = {k: v for k, v in doc.items() if k != "swagger"}
        doc["openapi"] = "3.0.1"
        doc.setdefault("info", {}).setdefault("description", "")
        for methods in doc.get("paths", {}).values():
            for method, spec in methods.items():
                integration = spec.get("x-amazon-apigateway-integration") if isinstance(spec, dict) else None
                if integration is not None:  # moto needs these even of mock integrations (CORS preflights)
                    integration.setdefault("uri", "")
                    integration.setdefault("httpMethod", method.upper())
        return doc

    def put_rest_api_swagger2(
        self: Any, function_id: str, api_doc: dict[str, Any], fail_on_warnings: bool, mode: str = "merge"
    ) -> Any:
        return put_rest_api(self, function_id, as_openapi3(api_doc), False, mode)

    import_rest_api = APIGatewayBackend.import_rest_api

    def import_rest_api_swagger2(self: Any, api_doc: dict[str, Any], fail_on_warnings: bool) -> Any:
        return import_rest_api(self, as_openapi3(api_doc), False)

    create_deployment = RestAPI.create_deployment

    def create_deployment_keeping_stage(self: Any, name: str, description: str, stage_variables: Any = None) -> Any:
        before = self.stages.get(name)
        deployment = create_deployment(self, name, description, stage_variables)
        if before is not None and name in self.stages:
            self.stages[name].method_settings = before.method_settings
        return deployment

    RestAPI.create_deployment = create_deployment_keeping_stage  # type: ignore[method-assign]
    APIGatewayBackend.put_rest_api = put_rest_api_swagger2  # type: ignore[method-assign]
    APIGatewayBackend.import_rest_api = import_rest_api_swagger2  # type: ignore[method-assign]


@contextmanager
def stand_in() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    patch_stand_in()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


# --- the run --------------------------------------------------------------------------------------


def copy_project(into: Path) -> Path:
    project = into / "project"
    project.mkdir()
    for name in COPIED:
        source = PROJECT_DIR / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns(*SKIPPED))
        else:
            shutil.copy2(source, project / name)  # mtimes kept: make must not think the venv is stale
    return project


def aws_environment(endpoint: str, wheels: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIP_"))}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="deploy-check",
        AWS_SECRET_ACCESS_KEY="deploy-check",
        AWS_DEFAULT_REGION=REGION,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONUNBUFFERED="1",
    )
    return env


class Run:
    def __init__(self, project: Path, env: dict[str, str], out: Callable[[str], None]) -> None:
        self.project = project
        self.env = env
        self.out = out
        self.venv = Path(sys.prefix)
        self.failures: list[str] = []
        self.report: dict[str, Any] = {"steps": []}
        self.last_status: list[str] | None = None
        self.last_title = ""

    def command(self, title: str, argv: list[str]) -> None:
        self.out(f"\n== {title}")
        self.out("$ " + " ".join(argv))
        started = time.monotonic()
        result = subprocess.run(argv, cwd=self.project, env=self.env, capture_output=True, text=True, check=False)
        for line in (result.stdout + result.stderr).splitlines():
            if line.strip():
                self.out("   | " + line)
        took = time.monotonic() - started
        self.out(f"   exit {result.returncode} in {took:.1f}s")
        if result.returncode != 0:
            self.failures.append(f"{title}: exit {result.returncode}")

    def make(self, *args: str) -> list[str]:
        venv = str(self.venv)
        return ["make", "--no-print-directory", "-o", f"{venv}/.installed", *args, f"VENV={venv}"]

    def observe(self, title: str) -> dict[str, Any]:
        """Print what exists (infra/deploy.py status): in full the first time, then what changed."""
        aws = deploy.Aws(boto3.Session(region_name=REGION))
        lines = deploy.status(deploy.Project(self.project), STAGE, aws)
        if self.last_status is None:
            self.out(f"-- what exists after {title}:")
            for line in lines:
                self.out("   " + line)
        else:
            before, after = set(self.last_status), set(lines)
            self.out(f"-- what exists after {title}: as after {self.last_title}, except")
            # What went: its first lines only (what is indented under one went with it).
            changed = [f"   - {line}" for line in self.last_status if line not in after and not line.startswith(" ")]
            changed += [f"   + {line}" for line in lines if line not in before]
            for line in changed or ["   (nothing)"]:
                self.out(line)
        self.last_status, self.last_title = lines, title
        state = snapshot(aws, self.project)
        self.report["steps"].append({"step": title, "state": state})
        return state

    def expect(self, condition: bool, what: str) -> None:
        self.out(f"   {'ok  ' if condition else 'FAIL'} {what}")
        if not condition:
            self.failures.append(what)


def snapshot(aws: deploy.Aws, project: Path) -> dict[str, Any]:
    """The facts the check asserts on, as data (also written to --report for the test)."""
    config = json.loads((project / ".chalice" / "config.json").read_text())
    names = template.stage_names(STAGE, config) if STAGE in config.get("stages", {}) else None
    state: dict[str, Any] = {"functions": {}, "mappings": [], "rules": {}, "throttling": {}, "log_groups": {}}
    if names is None:
        return state
    lam, iam, events = aws("lambda"), aws("iam"), aws("events")
    for function in template.FUNCTIONS:
        try:
            fn = lam.get_function_configuration(FunctionName=names.function_name(function))
        except lam.exceptions.ResourceNotFoundException:
            continue
        role = fn["Role"].rsplit("/", 1)[1]
        documents = []
        for policy_name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
            documents.append(json.loads(document) if isinstance(document, str) else document)
        state["functions"][function] = {
            "env": fn.get("Environment", {}).get("Variables", {}),
            "role": role,
            "policies": documents,
        }
        for mapping in lam.list_event_source_mappings(FunctionName=fn["FunctionArn"]).get("EventSourceMappings", []):
            state["mappings"].append(
                {**{k: v for k, v in mapping.items() if k != "LastModified"}, "function": function}
            )
        rules = events.list_rule_names_by_target(TargetArn=fn["FunctionArn"]).get("RuleNames", [])
        state["rules"][function] = [
            {
                k: v
                for k, v in events.describe_rule(Name=r).items()
                if k in ("Name", "ScheduleExpression", "EventPattern")
            }
            for r in rules
        ]
    api = deploy.Project(project).deployed(STAGE).get("rest_api")
    if api:
        stage = aws("apigateway").get_stage(restApiId=api["rest_api_id"], stageName=names.api_gateway_stage)
        state["throttling"] = stage.get("methodSettings", {})
    for group in deploy.log_groups(aws, names):
        state["log_groups"][group["logGroupName"]] = group.get("retentionInDays")
    stack = deploy.describe_stack(aws, names.base_stack)
    state["base_stack"] = stack["StackStatus"] if stack else None
    if template.API_HANDLER in state["functions"]:
        state["function_url"] = deploy.function_url(aws, names)
        statements = deploy._policy_statements(aws, names.function_name(template.API_HANDLER))
        state["function_url_permissions"] = {
            sid: st for sid, st in statements.items() if sid.startswith("taskqueue-function-url")
        }
        state["rest_api_url"] = str(deploy.Project(project).deployed(STAGE).get("rest_api", {}).get("rest_api_url", ""))
    state["retained"] = deploy.retained_resources(aws, names)
    try:
        state["stream_arn"] = (
            aws("dynamodb").describe_table(TableName=names.tasks_table)["Table"].get("LatestStreamArn")
        )
    except aws("dynamodb").exceptions.ResourceNotFoundException:
        state["stream_arn"] = None
    secret = deploy.stage_secret(aws, names)
    if secret:
        value = json.loads(aws("secretsmanager").get_secret_value(SecretId=secret["ARN"])["SecretString"])
        state["secret"] = {"arn": secret["ARN"], "keys": sorted(value)}
    return state


def check_deployed(run: Run, state: dict[str, Any], project: Path) -> None:
    """What a working stage has: the facts the issue asks for, after `make deploy` and after a plain
    `chalice deploy`."""
    config = json.loads((project / ".chalice" / "config.json").read_text())
    names = template.stage_names(STAGE, config)
    settings = template.stage_settings(STAGE, config)
    functions = state["functions"]
    run.expect(sorted(functions) == sorted(template.FUNCTIONS), f"every function exists: {sorted(functions)}")
    roles = {f["role"] for f in functions.values()}
    run.expect(len(roles) == len(functions), "each function has a role of its own")
    for function, fn in functions.items():
        expected = policies.function_policy(names, function)
        run.expect(fn["policies"] == [expected], f"{function}: its role holds exactly its own policy")
        wanted = set(template.FUNCTION_ENVIRONMENT.get(function, ()))
        given = {v for v in (template.ENV_SECRET, template.ENV_PROFILE, template.ENV_ROOT_URL) if fn["env"].get(v)}
        run.expect(
            given == wanted - {template.ENV_BUCKET},
            f"{function}: secret, instance profile and root URL only where needed ({sorted(given) or 'none'})",
        )
        run.expect(fn["env"].get(template.ENV_STREAM) == state["stream_arn"], f"{function}: the real stream ARN")
    secret_readers = {f for f, fn in functions.items() if fn["env"].get(template.ENV_SECRET)}
    run.expect(
        secret_readers == {template.API_HANDLER, template.PROVISIONER_HANDLER},
        "only API and provisioner get the secret",
    )
    api_env = functions.get(template.API_HANDLER, {}).get("env", {})
    run.expect(
        api_env.get(template.ENV_BUCKET, "").startswith(names.artifact_bucket_base + "-"),
        f"the API presigns in the stage's bucket ({api_env.get(template.ENV_BUCKET)})",
    )
    run.expect(
        api_env.get("TASKQUEUE_EVENT_BUS") == f"{names.prefix}events", f"the stage's own event bus ({names.event_bus})"
    )
    stream = [m for m in state["mappings"] if m["function"] == template.STREAM_HANDLER]
    run.expect(len(stream) == 1, "one mapping on the tasks stream")
    if stream:
        m = stream[0]
        run.expect(
            m["EventSourceArn"] == state["stream_arn"], f"stream mapping on the real stream: {m['EventSourceArn']}"
        )
        run.expect(
            m.get("FunctionResponseTypes") == template.STREAM_RESPONSE_TYPES, "stream mapping: reports item failures"
        )
        run.expect(m.get("BisectBatchOnFunctionError") is True, "stream mapping: bisect on error")
        run.expect(m.get("MaximumRetryAttempts") == template.STREAM_MAX_RETRIES, "stream mapping: bounded retries")
        run.expect(
            m.get("MaximumRecordAgeInSeconds") == template.STREAM_MAX_RECORD_AGE, "stream mapping: max record age"
        )
        run.expect(m.get("ParallelizationFactor") == settings.stream_parallelization, "stream mapping: parallelization")
        destination = m.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination", "")
        run.expect(destination.endswith(":" + names.stream_failure_queue), f"stream mapping: failures to {destination}")
    release = [m for m in state["mappings"] if m["function"] == template.RELEASE_HANDLER]
    run.expect(
        [m["EventSourceArn"].rsplit(":", 1)[1] for m in release] == [names.release_queue], "release reads its queue"
    )
    schedules = {f: [r.get("ScheduleExpression") for r in rules] for f, rules in state["rules"].items() if rules}
    run.expect(
        schedules.get(template.SWEEPER_HANDLER) == ["rate(1 minute)"]
        and schedules.get(template.PROVISIONER_HANDLER) == ["rate(1 minute)"],
        "sweeper and provisioner run every minute",
    )
    patterns = [json.loads(r["EventPattern"]) for r in state["rules"].get(template.EC2_EVENTS_HANDLER, [])]
    run.expect(bool(patterns) and patterns[0].get("source") == ["aws.ec2"], "EC2's events reach ec2_events")
    throttling = state["throttling"]
    every = throttling.get("*/*", {})
    run.expect(
        every.get("throttlingRateLimit") == settings.api_throttle.rate_limit
        and every.get("throttlingBurstLimit") == settings.api_throttle.burst_limit,
        f"API stage throttled: {every.get('throttlingRateLimit')}/s burst {every.get('throttlingBurstLimit')}",
    )
    claim = throttling.get(template.CLAIM_WORK_ROUTE.replace("/", "~1") + "/POST", {})
    run.expect(
        claim.get("throttlingRateLimit") == settings.claim_work_throttle.rate_limit,
        f"claimWork throttled apart: {claim.get('throttlingRateLimit')}/s burst {claim.get('throttlingBurstLimit')}",
    )
    retention = settings.log_retention_days
    run.expect(
        len(state["log_groups"]) == len(template.FUNCTIONS) and set(state["log_groups"].values()) == {retention},
        f"log groups kept {retention} days",
    )
    run.expect("tokenKey" in state.get("secret", {}).get("keys", []), "the root secret carries a tokenKey")


def set_front_door(project: Path, door: str) -> None:
    """Choose the check stage's front door in the copy's config.json, as a user would."""
    path = project / ".chalice" / "config.json"
    config = json.loads(path.read_text())
    config["stages"][STAGE].setdefault(template.SETTINGS_KEY, {})["front_door"] = door
    path.write_text(json.dumps(config, indent=2) + "\n")


def check_front_door(run: Run, state: dict[str, Any], door: str) -> None:
    """The front door the stage chose, and the root URL every function that uses one is given."""
    url = state.get("function_url")
    permissions = state.get("function_url_permissions", {})
    wanted = {p["StatementId"] for p in template.FUNCTION_URL_PERMISSIONS}
    if door == template.FRONT_DOOR_FUNCTION_URL:
        run.expect(bool(url) and ".lambda-url." in str(url), f"a function URL on the API function: {url}")
        run.expect(set(permissions) == wanted, f"its public permissions: {sorted(permissions)}")
        root = url
    else:
        run.expect(url is None, "no function URL")
        run.expect(not permissions, f"no public permissions left: {sorted(permissions)}")
        root = state.get("rest_api_url", "").rstrip("/")
    given = {
        f: fn["env"].get(template.ENV_ROOT_URL)
        for f, fn in state["functions"].items()
        if template.ENV_ROOT_URL in template.FUNCTION_ENVIRONMENT.get(f, ())
    }
    run.expect(bool(root) and set(given.values()) == {root}, f"root URL {root} given to {sorted(given)}")


def run_check(out: Callable[[str], None] = print, keep: bool = False, report: Path | None = None) -> int:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="taskqueue-deploy-check-"))
    try:
        project = copy_project(work)
        wheels = wheelhouse.build(work / "wheels", project / "requirements.txt")
        with stand_in() as endpoint:
            out(f"AWS stand-in: moto server at {endpoint} (this process; stopped at the end)")
            out("patched in the stand-in (not in the deploy code):")
            for patch in STAND_IN_PATCHES:
                out(f"  - {patch}")
            out(f"project copy: {project}")
            out(f"offline bundling: PIP_NO_INDEX=1 PIP_FIND_LINKS=<{len(wheels)} wheels made from this virtualenv>")
            env = aws_environment(endpoint, work / "wheels")
            os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
            run = Run(project, env, out)
            chalice_deploy = [str(Path(sys.executable).parent / "chalice"), "deploy", "--stage", STAGE]
            make_deploy = run.make("deploy", f"STAGE={STAGE}")
            rest, function_url = template.FRONT_DOOR_REST, template.FRONT_DOOR_FUNCTION_URL
            door = rest
            for title, argv, observed, wanted in [
                ("1. make deploy STAGE=check", make_deploy, "make deploy", rest),
                ("2. chalice deploy --stage check (a plain redeploy)", chalice_deploy, "chalice deploy", rest),
                (
                    '3. make deploy STAGE=check, "front_door": "function_url"',
                    make_deploy,
                    "make deploy (function URL)",
                    function_url,
                ),
                (
                    "3b. chalice deploy --stage check (a plain redeploy of the function URL stage)",
                    chalice_deploy,
                    "chalice deploy (function URL)",
                    function_url,
                ),
                ('4. make deploy STAGE=check, "front_door": "rest"', make_deploy, "make deploy (REST again)", rest),
            ]:
                if wanted != door:
                    door = wanted
                    set_front_door(project, door)
                run.command(title, argv)
                state = run.observe(observed)
                check_deployed(run, state, project)
                check_front_door(run, state, door)
            run.command("5. make destroy STAGE=check", run.make("destroy", f"STAGE={STAGE}"))
            state = run.observe("make destroy")
            run.expect(not state["functions"] and not state["mappings"], "no function, no mapping left")
            run.expect(state["base_stack"] is None, "the base stack is gone")
            run.expect(
                sum(r.startswith("table ") for r in state["retained"]) == 6
                and any(r.startswith("bucket ") for r in state["retained"]),
                "tables and bucket are kept",
            )
            run.command("6. make destroy STAGE=check PURGE=1", run.make("destroy", f"STAGE={STAGE}", "PURGE=1"))
            state = run.observe("make destroy PURGE=1")
            run.expect(state["retained"] == [], "nothing of the stage is left")
        took = time.monotonic() - started
        run.report["failures"] = run.failures
        if report:
            report.write_text(json.dumps(run.report, indent=1, default=str))
        out("")
        if run.failures:
            out(f"deploy-check FAILED in {took:.0f}s: " + "; ".join(run.failures))
            return 1
        out(
            f"deploy-check passed in {took:.0f}s: deploy, redeploy, a function URL front door and back, destroy "
            f"and purge of stage {STAGE} on the stand-in"
        )
        return 0
    finally:
        if keep:
            out(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy_check", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keep", action="store_true", help="keep the project copy and the wheels")
    parser.add_argument("--report", type=Path, help="write the state after each step here (JSON)")
    args = parser.parse_args(argv)
    return run_check(keep=args.keep, report=args.report)


if __name__ == "__main__":
    raise SystemExit(main())
