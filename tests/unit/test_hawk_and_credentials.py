"""Hawk and certificates (domain/hawk.py, domain/credentials.py) against what Taskcluster's Python
client really sends: mohawk headers and bewits, createTemporaryCredentials certificates."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import mohawk
import mohawk.bewit
import pytest
import taskcluster

from chalicelib.domain import hawk
from chalicelib.domain.credentials import (
    Certificate,
    CredentialError,
    client_token,
    issue_temporary,
    parse_ext,
    temporary_token,
)

KEY = "a-secret-access-token"
URL = "https://tq.example.com/api/queue/v1/task/abc/status?limit=5"
TARGET = hawk.Target("GET", "/api/queue/v1/task/abc/status?limit=5", "tq.example.com", 443)
NOW = 1_800_000_000


def sender(method: str = "GET", url: str = URL, content: str = "", content_type: str = "", ext: str = "") -> str:
    header: str = mohawk.Sender(
        credentials={"id": "me", "key": KEY, "algorithm": "sha256"},
        url=url,
        method=method,
        content=content,
        content_type=content_type,
        ext=ext,
        _timestamp=str(NOW),
    ).request_header
    return header


def test_a_mohawk_header_verifies() -> None:
    sig = hawk.parse_header(sender())
    assert sig.id == "me" and sig.ts == str(NOW)
    hawk.verify_header(KEY, sig, TARGET, NOW, "", b"")


def test_the_payload_hash_covers_content_type_and_body() -> None:
    body = '{"a": 1}'
    target = hawk.Target("POST", "/api/queue/v1/task/abc/status?limit=5", "tq.example.com", 443)
    sig = hawk.parse_header(sender("POST", content=body, content_type="application/json; charset=utf-8"))
    hawk.verify_header(KEY, sig, target, NOW, "application/json", body.encode())
    with pytest.raises(hawk.HawkError, match="payload"):
        hawk.verify_header(KEY, sig, target, NOW, "application/json", b'{"a": 2}')


@pytest.mark.parametrize(
    "changed",
    [
        hawk.Target("POST", TARGET.resource, TARGET.host, TARGET.port),
        hawk.Target("GET", "/api/queue/v1/task/abd/status?limit=5", TARGET.host, TARGET.port),
        hawk.Target("GET", "/api/queue/v1/task/abc/status?limit=6", TARGET.host, TARGET.port),
        hawk.Target("GET", TARGET.resource, "evil.example.com", TARGET.port),
        hawk.Target("GET", TARGET.resource, TARGET.host, 80),
    ],
)
def test_any_change_to_what_was_signed_breaks_the_mac(changed: hawk.Target) -> None:
    with pytest.raises(hawk.HawkError, match="Bad mac"):
        hawk.verify_header(KEY, hawk.parse_header(sender()), changed, NOW, "", b"")


def test_a_wrong_key_breaks_the_mac() -> None:
    with pytest.raises(hawk.HawkError, match="Bad mac"):
        hawk.verify_header("other", hawk.parse_header(sender()), TARGET, NOW, "", b"")


@pytest.mark.parametrize(("offset", "ok"), [(-900, True), (900, True), (-901, False), (901, False)])
def test_timestamps_are_accepted_within_15_minutes(offset: int, ok: bool) -> None:
    sig = hawk.parse_header(sender())
    if ok:
        hawk.verify_header(KEY, sig, TARGET, NOW + offset, "", b"")
    else:
        with pytest.raises(hawk.HawkError, match="Stale"):
            hawk.verify_header(KEY, sig, TARGET, NOW + offset, "", b"")


@pytest.mark.parametrize(
    "header",
    ["Basic abc", 'Hawk id="x"', 'Hawk id="x", ts="1", nonce="n", mac="m", bogus="1"', 'Hawk id="x", id="y"', "Hawk"],
)
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(hawk.HawkError):
        hawk.parse_header(header)


def test_a_taskcluster_bewit_verifies_until_it_expires() -> None:
    resource = mohawk.base.Resource(
        credentials={"id": "me", "key": KEY, "algorithm": "sha256"},
        method="GET",
        url=URL,
        timestamp=str(NOW + 60),
        nonce="",
        ext="",
    )
    bewit = mohawk.bewit.get_bewit(resource).rstrip("=")
    sig = hawk.parse_bewit(bewit)
    hawk.verify_bewit(KEY, sig, TARGET, NOW)
    with pytest.raises(hawk.HawkError, match="expired"):
        hawk.verify_bewit(KEY, sig, TARGET, NOW + 61)
    with pytest.raises(hawk.HawkError):
        hawk.verify_bewit(KEY, sig, hawk.Target("POST", TARGET.resource, TARGET.host, TARGET.port), NOW)
    with pytest.raises(hawk.HawkError):
        hawk.parse_bewit(base64.urlsafe_b64encode(b"only\\three\\parts").decode())


# --- certificates ---------------------------------------------------------------------------------
def _now_ms() -> int:
    return int(time.time()) * 1000


def _temp(scopes: list[str], name: str | None = None, hours: int = 1) -> dict[str, str]:
    start = datetime.now(UTC)
    creds: dict[str, str] = taskcluster.createTemporaryCredentials(
        "issuer", KEY, start, start + timedelta(hours=hours), scopes, name=name
    )
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in creds.items()}


@pytest.mark.parametrize("name", [None, "named/temp"])
def test_taskcluster_certificates_check_and_give_the_temporary_token(name: str | None) -> None:
    creds = _temp(["queue:status:*"], name)
    cert = Certificate.from_json(json.loads(creds["certificate"]))
    assert cert.issuer_of(creds["clientId"]) == "issuer"
    assert cert.check(creds["clientId"], KEY, _now_ms()) == creds["accessToken"]
    with pytest.raises(CredentialError, match="signature"):
        cert.check(creds["clientId"], "another-key", _now_ms())


def test_a_certificate_outside_its_window_or_too_long_is_refused() -> None:
    cert = Certificate.from_json(json.loads(_temp([])["certificate"]))
    with pytest.raises(CredentialError, match="expiry"):
        cert.check("issuer", KEY, cert.expiry + 5 * 60 * 1000 + 1)
    with pytest.raises(CredentialError, match="start"):
        cert.check("issuer", KEY, cert.start - 5 * 60 * 1000 - 1)
    with pytest.raises(CredentialError, match="31 days"):
        long = Certificate(cert.scopes, cert.start, cert.start + 32 * 24 * 3600 * 1000, cert.seed, cert.signature)
        long.check("issuer", KEY, cert.start)


def test_a_named_certificate_cannot_name_its_issuer() -> None:
    cert = Certificate.from_json(json.loads(_temp([], "named")["certificate"]))
    with pytest.raises(CredentialError, match="differ"):
        cert.issuer_of("issuer")


def test_our_temporary_credentials_are_what_taskclusters_code_would_check() -> None:
    now = _now_ms()
    creds = issue_temporary("root", KEY, ["queue:resolve-task:t/0"], now, now + 3_600_000, "task-client/t/0")
    cert = Certificate.from_json(json.loads(creds["certificate"]))
    assert cert.check(creds["clientId"], KEY, now) == creds["accessToken"] == temporary_token(KEY, cert.seed)
    assert len(cert.seed) == 44


def test_ext_carries_a_certificate_and_authorized_scopes() -> None:
    cert = json.loads(_temp(["a"])["certificate"])
    ext = base64.b64encode(json.dumps({"certificate": cert, "authorizedScopes": ["a"]}).encode()).decode()
    parsed = parse_ext(ext)
    assert parsed.certificate == cert and parsed.authorized_scopes == ["a"]
    for bad in ("!!!", base64.b64encode(b"[1]").decode(), base64.b64encode(b'{"authorizedScopes": "a"}').decode()):
        with pytest.raises(CredentialError):
            parse_ext(bad)


def test_client_tokens_depend_on_the_key_the_client_and_the_seed() -> None:
    token = client_token("key", "c", "seed")
    assert token != client_token("key2", "c", "seed")
    assert token != client_token("key", "d", "seed")
    assert token != client_token("key", "c", "seed2")
    assert "=" not in token and "+" not in token and "/" not in token
