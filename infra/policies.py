"""Each Lambda function's own IAM policy, scoped to its stage's resources.

Chalice gives every function the policy file its `iam_policy_file` names
(`.chalice/policies/<stage>/<function>.json`, written from here by `make deploy` and by
`python -m infra.policies`), so the internet-facing API function holds nothing the provisioner
needs, and the reverse:

- only the provisioner launches and terminates instances, and only instances tagged as its own
  (`aws:RequestTag` at launch, `ec2:ResourceTag` at termination: the tags Ec2Provider sets), only
  with IMDSv2 required (`ec2:MetadataHttpTokens`), and only it passes the workers' role, to EC2;
- only the functions given the root client's secret (template.FUNCTION_ENVIRONMENT: the API and
  the provisioner) may read it;
- every ARN names the stage's own resources (`taskqueue-<stage>-…`), never `taskqueue-*`.

Account and region are `*`: the files are the same for every account and region a stage is
deployed to (committed for the stages of .chalice/config.json), and the stage's prefix already
separates its resources from every other stage's. What each function may do is `ACCESS` below;
tests/unit/test_deploy_policies.py checks it against the AWS calls each function's code makes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chalicelib.adapters.ec2_provider import owner_of
from infra.template import (
    API_HANDLER,
    EC2_EVENTS_HANDLER,
    ENV_SECRET,
    FUNCTION_ENVIRONMENT,
    FUNCTIONS,
    PROJECT_DIR,
    PROVISIONER_HANDLER,
    RELEASE_HANDLER,
    STREAM_HANDLER,
    SWEEPER_HANDLER,
    StageNames,
    load_chalice_config,
    stage_names,
)

PARTITION = "aws"
# The tag Ec2Provider puts on every instance and volume a stage launches: `ManagedBy` = the stage's
# queue prefix without its dash (chalicelib/adapters/ec2_provider.py `owner_of`; a test launches
# through it and checks the policy's conditions against the call).
OWNER_TAG_KEY = "ManagedBy"


def owner_tag(names: StageNames) -> tuple[str, str]:
    return OWNER_TAG_KEY, owner_of(names.queue_prefix)


# Workers' instances must use IMDSv2 (session tokens) for their metadata.
IMDS_CONDITION = {"ec2:MetadataHttpTokens": "required"}

# What each function may do, resource by resource: what its code calls, found by driving it
# (tests/unit/test_deploy_policies.py), plus what Lambda does with the function's role for it
# (`PLATFORM`) and the few calls that drive cannot reach (`STATIC_ONLY`, each with its code path).
# Table keys are StageNames fields; "indexes" are the ones it queries (Query only, nothing else).
GET, PUT, UPDATE, DELETE = "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"
QUERY, BATCH_GET, BATCH_WRITE = "dynamodb:Query", "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"
CREATE_QUEUE, QUEUE_URL, QUEUE_ATTRIBUTES = "sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"
SEND, RECEIVE, DELETE_MESSAGE = "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage"

Access = dict[str, Any]
ACCESS: dict[str, Access] = {
    API_HANDLER: {
        "tables": {
            "tasks_table": (BATCH_GET, PUT, UPDATE),
            "graph_table": (BATCH_WRITE, GET, PUT, QUERY, UPDATE),
            "artifacts_table": (GET, PUT, QUERY),
            "auth_table": (DELETE, GET, PUT, QUERY, UPDATE),
            "workers_table": (BATCH_GET, GET, QUERY, UPDATE),
            "pools_table": (GET, PUT, QUERY),
        },
        "indexes": {
            "tasks_table": ("byGroup", "byQueue"),
            "workers_table": ("byKind",),
            "pools_table": ("byKind",),
        },
        # claimWork: finds the task queue's dispatch queues, waits on one (making the default
        # priority's, redriving to the dead-letter queue, if none exists), takes and deletes hints
        # pendingTasks beyond EXACT_COUNT_ENTRIES: SQS's estimate of the hints
        "dispatch_queues": (CREATE_QUEUE, DELETE_MESSAGE, QUEUE_ATTRIBUTES, QUEUE_URL, RECEIVE, SEND),
        "dispatch_dlq": (CREATE_QUEUE, QUEUE_ATTRIBUTES),
        "list_queues": True,
        "events": True,  # task-group events
        "artifacts": ("s3:GetObject", "s3:PutObject"),
    },
    STREAM_HANDLER: {
        "tables": {
            "tasks_table": (BATCH_GET, UPDATE),
            "graph_table": (BATCH_WRITE, DELETE, GET, QUERY),
            "workers_table": (BATCH_GET, UPDATE),
        },
        "dispatch_queues": (CREATE_QUEUE, QUEUE_URL, SEND),  # hints, on queues made on first use
        "dispatch_dlq": (CREATE_QUEUE, QUEUE_ATTRIBUTES),
        "list_queues": True,
        "release_queue": (QUEUE_URL, SEND),  # releases that outlast the invocation
        "events": True,
        "stream": True,
        "stream_failure_queue": (SEND,),
    },
    RELEASE_HANDLER: {
        "tables": {"tasks_table": (BATCH_GET, UPDATE), "graph_table": (BATCH_WRITE, DELETE, QUERY)},
        "release_queue": (DELETE_MESSAGE, QUEUE_ATTRIBUTES, QUEUE_URL, RECEIVE, SEND),
    },
    SWEEPER_HANDLER: {
        "tables": {
            "tasks_table": (BATCH_GET, UPDATE),
            "graph_table": (QUERY,),
            "artifacts_table": (DELETE,),
        },
        "indexes": {"tasks_table": ("byDue",), "artifacts_table": ("byPurge",)},
        "artifacts": ("s3:DeleteObject",),
    },
    PROVISIONER_HANDLER: {
        "tables": {
            "tasks_table": (BATCH_GET,),
            "workers_table": (BATCH_GET,),
            "pools_table": (DELETE, GET, PUT, QUERY, UPDATE),
        },
        "indexes": {"tasks_table": ("byQueue",), "pools_table": ("byKind",)},
        "dispatch_queues": (QUEUE_ATTRIBUTES,),  # pending counts beyond EXACT_COUNT_ENTRIES
        "list_queues": True,  # ... of the task queue's priority queues
        "ec2": True,
    },
    EC2_EVENTS_HANDLER: {
        "tables": {
            "tasks_table": (BATCH_GET, UPDATE),
            "workers_table": (GET,),
            "pools_table": (GET, PUT),
        },
        "indexes": {"tasks_table": ("byQueue",), "pools_table": ("byWorkerId",)},
    },
}

# What Lambda does with a function's role on its behalf: (action, what) per function.
PLATFORM: dict[str, dict[str, str]] = {
    STREAM_HANDLER: {
        "dynamodb:DescribeStream": "the event source mapping reads the tasks table's stream",
        "dynamodb:GetRecords": "the event source mapping reads the tasks table's stream",
        "dynamodb:GetShardIterator": "the event source mapping reads the tasks table's stream",
        "dynamodb:ListStreams": "the event source mapping reads the tasks table's stream",
        SEND: "the mapping's on-failure destination: failed batches' metadata to the failure queue",
    },
    RELEASE_HANDLER: {
        RECEIVE: "the event source mapping polls the release queue",
        DELETE_MESSAGE: "the event source mapping deletes what the function handled",
        QUEUE_ATTRIBUTES: "the event source mapping reads the release queue's attributes",
    },
}
PLATFORM_ALL = {
    "logs:CreateLogGroup": "Lambda writes the function's logs into its own log group",
    "logs:CreateLogStream": "Lambda writes the function's logs into its own log group",
    "logs:PutLogEvents": "Lambda writes the function's logs into its own log group",
}

# Calls the drive cannot make the code reach, and the code path that makes them.
STATIC_ONLY: dict[str, dict[str, str]] = {
    API_HANDLER: {
        SEND: "hint_queues.SqsHintQueues._ring_doorbells: claimWork making a task queue's first queue wakes "
        "claimers of the task queue's other priority queues, if one was made meanwhile",
        "s3:GetObject": "artifacts: download URLs are presigned with the function's role; the client's GET "
        "uses its permission",
        "s3:PutObject": "artifacts: upload URLs are presigned with the function's role; the worker's PUT uses "
        "its permission",
        QUEUE_ATTRIBUTES: "queue.QueueService.pending_count: SQS's estimate when a task queue holds more than "
        "EXACT_COUNT_ENTRIES pending tasks (the drive holds fewer); also the dead-letter queue's redrive",
    },
    PROVISIONER_HANDLER: {
        QUEUE_ATTRIBUTES: "queue.QueueService.pending_count: SQS's estimate when a task queue holds more than "
        "EXACT_COUNT_ENTRIES pending tasks (the drive holds fewer)",
        "sqs:ListQueues": "hint_queues.SqsHintQueues._existing: the priority queues whose estimates "
        "pending_count adds up (as above)",
        GET: "pool_store.DynamoPoolStore.take_lease: a run that finds the lease held reads who holds it (the "
        "drive's runs never overlap)",
    },
    RELEASE_HANDLER: {
        BATCH_WRITE: "graph_store.DynamoGraphStore.satisfy: the edges of a page of several dependents at once "
        "(the drive releases pages of one)",
    },
    EC2_EVENTS_HANDLER: {
        QUERY: "queue_facts.QueueServiceFacts.runs_held_by: a worker with more claims than its recentTasks "
        "keeps and idle slots has the queue's running tasks listed (byQueue; the drive's worker has few)",
    },
}


def _arn(service: str, resource: str, region: str = "*", account: str = "*") -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


def _statement(sid: str, actions: Sequence[str], resources: str | Sequence[str], **extra: Any) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(actions) if len(actions) > 1 else actions[0],
        "Resource": resources if isinstance(resources, str) else list(resources),
        **extra,
    }


def table_arn(names: StageNames, key: str) -> str:
    return _arn("dynamodb", f"table/{getattr(names, key)}")


def queue_arn(name: str) -> str:
    return _arn("sqs", name)


def function_policy(names: StageNames, function: str) -> dict[str, Any]:
    """The IAM policy document of one of the stage's functions."""
    access = ACCESS[function]
    statements: list[dict[str, Any]] = []
    log_group = _arn("logs", f"log-group:/aws/lambda/{names.function_name(function)}")
    statements.append(
        _statement(
            "OwnLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            [log_group, log_group + ":*"],
        )
    )
    for key, actions in access.get("tables", {}).items():
        sid = "".join(part.title() for part in key.split("_"))  # tasks_table -> TasksTable
        statements.append(_statement(sid, actions, table_arn(names, key)))
    for key, indexes in access.get("indexes", {}).items():
        sid = "".join(part.title() for part in key.split("_")) + "Indexes"
        statements.append(_statement(sid, [QUERY], [f"{table_arn(names, key)}/index/{i}" for i in indexes]))
    if access.get("stream"):
        stream = _arn("dynamodb", f"table/{names.tasks_table}/stream/*")
        statements.append(
            _statement(
                "TasksStream", ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"], stream
            )
        )
        statements.append(_statement("ListStreams", ["dynamodb:ListStreams"], "*"))  # no resource-level permissions
    queues = {
        "dispatch_queues": ("DispatchQueues", queue_arn(names.dispatch_queue_pattern)),
        "dispatch_dlq": ("DispatchDeadLetterQueue", queue_arn(names.dispatch_dlq)),
        "release_queue": ("ReleaseQueue", queue_arn(names.release_queue)),
        "stream_failure_queue": ("StreamFailureQueue", queue_arn(names.stream_failure_queue)),
    }
    for key, (sid, arn) in queues.items():
        if access.get(key):
            statements.append(_statement(sid, access[key], arn))
    if access.get("list_queues"):
        statements.append(_statement("ListQueues", ["sqs:ListQueues"], "*"))  # no resource-level permissions
    if access.get("events"):
        statements.append(
            _statement("TaskEvents", ["events:PutEvents"], _arn("events", f"event-bus/{names.event_bus}"))
        )
    if access.get("artifacts"):
        bucket_objects = f"arn:{PARTITION}:s3:::{names.artifact_bucket_base}-*/*"
        statements.append(_statement("ArtifactObjects", access["artifacts"], bucket_objects))
    if ENV_SECRET in FUNCTION_ENVIRONMENT.get(function, ()):  # the functions given the secret's ARN
        # Secrets Manager appends '-' and six random characters to the name.
        secret = _arn("secretsmanager", f"secret:{names.root_secret}-??????")
        statements.append(_statement("RootClientSecret", ["secretsmanager:GetSecretValue"], secret))
    if access.get("ec2"):
        statements.extend(provisioner_ec2_statements(names))
    return {"Version": "2012-10-17", "Statement": statements}


def provisioner_ec2_statements(names: StageNames) -> list[dict[str, Any]]:
    """Launch, observe and end the workers' instances; pass them the workers' role, nothing else."""
    tag_key, tag_value = owner_tag(names)
    tagged_at_launch = {f"aws:RequestTag/{tag_key}": tag_value}
    instance = _arn("ec2", "instance/*")
    volume = _arn("ec2", "volume/*")
    # What an instance is launched from or into: AMIs (public ones have no account), the network,
    # key pairs, launch templates, and the spot request RunInstances makes for spot capacity.
    launched_from = [
        _arn("ec2", "image/*", account=""),
        _arn("ec2", "image/*"),
        _arn("ec2", "subnet/*"),
        _arn("ec2", "network-interface/*"),
        _arn("ec2", "security-group/*"),
        _arn("ec2", "key-pair/*"),
        _arn("ec2", "launch-template/*"),
        _arn("ec2", "spot-instances-request/*"),
        _arn("ec2", "placement-group/*"),
    ]
    return [
        _statement(
            "LaunchOwnWorkersWithImdsV2",
            ["ec2:RunInstances"],
            instance,
            Condition={"StringEquals": {**tagged_at_launch, **IMDS_CONDITION}},
        ),
        _statement(
            "LaunchOwnWorkersVolumes", ["ec2:RunInstances"], volume, Condition={"StringEquals": tagged_at_launch}
        ),
        _statement("LaunchWorkersFrom", ["ec2:RunInstances"], launched_from),
        _statement(
            "TagWorkersAtLaunch",
            ["ec2:CreateTags"],
            [instance, volume],
            Condition={"StringEquals": {"ec2:CreateAction": "RunInstances"}},
        ),
        _statement(
            "TerminateOwnWorkers",
            ["ec2:TerminateInstances"],
            instance,
            Condition={"StringEquals": {f"ec2:ResourceTag/{tag_key}": tag_value}},
        ),
        _statement("ObserveWorkers", ["ec2:DescribeInstances"], "*"),  # no resource-level permissions
        _statement(
            "PassWorkersRole",
            ["iam:PassRole"],
            f"arn:{PARTITION}:iam::*:role/{names.worker_role}",
            Condition={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
    ]


def policy_file(stage: str, function: str) -> str:
    """The function's `iam_policy_file`, relative to .chalice/ as Chalice reads it."""
    return f"policies/{stage}/{function}.json"


def render(policy: dict[str, Any]) -> str:
    return json.dumps(policy, indent=2) + "\n"


def write_policies(
    names: StageNames, project_dir: Path = PROJECT_DIR, functions: Sequence[str] = FUNCTIONS
) -> list[Path]:
    """Write the stage's policy files; returns those whose content changed."""
    changed: list[Path] = []
    for function in functions:
        path = project_dir / ".chalice" / policy_file(names.stage, function)
        text = render(function_policy(names, function))
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.policies", description="Write every stage's per-function IAM policies into .chalice/."
    )
    parser.add_argument("--stage", action="append", help="only this stage (repeatable; default: every stage)")
    args = parser.parse_args(argv)
    stages = args.stage or sorted(load_chalice_config().get("stages", {}))
    for stage in stages:
        for path in write_policies(stage_names(stage)):
            print(f"wrote {path.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
