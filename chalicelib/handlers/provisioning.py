"""The provisioner's event sources: its schedule, and EC2's own events through EventBridge.

- `provisioner` (every minute): scan (reconcile workers with EC2 and the queue), then provision
  (launch what each pool needs). The scheduled event's id is the run id, so a retried invocation
  reuses its launch tokens and launches nothing twice.
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

log = logging.getLogger(__name__)
provisioning_bp = Blueprint(__name__)

SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
STATE_CHANGE = "EC2 Instance State-change Notification"
GONE_STATES = ("stopped", "terminated")
EC2_EVENT_PATTERN = {"source": ["aws.ec2"], "detail-type": [SPOT_WARNING, STATE_CHANGE]}


@provisioning_bp.schedule(Rate(1, unit=Rate.MINUTES), name="provisioner")
def provisioner(event: CloudWatchEvent) -> dict[str, Any]:
    p = container.get().provisioner
    scanned = p.scan()
    provisioned = p.provision(event.event_id)
    return {
        "pools": len(provisioned),
        "launched": sum(r.launched for r in provisioned),
        "removed": sum(len(r.removed) for r in scanned),
        "stopped": sum(r.stopped for r in scanned),
        "errors": [e for r in (*scanned, *provisioned) for e in r.errors],
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
