"""The provisioner's event sources: its schedule, and EC2's own events through EventBridge.

- `provisioner` (every minute): per pool, concurrently, scan (reconcile workers with EC2 and the
  queue), then provision (launch what the pool needs), within the invocation's remaining time;
  one run at a time (a run that finds another's lease answers `busy` and does nothing). The
  scheduled event's id is the run id, so a retried invocation reuses its launch tokens and
  launches nothing twice.
- `ec2_events`: "EC2 Spot Instance Interruption Warning" (two minutes' notice) and "EC2 Instance
  State-change Notification" (stopped, terminated): the worker's runs are resolved
  exception/worker-shutdown at once, so they retry on another worker without waiting for their
  claims to expire; the worker is marked stopping or stopped.

The embedded stack's pump calls the same functions with events shaped as Lambda delivers them.
"""

from __future__ import annotations

import logging
from typing import Any

from chalice import Blueprint, Rate
from chalice.app import CloudWatchEvent

from .. import container
from ..domain.model import format_date

log = logging.getLogger(__name__)
provisioning_bp = Blueprint(__name__)

SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
STATE_CHANGE = "EC2 Instance State-change Notification"
GONE_STATES = ("stopped", "terminated")
EC2_EVENT_PATTERN = {"source": ["aws.ec2"], "detail-type": [SPOT_WARNING, STATE_CHANGE]}


@provisioning_bp.schedule(Rate(1, unit=Rate.MINUTES), name="provisioner")
def provisioner(event: CloudWatchEvent) -> dict[str, Any]:
    context: Any = event.context
    run = container.get().provisioner.run(event.event_id, lambda: context.get_remaining_time_in_millis() / 1000)
    if run.busy is not None:
        return {"busy": {"holder": run.busy.holder, "until": format_date(run.busy.until)}, "pools": 0}
    return {
        "pools": len(run.pools),
        "skipped": run.skipped,
        "launched": sum(r.launched for r in run.pools),
        "removed": sum(len(r.removed) for r in run.pools),
        "stopped": sum(r.stopped for r in run.pools),
        "errors": [e for r in run.pools for e in r.errors],
    }


@provisioning_bp.on_cw_event(EC2_EVENT_PATTERN, name="ec2_events")
def ec2_events(event: CloudWatchEvent) -> dict[str, Any]:
    detail = event.detail or {}
    instance_id = detail.get("instance-id", "")
    p = container.get().registration
    if event.detail_type == SPOT_WARNING:
        handled = p.interrupted(instance_id, detail.get("instance-action", "terminate"))
    elif event.detail_type == STATE_CHANGE and detail.get("state") in GONE_STATES:
        handled = p.instance_gone(instance_id, detail["state"])
    else:
        handled = False
    log.info(
        "%s %s %s: %s", event.detail_type, instance_id, detail.get("state", ""), "handled" if handled else "ignored"
    )
    return {"instance": instance_id, "handled": handled}
