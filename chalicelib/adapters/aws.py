"""botocore sessions and data shared within a process, for processes that build AWS clients often.

botocore reads its JSON data (endpoints, partitions, each service's model and endpoint rules: a
few MB) once per *session*, through the session's loader; and a new session registers its ~200
event handlers again (~8 ms). A process that builds its clients more than once pays that every
time: the tests, once per test (moto's mock_aws replaces boto3's default session for each), and
pynamodb everywhere, which makes a session of its own for each model and thread. On Lambda a
process builds its clients once: it needs none of this.

- `share_loader()`: one loader per process, whichever session asks (the data never changes while
  a process runs): about 0.1 s saved on each client of a new session, most of it `json.loads`.
- `session()`: one botocore session per thread and AWS environment (credentials, region, endpoint
  as the environment says now), so a change of environment (the embedded stack points
  AWS_ENDPOINT_URL at its stand-in) gets a new session. Clients of a session see moto's mock like
  any other: moto's handler is registered with every session made after moto is imported.
- `client()`: `boto3.client(...)`, made once per process for the same arguments and environment
  (clients are thread-safe and keep no state between calls but their connection pool): a client
  costs several milliseconds to make, and the tests build the same few for every test.
- `share_sessions()`: pynamodb's models take their sessions from `session()` too.

The tests and the embedded stack call `share_loader()` and `share_sessions()` at start.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

# What a session takes from the environment once (credentials) or that clients read through it.
ENVIRONMENT = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_DATA_PATH",
)

_lock = threading.Lock()
_loaders: dict[str | None, botocore.loaders.Loader] = {}
_create_loader = botocore.loaders.create_loader
_sessions = threading.local()  # .by_environment: {environment: (botocore session, boto3 session)}
_clients: dict[tuple[Any, ...], Any] = {}


def loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
    """The process's loader for this data path (AWS_DATA_PATH; None: botocore's own data)."""
    with _lock:
        found = _loaders.get(search_path_string)
        if found is None:
            found = _loaders[search_path_string] = _create_loader(search_path_string)
        return found


def share_loader() -> None:
    """Make every botocore session of this process that has not loaded any data yet use the
    shared loader, those of other libraries included."""
    botocore.session.create_loader = loader


def _sessions_now() -> tuple[botocore.session.Session, boto3.session.Session]:
    by_environment: dict[tuple[str | None, ...], tuple[botocore.session.Session, boto3.session.Session]]
    by_environment = _sessions.__dict__.setdefault("by_environment", {})
    key = tuple(os.environ.get(name) for name in ENVIRONMENT)
    found = by_environment.get(key)
    if found is None:
        core = botocore.session.get_session()
        found = by_environment[key] = (core, boto3.session.Session(botocore_session=core))
    return found


def session() -> botocore.session.Session:
    """This thread's botocore session for the AWS environment as it is now."""
    return _sessions_now()[0]


def client(service_name: str, **kwargs: Any) -> Any:
    """`boto3.client(service_name, **kwargs)`: the one this process made already for the same
    arguments (a Config by its options) and the same AWS environment, or a new one."""
    arguments = sorted(
        (k, sorted(v._user_provided_options.items()) if isinstance(v, Config) else v) for k, v in kwargs.items()
    )
    key = (tuple(os.environ.get(name) for name in ENVIRONMENT), service_name, repr(arguments))
    with _lock:
        found = _clients.get(key)
    if found is None:
        found = _sessions_now()[1].client(service_name, **kwargs)
        with _lock:
            found = _clients.setdefault(key, found)
    return found


def share_sessions() -> None:
    """pynamodb's connections take their botocore sessions from `session()` (they keep one per
    thread, as it does; models with credentials of their own would need sessions of their own:
    none has any)."""
    import pynamodb.connection.base

    pynamodb.connection.base.get_session = session
