"""Test harness: the app over in-process moto, with step helpers and an injected clock.

moto must be imported before any AWS client exists, and the fake credentials set, or clients
could reach real AWS: that is why this module starts with them.
"""

from __future__ import annotations

import atexit
import gzip
import importlib.util
import os
import tempfile
from pathlib import Path

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
)
for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
    os.environ.pop(var, None)


def _moto_default_amis() -> str:
    """moto's own default AMIs (its amis.json, a few dozen, some owned by amazon) as a file for
    MOTO_AMIS_PATH. Given that setting, moto's EC2 loads those only, not also its ~1,300 latest
    AMIs of each region (each with a volume and a snapshot): a second or more of every test that
    touches EC2, for images no test looks at. Read before moto.ec2 is imported (it reads it then)."""
    spec = importlib.util.find_spec("moto")  # moto's location, without importing it
    assert spec is not None and spec.origin is not None
    packed = Path(spec.origin).parent / "ec2" / "resources" / "amis.json.gz"
    fd, path = tempfile.mkstemp(prefix="taskqueue-moto-amis-", suffix=".json")
    with os.fdopen(fd, "wb") as out:
        out.write(gzip.decompress(packed.read_bytes()))
    atexit.register(os.unlink, path)
    return path


if "MOTO_AMIS_PATH" not in os.environ:
    os.environ["MOTO_AMIS_PATH"] = _moto_default_amis()

from moto import mock_aws  # noqa: E402

from chalicelib.adapters import aws  # noqa: E402
from chalicelib.local import motofast  # noqa: E402

motofast.apply()
# botocore's data read, and its sessions made, once per process (and thread), not once per test.
aws.share_loader()
aws.share_sessions()

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


E2E = Path(__file__).parent / "e2e"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup` (make test), every end-to-end test goes to one worker, and first:
    xdist hands out the largest group first. Those tests mostly wait on processes and the real
    clock, while the other worker runs the CPU-bound in-process tests; and each e2e module's stack
    (a module-scoped fixture) then starts once, not once per worker its tests would be spread over."""
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("e2e"))
