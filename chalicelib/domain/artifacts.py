"""Artifacts: what a run produced, as Taskcluster's queue records them.

Pure rules only: which names and createArtifact calls are allowed (and in what order the checks
run, since Taskcluster's status codes depend on it), when a repeat is compatible, where an s3
artifact's bytes live, and when a row may be purged. Storage and S3 are the services' and adapters'
business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from .errors import InputError, InvalidRequestArguments, RequestConflict
from .model import Task, TaskState, format_date, parse_date


class StorageType(StrEnum):
    S3 = "s3"
    OBJECT = "object"
    REFERENCE = "reference"
    LINK = "link"
    ERROR = "error"


# Taskcluster's numbers (services/queue/src/artifacts.js).
EXPIRES_TOLERANCE = timedelta(minutes=15)  # `expires` may be this far in the past
EXCEPTION_UPLOAD_WINDOW = timedelta(minutes=25)  # uploads allowed after reportException
PUT_URL_LIFETIME = timedelta(minutes=45)  # the `expires` createArtifact answers with
PUT_URL_SIGNED_FOR = PUT_URL_LIFETIME + timedelta(seconds=10)  # plus clock drift, as Taskcluster signs
GET_URL_SIGNED_FOR = timedelta(minutes=30)
DEFAULT_CONTENT_TYPE = "application/binary"
MAX_LINK_HOPS = 100  # links followed by one request; a chain is finite anyway, this bounds its cost

# Names. A name is the tail of download URLs and becomes an S3 key and a DynamoDB sort key; one
# that a client, proxy or stand-in could rewrite into another name (`..`, `//`, `\`, percent-escapes
# of them) must not exist at all. The longest name must fit every key built from it, however it is
# encoded (s3_key escapes a character into at most 3; docs/limits.md):
#   S3 key     <taskId 22>/<runId, < 50: 2 digits>/<encoded name ≤ 3n>:  26 + 3·320 = 986 ≤ 1024
#   sort key   <runId>/<name>:                                            3 + 320 = 323 ≤ 1024
# (the partition key is the taskId alone, 22 ≤ 2048; no other key holds the name). 320, not the
# 332 the S3 key would allow, leaves room for a short key prefix.
MAX_NAME_LENGTH = 320
S3_MAX_KEY_BYTES = 1024  # S3's limit on an object key
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")  # Taskcluster's name pattern ^[\x20-\x7e]+$ (fullmatch)
URL_CHARACTERS = re.compile(r"[\x21-\x7e]+")  # a reference url becomes a Location header: ASCII, no spaces
# What s3_key leaves as it is: printable ASCII but `%` (the escape, so decoding is unambiguous),
# `\` (URL parsers turn it into `/`) and `/` (kept only as the separator between segments).
_KEY_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%\\/")


@dataclass(frozen=True)
class Artifact:
    """One artifact of one run. `details` is the storage type's own data, as Taskcluster keeps it:
    s3 {bucket}, reference {url}, link {artifact}, error {reason, message}.

    `created` is when the name was first created (repeats keep it); `purge_at` is the earliest
    time the row (and its object) may be deleted: `expires`, but never while a PUT URL handed out
    for it still works — or an upload could land after the purge and leak.
    """

    task_id: str
    run_id: int
    name: str
    storage_type: StorageType
    content_type: str
    expires: datetime
    created: datetime
    purge_at: datetime
    details: Mapping[str, str] = field(default_factory=dict)
    content_length: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The artifact as listArtifacts and artifactInfo show it."""
        out: dict[str, Any] = {
            "storageType": self.storage_type.value,
            "name": self.name,
            "expires": format_date(self.expires),
            "contentType": self.content_type,
        }
        if self.content_length is not None:
            out["contentLength"] = self.content_length
        return out

    @property
    def s3_key(self) -> str:
        return s3_key(self.task_id, self.run_id, self.name)

    def expired(self, now: datetime) -> bool:
        return self.expires < now


def s3_key(task_id: str, run_id: int, name: str) -> str:
    """Where an s3 artifact's bytes live in its bucket: Taskcluster's `<taskId>/<runId>/<name>`,
    the name percent-encoded segment by segment (`_KEY_SAFE` stays as it is, so ordinary names
    keep Taskcluster's key and download URLs still end in the file's name).

    Whatever the name, the key has no `.`/`..` segment (an all-dots segment is escaped whole) and
    no backslash, so no URL normalisation can lead out of `<taskId>/<runId>/`; and unquoting the
    tail gives the name back, so distinct names have distinct keys."""
    segments = [quote(segment, safe=_KEY_SAFE) for segment in name.split("/")]
    dotless = [s.replace(".", "%2E") if s.strip(".") == "" else s for s in segments]
    return "/".join([task_id, str(run_id), *dotless])


def name_problem(name: str) -> str | None:
    """Why `name` can never be an artifact's name, or None if it can.

    The structural rules hold for the name and for every percent-decoding of it too: a client or
    gateway that decodes once more (API Gateway does, before our own decoding) must not turn an
    accepted name into `..` or `//`. Each decoding that changes the name shortens it, so this ends."""
    if len(name) > MAX_NAME_LENGTH:
        return f"it has {len(name)} characters; at most {MAX_NAME_LENGTH} are allowed"
    if not PRINTABLE_ASCII.fullmatch(name):
        return "it must be 1 or more printable ASCII characters (no control characters)"
    form, previous = name, ""
    while form != previous:
        decoded = "" if form == name else " after percent-decoding"
        if "\\" in form:
            return f"it contains a backslash{decoded}"
        if any(c < " " or c == "\x7f" for c in form):
            return f"it contains a control character{decoded}"
        segments = form.split("/")
        if "" in segments:
            return f"it has an empty segment (a leading or trailing `/`, or `//`){decoded}"
        if "." in segments or ".." in segments:
            return f"it has a `.` or `..` segment{decoded}"
        form, previous = unquote(form), form
    return None


def check_artifact_name(name: str) -> None:
    """Refuse a name that can never exist (name_problem): every endpoint taking one calls this first."""
    if problem := name_problem(name):
        raise InvalidRequestArguments(f"Invalid artifact name: {problem}")


def reference_url_problem(url: str) -> str | None:
    """Why `url` may not be a reference artifact's target, or None: only absolute http(s) URLs,
    as getArtifact answers with a redirect to it and browsers follow that (no `javascript:`,
    `data:` or `file:`)."""
    if not URL_CHARACTERS.fullmatch(url):
        return "it must be printable ASCII without spaces (percent-encode the rest)"
    try:
        parts = urlsplit(url)
    except ValueError as e:
        return str(e)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return "it must be an absolute http:// or https:// URL"
    return None


def new_artifact(task_id: str, run_id: int, name: str, body: Mapping[str, Any], bucket: str, now: datetime) -> Artifact:
    """The artifact a (schema-valid) createArtifact body asks for."""
    check_artifact_name(name)
    storage_type = StorageType(body["storageType"])
    if storage_type is StorageType.OBJECT:
        raise InputError(
            "storageType 'object' needs Taskcluster's object service, which this queue does not have; "
            "use storageType 's3' (createArtifact answers with a PUT URL to upload to)",
            storageType="object",
        )
    details: dict[str, str]
    if storage_type is StorageType.S3:
        details = {"bucket": bucket}  # the key needs no check: MAX_NAME_LENGTH makes every one fit
    elif storage_type is StorageType.REFERENCE:
        if problem := reference_url_problem(body["url"]):
            raise InputError(f"Invalid reference url: {problem}", url=body["url"])
        details = {"url": body["url"]}
    elif storage_type is StorageType.LINK:
        # A link's target is read as a name in this run: the same rules, or a link could lead
        # where no request may.
        if problem := name_problem(body["artifact"]):
            raise InputError(f"Invalid link target (artifact): {problem}")
        details = {"artifact": body["artifact"]}
    else:
        details = {"reason": body["reason"], "message": body["message"]}
    expires = parse_date(body["expires"])
    return Artifact(
        task_id=task_id,
        run_id=run_id,
        name=name,
        storage_type=storage_type,
        content_type=body.get("contentType") or DEFAULT_CONTENT_TYPE,
        expires=expires,
        created=now,
        purge_at=purge_at(storage_type, expires, now),
        details=details,
        content_length=body.get("contentLength"),
    )


def purge_at(storage_type: StorageType, expires: datetime, now: datetime) -> datetime:
    if storage_type is StorageType.S3:
        return max(expires, now + PUT_URL_SIGNED_FOR)
    return expires


def check_create(task: Task | None, artifact: Artifact, now: datetime, max_s3_days: int) -> None:
    """createArtifact's checks, in Taskcluster's order; raises the first that fails.

    (Taskcluster authorizes between the "never claimed" and the task-expiry checks: scopes
    `queue:create-artifact:<taskId>/<runId>` — issue 7 wires them there.)
    """
    if artifact.expires < now - EXPIRES_TOLERANCE:
        raise InputError("Expires must be in the future")
    if task is None:
        raise InputError("Task not found")  # 400, not 404: Taskcluster's choice
    run = task.run(artifact.run_id)
    if run is None:
        raise InputError("Run not found")
    if not run.worker_group or not run.worker_id:
        raise InputError("Run was not claimed by a worker and so no artifacts can exist")
    # scopes: queue:create-artifact:<taskId>/<runId> (deferred authorization happens here)
    if artifact.expires > task.expires:
        raise InputError(
            f"Artifact expires ({format_date(artifact.expires)}) after the task expiration "
            f"{format_date(task.expires)} (task.expires < expires) - this is not allowed, "
            "artifacts may not expire after the task they belong to expires",
            taskExpires=format_date(task.expires),
            expires=format_date(artifact.expires),
        )
    check_s3_lifetime(artifact, max_s3_days)
    if run.state is not TaskState.RUNNING:
        recent_exception = (
            run.state is TaskState.EXCEPTION
            and run.resolved is not None
            and run.resolved > now - EXCEPTION_UPLOAD_WINDOW
        )
        if not recent_exception:
            raise RequestConflict(
                "Artifacts cannot be created for a task after it is resolved, unless it is resolved "
                "'exception', and even in this case only up to 25 min past resolution. This to ensure "
                "that artifacts have been uploaded before a task is 'completed' and output is consumed "
                "by a dependent task",
                status=task.status_json(),
            )


def check_s3_lifetime(artifact: Artifact, max_s3_days: int) -> None:
    """The bucket's lifecycle rule deletes objects `max_s3_days` after upload (a backstop against
    leaks); an s3 artifact must not promise to live longer than that. 0 means no limit."""
    if artifact.storage_type is not StorageType.S3 or max_s3_days <= 0:
        return
    latest = artifact.created + timedelta(days=max_s3_days)
    if artifact.expires > latest:
        raise InputError(
            f"Artifacts stored on S3 may live at most {max_s3_days} days after they are first created "
            f"(until {format_date(latest)}); this one expires {format_date(artifact.expires)}",
            maxDays=max_s3_days,
        )


def compatible(original: Artifact, again: Artifact) -> bool:
    """Whether createArtifact may repeat over an existing artifact (Taskcluster's
    createArtifactCallsCompatible): same contentType (links have none), expiry extended or kept,
    same type and details — except that a reference may change its url or become a link."""
    if again.storage_type is not StorageType.LINK and original.content_type != again.content_type:
        return False
    if original.expires > again.expires:
        return False
    if original.storage_type is again.storage_type:
        return again.storage_type is StorageType.REFERENCE or dict(original.details) == dict(again.details)
    return original.storage_type is StorageType.REFERENCE and again.storage_type is StorageType.LINK


def repeated(original: Artifact, again: Artifact, now: datetime) -> Artifact:
    """The artifact after a compatible repeat: type, details and expiry from the repeat; name,
    contentType, contentLength and creation time from the original (as Taskcluster updates it)."""
    return replace(
        original,
        storage_type=again.storage_type,
        details=again.details,
        expires=again.expires,
        purge_at=max(original.purge_at, purge_at(again.storage_type, again.expires, now)),
    )


def conflict(original: Artifact) -> RequestConflict:
    return RequestConflict(
        "Artifact already exists with different properties, and none of the allowed exceptions apply",
        originalArtifact={
            "storageType": original.storage_type.value,
            "contentType": original.content_type,
            "expires": format_date(original.expires),
        },
    )
