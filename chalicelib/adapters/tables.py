"""DynamoDB table definitions: the one source for the models, the embedded stack and infra/.

Models are built by a factory so that table names come from Settings, never from import time.

The tasks table: two items per task, so that a transition rewrites only what changes.
  key `def#<taskId>`: the definition, written once by createTask and never changed —
  def           the normalised definition, as JSON text (exact round trip, no Decimal games)
  ttl           as the status's
  key `<taskId>`: the status, small (no definition text: ≈ 0.8 KB with one run, so 1 write unit per
  transition whatever the definition's size) —
  taskQueueId, taskGroupId, schedulerId, projectId, deadline, expires   the definition's fields its
                status shows (domain/model.py STATUS_FIELDS; provisionerId/workerType are
                taskQueueId's halves), and what the guards and indexes need
  runs          the runs, as a list of maps (Taskcluster's run objects)
  state, retriesLeft, priority, version, hintSeq     status; `version` counts writes
  takenUntil    lease of the running run (absent otherwise)
  queueSort     "<state>#<since>" while pending or running: index `byQueue`, key queueShard =
                "<taskQueueId>#<k>" (k: a hash of the taskId, QUEUE_SHARDS of them, so that no one
                key takes a task queue's every write); it carries takenUntil and deadline, so
                counts need no reads of the table
  dueShard/dueAt   next time the sweeper must look (absent once resolved): index `byDue`
  ttl           `expires` in epoch seconds: DynamoDB's TTL garbage-collects expired tasks
  link          names the task's dependency edges (graph_store.py)
  index `byGroup` (taskGroupId, taskId) lists a task group's members (status items only: the
  definition item has no taskGroupId; the key never changes, so the entry is written once).
The stream (NEW_AND_OLD_IMAGES) is the outbox: see services/outbox.py. It reads the status items'
images and the definitions of a batch in one BatchGetItem; the definition items' own records are skipped.

The graph table (key pk + sk, one small item per fact, so nothing grows with a graph's size):
  group#<taskGroupId>        / -              the task group: schedulerId, expires, sealed
  active#<taskGroupId>       / <taskId>       a member not yet resolved for good
  dependents#<requiredId>    / <dependentId>  a dependency edge, kept for listDependentTasks
  requires#<dependentId>     / <requiredId>   an edge not yet satisfied; deleted when it is

The artifacts table (key taskId + runName = "<runId>/<name>": a run's artifacts are one sorted
range of its task's partition, so listArtifacts is one Query):
  storageType, contentType, contentLength, expires, created    what the API shows and checks
  bucket                   s3 artifacts: the bucket of the object at key <taskId>/<runId>/<name>
                           (the name's segments percent-encoded: domain/artifacts.py)
  url | artifact | reason, message   reference, link and error details
  purgeShard/purgeAt       when the sweeper may delete the row (and its object): index `byPurge`
  ttl                      DynamoDB's TTL as a backstop behind the sweeper (s3 rows a week later,
                           so the sweeper deletes the object first)

The workers table (key pk = taskQueueId + sk): the queue's view of task queues and workers
(Taskcluster's worker-metadata endpoints; domain/worker_info.py). Written by the stream (claims,
reclaims, new tasks) and by quarantineWorker/declareWorker, always with UpdateItem on these
attributes only, guarded by `version`:
  <taskQueueId> / #queue                           a task queue: expires, lastDateActive, and
                                                   kind = "queue": index `byKind` (kind, pk) lists
                                                   the task queues (and so the provisioners and
                                                   worker types) with one Query
  <taskQueueId> / worker/<workerGroup>/<workerId>  a worker: firstClaim, lastDateActive, expires,
                                                   recentTasks (JSON, ≤ 20, oldest first, with the
                                                   claim time), quarantineUntil, quarantineDetails (JSON)
  version      counts writes; ttl  epoch seconds of expires (a worker: or of its quarantine's end)

The pools table (key workerPoolId + sk): worker-manager's worker pools, their workers and errors
(Taskcluster's worker-manager; domain/pools.py). A pool's items share its
partition, so a pool and its workers are read with Queries of one partition:
  <workerPoolId> / #pool                           the pool: providerId, previousProviderIds (JSON),
                                                   description, owner, emailOnError, config (JSON
                                                   text, as the user wrote it), created,
                                                   lastModified; and kind = "pool": index `byKind`
                                                   (kind, workerPoolId) lists the pools with one Query
  <workerPoolId> / worker/<workerGroup>/<workerId>  a worker: every PoolWorker field (providerData as
                                                   JSON text); `workerId` keys the sparse index
                                                   `byWorkerId` (keys only), as EC2's events name
                                                   only the instance; ttl = its expires
  <workerPoolId> / error/<reported>/<errorId>      an error: errorKind, title, description, extra
                                                   (JSON), launchConfigId; ttl = reported + 7 days
  #provisioner / #lease                            the provisioner's lease (one run at a time):
                                                   holder, leaseUntil, resumeAt (where the next
                                                   run starts); no pool id begins with '#'
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from ..config import Settings

TASKS_STREAM_VIEW = "NEW_AND_OLD_IMAGES"


class RunAttribute(MapAttribute[str, Any]):
    runId = NumberAttribute()
    state = UnicodeAttribute()
    reasonCreated = UnicodeAttribute()
    reasonResolved = UnicodeAttribute(null=True)
    workerGroup = UnicodeAttribute(null=True)
    workerId = UnicodeAttribute(null=True)
    takenUntil = UnicodeAttribute(null=True)
    scheduled = UnicodeAttribute()
    started = UnicodeAttribute(null=True)
    resolved = UnicodeAttribute(null=True)


class RunList(ListAttribute[RunAttribute]):
    """`runs`: a list of RunAttribute maps, written and addressed in expressions as pynamodb's
    ListAttribute does, but read as plain dicts (RunAttribute's names, deserialised by its
    attributes): pynamodb's own read copied every RunAttribute attribute object, deeply, for
    each list it read, on every task read or written (most of a task's deserialisation)."""

    _fields = tuple(RunAttribute.get_attributes().items())

    def deserialize(self, values: Any) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        for value in values:
            stored = value["M"]
            runs.append(
                {
                    name: attr.deserialize(attr.get_value(stored[attr.attr_name]))
                    for name, attr in self._fields
                    if attr.attr_name in stored and "NULL" not in stored[attr.attr_name]
                }
            )
        return runs


class ByQueueIndex(GlobalSecondaryIndex["TaskRow"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "byQueue"
        projection = IncludeProjection(["takenUntil", "deadline"])

    queueShard = UnicodeAttribute(hash_key=True)
    queueSort = UnicodeAttribute(range_key=True)


class ByDueIndex(GlobalSecondaryIndex["TaskRow"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "byDue"
        projection = KeysOnlyProjection()

    dueShard = UnicodeAttribute(hash_key=True)
    dueAt = UnicodeAttribute(range_key=True)


class ByGroupIndex(GlobalSecondaryIndex["TaskRow"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "byGroup"
        projection = KeysOnlyProjection()

    taskGroupId = UnicodeAttribute(hash_key=True)
    taskId = UnicodeAttribute(range_key=True)


class TaskRow(Model):
    """Abstract row; use `task_model(...)` for a model bound to a table."""

    class Meta:
        table_name = "unbound"
        billing_mode = "PAY_PER_REQUEST"
        stream_view_type = TASKS_STREAM_VIEW

    taskId = UnicodeAttribute(hash_key=True)  # "<taskId>" (status) or "def#<taskId>" (definition)
    definition = UnicodeAttribute(attr_name="def", null=True)  # definition items only
    taskQueueId = UnicodeAttribute()
    taskGroupId = UnicodeAttribute()
    schedulerId = UnicodeAttribute()
    projectId = UnicodeAttribute()
    priority = UnicodeAttribute()
    deadline = UnicodeAttribute()
    expires = UnicodeAttribute()
    ttl = NumberAttribute()
    retriesLeft = NumberAttribute()
    runs = RunList(of=RunAttribute, default=list)
    state = UnicodeAttribute()
    version = NumberAttribute(default=0)
    hintSeq = NumberAttribute(default=0)
    takenUntil = UnicodeAttribute(null=True)
    queueSort = UnicodeAttribute(null=True)
    queueShard = UnicodeAttribute(null=True)  # status items: "<taskQueueId>#<k>", never changes
    dueShard = UnicodeAttribute()
    dueAt = UnicodeAttribute(null=True)
    link = UnicodeAttribute(null=True)  # names the task's dependency edges (graph_store.py)

    byQueue = ByQueueIndex()
    byDue = ByDueIndex()
    byGroup = ByGroupIndex()


class DefinitionRow(Model):
    """A task's definition item in the tasks table (see TaskRow); use `definition_model(...)`."""

    class Meta:
        table_name = "unbound"
        billing_mode = "PAY_PER_REQUEST"

    taskId = UnicodeAttribute(hash_key=True)  # "def#<taskId>"
    definition = UnicodeAttribute(attr_name="def")
    ttl = NumberAttribute()


class GraphRow(Model):
    """Abstract row of the graph table; use `graph_model(...)`."""

    class Meta:
        table_name = "unbound"
        billing_mode = "PAY_PER_REQUEST"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    ttl = NumberAttribute(null=True)
    # group#: the group's record
    schedulerId = UnicodeAttribute(null=True)
    expires = UnicodeAttribute(null=True)
    sealed = UnicodeAttribute(null=True)
    # dependents#: the dependent's `requires`, and how many distinct dependencies it has (release
    # need not ask whether anything else is left of a dependent with one)
    requires = UnicodeAttribute(null=True)
    dependencies = NumberAttribute(null=True)


class ByPurgeIndex(GlobalSecondaryIndex["ArtifactRow"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "byPurge"
        projection = IncludeProjection(["bucket"])

    purgeShard = UnicodeAttribute(hash_key=True)
    purgeAt = UnicodeAttribute(range_key=True)


class ArtifactRow(Model):
    """Abstract row of the artifacts table; use `artifact_model(...)`."""

    class Meta:
        table_name = "unbound"
        billing_mode = "PAY_PER_REQUEST"

    taskId = UnicodeAttribute(hash_key=True)
    runName = UnicodeAttribute(range_key=True)
    storageType = UnicodeAttribute()
    contentType = UnicodeAttribute()
    contentLength = NumberAttribute(null=True)
    expires = UnicodeAttribute()
    created = UnicodeAttribute()
    purgeShard = UnicodeAttribute()
    purgeAt = UnicodeAttribute()
    ttl = NumberAttribute(null=True)
    bucket = UnicodeAttribute(null=True)
    url = UnicodeAttribute(null=True)
    artifact = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    message = UnicodeAttribute(null=True)

    byPurge = ByPurgeIndex()


class AuthRow(Model):
    """Abstract row of the auth table (clients and roles); use `auth_model(...)`.

    kind "client": a client; its access token is not stored — `seed` derives it (domain/credentials.py).
    kind "role": a role. One partition per kind keeps listing (and loading every role to expand
    scopes) a single Query; the service caches both, so lookups stay far below a partition's limits.
    """

    class Meta:
        table_name = "unbound"
        billing_mode = "PAY_PER_REQUEST"

    kind = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)
    description = UnicodeAttribute()
    scopes = UnicodeAttribute()  # JSON list
    created = UnicodeAttribute()
    lastModified = UnicodeAttribute()
    # clients only
    expires = UnicodeAttribute(null=True)
    seed = UnicodeAttribute(null=True)
    lastRotated = UnicodeAttribute(null=True)
    disabled = BooleanAttribute(null=True)
    deleteOnExpiration = BooleanAttribute(null=True)
    ttl = NumberAttribute(null=True)  # set when deleteOnExpiration: DynamoDB removes the row after expiry


class ByKindIndex(GlobalSecondaryIndex["WorkerInfoRow"]):  # type: ignore[no-untyped-call]
    """Sparse: only task-queue rows have `kind`, so the index holds the task queues, by id."""

    class Meta:
        index_name = "byKind"
        projection = AllProjection()

    kind = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


class WorkerInfoRow(Model):
    """Abstract row of the workers table (task queues and workers); use `workers_model(...)`."""

    class Meta:
        table_name = "unbound"
        billing_mode = "PAY_PER_REQUEST"

    pk = UnicodeAttribute(hash_key=True)  # the taskQueueId
    sk = UnicodeAttribute(range_key=True)  # "#queue", or "worker/<workerGroup>/<workerId>"
    kind = UnicodeAttribute(null=True)  # "queue" on task-queue rows only
    version = NumberAttribute(default=0)
    expires = UnicodeAttribute(null=True)
    lastDateActive = UnicodeAttribute(null=True)
    ttl = NumberAttribute(null=True)
    # workers only
    firstClaim = UnicodeAttribute(null=True)
    recentTasks = UnicodeAttribute(null=True)  # JSON list of {taskId, runId, claimed}
    quarantineUntil = UnicodeAttribute(null=True)
    quarantineDetails = UnicodeAttribute(null=True)  # JSON list of Taskcluster's quarantine records

    byKind = ByKindIndex()


class PoolsByKindIndex(GlobalSecondaryIndex["PoolRow"]):  # type: ignore[no-untyped-call]
    """Sparse: only pool items have `kind`, so the index holds the pools, by id."""

    class Meta:
        index_name = "byKind"
        projection = AllProjection()

    kind = UnicodeAttribute(hash_key=True)
    workerPoolId = UnicodeAttribute(range_key=True)


class PoolsByWorkerIdIndex(GlobalSecondaryIndex["PoolRow"]):  # type: ignore[no-untyped-call]
    """Sparse: only worker items have `workerId`. Keys only: the item is then read consistently."""

    class Meta:
        index_name = "byWorkerId"
        projection = KeysOnlyProjection()

    workerId = UnicodeAttribute(hash_key=True)


class PoolRow(Model):
    """Abstract row of the pools table (pools, their workers and errors); use `pools_model(...)`."""

    class Meta:
        table_name = "unbound"
        billing_mode = "PAY_PER_REQUEST"

    workerPoolId = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)  # "#pool", "worker/<group>/<id>" or "error/<reported>/<errorId>"
    kind = UnicodeAttribute(null=True)  # "pool" on pool items only
    ttl = NumberAttribute(null=True)
    created = UnicodeAttribute(null=True)
    lastModified = UnicodeAttribute(null=True)
    providerId = UnicodeAttribute(null=True)
    launchConfigId = UnicodeAttribute(null=True)
    # pools
    previousProviderIds = UnicodeAttribute(null=True)  # JSON list
    description = UnicodeAttribute(null=True)
    owner = UnicodeAttribute(null=True)
    emailOnError = BooleanAttribute(null=True)
    config = UnicodeAttribute(null=True)  # JSON, as the user wrote it
    # workers
    workerGroup = UnicodeAttribute(null=True)
    workerId = UnicodeAttribute(null=True)
    state = UnicodeAttribute(null=True)
    capacity = NumberAttribute(null=True)
    lastChecked = UnicodeAttribute(null=True)
    expires = UnicodeAttribute(null=True)
    terminateAfter = UnicodeAttribute(null=True)
    providerData = UnicodeAttribute(null=True)  # JSON
    registrationHash = UnicodeAttribute(null=True)
    secretHash = UnicodeAttribute(null=True)
    registered = UnicodeAttribute(null=True)
    shouldTerminate = UnicodeAttribute(null=True)
    # errors
    errorId = UnicodeAttribute(null=True)
    reported = UnicodeAttribute(null=True)
    errorKind = UnicodeAttribute(null=True)  # `kind` is the index key: an error's kind has its own name
    title = UnicodeAttribute(null=True)
    extra = UnicodeAttribute(null=True)  # JSON
    # the provisioner's lease
    holder = UnicodeAttribute(null=True)
    leaseUntil = NumberAttribute(null=True)  # epoch milliseconds
    resumeAt = UnicodeAttribute(null=True)  # the pool the next run starts with

    byKind = PoolsByKindIndex()
    byWorkerId = PoolsByWorkerIdIndex()


def _bind(base: type[Model], table_name: str, region: str, host: str | None) -> Any:
    """A subclass of `base` bound to `table_name` (and an endpoint, for the embedded stack)."""
    settings = {
        "table_name": table_name,
        "region": region,
        "host": host,
        # Retries and timeouts must fit inside API Gateway's 29 s.
        "max_retry_attempts": 3,
        "connect_timeout_seconds": 3,
        "read_timeout_seconds": 25,
        "max_pool_connections": 50,
    }
    meta = type("Meta", (base.Meta,), settings)  # type: ignore[attr-defined,arg-type]
    return type(f"{base.__name__}Bound", (base,), {"Meta": meta, "__module__": __name__})


def task_model(table_name: str, region: str, host: str | None = None) -> type[TaskRow]:
    model: type[TaskRow] = _bind(TaskRow, table_name, region, host)
    return model


def definition_model(table_name: str, region: str, host: str | None = None) -> type[DefinitionRow]:
    """The definition items of the tasks table `table_name`."""
    model: type[DefinitionRow] = _bind(DefinitionRow, table_name, region, host)
    return model


def graph_model(table_name: str, region: str, host: str | None = None) -> type[GraphRow]:
    model: type[GraphRow] = _bind(GraphRow, table_name, region, host)
    return model


def artifact_model(table_name: str, region: str, host: str | None = None) -> type[ArtifactRow]:
    model: type[ArtifactRow] = _bind(ArtifactRow, table_name, region, host)
    return model


def auth_model(table_name: str, region: str, host: str | None = None) -> type[AuthRow]:
    model: type[AuthRow] = _bind(AuthRow, table_name, region, host)
    return model


def workers_model(table_name: str, region: str, host: str | None = None) -> type[WorkerInfoRow]:
    model: type[WorkerInfoRow] = _bind(WorkerInfoRow, table_name, region, host)
    return model


def pools_model(table_name: str, region: str, host: str | None = None) -> type[PoolRow]:
    model: type[PoolRow] = _bind(PoolRow, table_name, region, host)
    return model


def _key_schema(keys: Any) -> list[dict[str, str]]:
    return sorted(keys, key=lambda k: k["KeyType"] != "HASH")  # DynamoDB wants HASH first


def create_table_params(model: type[Model], ttl_attribute: str | None = None) -> dict[str, Any]:
    """CreateTable parameters derived from a pynamodb model, as DynamoDB's API spells them.

    infra/ and the embedded stack both use this, so neither can drift from the models.
    """
    schema = model._get_schema()
    params: dict[str, Any] = {
        "TableName": model.Meta.table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": sorted(schema["attribute_definitions"], key=lambda a: a["AttributeName"]),
        "KeySchema": _key_schema(schema["key_schema"]),
    }
    if schema["global_secondary_indexes"]:
        params["GlobalSecondaryIndexes"] = [
            {"IndexName": g["index_name"], "KeySchema": _key_schema(g["key_schema"]), "Projection": g["projection"]}
            for g in sorted(schema["global_secondary_indexes"], key=lambda g: g["index_name"])
        ]
    view = getattr(model.Meta, "stream_view_type", None)
    if view:
        params["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    return params


def all_tables(settings: Settings, host: str | None = None) -> list[tuple[dict[str, Any], str | None]]:
    """Every table of the deployment: (CreateTable parameters, TTL attribute)."""
    return [
        (create_table_params(task_model(settings.tasks_table, settings.region, host)), "ttl"),
        (create_table_params(graph_model(settings.graph_table, settings.region, host)), "ttl"),
        (create_table_params(artifact_model(settings.artifacts_table, settings.region, host)), "ttl"),
        (create_table_params(auth_model(settings.auth_table, settings.region, host)), "ttl"),
        (create_table_params(workers_model(settings.workers_table, settings.region, host)), "ttl"),
        (create_table_params(pools_model(settings.pools_table, settings.region, host)), "ttl"),
    ]
