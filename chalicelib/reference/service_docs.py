"""What the code cannot say about an endpoint by itself: its title, description, category, stability,
output schema and query parameters — for endpoints whose handlers do not say it yet.

An endpoint is documented in exactly one place: its handler's docstring (first line: the title,
the rest: the description) plus `Api.route(..., output=, query=, stability=, category=)`, or an
entry here. A test fails when both or neither do, or when an entry here names no endpoint, so a
new endpoint is documented where it is written (its docstring and route arguments), and an entry
here can move into a docstring once that handler's file is free.

Wording follows Taskcluster's reference where the behaviour is the same, and says so where ours
differs (reference/taskcluster-queue-v1.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Doc:
    title: str
    description: str
    category: str
    stability: str = "stable"
    output: str | None = None
    query: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    title: str
    description: str
    categories: tuple[str, ...]  # the order entries are listed in


PAGED = ("continuationToken", "limit")
PAGING = (
    " Results come in pages of at most `limit` (default and maximum 1000); a `continuationToken` in"
    " the answer means more may follow: call again with it until none is returned."
)

SERVICES: dict[str, Service] = {
    "queue": Service(
        title="Queue",
        description=(
            "The queue service is responsible for accepting tasks and tracking their state as they are"
            " executed by workers, in order to ensure they are eventually resolved.\n\n"
            "This is Taskcluster's Queue v1 on AWS: the same paths, bodies, scopes and errors, so the"
            " official clients work unchanged. Task events are published on EventBridge instead of Pulse."
        ),
        categories=(
            "Monitoring",
            "Tasks",
            "Task Groups",
            "Worker Interface",
            "Task Queues",
            "Worker Metadata",
            "Artifacts",
        ),
    ),
    "auth": Service(
        title="Authentication API",
        description=(
            "The subset of Taskcluster's auth service this deployment needs: clients (with their access"
            " tokens), roles, and scope expansion. Requests to every service are authenticated with Hawk"
            " against these clients, in the service itself (no call to a separate auth service)."
        ),
        categories=("Monitoring", "Clients", "Roles", "Scopes"),
    ),
    "worker-manager": Service(
        title="Worker Manager Service",
        description=(
            "This service manages workers, including provisioning for dynamic worker pools.\n\n"
            "This is Taskcluster's worker-manager on AWS: worker pools are defined with the same paths,"
            " bodies and scopes, so `taskcluster.WorkerManager` works unchanged. A pool's id is the id of"
            " the task queue it serves; its workers are EC2 (spot) instances (provider `aws`), or"
            " processes of this machine on the embedded stack (provider `local`)."
        ),
        categories=("Monitoring", "Worker Pools", "Workers"),
    ),
}

PING = Doc(
    "Ping Server",
    "Respond without doing anything. This endpoint is used to check that the service is up.",
    "Monitoring",
)

DOCS: dict[tuple[str, str], Doc] = {
    # --- queue: monitoring ------------------------------------------------------------------------
    ("queue", "ping"): PING,
    ("queue", "lbheartbeat"): Doc(
        "Load Balancer Heartbeat", "Respond without doing anything: the service is reachable.", "Monitoring"
    ),
    ("queue", "heartbeat"): Doc(
        "Heartbeat", "Respond without doing anything (Taskcluster's `__heartbeat__` stub).", "Monitoring"
    ),
    ("queue", "version"): Doc(
        "Taskcluster Version",
        "Respond with the Dockerflow version object: `version`, `commit`, `source`, `build`.",
        "Monitoring",
    ),
    # --- queue: tasks ---------------------------------------------------------------------------
    ("queue", "task"): Doc(
        "Get Task Definition",
        "The task definition, as created, with every default filled in (both `taskQueueId` and"
        " `provisionerId`/`workerType`, `projectId`, …) and the task's current priority.",
        "Tasks",
        output="task",
    ),
    ("queue", "status"): Doc(
        "Get task status",
        "The task's status: its state (derived from its latest run, or `unscheduled`), retries left and runs.",
        "Tasks",
        output="task-status-response",
    ),
    ("queue", "tasks"): Doc(
        "Get task definitions",
        "The definitions of the tasks whose ids are given. Tasks that do not exist are left out; the order"
        " is not guaranteed. The caller needs `queue:get-task:<taskId>` for every id asked for." + PAGING,
        "Tasks",
        stability="experimental",
        output="tasks-response",
        query=PAGED,
    ),
    ("queue", "statuses"): Doc(
        "Get task statuses",
        "The statuses of the tasks whose ids are given. Tasks that do not exist are left out." + PAGING,
        "Tasks",
        stability="experimental",
        output="tasks-statuses-response",
        query=PAGED,
    ),
    ("queue", "createTask"): Doc(
        "Create New Task",
        "Create a task from its definition; `taskId` is chosen by the caller (a slugid).\n\n"
        "Without dependencies the task is pending at once (run 0, `reasonCreated: scheduled`); with"
        " dependencies it stays `unscheduled` until they resolve as its `requires` says, its deadline"
        " passes, or `scheduleTask` is called. Every dependency must exist and outlive the task's"
        " deadline (else 400).\n\n"
        "Idempotent: the same taskId with the same definition answers with the current status; a"
        " different definition is a 409. `created` and `deadline` may be at most 15 minutes off the"
        " queue's clock; `deadline` at most `maxTaskDeadlineDays` (5) days ahead; `expires` defaults to"
        " one year after the deadline.\n\n"
        "Scopes: every scope in `scopes`, `queue:route:<route>` for every route,"
        " `queue:create-task:project:<projectId>`, `queue:scheduler-id:<schedulerId>`, and"
        " `queue:create-task:<priority>:<taskQueueId>` for the task's priority or a higher one.",
        "Tasks",
        output="task-status-response",
    ),
    ("queue", "scheduleTask"): Doc(
        "Schedule Defined Task",
        "Make an `unscheduled` task pending now, whatever its dependencies. A task that already has"
        " runs is left as it is (idempotent). 409 after the task's deadline.",
        "Tasks",
        output="task-status-response",
    ),
    ("queue", "rerunTask"): Doc(
        "Rerun a Resolved Task",
        "Add a new pending run (`reasonCreated: rerun`) to a resolved task, resetting its retries. A"
        " task still pending or running is left as it is. 409 after the deadline or past 50 runs.",
        "Tasks",
        output="task-status-response",
    ),
    ("queue", "cancelTask"): Doc(
        "Cancel Task",
        "Resolve the task's unfinished run as `exception`/`canceled` (an unscheduled task gets one such"
        " run). A resolved task is left as it is. The worker running it learns from its next reclaim or"
        " report (409). 409 after the deadline.",
        "Tasks",
        output="task-status-response",
    ),
    ("queue", "changeTaskPriority"): Doc(
        "Change Task Priority",
        "Give an unresolved task a new priority; a pending run is announced again on the hint queue of"
        " its new priority. 409 for a task ever resolved, or one that already has that priority.",
        "Tasks",
        output="task-status-response",
    ),
    # --- queue: task groups ---------------------------------------------------------------------
    ("queue", "getTaskGroup"): Doc(
        "Get Task Group",
        "The task group: its `schedulerId`, when it expires, and when it was sealed, if it was.",
        "Task Groups",
        output="task-group-response",
    ),
    ("queue", "listTaskGroup"): Doc(
        "List Task Group",
        "The group and a page of its member tasks, each with its definition and status." + PAGING,
        "Task Groups",
        output="list-task-group-response",
        query=PAGED,
    ),
    ("queue", "sealTaskGroup"): Doc(
        "Seal Task Group",
        "Refuse new tasks in the group from now on (createTask answers 409). Sealing is advisory:"
        " a createTask racing it may still get in. Idempotent.",
        "Task Groups",
        stability="experimental",
        output="task-group-response",
    ),
    ("queue", "cancelTaskGroup"): Doc(
        "Cancel Task Group",
        "Cancel every unresolved task of the group, as `cancelTask` does. Answers with the group's size,"
        " how many tasks this call cancelled, and their ids.",
        "Task Groups",
        stability="experimental",
    ),
    ("queue", "changeTaskGroupPriority"): Doc(
        "Change Task Group Priority",
        "Give every unresolved task of the group a new priority, as `changeTaskPriority` does, and"
        " publish one `task-group-priority-changed` event. Answers with the number of tasks affected"
        " and their ids.",
        "Task Groups",
        stability="experimental",
    ),
    ("queue", "listDependentTasks"): Doc(
        "List Dependent Tasks",
        "A page of the tasks that list `taskId` among their dependencies (satisfied or not), each with"
        " its definition and status. 404 when `taskId` does not exist." + PAGING,
        "Tasks",
        output="list-dependent-tasks-response",
        query=PAGED,
    ),
    # --- queue: worker interface ----------------------------------------------------------------
    ("queue", "claimWork"): Doc(
        "Claim Work",
        "Claim up to `tasks` pending runs from the task queue, highest priority first, waiting up to"
        " 20 seconds (less, if the request's own time runs short) for one to arrive. Each claim is the"
        " run's definition, status, lease (`takenUntil`, 20 minutes) and, when the deployment has a root"
        " client, temporary credentials for that run only. An empty list means: call again. A run is"
        " never claimed unless it is returned.",
        "Worker Interface",
        output="claim-work-response",
    ),
    ("queue", "claimTask"): Doc(
        "Claim Task",
        "Claim one given pending run (the run must be the latest and pending). Repeating the claim as"
        " the same worker succeeds; any other claim of a run no longer pending is a 409.",
        "Worker Interface",
        stability="deprecated",
        output="task-claim-response",
    ),
    ("queue", "reclaimTask"): Doc(
        "Reclaim task",
        "Extend the lease of a running run by the claim timeout, and return fresh credentials. A 409"
        " tells the worker to stop: the run was resolved (cancelled, deadline, claim expired).",
        "Worker Interface",
        output="task-reclaim-response",
    ),
    ("queue", "reportCompleted"): Doc(
        "Report Run Completed",
        "Resolve the running run as `completed`; dependents waiting on it may become pending."
        " Idempotent; a run in any other state is a 409.",
        "Worker Interface",
        output="task-status-response",
    ),
    ("queue", "reportFailed"): Doc(
        "Report Run Failed",
        "Resolve the running run as `failed`: the task ran and its commands failed. No automatic retry."
        " Idempotent; a run in any other state is a 409.",
        "Worker Interface",
        output="task-status-response",
    ),
    ("queue", "reportException"): Doc(
        "Report Task Exception",
        "Resolve the running run as `exception` with `reason`. `worker-shutdown` and `intermittent-task`"
        " add a new pending run (`retry` / `task-retry`) while retries are left; other reasons do not."
        " Idempotent for the same reason.",
        "Worker Interface",
        output="task-status-response",
    ),
    # --- queue: task queues ---------------------------------------------------------------------
    ("queue", "pendingTasks"): Doc(
        "Get Number of Pending Tasks",
        "How many tasks are pending on the task queue, counted on the tasks table's `byQueue` index"
        " (eventually consistent: a task created a moment ago may not count yet).",
        "Task Queues",
        stability="deprecated",
        output="pending-tasks-response",
    ),
    ("queue", "taskQueueCounts"): Doc(
        "Get Number of Pending and Claimed Tasks",
        "How many tasks are pending and how many are claimed (running, lease not expired) on the task queue.",
        "Task Queues",
        output="task-queue-counts-response",
    ),
    ("queue", "listPendingTasks"): Doc(
        "List Pending Tasks",
        "A page of the task queue's pending tasks, oldest first, with when each became pending." + PAGING,
        "Task Queues",
        stability="experimental",
        output="list-pending-tasks-response",
        query=PAGED,
    ),
    ("queue", "listClaimedTasks"): Doc(
        "List Claimed Tasks",
        "A page of the task queue's claimed tasks, oldest claim first, with their workers." + PAGING,
        "Task Queues",
        stability="experimental",
        output="list-claimed-tasks-response",
        query=PAGED,
    ),
    # --- queue: artifacts -----------------------------------------------------------------------
    ("queue", "createArtifact"): Doc(
        "Create Artifact",
        "Create an artifact of a running run (or of a run resolved as exception, for 25 minutes)."
        " `s3`: answers with a presigned `putUrl` to upload the bytes to; `reference`: a URL to redirect"
        " to; `link`: another artifact of the same task; `error`: downloads answer 424 with its reason."
        " `object` artifacts are refused (this deployment has no object service). Repeating the same"
        " request succeeds; changing an artifact is a 409 (a reference may change its URL).",
        "Artifacts",
    ),
    ("queue", "finishArtifact"): Doc(
        "Finish Artifact",
        "Only `object` artifacts are ever finished, and this deployment does not create them: 404 for"
        " a missing artifact, 400 otherwise.",
        "Artifacts",
    ),
    ("queue", "getArtifact"): Doc(
        "Get Artifact Data from Run",
        "Redirect (303) to the artifact's content: a presigned S3 URL, or a reference's URL; links are"
        " followed. The body says the same as JSON (`storageType`, `url`) for API clients, which do not"
        " follow redirects. An error artifact answers 424 with its `reason` and `message`. Names under"
        " `public/` need no scopes; others need `queue:get-artifact:<name>` (for every link followed too).",
        "Artifacts",
    ),
    ("queue", "getLatestArtifact"): Doc(
        "Get Artifact Data from Latest Run",
        "As `getArtifact`, for the task's latest run.",
        "Artifacts",
    ),
    ("queue", "artifact"): Doc(
        "Get Artifact Content from Run",
        "Where to download the artifact's content, as JSON (200): `{storageType, url}` (links followed);"
        " the official clients' download helpers use it.",
        "Artifacts",
    ),
    ("queue", "latestArtifact"): Doc(
        "Get Artifact Content from Latest Run",
        "As `artifact`, for the task's latest run.",
        "Artifacts",
    ),
    ("queue", "listArtifacts"): Doc(
        "Get Artifacts from Run",
        "A page of the run's artifacts, by name." + PAGING,
        "Artifacts",
        output="list-artifacts-response",
        query=PAGED,
    ),
    ("queue", "listLatestArtifacts"): Doc(
        "Get Artifacts from Latest Run",
        "As `listArtifacts`, for the task's latest run.",
        "Artifacts",
        output="list-artifacts-response",
        query=PAGED,
    ),
    ("queue", "artifactInfo"): Doc(
        "Get Artifact Information From Run",
        "The artifact's metadata (`storageType`, `name`, `expires`, `contentType`), without its content.",
        "Artifacts",
    ),
    ("queue", "latestArtifactInfo"): Doc(
        "Get Artifact Information From Latest Run",
        "As `artifactInfo`, for the task's latest run.",
        "Artifacts",
    ),
    # --- auth -----------------------------------------------------------------------------------
    ("auth", "ping"): PING,
    ("auth", "listClients"): Doc(
        "List Clients",
        "A page of the clients, optionally only those whose clientId starts with `prefix`." + PAGING,
        "Clients",
        query=("prefix", *PAGED),
    ),
    ("auth", "client"): Doc("Get Client", "A client: its description, scopes, expanded scopes and dates.", "Clients"),
    ("auth", "createClient"): Doc(
        "Create Client",
        "Create a client and answer with its `accessToken`, shown only this once. The caller must hold"
        " every scope it gives the client.",
        "Clients",
    ),
    ("auth", "updateClient"): Doc(
        "Update Client",
        "Change a client's description, expiry and scopes. The caller must hold every scope it gives.",
        "Clients",
    ),
    ("auth", "resetAccessToken"): Doc(
        "Reset `accessToken`",
        "Give the client a new `accessToken` (answered once); the old one stops working.",
        "Clients",
    ),
    ("auth", "deleteClient"): Doc(
        "Delete Client", "Delete a client. Deleting one that does not exist succeeds.", "Clients"
    ),
    ("auth", "listRoles"): Doc("List Roles", "Every role, with its scopes and expanded scopes.", "Roles"),
    ("auth", "role"): Doc("Get Role", "A role: its description, scopes and expanded scopes.", "Roles"),
    ("auth", "createRole"): Doc(
        "Create Role",
        "Create a role: whoever holds `assume:<roleId>` gets its scopes. A roleId ending in `*` is"
        " assumed by every matching `assume:` scope, `<..>` in its scopes standing for the matched part."
        " The caller must hold every scope it gives.",
        "Roles",
    ),
    ("auth", "updateRole"): Doc(
        "Update Role", "Change a role's description and scopes. The caller must hold every scope it gives.", "Roles"
    ),
    ("auth", "deleteRole"): Doc("Delete Role", "Delete a role. Deleting one that does not exist succeeds.", "Roles"),
    ("auth", "expandScopes"): Doc(
        "Expand Scopes", "The given scopes with every role they assume expanded, normalized.", "Scopes"
    ),
    ("auth", "currentScopes"): Doc(
        "Get Current Scopes",
        "The scopes the request's own credentials carry, expanded (temporary credentials and"
        " `authorizedScopes` included).",
        "Scopes",
    ),
}
