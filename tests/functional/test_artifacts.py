"""Artifacts over HTTP and through the official client: create, upload to S3, download, links,
errors, listings and expiry, against the stack on in-process moto.

Presigned URLs are real: the test uploads to them and downloads from them with `requests`, which
in-process moto serves (it intercepts `requests`). In-process moto does not
check signatures: tests/e2e/test_embedded_stack.py does that against the moto server.
"""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import slugid
import taskcluster
from chalice.test import HTTPResponse
from taskcluster.exceptions import TaskclusterRestFailure

from bench.requests import counting_requests
from chalicelib.domain.model import parse_date
from chalicelib.handlers.api import SPLAT_SEGMENTS
from tests.harness import (
    Harness,
    bucket_keys,
    error_artifact,
    expires,
    link_artifact,
    quote_name,
    reference_artifact,
    s3_artifact,
)

LARGEST = 32 * 1024 * 1024  # bytes: the largest artifact uploaded and downloaded here
STORAGE_TYPE = "x-taskcluster-artifact-storage-type"


# --- helpers --------------------------------------------------------------------------------------
def running_task(stack: Harness, **overrides: Any) -> str:
    task_id = stack.create(**overrides)
    [claim] = stack.claim()
    assert claim["status"]["taskId"] == task_id
    return task_id


def create(stack: Harness, task_id: str, name: str, body: Any, run_id: int = 0) -> HTTPResponse:
    return stack.call("POST", f"/task/{task_id}/runs/{run_id}/artifacts/{quote_name(name)}", body)


def created(stack: Harness, task_id: str, name: str, body: Any, run_id: int = 0) -> dict[str, Any]:
    r = create(stack, task_id, name, body, run_id)
    assert r.status_code == 200, r.body
    result: dict[str, Any] = r.json_body
    return result


def upload(stack: Harness, task_id: str, name: str, data: bytes, content_type: str = "text/plain") -> None:
    put_url = created(stack, task_id, name, s3_artifact(stack, content_type, contentLength=len(data)))["putUrl"]
    r = requests.put(put_url, data=data, headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text


def get(stack: Harness, path: str) -> HTTPResponse:
    return stack.call("GET", path)


def code(r: HTTPResponse) -> tuple[int, str]:
    return r.status_code, r.json_body["code"]


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


@pytest.fixture
def queue(stack: Harness) -> taskcluster.Queue:
    return taskcluster.Queue({"rootUrl": stack.root_url(), "maxRetries": 0, "credentials": stack.credentials})


@pytest.fixture
def data() -> bytes:
    return os.urandom(64 * 1024)


# --- s3: upload and download ----------------------------------------------------------------------
def test_s3_artifact_is_uploaded_to_its_put_url_and_downloaded_from_get_artifacts_location(
    stack: Harness, data: bytes
) -> None:
    task_id = running_task(stack)
    upload(stack, task_id, "public/build/target.zip", data, "application/zip")

    r = get(stack, f"/task/{task_id}/runs/0/artifacts/{quote_name('public/build/target.zip')}")
    assert r.status_code == 303
    assert r.headers[STORAGE_TYPE] == "s3"
    assert r.json_body == {"storageType": "s3", "url": r.headers["Location"]}
    download = requests.get(r.headers["Location"])
    assert (download.status_code, download.content) == (200, data)
    assert download.headers["Content-Type"] == "application/zip"


def test_the_largest_artifact_comes_back_byte_for_byte(stack: Harness) -> None:
    task_id = running_task(stack)
    data = os.urandom(LARGEST)
    upload(stack, task_id, "private/big.bin", data, "application/octet-stream")
    url = get(stack, f"/task/{task_id}/runs/0/artifacts/{quote_name('private/big.bin')}").json_body["url"]
    downloaded = requests.get(url).content
    assert len(downloaded) == LARGEST
    assert hashlib.sha256(downloaded).digest() == hashlib.sha256(data).digest()


def test_put_url_is_sigv4_signed_for_45_minutes_with_the_content_type(stack: Harness) -> None:
    task_id = running_task(stack)
    answer = created(stack, task_id, "public/log.txt", s3_artifact(stack, "text/plain; charset=utf-8"))
    assert set(answer) == {"storageType", "contentType", "expires", "putUrl"}
    assert (answer["storageType"], answer["contentType"]) == ("s3", "text/plain; charset=utf-8")
    assert parse_date(answer["expires"]) == stack.clock.now() + timedelta(minutes=45)
    q = query(answer["putUrl"])
    assert q["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert q["X-Amz-Expires"] == [str(45 * 60 + 10)]  # Taskcluster adds 10 s for clock drift
    assert q["X-Amz-SignedHeaders"] == ["content-type;host"]
    assert urlsplit(answer["putUrl"]).path.endswith(f"/{task_id}/0/public/log.txt")  # Taskcluster's key


@pytest.mark.parametrize("name", ["public/log.txt", "private/secret.txt"])
def test_download_urls_are_presigned_for_30_minutes_public_or_not(stack: Harness, name: str) -> None:
    task_id = running_task(stack)
    upload(stack, task_id, name, b"hello")
    url = get(stack, f"/task/{task_id}/runs/0/artifacts/{quote_name(name)}").json_body["url"]
    assert query(url)["X-Amz-Expires"] == ["1800"]
    assert requests.get(url).content == b"hello"


def test_repeating_an_s3_create_refreshes_the_put_url_and_keeps_the_artifact(stack: Harness, data: bytes) -> None:
    task_id = running_task(stack)
    body = s3_artifact(stack)
    first = created(stack, task_id, "public/a.txt", body)
    stack.advance(60)
    again = created(stack, task_id, "public/a.txt", body)
    assert parse_date(again["expires"]) == parse_date(first["expires"]) + timedelta(seconds=60)
    assert requests.put(again["putUrl"], data=data, headers={"Content-Type": "text/plain"}).status_code == 200
    assert (
        requests.get(get(stack, f"/task/{task_id}/artifacts/{quote_name('public/a.txt')}").json_body["url"]).content
        == data
    )


def test_names_with_raw_or_encoded_slashes_and_odd_characters_are_the_same_artifact(stack: Harness) -> None:
    task_id = running_task(stack)
    name = "public/build dir/a+b%20c~(1).txt"
    upload(stack, task_id, name, b"odd")
    raw = "public/build%20dir/a+b%2520c~(1).txt"  # slashes raw; escaped only what a URL cannot carry
    for path in (f"/task/{task_id}/runs/0/artifacts/{quote_name(name)}", f"/task/{task_id}/runs/0/artifacts/{raw}"):
        r = get(stack, path)
        assert r.status_code == 303, (path, r.body)
        assert requests.get(r.json_body["url"]).content == b"odd"
    info = get(stack, f"/task/{task_id}/artifact-info/{raw}").json_body
    assert info["name"] == name


def test_raw_slashes_work_up_to_the_splat_depth_and_encoded_ones_always(stack: Harness) -> None:
    task_id = running_task(stack)
    deep = "/".join(f"d{i}" for i in range(SPLAT_SEGMENTS))
    deeper = "/".join(f"d{i}" for i in range(SPLAT_SEGMENTS + 1))
    for name in (deep, deeper):
        assert create(stack, task_id, name, reference_artifact(stack)).status_code == 200
    assert get(stack, f"/task/{task_id}/runs/0/artifacts/{deep}").status_code == 303
    assert get(stack, f"/task/{task_id}/runs/0/artifacts/{quote_name(deeper)}").status_code == 303
    assert get(stack, f"/task/{task_id}/runs/0/artifacts/{deeper}").status_code == 403  # no such route


def test_official_client_creates_uploads_and_downloads_an_s3_artifact(
    stack: Harness, queue: taskcluster.Queue, data: bytes
) -> None:
    task_id = running_task(stack)
    name = "public/logs/live.log"
    body = s3_artifact(stack, contentLength=len(data))
    answer = queue.createArtifact(task_id, "0", name, body)
    assert requests.put(answer["putUrl"], data=data, headers={"Content-Type": "text/plain"}).status_code == 200

    # getArtifact's 303 is not followed: the client hands back its JSON body.
    for result in (queue.getArtifact(task_id, "0", name), queue.getLatestArtifact(task_id, name)):
        assert result["storageType"] == "s3"
        assert requests.get(result["url"]).content == data
    for result in (queue.artifact(task_id, "0", name), queue.latestArtifact(task_id, name)):
        assert set(result) == {"storageType", "url"}
        assert requests.get(result["url"]).content == data
    info = {"storageType": "s3", "name": name, "expires": body["expires"], "contentType": "text/plain"}
    assert queue.artifactInfo(task_id, "0", name) == {**info, "contentLength": len(data)}
    assert queue.latestArtifactInfo(task_id, name) == {**info, "contentLength": len(data)}
    assert queue.listArtifacts(task_id, "0") == {"artifacts": [{**info, "contentLength": len(data)}]}


# --- reference, link, error ----------------------------------------------------------------------
def test_reference_artifact_redirects_to_its_url(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = running_task(stack)
    assert created(stack, task_id, "public/ref", reference_artifact(stack)) == {"storageType": "reference"}
    r = get(stack, f"/task/{task_id}/runs/0/artifacts/public/ref")
    assert r.status_code == 303
    assert r.headers["Location"] == "https://example.com/built.tar.gz"
    assert r.headers[STORAGE_TYPE] == "reference"
    assert r.json_body == {"storageType": "reference", "url": "https://example.com/built.tar.gz"}
    assert queue.latestArtifact(task_id, "public/ref") == r.json_body


def test_a_reference_may_change_its_url_and_become_a_link(stack: Harness) -> None:
    task_id = running_task(stack)
    created(stack, task_id, "public/ref", reference_artifact(stack))
    created(stack, task_id, "public/ref", reference_artifact(stack, url="https://example.com/other"))
    assert get(stack, f"/task/{task_id}/runs/0/artifacts/public/ref").headers["Location"] == "https://example.com/other"
    created(stack, task_id, "public/target", reference_artifact(stack, url="https://example.com/target"))
    assert created(stack, task_id, "public/ref", link_artifact(stack, "public/target")) == {"storageType": "link"}
    assert (
        get(stack, f"/task/{task_id}/runs/0/artifacts/public/ref").headers["Location"] == "https://example.com/target"
    )
    info = get(stack, f"/task/{task_id}/runs/0/artifact-info/public/ref").json_body
    assert (info["storageType"], info["contentType"]) == ("link", "application/gzip")  # the reference's


def test_links_are_followed_to_the_content_and_report_the_final_storage_type(stack: Harness, data: bytes) -> None:
    task_id = running_task(stack)
    upload(stack, task_id, "public/real.bin", data)
    created(stack, task_id, "public/latest", link_artifact(stack, "public/middle"))  # targets need not exist yet
    created(stack, task_id, "public/middle", link_artifact(stack, "public/real.bin"))
    r = get(stack, f"/task/{task_id}/runs/0/artifacts/public/latest")
    assert (r.status_code, r.headers[STORAGE_TYPE]) == (303, "s3")
    assert requests.get(r.headers["Location"]).content == data
    content = get(stack, f"/task/{task_id}/artifact-content/public/latest").json_body
    assert content["storageType"] == "s3"
    # artifactInfo does not follow links.
    assert get(stack, f"/task/{task_id}/runs/0/artifact-info/public/latest").json_body["storageType"] == "link"


def test_a_link_cycle_is_400_and_a_dangling_link_404(stack: Harness) -> None:
    task_id = running_task(stack)
    created(stack, task_id, "a", link_artifact(stack, "b"))
    created(stack, task_id, "b", link_artifact(stack, "a"))
    created(stack, task_id, "self", link_artifact(stack, "self"))
    created(stack, task_id, "dangling", link_artifact(stack, "nothing"))
    for name in ("a", "b", "self"):
        r = get(stack, f"/task/{task_id}/runs/0/artifacts/{name}")
        assert code(r) == (400, "InputError")
        assert "link cycle" in r.json_body["message"]
        assert code(get(stack, f"/task/{task_id}/runs/0/artifact-content/{name}")) == (400, "InputError")
    assert code(get(stack, f"/task/{task_id}/runs/0/artifacts/dangling")) == (404, "ResourceNotFound")


def test_error_artifact_answers_424_with_reason_and_message(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = running_task(stack)
    assert created(stack, task_id, "public/missing.log", error_artifact(stack)) == {"storageType": "error"}
    r = get(stack, f"/task/{task_id}/runs/0/artifacts/public/missing.log")
    assert r.status_code == 424
    assert r.headers[STORAGE_TYPE] == "error"
    assert r.json_body == {"reason": "file-missing-on-worker", "message": "no such file"}
    # artifact-content answers 200 with the error (the download helpers raise from it).
    expected = {"storageType": "error", "reason": "file-missing-on-worker", "message": "no such file"}
    assert queue.artifact(task_id, "0", "public/missing.log") == expected
    with pytest.raises(TaskclusterRestFailure) as failure:
        queue.getArtifact(task_id, "0", "public/missing.log")
    assert failure.value.status_code == 424
    info = queue.artifactInfo(task_id, "0", "public/missing.log")
    assert (info["storageType"], info["contentType"]) == ("error", "application/binary")


# --- createArtifact: refusals, in Taskcluster's order ----------------------------------------------
def test_object_storage_type_is_refused_with_an_input_error(stack: Harness) -> None:
    task_id = running_task(stack)
    body = {"storageType": "object", "expires": expires(stack), "contentType": "text/plain"}
    r = create(stack, task_id, "public/obj", body)
    assert code(r) == (400, "InputError")
    assert "object service" in r.json_body["message"]
    assert code(get(stack, f"/task/{task_id}/runs/0/artifact-info/public/obj")) == (404, "ResourceNotFound")


def test_expires_in_the_past_is_refused_before_the_task_is_looked_up(stack: Harness) -> None:
    r = create(stack, slugid.nice(), "a", s3_artifact(stack, expires=expires(stack, minutes=-16)))
    assert code(r) == (400, "InputError")
    assert r.json_body["message"].startswith("Expires must be in the future")


def test_a_missing_task_or_run_is_400_not_404(stack: Harness) -> None:
    r = create(stack, slugid.nice(), "a", s3_artifact(stack))
    assert code(r) == (400, "InputError") and r.json_body["message"].startswith("Task not found")
    task_id = running_task(stack)
    r = create(stack, task_id, "a", s3_artifact(stack), run_id=1)
    assert code(r) == (400, "InputError") and r.json_body["message"].startswith("Run not found")


def test_a_run_never_claimed_cannot_have_artifacts(stack: Harness) -> None:
    task_id = stack.create()
    r = create(stack, task_id, "a", s3_artifact(stack))
    assert code(r) == (400, "InputError")
    assert "not claimed" in r.json_body["message"]


def test_an_artifact_may_not_outlive_its_task(stack: Harness) -> None:
    task_id = running_task(stack, expires=expires(stack, days=2))
    assert create(stack, task_id, "ok", s3_artifact(stack, expires=expires(stack, days=2))).status_code == 200
    r = create(stack, task_id, "late", s3_artifact(stack, expires=expires(stack, days=2, milliseconds=1)))
    assert code(r) == (400, "InputError")
    assert "after the task expiration" in r.json_body["message"]


def test_a_resolved_run_takes_no_more_artifacts_but_an_exception_does_for_25_minutes(stack: Harness) -> None:
    done = running_task(stack)
    assert stack.call("POST", f"/task/{done}/runs/0/completed").status_code == 200
    assert code(create(stack, done, "late", s3_artifact(stack))) == (409, "RequestConflict")

    crashed = running_task(stack)
    exception = stack.call("POST", f"/task/{crashed}/runs/0/exception", {"reason": "malformed-payload"})
    assert exception.status_code == 200
    stack.advance(24 * 60)
    assert create(stack, crashed, "public/logs/live.log", s3_artifact(stack)).status_code == 200
    stack.advance(61)
    assert code(create(stack, crashed, "public/logs/other.log", s3_artifact(stack))) == (409, "RequestConflict")


def test_an_s3_artifact_may_live_at_most_the_configured_days(stack: Harness) -> None:
    task_id = running_task(stack, expires=expires(stack, days=1000))
    assert create(stack, task_id, "a", s3_artifact(stack, expires=expires(stack, days=400))).status_code == 200
    r = create(stack, task_id, "b", s3_artifact(stack, expires=expires(stack, days=401)))
    assert code(r) == (400, "InputError")
    assert create(stack, task_id, "c", reference_artifact(stack, expires=expires(stack, days=999))).status_code == 200


def test_incompatible_repeats_are_409_and_compatible_ones_succeed(stack: Harness) -> None:
    task_id = running_task(stack)
    base = s3_artifact(stack)
    created(stack, task_id, "a", base)
    later = {**base, "expires": expires(stack, days=2)}
    assert create(stack, task_id, "a", later).status_code == 200
    assert code(create(stack, task_id, "a", base)) == (409, "RequestConflict")  # would shorten expiry
    assert code(create(stack, task_id, "a", {**later, "contentType": "text/html"})) == (409, "RequestConflict")
    assert code(create(stack, task_id, "a", {**reference_artifact(stack), "expires": later["expires"]})) == (
        409,
        "RequestConflict",
    )
    created(stack, task_id, "e", error_artifact(stack))
    assert create(stack, task_id, "e", error_artifact(stack)).status_code == 200
    r = create(stack, task_id, "e", error_artifact(stack, message="other"))
    assert code(r) == (409, "RequestConflict")
    assert r.json_body["details"]["originalArtifact"]["storageType"] == "error"
    created(stack, task_id, "l", link_artifact(stack, "a"))
    assert code(create(stack, task_id, "l", reference_artifact(stack))) == (409, "RequestConflict")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"storageType": "s3", "contentType": "text/plain"}, "InputValidationError"),  # no expires
        ({"storageType": "s3", "expires": "2030-01-01T00:00:00.000Z"}, "InputValidationError"),  # no contentType
        ({"storageType": "nfs", "expires": "2030-01-01T00:00:00.000Z"}, "InputValidationError"),
        ({"storageType": "reference", "expires": "2030-01-01T00:00:00.000Z", "url": "x"}, "InputValidationError"),
        (
            {"storageType": "error", "expires": "2030-01-01T00:00:00.000Z", "reason": "bored", "message": "m"},
            "InputValidationError",
        ),
        (
            {"storageType": "s3", "expires": "2030-01-01T00:00:00.000Z", "contentType": "a", "url": "x"},
            "InputValidationError",
        ),
    ],
)
def test_bodies_outside_the_schema_are_input_validation_errors(
    stack: Harness, body: dict[str, Any], status: str
) -> None:
    task_id = running_task(stack)
    r = create(stack, task_id, "a", body)
    assert code(r) == (400, status)
    assert "post-artifact-request.json" in r.json_body["message"]


def test_names_outside_printable_ascii_and_bad_run_ids_are_invalid_arguments(stack: Harness) -> None:
    task_id = running_task(stack)
    for name in ("tab%09name", "caf%C3%A9", "new%0Aline"):
        r = stack.call("POST", f"/task/{task_id}/runs/0/artifacts/{name}", s3_artifact(stack))
        assert code(r) == (400, "InvalidRequestArguments"), name
    assert code(stack.call("POST", f"/task/{task_id}/runs/x/artifacts/a", s3_artifact(stack))) == (
        400,
        "InvalidRequestArguments",
    )


def test_finish_artifact_is_only_for_object_artifacts(stack: Harness) -> None:
    task_id = running_task(stack)
    body = {"uploadId": slugid.nice()}
    assert code(stack.call("PUT", f"/task/{task_id}/runs/0/artifacts/a", body)) == (404, "ResourceNotFound")
    created(stack, task_id, "a", s3_artifact(stack))
    assert code(stack.call("PUT", f"/task/{task_id}/runs/0/artifacts/a", body)) == (400, "InputError")


# --- downloads: what is missing -------------------------------------------------------------------
def test_missing_artifacts_tasks_and_runs_are_404(stack: Harness) -> None:
    task_id = running_task(stack)
    unknown = slugid.nice()
    for path in (
        f"/task/{task_id}/runs/0/artifacts/nothing",
        f"/task/{task_id}/runs/7/artifacts/nothing",
        f"/task/{unknown}/runs/0/artifacts/a",
        f"/task/{unknown}/artifacts/a",
        f"/task/{task_id}/artifact-content/nothing",
        f"/task/{task_id}/runs/0/artifact-info/nothing",
        f"/task/{unknown}/artifact-info/a",
        f"/task/{unknown}/artifacts",
        f"/task/{task_id}/runs/1/artifacts",
    ):
        assert code(get(stack, path)) == (404, "ResourceNotFound"), path


def test_latest_views_of_a_task_without_runs_are_404(stack: Harness) -> None:
    blocker = stack.create()
    waiting = stack.create(dependencies=[blocker])
    assert stack.status(waiting)["runs"] == []
    for path in (f"/task/{waiting}/artifacts", f"/task/{waiting}/artifacts/a", f"/task/{waiting}/artifact-info/a"):
        r = get(stack, path)
        assert code(r) == (404, "ResourceNotFound")
        assert "doesn't have any runs" in r.json_body["message"]


def test_latest_means_the_latest_run(stack: Harness) -> None:
    task_id = running_task(stack, retries=1)
    created(stack, task_id, "public/log", reference_artifact(stack, url="https://example.com/run0"))
    assert stack.call("POST", f"/task/{task_id}/runs/0/exception", {"reason": "worker-shutdown"}).status_code == 200
    [claim] = stack.claim()
    assert claim["runId"] == 1
    assert code(get(stack, f"/task/{task_id}/artifacts/public/log")) == (404, "ResourceNotFound")
    created(stack, task_id, "public/log", reference_artifact(stack, url="https://example.com/run1"), run_id=1)
    assert get(stack, f"/task/{task_id}/artifacts/public/log").headers["Location"] == "https://example.com/run1"
    assert get(stack, f"/task/{task_id}/runs/0/artifacts/public/log").headers["Location"] == "https://example.com/run0"
    assert [a["name"] for a in get(stack, f"/task/{task_id}/artifacts").json_body["artifacts"]] == ["public/log"]


# --- listings -------------------------------------------------------------------------------------
def test_list_artifacts_pages_through_a_runs_artifacts_in_name_order(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = running_task(stack)
    names = ["public/b", "public/a", "private/z", "public/a/nested", "c"]
    for name in names:
        created(stack, task_id, name, reference_artifact(stack))
    first = get(stack, f"/task/{task_id}/runs/0/artifacts?limit=2").json_body
    assert [a["name"] for a in first["artifacts"]] == ["c", "private/z"]
    token = first["continuationToken"]
    second = get(stack, f"/task/{task_id}/runs/0/artifacts?limit=2&continuationToken={token}").json_body
    assert [a["name"] for a in second["artifacts"]] == ["public/a", "public/a/nested"]

    listed: list[dict[str, Any]] = []
    queue.listArtifacts(
        task_id, "0", query={"limit": 2}, paginationHandler=lambda page: listed.extend(page["artifacts"])
    )
    assert [a["name"] for a in listed] == sorted(names)
    assert listed[0] == {
        "storageType": "reference",
        "name": "c",
        "expires": reference_artifact(stack)["expires"],
        "contentType": "application/gzip",
    }
    assert queue.listLatestArtifacts(task_id)["artifacts"] == listed


def test_an_empty_run_lists_no_artifacts_and_a_foreign_token_is_refused(stack: Harness) -> None:
    task_id = running_task(stack)
    other = running_task(stack)
    for name in ("a", "b"):
        created(stack, other, name, reference_artifact(stack))
    assert get(stack, f"/task/{task_id}/runs/0/artifacts").json_body == {"artifacts": []}
    token = get(stack, f"/task/{other}/runs/0/artifacts?limit=1").json_body["continuationToken"]
    r = get(stack, f"/task/{task_id}/runs/0/artifacts?continuationToken={token}")
    assert code(r) == (400, "InputError")
    assert code(get(stack, f"/task/{task_id}/runs/0/artifacts?continuationToken=garbage")) == (400, "InputError")


# --- expiry ---------------------------------------------------------------------------------------
def test_an_expired_artifact_is_410_until_the_sweeper_purges_it_from_table_and_bucket(stack: Harness) -> None:
    task_id = running_task(stack)
    upload(stack, task_id, "public/old.txt", b"old")
    created(stack, task_id, "public/ref", reference_artifact(stack, expires=expires(stack, hours=2)))
    url = get(stack, f"/task/{task_id}/runs/0/artifacts/public/old.txt").json_body["url"]
    stack.advance(86400 + 1)

    assert code(get(stack, f"/task/{task_id}/runs/0/artifacts/public/old.txt")) == (410, "ResourceExpired")
    assert code(get(stack, f"/task/{task_id}/artifact-content/public/ref")) == (410, "ResourceExpired")
    # Listed and described until purged, as Taskcluster does.
    listed = get(stack, f"/task/{task_id}/artifacts").json_body["artifacts"]
    assert [a["name"] for a in listed] == ["public/old.txt", "public/ref"]
    assert get(stack, f"/task/{task_id}/artifact-info/public/old.txt").status_code == 200

    stack.sweep()
    assert code(get(stack, f"/task/{task_id}/runs/0/artifacts/public/old.txt")) == (404, "ResourceNotFound")
    assert get(stack, f"/task/{task_id}/artifacts").json_body == {"artifacts": []}
    assert requests.get(url).status_code == 404  # the object is gone too
    assert bucket_keys(stack, f"{task_id}/") == []
    stack.sweep()  # nothing left to do, nothing breaks


def test_an_expired_link_is_410_even_if_its_target_lives(stack: Harness) -> None:
    task_id = running_task(stack)
    created(stack, task_id, "target", reference_artifact(stack))
    created(stack, task_id, "short", link_artifact(stack, "target", expires=expires(stack, minutes=5)))
    stack.advance(301)
    assert code(get(stack, f"/task/{task_id}/runs/0/artifacts/short")) == (410, "ResourceExpired")
    assert get(stack, f"/task/{task_id}/runs/0/artifacts/target").status_code == 303


def test_an_s3_artifact_outlives_its_expiry_while_its_put_url_works(stack: Harness) -> None:
    task_id = running_task(stack)
    put_url = created(stack, task_id, "soon", s3_artifact(stack, expires=expires(stack, minutes=1)))["putUrl"]
    stack.advance(120)
    stack.sweep()
    assert code(get(stack, f"/task/{task_id}/runs/0/artifacts/soon")) == (410, "ResourceExpired")
    # A worker may still upload: the object must not land after its row is gone, or it would leak.
    assert requests.put(put_url, data=b"late", headers={"Content-Type": "text/plain"}).status_code == 200
    stack.advance(45 * 60)
    stack.sweep()
    assert code(get(stack, f"/task/{task_id}/runs/0/artifact-info/soon")) == (404, "ResourceNotFound")
    assert bucket_keys(stack, f"{task_id}/") == []


def test_expiry_is_bounded_per_tick_and_finishes_over_later_ticks(stack: Harness) -> None:
    task_id = running_task(stack)
    for i in range(7):
        created(stack, task_id, f"r{i}", reference_artifact(stack, expires=expires(stack, minutes=10)))
    stack.advance(601)
    assert [stack.c.artifacts.expire(limit=3) for _ in range(4)] == [3, 3, 1, 0]
    assert stack.c.sweeper.sweep().artifacts_purged == 0


def test_two_sweeps_at_once_purge_each_artifact_once(stack: Harness) -> None:
    task_id = running_task(stack)
    upload(stack, task_id, "a", b"a")
    created(stack, task_id, "b", reference_artifact(stack))
    stack.advance(86401)
    due = stack.c.artifacts.artifacts.purgeable(stack.clock.now(), 10)
    assert len(due) == 2
    # Both sweeps found the same rows; the second deletes nothing and fails on nothing.
    assert stack.c.artifacts.expire(10) == 2
    stack.c.artifacts.artifacts.purge(due)
    assert stack.c.artifacts.blobs.delete(stack.settings.artifact_bucket, [f"{task_id}/0/a"]) == []
    assert get(stack, f"/task/{task_id}/artifacts").json_body == {"artifacts": []}


# --- cost -----------------------------------------------------------------------------------------
def test_an_s3_artifact_costs_two_dynamodb_requests_to_create_and_one_to_get(stack: Harness, data: bytes) -> None:
    task_id = running_task(stack)
    name = quote_name("public/counted.bin")
    with counting_requests() as create_calls:
        put_url = created(stack, task_id, "public/counted.bin", s3_artifact(stack))["putUrl"]
    # the task (its two items in one BatchGetItem), the artifact; presigning is local
    assert dict(create_calls) == {("dynamodb", "BatchGetItem"): 1, ("dynamodb", "PutItem"): 1}
    with counting_requests() as upload_calls:
        assert requests.put(put_url, data=data, headers={"Content-Type": "text/plain"}).status_code == 200
    assert dict(upload_calls) == {}  # the client's own S3 PUT: no request of ours
    with counting_requests() as get_calls:
        url = get(stack, f"/task/{task_id}/runs/0/artifacts/{name}").json_body["url"]
    assert dict(get_calls) == {("dynamodb", "GetItem"): 1}
    with counting_requests() as latest_calls:
        get(stack, f"/task/{task_id}/artifacts/{name}")
    # the task (latest run: its two items in one BatchGetItem), then the artifact
    assert dict(latest_calls) == {("dynamodb", "BatchGetItem"): 1, ("dynamodb", "GetItem"): 1}
    assert requests.get(url).content == data
