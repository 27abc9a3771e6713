"""The deployment's root credentials from AWS Secrets Manager (never a plain environment variable on AWS)."""

from __future__ import annotations

import json
from typing import Any


def read_root_secret(secrets_client: Any, secret_arn: str) -> tuple[str, str, str]:
    """(clientId, accessToken, tokenKey) from a secret whose value is JSON
    `{"clientId": …, "accessToken": …, "tokenKey": …}`; tokenKey may be absent (derived from accessToken)."""
    value = json.loads(secrets_client.get_secret_value(SecretId=secret_arn)["SecretString"])
    return str(value.get("clientId", "root")), str(value["accessToken"]), str(value.get("tokenKey", ""))
