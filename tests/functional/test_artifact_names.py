"""Artifact names that could alias another key, over HTTP (domain/artifacts.py name_problem, s3_key).

A name is the tail of download URLs and becomes an S3 key: `public/../../<A>/0/private/x`, once a
client normalises the URL, would be task A's private object, read anonymously through task B's
`public/` name or overwritten with B's run credentials (in-process moto does not check presigned
signatures, so such an upload would land). Every spelling of it is refused before anything is
stored; names that merely look odd keep working. Also here: reference URLs and link targets, and
createArtifact racing itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
import requests
import slugid
import taskcluster
from chalice.test import HTTPResponse
from taskcluster.exceptions import TaskclusterRestFailure

from chalicelib.domain import artifacts
from chalicelib.domain.artifacts import MAX_NAME_LENGTH, S3_MAX_KEY_BYTES, name_problem, s3_key
from tests.harness import (
    Harness,
    Interrupting,
    assert_error,
    bucket_keys,
    error_artifact,
    link_artifact,
    quote_name,
    reference_artifact,
    s3_artifact,
)

SECRET = b"task A's private bytes"


# --- helpers --------------------------------------------------------------------------------------
def claimed(stack: Harness) -> tuple[str, dict[str, str]]:
    """A new task, claimed: its id and its run's credentials (queue:create-artifact:<taskId>/0)."""
    task_id = stack.create()
    [claim] = stack.claim()
    assert claim["status"]["taskId"] == task_id
    credentials: dict[str, str] = claim["credentials"]
    return task_id, credentials


def listed(stack: Harness, task_id: str) -> list[str]:
    r = stack.call("GET", f"/task/{task_id}/runs/0/artifacts")
    assert r.status_code == 200, r.body
    return [a["name"] for a in r.json_body["artifacts"]]


def bucket(stack: Harness) -> Any:
    return boto3.client("s3", region_name=stack.settings.region)


def all_keys(stack: Harness) -> list[str]:
    return bucket_keys(stack, "")


# --- the traversal attack, end to end -------------------------------------------------------------
def traversals(victim: str) -> list[str]:
    """Ways of writing `public/../../../<victim>/0/private/x` into a URL after `.../artifacts/`:
    from B's key `<B>/0/public/…`, three `..` reach the bucket's top."""
    return [
        f"public/../../../{victim}/0/private/x",  # raw
        quote_name(f"public/../../../{victim}/0/private/x"),  # as the official clients encode it
        f"public/%2E%2E/%2E%2E/%2E%2E/{victim}/0/private/x",  # encoded dots
        f"public%2F%2e%2e%2F.%2E%2F%2E.%2F{victim}%2F0%2Fprivate%2Fx",  # lower case, half-encoded dots
        quote_name(f"public/%2E%2E/%2E%2E/%2E%2E/{victim}/0/private/x"),  # double-encoded: a literal %2E in the name
        quote_name(f"public\\..\\..\\..\\{victim}\\0\\private\\x"),  # backslashes, which URL parsers turn into /
        f"public\\..\\..\\..\\{victim}\\0\\private\\x",  # raw backslashes
        f"public//..//..//{victim}",  # double slashes (raw: within the routes' SPLAT_SEGMENTS)
        quote_name(f"public//../../../{victim}/0/private/x"),
        quote_name(f"/../../{victim}/0/private/x"),  # a leading slash
    ]


def test_another_tasks_private_artifact_cannot_be_overwritten_or_read_through_a_traversal_name(
    stack: Harness,
) -> None:
    a, a_credentials = claimed(stack)
    answer = stack.call(
        "POST", f"/task/{a}/runs/0/artifacts/{quote_name('private/x')}", s3_artifact(stack), credentials=a_credentials
    )
    assert answer.status_code == 200, answer.body
    assert requests.put(answer.json_body["putUrl"], data=SECRET, headers={"Content-Type": "text/plain"}).ok
    b, b_credentials = claimed(stack)
    [a_key] = all_keys(stack)
    assert a_key == f"{a}/0/private/x"

    for tail in traversals(a):
        name = unquote(tail)  # what the queue sees (the router splits raw slashes, then decodes)
        # Create (and so overwrite through the PUT URL) with B's own run credentials: refused.
        r = stack.call("POST", f"/task/{b}/runs/0/artifacts/{tail}", s3_artifact(stack), credentials=b_credentials)
        body = assert_error(r, 400, "InvalidRequestArguments", "createArtifact")
        assert body["message"].startswith("Invalid artifact name: ")
        assert body["requestInfo"]["params"] == {"taskId": b, "runId": "0", "name": name}
        assert body["requestInfo"]["payload"] == s3_artifact(stack)
        # ... and as a link's target, from an innocent name.
        r = stack.call(
            "POST", f"/task/{b}/runs/0/artifacts/public%2Fok", link_artifact(stack, name), credentials=b_credentials
        )
        assert assert_error(r, 400, "InputError", "createArtifact")["message"].startswith("Invalid link target")
        # Read anonymously (a `public/` name needs no scope): refused before anything is looked up.
        for method, path in [
            ("getArtifact", f"/task/{b}/runs/0/artifacts/{tail}"),
            ("getLatestArtifact", f"/task/{b}/artifacts/{tail}"),
            ("artifact", f"/task/{b}/runs/0/artifact-content/{tail}"),
            ("latestArtifact", f"/task/{b}/artifact-content/{tail}"),
        ]:
            assert_error(stack.call("GET", path, credentials=None), 400, "InvalidRequestArguments", method)
        assert_error(
            stack.call("GET", f"/task/{b}/runs/0/artifact-info/{tail}"), 400, "InvalidRequestArguments", "artifactInfo"
        )

    # The official client, with B's credentials, gets the same 400.
    queue = taskcluster.Queue({"rootUrl": stack.root_url(), "maxRetries": 0, "credentials": b_credentials})
    with pytest.raises(TaskclusterRestFailure) as failure:
        queue.createArtifact(b, "0", f"public/../../../{a}/0/private/x", s3_artifact(stack))
    assert failure.value.status_code == 400

    # Nothing of B's was stored, and A's object is A's, unchanged.
    assert listed(stack, b) == []
    assert listed(stack, a) == ["private/x"]
    assert all_keys(stack) == [a_key]
    stored = bucket(stack).get_object(Bucket=stack.settings.artifact_bucket, Key=a_key)
    assert stored["Body"].read() == SECRET
    url = stack.call("GET", f"/task/{a}/runs/0/artifacts/{quote_name('private/x')}").headers["Location"]
    assert requests.get(url).content == SECRET


def test_the_s3_key_alone_keeps_a_traversal_name_inside_its_own_run(
    stack: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: were the name rules lifted, the key still escapes the dot segments, so
    the PUT URL that a normalising client (requests) follows stays under B's run."""
    monkeypatch.setattr(artifacts, "name_problem", lambda name: None)
    a, a_credentials = claimed(stack)
    answer = stack.call(
        "POST", f"/task/{a}/runs/0/artifacts/{quote_name('private/x')}", s3_artifact(stack), credentials=a_credentials
    )
    assert requests.put(answer.json_body["putUrl"], data=SECRET, headers={"Content-Type": "text/plain"}).ok
    b, b_credentials = claimed(stack)
    name = f"public/../../../{a}/0/private/x"
    r = stack.call(
        "POST", f"/task/{b}/runs/0/artifacts/{quote_name(name)}", s3_artifact(stack), credentials=b_credentials
    )
    assert requests.put(r.json_body["putUrl"], data=b"overwritten", headers={"Content-Type": "text/plain"}).ok
    assert sorted(all_keys(stack)) == sorted([f"{a}/0/private/x", s3_key(b, 0, name)])
    assert s3_key(b, 0, name) == f"{b}/0/public/%2E%2E/%2E%2E/%2E%2E/{a}/0/private/x"
    a_object = bucket(stack).get_object(Bucket=stack.settings.artifact_bucket, Key=f"{a}/0/private/x")
    assert a_object["Body"].read() == SECRET


# --- each rule, on create -------------------------------------------------------------------------
BAD_NAMES = {
    "dot-dot segment": "public/../x",
    "dot-dot alone": "..",
    "dot segment": "public/./x",
    "dot alone": ".",
    "leading slash": "/public/x",
    "trailing slash": "public/x/",
    "double slash": "public//x",
    "backslash": "public\\x",
    "encoded dot-dot": "public/%2E%2E/x",
    "encoded slash making //": "public%2F%2Fx",
    "encoded backslash": "public%5Cx",
    "encoded NUL": "public/x%00",
    "tab": "public/\tx",
    "NUL": "public/x\x00",
    "DEL": "public/x\x7f",
    "non-ASCII": "public/caf\u00e9",
    "too long": "public/" + "x" * (MAX_NAME_LENGTH - 6),
}


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_a_name_that_could_alias_another_is_refused_on_create_and_nothing_is_stored(stack: Harness, name: str) -> None:
    task_id, credentials = claimed(stack)
    body = s3_artifact(stack)
    r = stack.call("POST", f"/task/{task_id}/runs/0/artifacts/{quote_name(name)}", body, credentials=credentials)
    failure = assert_error(r, 400, "InvalidRequestArguments", "createArtifact")
    assert failure["requestInfo"]["params"] == {"taskId": task_id, "runId": "0", "name": name}
    assert failure["requestInfo"]["payload"] == body
    # Control characters and non-ASCII fail the route's pattern first, the rest the name rules.
    assert failure["message"].startswith(("Invalid artifact name: ", "Invalid request parameter name: "))
    assert listed(stack, task_id) == []
    assert bucket_keys(stack, f"{task_id}/") == []


def test_the_longest_name_round_trips_through_s3_and_one_character_more_is_refused(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    # `%` is escaped into 3 characters in the key: the longest name has the longest key there is.
    longest = "public/" + "%" * (MAX_NAME_LENGTH - 7)
    put_url = stack.call(
        "POST", f"/task/{task_id}/runs/0/artifacts/{quote_name(longest)}", s3_artifact(stack)
    ).json_body["putUrl"]
    assert requests.put(put_url, data=b"long", headers={"Content-Type": "text/plain"}).ok
    [key] = bucket_keys(stack, f"{task_id}/")
    assert key == s3_key(task_id, 0, longest) and len(key.encode()) <= S3_MAX_KEY_BYTES
    r = stack.call("GET", f"/task/{task_id}/runs/0/artifacts/{quote_name(longest)}")
    assert r.status_code == 303 and requests.get(r.headers["Location"]).content == b"long"
    assert listed(stack, task_id) == [longest]

    r = stack.call("POST", f"/task/{task_id}/runs/0/artifacts/{quote_name(longest + '%')}", s3_artifact(stack))
    assert (
        f"at most {MAX_NAME_LENGTH} are allowed"
        in assert_error(r, 400, "InvalidRequestArguments", "createArtifact")["message"]
    )


def test_names_with_dots_and_percents_that_are_no_traversal_keep_working(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    names = ["public/.hidden/..x/a..b/.../x.", "public/100%/a%20b", "public/%zz/%2"]
    for i, name in enumerate(names):
        put_url = stack.call(
            "POST", f"/task/{task_id}/runs/0/artifacts/{quote_name(name)}", s3_artifact(stack)
        ).json_body["putUrl"]
        assert requests.put(put_url, data=f"{i}".encode(), headers={"Content-Type": "text/plain"}).ok
    for i, name in enumerate(names):
        location = stack.call("GET", f"/task/{task_id}/runs/0/artifacts/{quote_name(name)}").headers["Location"]
        assert requests.get(location).content == f"{i}".encode()
    assert listed(stack, task_id) == sorted(names)
    # Keys decode back to their names, and an all-dots segment is escaped whole.
    assert sorted(bucket_keys(stack, f"{task_id}/")) == sorted(s3_key(task_id, 0, n) for n in names)
    assert f"{task_id}/0/public/.hidden/..x/a..b/%2E%2E%2E/x." in bucket_keys(stack, f"{task_id}/")


def test_whatever_the_url_every_stored_name_is_a_valid_one(stack: Harness) -> None:
    # A raw trailing slash never reaches the handler (the router drops it): the name created is
    # `public/x`, never `public/x/`.
    task_id = stack.create()
    stack.claim()
    for tail in ("public/x/", "public%2Fy%2F", "public/z%2F", "public%2F%2Fw"):
        r = stack.call("POST", f"/task/{task_id}/runs/0/artifacts/{tail}", reference_artifact(stack))
        assert r.status_code in (200, 400), r.body
    assert listed(stack, task_id) == ["public/x"]
    assert all(name_problem(name) is None for name in listed(stack, task_id))


# --- every endpoint taking a name -----------------------------------------------------------------
ENDPOINTS: list[tuple[str, str, str, Callable[[Harness], Any]]] = [
    ("createArtifact", "POST", "/task/{t}/runs/0/artifacts/{n}", s3_artifact),
    ("finishArtifact", "PUT", "/task/{t}/runs/0/artifacts/{n}", lambda stack: {"uploadId": slugid.nice()}),
    ("getArtifact", "GET", "/task/{t}/runs/0/artifacts/{n}", lambda stack: None),
    ("getLatestArtifact", "GET", "/task/{t}/artifacts/{n}", lambda stack: None),
    ("artifact", "GET", "/task/{t}/runs/0/artifact-content/{n}", lambda stack: None),
    ("latestArtifact", "GET", "/task/{t}/artifact-content/{n}", lambda stack: None),
    ("artifactInfo", "GET", "/task/{t}/runs/0/artifact-info/{n}", lambda stack: None),
    ("latestArtifactInfo", "GET", "/task/{t}/artifact-info/{n}", lambda stack: None),
]


@pytest.mark.parametrize(("method", "verb", "path", "body"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_every_endpoint_taking_a_name_refuses_one_that_can_never_exist(
    stack: Harness, method: str, verb: str, path: str, body: Callable[[Harness], Any]
) -> None:
    task_id = stack.create()
    stack.claim()
    for name in ("public/../x", "public//x", "public/%2E%2E/x", "public\\x", "x" * (MAX_NAME_LENGTH + 1)):
        r = stack.call(verb, path.format(t=task_id, n=quote_name(name)), body(stack))
        failure = assert_error(r, 400, "InvalidRequestArguments", method)
        assert failure["requestInfo"]["params"]["name"] == name
        assert failure["message"].startswith("Invalid artifact name: ")
    assert listed(stack, task_id) == []


# --- what else becomes a URL: reference urls, link targets, contentType --------------------------
@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.com/x",
        "https://",
        "//example.com/x",
        "https://example.com/caf\u00e9",
    ],
)
def test_a_reference_must_be_an_absolute_http_or_https_url(stack: Harness, url: str) -> None:
    task_id = stack.create()
    stack.claim()
    body = reference_artifact(stack, url=url)
    r = stack.call("POST", f"/task/{task_id}/runs/0/artifacts/public%2Fref", body)
    # A url that is no URI at all fails the schema's `format: uri`; the rest, the queue's rule.
    code = r.json_body["code"]
    assert_error(r, 400, code, "createArtifact")
    assert code in ("InputError", "InputValidationError")
    if code == "InputError":
        assert r.json_body["message"].startswith("Invalid reference url")
    assert listed(stack, task_id) == []


def test_a_link_target_follows_the_name_rules(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    for target in ("../x", "public//x", "/public/x", "public/%2e%2e/x", "", "x" * (MAX_NAME_LENGTH + 1)):
        r = stack.call("POST", f"/task/{task_id}/runs/0/artifacts/public%2Flink", link_artifact(stack, target))
        assert assert_error(r, 400, "InputError", "createArtifact")["message"].startswith("Invalid link target")
    assert listed(stack, task_id) == []
    r = stack.call("POST", f"/task/{task_id}/runs/0/artifacts/public%2Flink", link_artifact(stack, "public/x"))
    assert r.status_code == 200, r.body


@pytest.mark.parametrize("content_type", ["text/plain\r\nX-Injected: 1", "text/plain\x00", "text/caf\u00e9"])
def test_a_content_type_must_be_printable_ascii(stack: Harness, content_type: str) -> None:
    # It is signed into the PUT URL as the Content-Type header the upload must send.
    task_id = stack.create()
    stack.claim()
    r = stack.call("POST", f"/task/{task_id}/runs/0/artifacts/public%2Fa", s3_artifact(stack, content_type))
    assert "post-artifact-request.json" in assert_error(r, 400, "InputValidationError", "createArtifact")["message"]
    assert listed(stack, task_id) == []


# --- createArtifact racing itself -----------------------------------------------------------------
RIVALS = {
    "other contentType": (
        lambda stack: s3_artifact(stack, "text/plain"),
        lambda stack: s3_artifact(stack, "text/html"),
    ),
    "s3 against reference": (lambda stack: s3_artifact(stack), lambda stack: reference_artifact(stack)),
    "reference against s3": (lambda stack: reference_artifact(stack), lambda stack: s3_artifact(stack)),
    "error against link": (lambda stack: error_artifact(stack), lambda stack: link_artifact(stack, "public/x")),
    "errors with other messages": (
        lambda stack: error_artifact(stack, "one"),
        lambda stack: error_artifact(stack, "two"),
    ),
}


@pytest.mark.parametrize("at", [1, 2, 3])  # before the task read, before the artifact write, after both
@pytest.mark.parametrize("bodies", RIVALS.values(), ids=RIVALS.keys())
def test_racing_creates_with_different_bodies_leave_the_winners_item_only(
    stack: Harness, monkeypatch: pytest.MonkeyPatch, bodies: tuple[Callable[[Harness], Any], ...], at: int
) -> None:
    """Request "outer" runs until its `at`-th store call; request "rival", for the same name with
    another body, then runs whole; outer goes on. Whoever writes first wins, the other is 409."""
    task_id = stack.create()
    stack.claim()
    outer_body, rival_body = (make(stack) for make in bodies)
    path = f"/task/{task_id}/runs/0/artifacts/{quote_name('public/raced')}"
    rival: list[HTTPResponse] = []
    started: list[bool] = []
    service, counter = stack.c.artifacts, [0]

    def run_rival() -> None:
        if not started:  # once: the rival's own store calls count too
            started.append(True)
            rival.append(stack.call("POST", path, rival_body))

    for store in ("tasks", "artifacts"):
        monkeypatch.setattr(service, store, Interrupting(getattr(service, store), counter, at, run_rival))
    outer = stack.call("POST", path, outer_body)
    if not rival:  # outer made fewer calls than `at`: the rival comes after it
        run_rival()
    [rival_answer] = rival
    rival_won = at <= 2  # the rival ran before outer's conditional write
    winner, loser = (rival_answer, outer) if rival_won else (outer, rival_answer)
    winner_body = rival_body if rival_won else outer_body

    assert winner.status_code == 200, winner.body
    failure = assert_error(loser, 409, "RequestConflict", "createArtifact")
    assert failure["details"]["originalArtifact"]["storageType"] == winner_body["storageType"]
    assert "putUrl" not in failure  # the loser holds no way to upload
    [item] = stack.call("GET", f"/task/{task_id}/runs/0/artifacts").json_body["artifacts"]
    assert item["storageType"] == winner_body["storageType"]
    assert item["contentType"] == winner_body.get("contentType", "application/binary")
    # Nothing in S3 but what the winner uploads; no multipart upload was ever started.
    assert bucket_keys(stack, f"{task_id}/") == []
    uploads = bucket(stack).list_multipart_uploads(Bucket=stack.settings.artifact_bucket)
    assert uploads.get("Uploads", []) == []
    if winner_body["storageType"] == "s3":
        put_url = winner.json_body["putUrl"]
        assert requests.put(put_url, data=b"won", headers={"Content-Type": winner_body["contentType"]}).ok
        assert bucket_keys(stack, f"{task_id}/") == [f"{task_id}/0/public/raced"]
