"""Hawk request signatures as Taskcluster's clients make them (HMAC-SHA256), server side.

A request carries `Authorization: Hawk id="…", ts="…", nonce="…"[, hash="…"][, ext="…"], mac="…"`,
or (GET only) a `bewit` query parameter: url-safe base64 of `id\\exp\\mac\\ext`. The MAC covers the
method, the request URI exactly as sent (still percent-encoded, query included, bewit removed),
the host and port the client addressed, the payload hash and `ext`.

Pure: no I/O, no clock (callers pass `now`). Verification order follows the Hawk library:
MAC, then payload hash, then timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

SKEW_SECONDS = 15 * 60  # Taskcluster's auth service: clients' clocks are often off
_ATTRIBUTE = re.compile(r'(\w+)="([^"\\]*)"\s*(?:,\s*|$)')
_ALLOWED = {"id", "ts", "nonce", "hash", "ext", "mac", "app", "dlg"}


class HawkError(Exception):
    """The signature is not valid; the message says why (kept terse towards callers)."""


@dataclass(frozen=True)
class Target:
    """What the client signed besides the header: method, URI path+query as sent, host, port."""

    method: str
    resource: str
    host: str
    port: int


@dataclass(frozen=True)
class Signature:
    """A parsed Hawk header (or bewit: `nonce` empty, `ts` the expiry)."""

    id: str
    ts: str
    nonce: str
    mac: str
    hash: str = ""
    ext: str = ""
    app: str = ""
    dlg: str = ""


def parse_header(value: str) -> Signature:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "hawk":
        raise HawkError("Unsupported authorization scheme")
    attrs: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _ATTRIBUTE.match(rest, pos)
        if m is None or m.group(1) not in _ALLOWED or m.group(1) in attrs:
            raise HawkError("Bad header format")
        attrs[m.group(1)] = m.group(2)
        pos = m.end()
    for required in ("id", "ts", "nonce", "mac"):
        if not attrs.get(required):
            raise HawkError(f"Missing {required} attribute")
    return Signature(**attrs)


def mac(key: str, kind: str, sig: Signature, target: Target) -> str:
    """base64(HMAC-SHA256(key, normalized string)) — `kind` is "header" or "bewit"."""
    lines = [
        f"hawk.1.{kind}",
        sig.ts,
        sig.nonce,
        target.method.upper(),
        target.resource,
        target.host.lower(),
        str(target.port),
        sig.hash,
        sig.ext,
    ]
    if sig.app:
        lines += [sig.app, sig.dlg]
    normalized = "\n".join(lines) + "\n"
    digest = hmac.new(key.encode(), normalized.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def payload_hash(content_type: str, body: bytes) -> str:
    media_type = content_type.split(";")[0].strip().lower()
    digest = hashlib.sha256(b"hawk.1.payload\n" + media_type.encode() + b"\n" + body + b"\n").digest()
    return base64.b64encode(digest).decode()


def verify_header(
    key: str, sig: Signature, target: Target, now: float, content_type: str, body: bytes
) -> None:
    """Raise HawkError unless `sig` signs `target` with `key`, within the skew, with a matching payload hash."""
    if not hmac.compare_digest(mac(key, "header", sig, target), sig.mac):
        raise HawkError("Bad mac")
    # Clients that send no hash (Taskcluster's JS client) are accepted; a hash that is sent must match.
    if sig.hash and not hmac.compare_digest(payload_hash(content_type, body), sig.hash):
        raise HawkError("Bad payload hash")
    try:
        ts = int(sig.ts)
    except ValueError:
        raise HawkError("Bad timestamp") from None
    if abs(ts - now) > SKEW_SECONDS:
        raise HawkError("Stale timestamp")


# --- bewits (signed URLs) -------------------------------------------------------------------------
def parse_bewit(value: str) -> Signature:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise HawkError("Invalid bewit encoding") from None
    parts = raw.split("\\")
    if len(parts) != 4 or not all(parts[:3]):
        raise HawkError("Invalid bewit structure")
    client_id, exp, mac_value, ext = parts
    return Signature(id=client_id, ts=exp, nonce="", mac=mac_value, ext=ext)


def verify_bewit(key: str, sig: Signature, target: Target, now: float) -> None:
    if target.method.upper() != "GET":
        raise HawkError("Bewits are for GET requests only")
    if not hmac.compare_digest(mac(key, "bewit", sig, target), sig.mac):
        raise HawkError("Bad mac")
    try:
        expiry = int(sig.ts)
    except ValueError:
        raise HawkError("Bad bewit expiry") from None
    if expiry <= now:
        raise HawkError("Access expired")
