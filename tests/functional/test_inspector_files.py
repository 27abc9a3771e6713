"""The web inspector's files as the stack serves them (handlers/inspector.py): the page at
/inspector/ (and a redirect from /inspector that keeps any base path), its modules with their
content types and caching headers, nothing else — no unknown name, no path out of its directory —
and every file the page loads is one that is served."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib.handlers.inspector import STATIC_DIR, files


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with Client(app, stage_name="dev", project_dir=".") as c:
        yield c


def get(client: Client, path: str, **headers: str) -> Any:
    return client.http.get(path, headers={"Host": "localhost", **headers})


def test_the_page_is_served_at_inspector_slash_and_inspector_redirects_there_relatively(client: Client) -> None:
    page = get(client, "/inspector/")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<script type="module" src="app.js">' in page.body
    r = get(client, "/inspector")
    # Relative: under API Gateway's stage (/dev/inspector) it leads to /dev/inspector/.
    assert (r.status_code, r.headers["Location"]) == (302, "inspector/")


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("hawk.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
    ],
)
def test_files_come_with_their_type_security_headers_and_revalidation(
    client: Client, name: str, content_type: str
) -> None:
    r = get(client, f"/inspector/{name}")
    assert r.status_code == 200
    assert r.body == (STATIC_DIR / name).read_bytes()
    assert r.headers["Content-Type"] == content_type
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src" not in r.headers["Content-Security-Policy"]  # default-src 'self': no inline script
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    unchanged = get(client, f"/inspector/{name}", **{"If-None-Match": r.headers["ETag"]})
    assert (unchanged.status_code, unchanged.body) == (304, b"")
    changed = get(client, f"/inspector/{name}", **{"If-None-Match": '"other"'})
    assert changed.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/inspector/nope.js",
        "/inspector/__init__.py",
        "/inspector/..%2Fhandlers%2Finspector.py",
        "/inspector/%2E%2E%2Fapp.py",
        "/inspector/..",
        "/inspector/.%2F..%2F..%2Fapp.py",
        "/inspector/app.js%00.html",
    ],
)
def test_unknown_names_and_paths_out_of_the_directory_are_404_with_taskclusters_error_body(
    client: Client, path: str
) -> None:
    r = get(client, path)
    assert r.status_code == 404
    body = r.json_body
    assert body["code"] == "ResourceNotFound" and "requestInfo" in body


def test_only_the_directorys_own_files_of_known_types_are_served() -> None:
    assert set(files()) == {p.name for p in STATIC_DIR.iterdir() if p.suffix in {".html", ".js", ".css", ".svg"}}
    assert {"index.html", "app.js", "api.js", "hawk.js"} <= set(files())


def test_every_file_the_page_loads_is_served() -> None:
    """index.html's script and stylesheet, and every module's imports, name files that are served:
    no build step, no file left out."""
    served = set(files())
    index = (STATIC_DIR / "index.html").read_text()
    wanted = set(re.findall(r'(?:src|href)="([a-z]+\.(?:js|css))"', index))
    for name in served:
        if name.endswith(".js"):
            wanted |= set(re.findall(r'from "\./([a-z]+\.js)"', (STATIC_DIR / name).read_text()))
    assert wanted and wanted <= served, wanted - served
    # Plain relative URLs: the page works under any base path (API Gateway's stage).
    for name in served:
        text = (STATIC_DIR / name).read_text()
        assert "/api/" not in text.replace("../api/", "").replace("`api/", ""), name


def test_the_files_are_in_the_lambda_package() -> None:
    """`chalice package` zips chalicelib/ whole: the inspector's files go with the API function."""
    from chalice.deploy.packager import BaseLambdaDeploymentPackager
    from chalice.utils import OSUtils

    packager = BaseLambdaDeploymentPackager(OSUtils(), None, None)  # type: ignore[arg-type]
    project = str(STATIC_DIR.parents[1])
    zipped = {zip_path for _, zip_path in packager._iter_chalice_lib_if_needed(project)}
    assert {f"chalicelib/inspector/{name}" for name in files()} <= zipped
