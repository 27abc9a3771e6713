"""Credentials: Hawk `ext`, temporary-credential certificates, and how access tokens are derived.

Temporary credentials (Taskcluster's certificates) are minted by any client without asking the
server: a certificate lists scopes, a validity window and a random seed, signed with the issuer's
access token; the temporary access token is HMAC-SHA256(issuer token, seed). The server checks the
signature with the issuer's token and that the issuer's scopes satisfy the certificate's.

Stored clients' access tokens are never stored: a client row keeps a random seed, and the token
is HMAC-SHA256(the deployment's token key, clientId + seed). Whoever reads the table learns nothing
usable; resetting a token is choosing a new seed. (Hawk is a shared-secret MAC, so the server must
be able to produce the key — a one-way hash of the token alone could not verify a request.)

Pure: no I/O, times are passed in as epoch milliseconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .model import format_date

MAX_LIFETIME_MS = 31 * 24 * 3600 * 1000
TOLERANCE_MS = 5 * 60 * 1000  # start may be this far ahead, expiry this far behind (clock skew)
SEED_LENGTH = 44
# Taskcluster's clientId pattern, at most 500 characters: a clientId is a DynamoDB sort key (1,024
# bytes), and one that can never be stored is no client's (looked up, it would be a 500).
MAX_ID_CHARS = 500
CLIENT_ID = re.compile(rf"^[A-Za-z0-9!@/:.+|_-]{{1,{MAX_ID_CHARS}}}$")


class CredentialError(Exception):
    """The ext or certificate is not acceptable (→ 401 AuthenticationFailed)."""


def _hmac_b64(key: str, message: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()).decode()


def _url_safe(b64: str) -> str:
    return b64.replace("+", "-").replace("/", "_").rstrip("=")


# --- ext -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ext:
    certificate: dict[str, Any] | None = None
    authorized_scopes: list[str] | None = None


def parse_ext(ext: str) -> Ext:
    """Hawk's `ext` as Taskcluster's clients send it: (url-safe) base64 of a JSON object."""
    if not ext:
        return Ext()
    try:
        raw = base64.b64decode(ext.replace("-", "+").replace("_", "/") + "=" * (-len(ext) % 4), validate=True)
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: arrays nested ~1,000 deep
        raise CredentialError("Failed to parse ext") from None
    if not isinstance(value, dict):
        raise CredentialError("ext must be a JSON object")
    cert = value.get("certificate")
    if isinstance(cert, str):
        try:
            cert = json.loads(cert)
        except (ValueError, RecursionError):
            raise CredentialError("ext.certificate is not valid JSON") from None
    if cert is not None and not isinstance(cert, dict):
        raise CredentialError("ext.certificate must be a JSON object")
    scopes = value.get("authorizedScopes")
    if scopes is not None and not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
        raise CredentialError("ext.authorizedScopes must be an array of strings")
    return Ext(certificate=cert, authorized_scopes=scopes)


# --- certificates ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Certificate:
    scopes: tuple[str, ...]
    start: int
    expiry: int
    seed: str
    signature: str
    issuer: str | None = None  # set for named temporary credentials

    @classmethod
    def from_json(cls, cert: dict[str, Any]) -> Certificate:
        if cert.get("version") != 1:
            raise CredentialError("ext.certificate.version must be 1")
        scopes = cert.get("scopes")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise CredentialError("ext.certificate.scopes must be an array of strings")
        start, expiry = cert.get("start"), cert.get("expiry")
        if not isinstance(start, int) or not isinstance(expiry, int):
            raise CredentialError("ext.certificate.start and expiry must be integers")
        seed, signature = cert.get("seed"), cert.get("signature")
        if not isinstance(seed, str) or len(seed) != SEED_LENGTH:
            raise CredentialError(f"ext.certificate.seed must be {SEED_LENGTH} characters")
        if not isinstance(signature, str):
            raise CredentialError("ext.certificate.signature must be a string")
        issuer = cert.get("issuer")
        if issuer is not None and not isinstance(issuer, str):
            raise CredentialError("ext.certificate.issuer must be a string")
        return cls(tuple(scopes), start, expiry, seed, signature, issuer)

    def issuer_of(self, client_id: str) -> str:
        """The client whose token signed this certificate, for a request made as `client_id`."""
        if self.issuer is None:
            return client_id
        if self.issuer == client_id:
            raise CredentialError("ext.certificate.issuer must differ from the supplied clientId")
        return self.issuer

    def signed_text(self, client_id: str) -> str:
        lines = ["version:1"]
        if self.issuer is not None:
            lines += [f"clientId:{client_id}", f"issuer:{self.issuer}"]
        lines += [f"seed:{self.seed}", f"start:{self.start}", f"expiry:{self.expiry}", "scopes:", *self.scopes]
        return "\n".join(lines)

    def check(self, client_id: str, issuer_token: str, now_ms: int) -> str:
        """Validate against the issuer's token; return the temporary access token (the Hawk key)."""
        if self.start > now_ms + TOLERANCE_MS:
            raise CredentialError("ext.certificate.start > now")
        if self.expiry < now_ms - TOLERANCE_MS:
            raise CredentialError("ext.certificate.expiry < now")
        if self.expiry - self.start > MAX_LIFETIME_MS:
            raise CredentialError("ext.certificate cannot last longer than 31 days")
        if not hmac.compare_digest(_hmac_b64(issuer_token, self.signed_text(client_id)), self.signature):
            raise CredentialError("ext.certificate.signature is not valid")
        return temporary_token(issuer_token, self.seed)


def temporary_token(issuer_token: str, seed: str) -> str:
    return _url_safe(_hmac_b64(issuer_token, seed))


def new_seed() -> str:
    return secrets.token_urlsafe(33)[:SEED_LENGTH].ljust(SEED_LENGTH, "A")


def issue_temporary(
    issuer_id: str,
    issuer_token: str,
    scopes: Sequence[str],
    start_ms: int,
    expiry_ms: int,
    name: str | None = None,
) -> dict[str, str]:
    """Temporary credentials `{clientId, accessToken, certificate}`, as the clients' createTemporaryCredentials."""
    cert = Certificate(tuple(scopes), start_ms, expiry_ms, new_seed(), "", issuer_id if name else None)
    signature = _hmac_b64(issuer_token, cert.signed_text(name or issuer_id))
    body: dict[str, Any] = {
        "version": 1,
        "scopes": list(scopes),
        "start": start_ms,
        "expiry": expiry_ms,
        "seed": cert.seed,
        "signature": signature,
    }
    if name:
        body["issuer"] = issuer_id
    return {
        "clientId": name or issuer_id,
        "accessToken": temporary_token(issuer_token, cert.seed),
        "certificate": json.dumps(body, separators=(",", ":")),
    }


# --- stored clients -------------------------------------------------------------------------------
def client_token(token_key: str, client_id: str, seed: str) -> str:
    """A stored client's access token, derived from the deployment's key and the client's seed."""
    return _url_safe(_hmac_b64(token_key, f"{client_id}\n{seed}"))


def token_key_from(root_access_token: str) -> str:
    """The key client tokens derive from when the deployment configures none of its own."""
    return _hmac_b64(root_access_token, "taskqueue client access tokens")


# --- clients and roles ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Client:
    client_id: str
    description: str
    scopes: tuple[str, ...]
    expires: datetime
    created: datetime
    last_modified: datetime
    last_rotated: datetime
    seed: str = field(repr=False)
    disabled: bool = False
    delete_on_expiration: bool = False

    def to_json(self, expanded: Sequence[str]) -> dict[str, Any]:
        return {
            "clientId": self.client_id,
            "description": self.description,
            "expires": format_date(self.expires),
            "created": format_date(self.created),
            "lastModified": format_date(self.last_modified),
            "lastDateUsed": format_date(self.created),
            "lastRotated": format_date(self.last_rotated),
            "deleteOnExpiration": self.delete_on_expiration,
            "disabled": self.disabled,
            "scopes": list(self.scopes),
            "expandedScopes": list(expanded),
        }


@dataclass(frozen=True)
class Role:
    role_id: str
    description: str
    scopes: tuple[str, ...]
    created: datetime
    last_modified: datetime

    def to_json(self, expanded: Sequence[str]) -> dict[str, Any]:
        return {
            "roleId": self.role_id,
            "description": self.description,
            "created": format_date(self.created),
            "lastModified": format_date(self.last_modified),
            "scopes": list(self.scopes),
            "expandedScopes": list(expanded),
        }


# --- as the auth API shows them -------------------------------------------------------------------
@dataclass(frozen=True)
class ClientView:
    """A stored client with its expanded scopes; with its access token only when just (re)issued
    (createClient, resetAccessToken)."""

    client: Client
    expanded_scopes: tuple[str, ...]
    access_token: str | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = self.client.to_json(self.expanded_scopes)
        if self.access_token is not None:
            out["accessToken"] = self.access_token
        return out


@dataclass(frozen=True)
class RoleView:
    """A role with its expanded scopes."""

    role: Role
    expanded_scopes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return self.role.to_json(self.expanded_scopes)
