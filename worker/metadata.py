"""EC2's instance metadata service, the one place the worker reads it: user data, the instance
id and spot interruption notices.

Every read asks for an IMDSv2 session token first (`PUT <scheme>://<host>/latest/api/token`) and
sends it along; an endpoint that gives none (IMDSv1, or not EC2 at all) is asked without one. The
metadata base is `<scheme>://<host>/latest` of whichever URL the worker was given, so a stand-in
on loopback works in tests as EC2's 169.254.169.254 does on an instance.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlsplit

TIMEOUT = 2.0
TOKEN_TTL = "60"


class MetadataError(OSError):
    """The metadata service did not answer, or answered with an error status."""


def metadata_base(url: str) -> str:
    """`<scheme>://<host>/latest` of any metadata URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/latest"


def _token(url: str, timeout: float) -> str | None:
    request = urllib.request.Request(
        f"{metadata_base(url)}/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            token: str = r.read().decode()
            return token
    except OSError:
        return None  # IMDSv1, or not EC2: ask without a token


def read(url: str, timeout: float = TIMEOUT) -> str | None:
    """The body at `url`, or None when it is not there (404). Raises MetadataError otherwise."""
    token = _token(url, timeout)
    headers = {"X-aws-ec2-metadata-token": token} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
            body: str = r.read().decode(errors="replace")
            return body
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise MetadataError(f"{url} answered {e.code}") from None
    except OSError as e:
        raise MetadataError(f"{url}: {e}") from None


def instance_id(base: str, timeout: float = TIMEOUT) -> str | None:
    """`<base>/meta-data/instance-id` (EC2's instance id), or None where there is none."""
    body = read(f"{base}/meta-data/instance-id", timeout)
    return body.strip() if body is not None else None
