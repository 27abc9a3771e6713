"""What authentication adds to a request on the embedded stack (issue 7).

The same cheap call (`status` of one task) is made, interleaved, with no credentials (the
embedded stack's anonymous role holds `queue:status:*`), as the root client (no lookup), as a
stored client (a cached lookup) and with temporary credentials (a certificate to check). The
difference of medians is what Hawk, the certificate and the scope check cost per request; the
client's own signing time is included, as users pay it too.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import taskcluster
from taskcluster.utils import slugId

from .workload import Latencies, options, task_def

SCHEMES = ("anonymous", "root", "stored client", "temporary credentials")


def measure(root_url: str, n: int = 300) -> dict[str, Any]:
    root = taskcluster.Queue(options(root_url, maxRetries=0))
    creds = root.options["credentials"]
    auth = taskcluster.Auth(options(root_url, maxRetries=0))
    # The embedded stack's `anonymous` role reads statuses (chalicelib/local/stack.py ANONYMOUS_SCOPES).
    assert "queue:status:*" in auth.role("anonymous")["expandedScopes"]
    client_id = f"bench/{slugId()}"
    expires = datetime.now(UTC) + timedelta(hours=1)
    stored = auth.createClient(client_id, {"description": "bench", "expires": expires, "scopes": ["queue:status:*"]})
    temp = taskcluster.createTemporaryCredentials(
        creds["clientId"], creds["accessToken"], datetime.now(UTC), expires, ["queue:status:*"]
    )
    queues = {
        "anonymous": taskcluster.Queue({"rootUrl": root_url, "maxRetries": 0}),
        "root": root,
        "stored client": taskcluster.Queue(
            {
                "rootUrl": root_url,
                "maxRetries": 0,
                "credentials": {"clientId": client_id, "accessToken": stored["accessToken"]},
            }
        ),
        "temporary credentials": taskcluster.Queue({"rootUrl": root_url, "maxRetries": 0, "credentials": temp}),
    }
    task_id = slugId()
    root.createTask(task_id, task_def("bench/auth", slugId()))
    lat = {name: Latencies(name) for name in SCHEMES}
    for _ in range(20):  # warm connections and caches
        for q in queues.values():
            q.status(task_id)
    for _ in range(n):
        for name in SCHEMES:
            t0 = time.perf_counter()
            queues[name].status(task_id)
            lat[name].samples.append(time.perf_counter() - t0)
    auth.deleteClient(client_id)
    base = lat["anonymous"].summary()["p50_ms"]
    return {
        "n": n,
        "latency": {name: lat[name].summary() for name in SCHEMES},
        "added_p50_ms": {name: round(lat[name].summary()["p50_ms"] - base, 2) for name in SCHEMES[1:]},
    }
