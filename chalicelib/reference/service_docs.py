"""What no single endpoint declares: each service's title and description, and the order of its
endpoints' categories in the reference. Everything about an endpoint is in its declaration
(handlers/api.py `Api.route` and the handler's docstring).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    title: str
    description: str
    categories: tuple[str, ...]  # the order entries are listed in


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
