"""Test harness: the app over in-process moto, with step helpers and an injected clock.

moto must be imported before any AWS client exists, and the fake credentials set, or clients
could reach real AWS: that is why this module starts with them.
"""

from __future__ import annotations

import os

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
)
for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
    os.environ.pop(var, None)

from moto import mock_aws  # noqa: E402

from chalicelib.local import motofast  # noqa: E402

motofast.apply()

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from tests.harness import Harness  # noqa: E402


@pytest.fixture
def stack() -> Iterator[Harness]:
    with mock_aws():
        harness = Harness.start()
        try:
            yield harness
        finally:
            harness.stop()
