"""Task definitions: the checks createTask makes beyond the JSON schema, and normalisation.

The result is the definition exactly as stored and as `task()` returns it: identifiers agreed,
defaults filled, dates re-serialised to milliseconds (as Taskcluster's createTask).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .errors import InputError
from .model import Task, format_date, parse_date

CREATED_SKEW = timedelta(minutes=15)
DEADLINE_SLACK = timedelta(minutes=15)


def _add_one_year(dt: datetime) -> datetime:
    """JavaScript's setFullYear(year + 1), which Taskcluster uses: 29 February rolls over to 1 March."""
    try:
        return dt.replace(year=dt.year + 1)
    except ValueError:  # 29 February
        return dt.replace(year=dt.year + 1, month=3, day=1)


def resolve_task_queue(body: dict[str, Any]) -> tuple[str, str, str]:
    prov, wt, tq = body.get("provisionerId"), body.get("workerType"), body.get("taskQueueId")
    if tq is not None:
        derived_prov, derived_wt = tq.split("/", 1)
        if (prov is None) != (wt is None):
            raise InputError("provisionerId and workerType must be given together (or use taskQueueId alone)")
        if prov is not None and (prov, wt) != (derived_prov, derived_wt):
            raise InputError(f"taskQueueId {tq} doesn't match provisionerId/workerType {prov}/{wt}")
        return derived_prov, derived_wt, tq
    if prov is None or wt is None:
        raise InputError("Either taskQueueId, or provisionerId and workerType, must be given")
    return prov, wt, f"{prov}/{wt}"


def normalize(task_id: str, body: dict[str, Any], now: datetime, max_deadline_days: int) -> dict[str, Any]:
    """Check a schema-valid create-task request (defaults filled) and return the stored definition."""
    prov, wt, tq = resolve_task_queue(body)
    created, deadline = parse_date(body["created"]), parse_date(body["deadline"])
    expires = parse_date(body["expires"]) if "expires" in body else _add_one_year(deadline)
    if abs(created - now) > CREATED_SKEW:
        raise InputError("Created timestamp must be within 15 minutes of the current time", created=body["created"])
    if created > deadline:
        raise InputError("Deadline cannot be before created")
    if deadline < now:
        raise InputError("Deadline cannot be in the past")
    if deadline > now + timedelta(days=max_deadline_days) + DEADLINE_SLACK:
        raise InputError(f"Deadline cannot be more than {max_deadline_days} days into the future")
    if expires < deadline:
        raise InputError("Expires cannot be before the deadline")
    bad = [s for s in body.get("scopes", []) if s.endswith("**")]
    if bad:
        raise InputError("Scopes must not end with '**'", scopes=bad)
    return {
        "provisionerId": prov,
        "workerType": wt,
        "taskQueueId": tq,
        "schedulerId": body.get("schedulerId", "-"),
        "projectId": body.get("projectId", "none"),
        "taskGroupId": body.get("taskGroupId", task_id),
        "dependencies": list(body.get("dependencies", [])),
        "requires": body.get("requires", "all-completed"),
        "routes": list(body.get("routes", [])),
        "priority": body.get("priority", "lowest"),
        "retries": body.get("retries", 5),
        "created": format_date(created),
        "deadline": format_date(deadline),
        "expires": format_date(expires),
        "scopes": list(body.get("scopes", [])),
        "payload": body["payload"],
        "metadata": body["metadata"],
        "tags": body.get("tags", {}),
        "extra": body.get("extra", {}),
    }


def new_task(task_id: str, definition: dict[str, Any], link: str = "") -> Task:
    return Task(
        task_id=task_id,
        definition=definition,
        priority=definition["priority"],
        retries_left=definition["retries"],
        link=link,
    )


def same_definition(existing: Task, definition: dict[str, Any]) -> bool:
    """createTask idempotency: the stored task equals the new one in every field but its status."""
    return existing.task_json() == definition

