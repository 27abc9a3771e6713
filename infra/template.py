"""One definition of what Chalice cannot create, for both ways of deploying a stage.

Chalice owns the functions, their roles, the REST API and the event sources; this module owns the
rest: the tables, the dispatch dead-letter queue, the release queue, the queue the tasks stream
sets failed batches aside on, the event bus, the artifact bucket, the root client's secret, the EC2
workers' role and instance profile, and the alarms (`base_resources`). Two templates are made of it:

- `build_base_stack`: a CloudFormation stack of its own (`<prefix>base`), deployed by
  `make deploy` (infra/deploy.py) before `chalice deploy`; its outputs are what Chalice is then
  given through `.chalice/config.json`.
- `build_template`: the merge template of `chalice package --merge-template` (infra/package.sh):
  the same resources, plus the settings of Chalice's resources that Chalice has no options for
  (the stream's event source, the functions' environment with the generated names).

Nothing here is written by hand that exists elsewhere:
- tables come from `all_tables(...)`, i.e. from the pynamodb models;
- names come from the stage's environment variables in `.chalice/config.json`, read through
  Chalice's own config code and `Settings`, exactly as the functions will see them, and all carry
  the stage's prefix (`taskqueue-<stage>-`), so stages never collide in one account and region;
- queue names and attributes come from `hint_queues` (the code creates dispatch queues on demand,
  all redriving to the shared dead-letter queue created here).

Run `python -m infra.template --stage dev --out infra/build/merge.json` (or infra/package.sh);
`--base` writes the base stack instead.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from chalice.config import Config
from chalice.utils import to_cfn_resource_name

from chalicelib.adapters.hint_queues import RETENTION, dlq_name
from chalicelib.adapters.tables import all_tables
from chalicelib.config import Settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_REGION = "us-east-1"

# app.py's DynamoDB stream handler (chalicelib/handlers/events.py). Chalice names the function's
# resource and its event after it; the names are checked against a real `chalice package` run.
STREAM_HANDLER = "tasks_stream"
STREAM_FUNCTION_ID = to_cfn_resource_name(STREAM_HANDLER)
STREAM_EVENT_ID = to_cfn_resource_name(f"{STREAM_HANDLER}-dynamodb-event-source")

TASKS_TABLE_ID = "TasksTable"
DISPATCH_DLQ_ID = "DispatchDeadLetterQueue"
STREAM_FAILURE_QUEUE_ID = "TasksStreamFailureQueue"
RELEASE_FUNCTION_ID = "Release"  # chalice's logical id of the `release` SQS handler
RELEASE_EVENT_ID = "ReleaseSqsEventSource"
RELEASE_QUEUE_ID = "ReleaseQueue"
RELEASE_DLQ_ID = "ReleaseDeadLetterQueue"
RELEASE_VISIBILITY = 360  # SQS wants at least 6x the handler's timeout (60 s)
EVENT_BUS_ID = "TaskEventBus"
ARTIFACT_BUCKET_ID = "ArtifactBucket"
ARTIFACT_BUCKET_POLICY_ID = "ArtifactBucketPolicy"
ROOT_SECRET_ID = "RootClientSecret"
ALARM_TOPIC_PARAM = "AlarmTopicArn"
HAS_ALARM_TOPIC = "HasAlarmTopic"

# The provisioner (chalicelib/handlers/provisioning.py): its schedule launches the EC2 workers,
# EC2's events through EventBridge end them. Chalice names their resources after the handlers.
PROVISIONER_HANDLER = "provisioner"
EC2_EVENTS_HANDLER = "ec2_events"
# Every Lambda function Chalice makes of app.py (a test checks it against the app): the REST API's
# handler and each event source's.
API_HANDLER = "api_handler"
RELEASE_HANDLER = "release"
SWEEPER_HANDLER = "sweeper"
FUNCTIONS = (API_HANDLER, STREAM_HANDLER, RELEASE_HANDLER, SWEEPER_HANDLER, PROVISIONER_HANDLER, EC2_EVENTS_HANDLER)
PROVISIONER_FUNCTION_ID = to_cfn_resource_name(PROVISIONER_HANDLER)
EC2_EVENTS_FUNCTION_ID = to_cfn_resource_name(EC2_EVENTS_HANDLER)
REST_API_ID = "RestAPI"  # chalice's AWS::Serverless::Api (its EndpointURL output is built on it)
PUBLIC_ROOT_URL_PARAM = "PublicRootUrl"
HAS_PUBLIC_ROOT_URL = "HasPublicRootUrl"
WORKER_ROLE_ID = "WorkerRole"
WORKER_INSTANCE_PROFILE_ID = "WorkerInstanceProfile"
# What the reference worker calls in --claim-mode sqs (worker/claiming.py), as IAM actions
# (DeleteMessageBatch is authorised as sqs:DeleteMessage). ListQueues has no resource-level permissions.
WORKER_QUEUE_ACTIONS = ("sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:ReceiveMessage")
WORKER_LIST_ACTIONS = ("sqs:ListQueues",)

# What each function is told of the resources made for it, beside the stage's names in
# .chalice/config.json: both routes give exactly these (the merge template as intrinsics,
# `make deploy` as the base stack's outputs written into config.json), and the policies give the
# functions holding the secret's ARN, and only them, the right to read it (infra/policies.py).
ENV_BUCKET = "TASKQUEUE_ARTIFACT_BUCKET"
ENV_SECRET = "TASKQUEUE_ROOT_SECRET_ARN"
ENV_PROFILE = "TASKQUEUE_WORKER_INSTANCE_PROFILE"
ENV_ROOT_URL = "TASKQUEUE_PUBLIC_ROOT_URL"
ENV_STREAM = "TASKQUEUE_TASKS_STREAM_ARN"  # stage-wide: Chalice reads it when it imports app.py
FUNCTION_ENVIRONMENT: dict[str, tuple[str, ...]] = {
    # Presigns artifact URLs; checks tokens, issues credentials; checks Hawk signatures made for the
    # public root URL's host and base path (a custom domain's, when an event's path lacks it).
    API_HANDLER: (ENV_BUCKET, ENV_SECRET, ENV_ROOT_URL),
    SWEEPER_HANDLER: (ENV_BUCKET,),  # purges expired artifacts
    # Both build the same provisioner; only the scheduled one launches, so only it derives
    # registration tokens from the root secret (the ec2_events function never reads it).
    PROVISIONER_HANDLER: (ENV_SECRET, ENV_PROFILE, ENV_ROOT_URL),
    EC2_EVENTS_HANDLER: (ENV_PROFILE, ENV_ROOT_URL),
}

# The tasks stream: the handler returns the first record it could not carry out in full in
# `batchItemFailures` (ReportBatchItemFailures), so Lambda retries from that record on and never
# redoes the ones before it. A retry that fails again at its first record is a failure of the whole
# (retried) batch: bisection then halves it until the failing record is alone, so only that record
# is set aside after the bounded retries, not the records of other tasks behind it (invariant 4).
# What is set aside goes to the failure queue as Lambda's metadata (shard and sequence numbers):
# `python -m infra.replay` reads those records again from the stream and redoes them. Records are
# set aside at 6 hours old at the latest, so they stay in the stream (24 hours) long enough to be
# replayed.
STREAM_MAX_RETRIES = 10
STREAM_MAX_RECORD_AGE = 6 * 3600  # seconds
STREAM_RESPONSE_TYPES = ["ReportBatchItemFailures"]
# The claimWork route: it may wait (up to TASKQUEUE_CLAIM_WORK_TIMEOUT: 20 s by default, 0 on the
# stages config.json defines), so it is throttled on its own, below the stage's rate, to keep its
# polls from holding more than a small share of the API function's instances.
CLAIM_WORK_ROUTE = "/api/queue/v1/claim-work/{taskQueueId}"
STREAM_ITERATOR_AGE_ALARM_MS = 5 * 60 * 1000  # the sweeper re-hints lost runs after 10 minutes

# CreateTable parameters that have a CloudFormation counterpart here. Anything else makes
# `table_resource` fail rather than silently drop part of the models' definition.
_TABLE_KEYS = {
    "TableName",
    "BillingMode",
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "StreamSpecification",
}


STAGE_NAME_PATTERN = r"[a-z][a-z0-9]{0,15}"  # stages `make deploy` creates: no '-', so no prefix is another's


@dataclass(frozen=True)
class StageNames:
    """The names of one stage's AWS resources, as its functions see them in their environment.

    Every name starts with the stage's prefix (`queue_prefix`, e.g. `taskqueue-dev-`):
    `stage_names` refuses a stage where one does not, so one stage's IAM patterns never match
    another's resources.
    """

    stage: str
    tasks_table: str
    queue_prefix: str
    graph_table: str
    event_bus: str
    artifacts_table: str
    artifact_max_days: int
    auth_table: str
    workers_table: str
    pools_table: str
    api_gateway_stage: str = "api"  # the REST API's stage: the root URL's path on API Gateway
    app_name: str = "taskqueue"

    @property
    def prefix(self) -> str:
        return self.queue_prefix

    @property
    def tables(self) -> tuple[str, ...]:
        return (
            self.tasks_table,
            self.graph_table,
            self.artifacts_table,
            self.auth_table,
            self.workers_table,
            self.pools_table,
        )

    @property
    def dispatch_dlq(self) -> str:
        return dlq_name(self.queue_prefix)

    @property
    def worker_role(self) -> str:
        """Name of the EC2 workers' role and instance profile: only the provisioner may pass it."""
        return f"{self.queue_prefix}worker"

    @property
    def dispatch_queue_pattern(self) -> str:
        """An IAM name pattern matching every dispatch queue (`<prefix><provisionerId>_<workerType>_<level>`,
        domain/dispatch.queue_name) and none of the queues created here (their names have no '_')."""
        return f"{self.queue_prefix}*_?"

    @property
    def release_queue(self) -> str:
        return Settings(queue_prefix=self.queue_prefix).release_queue

    @property
    def release_dlq(self) -> str:
        return f"{self.release_queue}-dlq"

    @property
    def stream_failure_queue(self) -> str:
        # No '_' in it, so it can never be a dispatch queue's name (domain/dispatch.queue_name).
        return Settings(queue_prefix=self.queue_prefix).stream_failure_queue

    @property
    def artifact_bucket_base(self) -> str:
        """The bucket is `<this>-<account>-<region>` (bucket names are global)."""
        return f"{self.queue_prefix}artifacts"

    @property
    def root_secret(self) -> str:
        return f"{self.queue_prefix}root-client"

    @property
    def base_stack(self) -> str:
        """The CloudFormation stack `make deploy` creates (the package route's stack is the user's)."""
        return f"{self.queue_prefix}base"

    def function_name(self, handler: str) -> str:
        """The Lambda function Chalice deploys for a handler: `<app>-<stage>-<handler>`, and for the
        REST API's `<app>-<stage>` (the stage's prefix without its last '-')."""
        if handler == API_HANDLER:
            return f"{self.app_name}-{self.stage}"
        return f"{self.app_name}-{self.stage}-{handler}"

    def named_resources(self) -> dict[str, str]:
        """Every name this stage gives a resource of its own (a test checks each carries the prefix)."""
        return {
            **{f"table {t}": t for t in self.tables},
            "dispatch dead-letter queue": self.dispatch_dlq,
            "release queue": self.release_queue,
            "release dead-letter queue": self.release_dlq,
            "stream failure queue": self.stream_failure_queue,
            "event bus": self.event_bus,
            "artifact bucket": self.artifact_bucket_base,
            "root secret": self.root_secret,
            "workers' role and instance profile": self.worker_role,
            "base stack": self.base_stack,
            **{f"function {h}": self.function_name(h) for h in FUNCTIONS},
        }


def stage_prefix(stage: str, app_name: str = "taskqueue") -> str:
    return f"{app_name}-{stage}-"


def load_chalice_config(project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((project_dir / ".chalice" / "config.json").read_text())
    return config


def stage_names(stage: str, config_from_disk: dict[str, Any] | None = None) -> StageNames:
    """The stage's names, from the environment variables Chalice gives its functions."""
    disk = load_chalice_config() if config_from_disk is None else config_from_disk
    stage_config = disk.get("stages", {})
    if stage not in stage_config:
        raise ValueError(f"unknown stage {stage!r}; .chalice/config.json has {sorted(stage_config)}")
    # Environment variables may be set per function: every function must agree on the names.
    functions = ["api_handler", *stage_config[stage].get("lambda_functions", {})]
    api_gateway_stage = Config(chalice_stage=stage, config_from_disk=disk).api_gateway_stage
    found: set[StageNames] = set()
    for function in functions:
        env = Config(chalice_stage=stage, function_name=function, config_from_disk=disk).environment_variables
        settings = Settings.from_env(env)
        found.add(
            StageNames(
                stage,
                settings.tasks_table,
                settings.queue_prefix,
                settings.graph_table,
                settings.event_bus,
                settings.artifacts_table,
                settings.artifact_max_days,
                settings.auth_table,
                settings.workers_table,
                settings.pools_table,
                api_gateway_stage,
                disk.get("app_name", "taskqueue"),
            )
        )
    if len(found) != 1:
        raise ValueError(f"stage {stage!r}: functions disagree on table or queue names: {found}")
    names = found.pop()
    strays = {what: name for what, name in names.named_resources().items() if not (name + "-").startswith(names.prefix)}
    if strays:
        raise ValueError(f"stage {stage!r}: names without the stage's prefix {names.prefix!r}: {strays}")
    return names


SETTINGS_KEY = "taskqueue_deploy"  # a stage's deployment settings in .chalice/config.json (Chalice ignores it)


@dataclass(frozen=True)
class Throttle:
    rate_limit: float  # requests per second, steady
    burst_limit: int  # requests at once

    def check(self, what: str) -> None:
        if not (0 < self.rate_limit <= 10000 and 0 < self.burst_limit <= 5000):
            raise ValueError(f"{what}: rate_limit must be in (0, 10000] and burst_limit in (0, 5000], got {self}")


@dataclass(frozen=True)
class StageSettings:
    """A stage's settings that are not Chalice's: `stages.<stage>.taskqueue_deploy` in config.json."""

    api_throttle: Throttle = Throttle(20, 40)
    # claimWork alone: on AWS it answers at once (TASKQUEUE_CLAIM_WORK_TIMEOUT 0) and workers call it
    # every 5 s, so 4/s serves 20 idle claim-work workers (README.md, "Finding work").
    claim_work_throttle: Throttle = Throttle(4, 8)
    # Concurrent batches per stream shard (1-10). Lambda keeps per-partition-key (per-task) order
    # above 1, which is all the outbox needs (docs/architecture.md, "Parallelization").
    stream_parallelization: int = 2
    log_retention_days: int = 14  # of every function's log group
    alarm_topic_arn: str = ""
    public_root_url: str = ""  # the root URL workers are given (empty: the front door's URL)
    # How clients reach the API (FRONT_DOORS): the REST API Chalice makes ("rest"), or a Lambda
    # function URL on the API function ("function_url"; the REST API stays, unused).
    front_door: str = "rest"

    @classmethod
    def from_config(cls, stage_config: dict[str, Any]) -> StageSettings:
        raw = dict(stage_config.get(SETTINGS_KEY) or {})
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{SETTINGS_KEY}: unknown settings {sorted(unknown)}")
        for key in ("api_throttle", "claim_work_throttle"):
            if key in raw:
                raw[key] = Throttle(**raw[key])
        settings = cls(**raw)
        settings.api_throttle.check("api_throttle")
        settings.claim_work_throttle.check("claim_work_throttle")
        if settings.claim_work_throttle.rate_limit > settings.api_throttle.rate_limit:
            raise ValueError("claim_work_throttle may not allow more than api_throttle")
        if not 1 <= settings.stream_parallelization <= 10:
            raise ValueError("stream_parallelization must be 1 to 10")
        if settings.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(f"log_retention_days must be one of {LOG_RETENTION_DAYS}")
        if settings.public_root_url and not re.fullmatch(PUBLIC_ROOT_URL_PATTERN, settings.public_root_url):
            raise ValueError("public_root_url: an http(s) URL without a trailing slash")
        if settings.front_door not in FRONT_DOORS:
            raise ValueError(f"front_door must be one of {FRONT_DOORS}")
        return settings

    def to_config(self) -> dict[str, Any]:
        return asdict(self)


PUBLIC_ROOT_URL_PATTERN = "^(https?://[^/]+(/.*[^/])?)?$"
FRONT_DOOR_REST = "rest"
FRONT_DOOR_FUNCTION_URL = "function_url"
FRONT_DOORS = (FRONT_DOOR_REST, FRONT_DOOR_FUNCTION_URL)
# The function URL on the API function (front_door "function_url"): public (AuthType NONE: the app
# checks Hawk itself, as behind the REST API), answers buffered (a response is one payload, 6 MB at
# most), no CORS configuration (the app answers preflights as the REST API does:
# handlers/function_url.py). Since October 2025 a new function URL needs both permissions below
# for principal `*` (AWS's developer guide, "Control access to Lambda function URLs").
FUNCTION_URL_ID = "APIHandlerFunctionUrl"
FUNCTION_URL_CONFIG = {"AuthType": "NONE", "InvokeMode": "BUFFERED"}
FUNCTION_URL_PERMISSIONS: tuple[dict[str, Any], ...] = (
    {
        "StatementId": "taskqueue-function-url",
        "Action": "lambda:InvokeFunctionUrl",
        "Principal": "*",
        "FunctionUrlAuthType": "NONE",
    },
    {
        "StatementId": "taskqueue-function-url-invoke",
        "Action": "lambda:InvokeFunction",
        "Principal": "*",
        "InvokedViaFunctionUrl": True,
    },
)
# What CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


def stage_settings(stage: str, config_from_disk: dict[str, Any] | None = None) -> StageSettings:
    disk = load_chalice_config() if config_from_disk is None else config_from_disk
    return StageSettings.from_config(disk.get("stages", {}).get(stage, {}))


def stream_event_settings(settings: StageSettings) -> dict[str, Any]:
    """The tasks stream's event source settings Chalice has no options for, in the spelling both
    SAM's DynamoDB event and Lambda's UpdateEventSourceMapping use (the destination aside)."""
    return {
        "FunctionResponseTypes": STREAM_RESPONSE_TYPES,
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": STREAM_MAX_RETRIES,
        "MaximumRecordAgeInSeconds": STREAM_MAX_RECORD_AGE,
        "ParallelizationFactor": settings.stream_parallelization,
    }


def api_method_settings(settings: StageSettings) -> list[dict[str, Any]]:
    """The REST API stage's throttling: every method, and claimWork's long polls on their own."""
    return [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": settings.api_throttle.rate_limit,
            "ThrottlingBurstLimit": settings.api_throttle.burst_limit,
        },
        {
            "ResourcePath": "/" + CLAIM_WORK_ROUTE.replace("/", "~1"),  # API Gateway's spelling of a path
            "HttpMethod": "POST",
            "ThrottlingRateLimit": settings.claim_work_throttle.rate_limit,
            "ThrottlingBurstLimit": settings.claim_work_throttle.burst_limit,
        },
    ]


def table_logical_id(table_name: str, names: StageNames) -> str:
    if table_name == names.tasks_table:
        return TASKS_TABLE_ID
    return to_cfn_resource_name(table_name.replace(".", "-")) + "Table"


def table_resource(params: dict[str, Any], ttl_attribute: str | None) -> dict[str, Any]:
    """An AWS::DynamoDB::Table from CreateTable parameters (API spelling → CloudFormation spelling)."""
    unknown = set(params) - _TABLE_KEYS
    if unknown:
        raise ValueError(f"table {params['TableName']}: no CloudFormation mapping for {sorted(unknown)}")
    if params.get("BillingMode") != "PAY_PER_REQUEST":
        raise ValueError(f"table {params['TableName']}: only PAY_PER_REQUEST is supported (idle cost $0)")
    props: dict[str, Any] = {
        "TableName": params["TableName"],
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": params["AttributeDefinitions"],
        "KeySchema": params["KeySchema"],
        # The table is the only truth (invariant 1): make it recoverable.
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
    }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if params.get(key):
            props[key] = params[key]
    stream = params.get("StreamSpecification")
    if stream and stream.get("StreamEnabled"):
        props["StreamSpecification"] = {"StreamViewType": stream["StreamViewType"]}  # CFN has no StreamEnabled
    if ttl_attribute:
        props["TimeToLiveSpecification"] = {"AttributeName": ttl_attribute, "Enabled": True}
    return {
        "Type": "AWS::DynamoDB::Table",
        # Deleting or replacing the stack must never delete the tasks.
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": props,
    }


def dispatch_dlq_resource(names: StageNames) -> dict[str, Any]:
    # Exactly the attributes SqsHintQueues passes when it calls CreateQueue on this name: SQS's
    # CreateQueue on an existing queue fails if the attributes differ (QueueNameExists).
    return {
        "Type": "AWS::SQS::Queue",
        "Properties": {"QueueName": names.dispatch_dlq, "MessageRetentionPeriod": RETENTION},
    }


def release_queue_resources(names: StageNames) -> dict[str, Any]:
    """Where dependency releases too big for one stream invocation continue (services/dependencies.py)."""
    return {
        RELEASE_DLQ_ID: {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": names.release_dlq, "MessageRetentionPeriod": RETENTION},
        },
        RELEASE_QUEUE_ID: {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": names.release_queue,
                "VisibilityTimeout": RELEASE_VISIBILITY,
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [RELEASE_DLQ_ID, "Arn"]}, "maxReceiveCount": 5},
            },
        },
    }


def release_event_override() -> dict[str, Any]:
    """Chalice names the queue by a literal ARN; the same intrinsic with a reference makes
    CloudFormation create the queue first (Chalice's deep merge cannot swap one intrinsic for another)."""
    return {
        "Properties": {
            "Events": {RELEASE_EVENT_ID: {"Properties": {"Queue": {"Fn::Sub": "${" + RELEASE_QUEUE_ID + ".Arn}"}}}}
        }
    }


def event_bus_resource(names: StageNames) -> dict[str, Any]:
    """The bus task events go to; subscribe with rules (e.g. every task-failed of one task group)."""
    return {"Type": "AWS::Events::EventBus", "Properties": {"Name": names.event_bus}}


def artifact_bucket_resources(names: StageNames) -> dict[str, Any]:
    """The bucket of s3 artifacts (its name goes into the environment of the functions that use it).

    Private, `public/` artifacts included: every download URL the API hands out is presigned
    (30 minutes), so Block Public Access stays fully on and no bucket policy grants reads. Whether
    an artifact is public is then a question of scopes at the queue (issue 7: the anonymous role
    holding `queue:get-artifact:public/*`), as in Taskcluster with `signPublicArtifactUrls`.
    Bucket names are global: the stage's prefix + `artifacts` is suffixed with the account and region.
    """
    rules: list[dict[str, Any]] = [
        {
            "Id": "abort-incomplete-uploads",
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
    ]
    if names.artifact_max_days > 0:
        # The backstop behind the sweeper: createArtifact refuses s3 artifacts that would live
        # longer than this after they were first created, so it never deletes a live one.
        rules.append({"Id": "artifact-max-age", "Status": "Enabled", "ExpirationInDays": names.artifact_max_days})
    bucket_arn = {"Fn::GetAtt": [ARTIFACT_BUCKET_ID, "Arn"]}
    return {
        ARTIFACT_BUCKET_ID: {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BucketName": {"Fn::Sub": names.artifact_bucket_base + "-${AWS::AccountId}-${AWS::Region}"},
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
                "LifecycleConfiguration": {"Rules": rules},
                # Browsers (e.g. a web UI) may fetch artifacts from the presigned URLs.
                "CorsConfiguration": {
                    "CorsRules": [{"AllowedMethods": ["GET", "HEAD"], "AllowedOrigins": ["*"], "MaxAge": 3000}]
                },
            },
        },
        ARTIFACT_BUCKET_POLICY_ID: {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": ARTIFACT_BUCKET_ID},
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "DenyInsecureTransport",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": "s3:*",
                            "Resource": [bucket_arn, {"Fn::Sub": "${" + ARTIFACT_BUCKET_ID + ".Arn}/*"}],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        }
                    ],
                },
            },
        },
    }


def root_secret_resource(names: StageNames) -> dict[str, Any]:
    """The root client's credentials: generated by Secrets Manager at deployment, never in the template.

    The API function reads it (to check tokens and issue temporary credentials) and so does the
    provisioner (to derive the launches' registration tokens): its ARN is in their environments,
    and only their policies allow GetSecretValue on it (infra/policies.py). Read it with
    `aws secretsmanager get-secret-value` to get the token. `make deploy` adds a `tokenKey`
    (`infra/deploy.py ensure_token_key`), so that rotating the token keeps stored clients valid.
    """
    return {
        "Type": "AWS::SecretsManager::Secret",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "Name": names.root_secret,
            "Description": "taskqueue's root client (clientId, accessToken): every scope. Rotate by editing it.",
            "GenerateSecretString": {
                "SecretStringTemplate": json.dumps({"clientId": "root"}),
                "GenerateStringKey": "accessToken",
                "PasswordLength": 44,
                "ExcludePunctuation": True,
            },
        },
    }


def public_root_url(names: StageNames, settings: StageSettings | None = None) -> dict[str, Any]:
    """The root URL workers are given: the PublicRootUrl parameter, or else the stage's front door.

    On the REST API: the same URL as Chalice's `EndpointURL` output without its trailing slash (the
    routes are mounted at `/api/queue/v1/...` under the stage's path, as Taskcluster clients expect
    of a root URL). Through a function URL: `https://<url-id>.lambda-url.<region>.on.aws`, its
    `FunctionUrl` without the trailing slash (the routes at `/api/queue/v1/...` under it).
    """
    if settings is not None and settings.front_door == FRONT_DOOR_FUNCTION_URL:
        host = {"Fn::Select": [2, {"Fn::Split": ["/", {"Fn::GetAtt": [FUNCTION_URL_ID, "FunctionUrl"]}]}]}
        door: dict[str, Any] = {"Fn::Join": ["", ["https://", host]]}
    else:
        api_url = (
            f"https://${{{REST_API_ID}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{names.api_gateway_stage}"
        )
        door = {"Fn::Sub": api_url}
    return {"Fn::If": [HAS_PUBLIC_ROOT_URL, {"Ref": PUBLIC_ROOT_URL_PARAM}, door]}


def function_url_resources() -> dict[str, Any]:
    """The function URL on the API function and its public permissions (FUNCTION_URL_*): what
    `make deploy` makes through Lambda's API on the other route (infra/deploy.py `configure_front_door`)."""
    api = function_logical_id(API_HANDLER)
    resources: dict[str, Any] = {
        FUNCTION_URL_ID: {
            "Type": "AWS::Lambda::Url",
            "Properties": {"TargetFunctionArn": {"Fn::GetAtt": [api, "Arn"]}, **FUNCTION_URL_CONFIG},
        }
    }
    for permission in FUNCTION_URL_PERMISSIONS:
        properties = {k: v for k, v in permission.items() if k != "StatementId"}
        resources[to_cfn_resource_name(permission["StatementId"])] = {
            "Type": "AWS::Lambda::Permission",
            "Properties": {"FunctionName": {"Ref": api}, **properties},
        }
    return resources


def worker_instance_profile_resources(names: StageNames) -> dict[str, Any]:
    """The role EC2 workers run with: only what the reference worker calls on AWS in sqs claim mode.

    It finds its task queue's hint queues (ListQueues), receives hints, deletes them and hands
    unclaimed ones back (visibility 0). Everything else goes through the queue's API with the
    credentials registration gives it. The queues' ARN pattern matches the dispatch queues only.
    """
    arn_prefix = "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:"
    hint_queues = {"Fn::Sub": arn_prefix + names.dispatch_queue_pattern}
    return {
        WORKER_ROLE_ID: {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": names.worker_role,
                "Description": "taskqueue's EC2 workers: read and delete hints on the dispatch queues, nothing else.",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ec2.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": "hint-queues",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Sid": "FindHintQueues",
                                    "Effect": "Allow",
                                    "Action": list(WORKER_LIST_ACTIONS),
                                    "Resource": "*",
                                },
                                {
                                    "Sid": "TakeHints",
                                    "Effect": "Allow",
                                    "Action": list(WORKER_QUEUE_ACTIONS),
                                    "Resource": hint_queues,
                                },
                            ],
                        },
                    }
                ],
            },
        },
        WORKER_INSTANCE_PROFILE_ID: {
            "Type": "AWS::IAM::InstanceProfile",
            "Properties": {"InstanceProfileName": names.worker_role, "Roles": [{"Ref": WORKER_ROLE_ID}]},
        },
    }


def stream_failure_queue_resource(names: StageNames) -> dict[str, Any]:
    return {
        "Type": "AWS::SQS::Queue",
        "Properties": {"QueueName": names.stream_failure_queue, "MessageRetentionPeriod": RETENTION},
    }


def _alarm(description: str, namespace: str, metric: str, dimension: dict[str, Any], **props: Any) -> dict[str, Any]:
    actions = {"Fn::If": [HAS_ALARM_TOPIC, [{"Ref": ALARM_TOPIC_PARAM}], {"Ref": "AWS::NoValue"}]}
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "Namespace": namespace,
            "MetricName": metric,
            "Dimensions": [dimension],
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": actions,
            "OKActions": actions,
            **props,
        },
    }


def _queue_depth_alarm(description: str, queue_id: str) -> dict[str, Any]:
    return _alarm(
        description,
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}},
        Statistic="Maximum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=0,
    )


def stream_event_override(table_id: str, settings: StageSettings) -> dict[str, Any]:
    """Settings for the tasks stream's event source that Chalice's decorator cannot express.

    Chalice's merge is a deep merge: these keys are added to, or replace,
    the ones Chalice generated; replacing the placeholder `Stream` string with a GetAtt is safe.
    """
    return {
        "Properties": {
            "Events": {
                STREAM_EVENT_ID: {
                    "Properties": {
                        "Stream": {"Fn::GetAtt": [table_id, "StreamArn"]},
                        **stream_event_settings(settings),
                        "DestinationConfig": {
                            "OnFailure": {"Destination": {"Fn::GetAtt": [STREAM_FAILURE_QUEUE_ID, "Arn"]}}
                        },
                    }
                }
            }
        }
    }


def function_logical_id(handler: str) -> str:
    """The logical id `chalice package` gives a handler's function (the REST API's is `APIHandler`)."""
    return "APIHandler" if handler == API_HANDLER else to_cfn_resource_name(handler)


def _add_environment(resources: dict[str, Any], function_id: str, variables: dict[str, Any]) -> None:
    """Add variables to a function's environment (beside Chalice's, through the deep merge)."""
    function = copy.deepcopy(resources.get(function_id, {}))  # other overrides may share their dicts
    function.setdefault("Properties", {}).setdefault("Environment", {}).setdefault("Variables", {}).update(variables)
    resources[function_id] = function


Tables = Sequence[tuple[dict[str, Any], str | None]]


def base_resources(names: StageNames, tables: Tables, stream_function_name: Any) -> dict[str, Any]:
    """Every resource Chalice cannot create, for either route: the one definition of them.

    `stream_function_name` is what names the tasks stream's function in its alarm: a `Ref` inside
    Chalice's template, the name `chalice deploy` gives it in the base stack.
    """
    resources: dict[str, Any] = {}
    for params, ttl_attribute in tables:
        resources[table_logical_id(params["TableName"], names)] = table_resource(params, ttl_attribute)
    if TASKS_TABLE_ID not in resources:
        raise ValueError(f"all_tables() has no table named {names.tasks_table!r}")
    if "StreamSpecification" not in resources[TASKS_TABLE_ID]["Properties"]:
        raise ValueError("the tasks table has no stream, but the tasks_stream handler reads it")
    resources[DISPATCH_DLQ_ID] = dispatch_dlq_resource(names)
    resources[STREAM_FAILURE_QUEUE_ID] = stream_failure_queue_resource(names)
    resources.update(release_queue_resources(names))
    resources[EVENT_BUS_ID] = event_bus_resource(names)
    resources.update(artifact_bucket_resources(names))
    resources[ROOT_SECRET_ID] = root_secret_resource(names)
    resources.update(worker_instance_profile_resources(names))
    resources["ReleaseDeadLetterAlarm"] = _queue_depth_alarm(
        "A dependency release failed repeatedly; the sweeper re-checks waiting dependents, but look at why.",
        RELEASE_DLQ_ID,
    )
    resources["DispatchDeadLetterAlarm"] = _queue_depth_alarm(
        "Dispatch hints were received too often without being deleted; the sweeper re-hints pending runs, "
        "but something is failing to claim them.",
        DISPATCH_DLQ_ID,
    )
    resources["TasksStreamFailureAlarm"] = _queue_depth_alarm(
        "The tasks stream handler gave up on records (see the failure queue for the shard and sequence numbers).",
        STREAM_FAILURE_QUEUE_ID,
    )
    resources["TasksStreamIteratorAgeAlarm"] = _alarm(
        "The tasks stream handler is falling behind: dispatch hints and events are delayed.",
        "AWS/Lambda",
        "IteratorAge",
        {"Name": "FunctionName", "Value": stream_function_name},
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=5,
        Threshold=STREAM_ITERATOR_AGE_ALARM_MS,
    )
    return resources


def _table_outputs(resources: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{rid}Name": {"Value": {"Ref": rid}} for rid, r in resources.items() if r.get("Type") == "AWS::DynamoDB::Table"
    }


_ALARM_TOPIC_PARAMETER = {
    "Type": "String",
    "Default": "",
    "Description": "SNS topic ARN the alarms notify (empty: alarms only change state).",
}
_HAS_ALARM_TOPIC_CONDITION = {"Fn::Not": [{"Fn::Equals": [{"Ref": ALARM_TOPIC_PARAM}, ""]}]}


def build_template(names: StageNames, tables: Tables, settings: StageSettings | None = None) -> dict[str, Any]:
    """The merge template for one stage: pure, so tests can check it without Chalice or AWS."""
    settings = settings or StageSettings()
    resources = base_resources(names, tables, {"Ref": STREAM_FUNCTION_ID})
    outputs = _table_outputs(resources)
    resources[STREAM_FUNCTION_ID] = stream_event_override(TASKS_TABLE_ID, settings)
    resources[RELEASE_FUNCTION_ID] = release_event_override()
    values = {
        ENV_BUCKET: {"Ref": ARTIFACT_BUCKET_ID},
        ENV_SECRET: {"Ref": ROOT_SECRET_ID},
        ENV_PROFILE: {"Fn::GetAtt": [WORKER_INSTANCE_PROFILE_ID, "Arn"]},
        ENV_ROOT_URL: public_root_url(names, settings),
    }
    for handler, variables in FUNCTION_ENVIRONMENT.items():
        _add_environment(resources, function_logical_id(handler), {v: values[v] for v in variables})
    resources[REST_API_ID] = {"Properties": {"MethodSettings": api_method_settings(settings)}}
    if settings.front_door == FRONT_DOOR_FUNCTION_URL:
        resources.update(function_url_resources())
    for handler in FUNCTIONS:  # Lambda would make them on first use, never expiring
        function_id = function_logical_id(handler)
        resources[f"{function_id}LogGroup"] = {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": {"Fn::Sub": "/aws/lambda/${" + function_id + "}"},
                "RetentionInDays": settings.log_retention_days,
            },
        }
    outputs.update(
        {
            "TasksStreamArn": {"Value": {"Fn::GetAtt": [TASKS_TABLE_ID, "StreamArn"]}},
            "DispatchDeadLetterQueueUrl": {"Value": {"Ref": DISPATCH_DLQ_ID}},
            "TasksStreamFailureQueueUrl": {"Value": {"Ref": STREAM_FAILURE_QUEUE_ID}},
            "ArtifactBucketName": {"Value": {"Ref": ARTIFACT_BUCKET_ID}},
            "WorkerInstanceProfileArn": {"Value": {"Fn::GetAtt": [WORKER_INSTANCE_PROFILE_ID, "Arn"]}},
            "WorkerRootUrl": {"Value": public_root_url(names, settings)},
        }
    )
    if settings.front_door == FRONT_DOOR_FUNCTION_URL:
        outputs["FunctionUrl"] = {"Value": {"Fn::GetAtt": [FUNCTION_URL_ID, "FunctionUrl"]}}
    return {
        "Parameters": {
            ALARM_TOPIC_PARAM: _ALARM_TOPIC_PARAMETER,
            PUBLIC_ROOT_URL_PARAM: {
                "Type": "String",
                "Default": "",
                "AllowedPattern": PUBLIC_ROOT_URL_PATTERN,
                "ConstraintDescription": "an http(s) URL without a trailing slash, or empty",
                "Description": "The API's root URL as workers reach it, e.g. a custom domain "
                "(empty: the stage's front door, its API Gateway or function URL).",
            },
        },
        "Conditions": {
            HAS_ALARM_TOPIC: _HAS_ALARM_TOPIC_CONDITION,
            HAS_PUBLIC_ROOT_URL: {"Fn::Not": [{"Fn::Equals": [{"Ref": PUBLIC_ROOT_URL_PARAM}, ""]}]},
        },
        "Resources": resources,
        "Outputs": outputs,
    }


# The base stack's outputs that `make deploy` hands to Chalice (infra/deploy.py reads them by these keys).
OUT_STREAM_ARN = "TasksStreamArn"
OUT_STREAM_FAILURE_QUEUE_ARN = "TasksStreamFailureQueueArn"
OUT_RELEASE_QUEUE_ARN = "ReleaseQueueArn"
OUT_BUCKET = "ArtifactBucketName"
OUT_SECRET_ARN = "RootSecretArn"
OUT_INSTANCE_PROFILE_ARN = "WorkerInstanceProfileArn"
OUT_WORKER_ROLE_ARN = "WorkerRoleArn"
OUT_EVENT_BUS = "EventBusName"


def build_base_stack(names: StageNames, tables: Tables) -> dict[str, Any]:
    """The stack `make deploy` creates before `chalice deploy`: the same resources as the merge
    template's own (`base_resources`), and as outputs what Chalice's configuration needs."""
    resources = base_resources(names, tables, names.function_name(STREAM_HANDLER))
    outputs = _table_outputs(resources)
    outputs.update(
        {
            OUT_STREAM_ARN: {"Value": {"Fn::GetAtt": [TASKS_TABLE_ID, "StreamArn"]}},
            OUT_STREAM_FAILURE_QUEUE_ARN: {"Value": {"Fn::GetAtt": [STREAM_FAILURE_QUEUE_ID, "Arn"]}},
            OUT_RELEASE_QUEUE_ARN: {"Value": {"Fn::GetAtt": [RELEASE_QUEUE_ID, "Arn"]}},
            OUT_BUCKET: {"Value": {"Ref": ARTIFACT_BUCKET_ID}},
            OUT_SECRET_ARN: {"Value": {"Ref": ROOT_SECRET_ID}},
            OUT_INSTANCE_PROFILE_ARN: {"Value": {"Fn::GetAtt": [WORKER_INSTANCE_PROFILE_ID, "Arn"]}},
            OUT_WORKER_ROLE_ARN: {"Value": {"Fn::GetAtt": [WORKER_ROLE_ID, "Arn"]}},
            OUT_EVENT_BUS: {"Value": {"Ref": EVENT_BUS_ID}},
        }
    )
    return {
        "Description": f"taskqueue stage {names.stage}: what Chalice cannot create (make deploy; infra/template.py)",
        "Parameters": {ALARM_TOPIC_PARAM: _ALARM_TOPIC_PARAMETER},
        "Conditions": {HAS_ALARM_TOPIC: _HAS_ALARM_TOPIC_CONDITION},
        "Resources": resources,
        "Outputs": outputs,
    }


def stage_tables(names: StageNames, region: str) -> Tables:
    settings = Settings(
        tasks_table=names.tasks_table,
        graph_table=names.graph_table,
        artifacts_table=names.artifacts_table,
        auth_table=names.auth_table,
        workers_table=names.workers_table,
        pools_table=names.pools_table,
        region=region,
    )
    return all_tables(settings)


def generate(stage: str, region: str, config_from_disk: dict[str, Any] | None = None) -> dict[str, Any]:
    """The merge template of `chalice package` for a stage of .chalice/config.json."""
    names = stage_names(stage, config_from_disk)
    return build_template(names, stage_tables(names, region), stage_settings(stage, config_from_disk))


def generate_base(stage: str, region: str, config_from_disk: dict[str, Any] | None = None) -> dict[str, Any]:
    """The base stack of `make deploy` for a stage of .chalice/config.json."""
    names = stage_names(stage, config_from_disk)
    return build_base_stack(names, stage_tables(names, region))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.template", description="Write the CloudFormation merge template for chalice package."
    )
    parser.add_argument("--stage", default="dev", help="a stage of .chalice/config.json (default: dev)")
    parser.add_argument("--out", type=Path, help="where to write the template (default: stdout)")
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION)
    parser.add_argument("--base", action="store_true", help="write the base stack of `make deploy` instead")
    args = parser.parse_args(argv)
    try:
        body = (generate_base if args.base else generate)(args.stage, args.region)
    except ValueError as e:
        parser.error(str(e))
    text = json.dumps(body, indent=2, sort_keys=True) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
