"""Structured logs for every invocation: Powertools' Logger, wired once as Chalice middleware.

Each log line of an invocation carries its function name and request id (the Lambda context of
an HTTP request, or the event's own context for stream and schedule events — Chalice's
`app.lambda_context` is stale in event handlers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from chalice.app import Chalice, Request

logger = Logger(service="taskqueue", level=os.environ.get("TASKQUEUE_LOG_LEVEL", "INFO"))
# The app's modules log through the standard library; route their records through Powertools.
for name in ("taskqueue.api", "taskqueue.events", "taskqueue.dispatch", "taskqueue.pump"):
    logging.getLogger(name).handlers = logger.handlers
    logging.getLogger(name).propagate = False


def install(app: Chalice) -> None:
    @app.middleware("all")
    def correlate(event: Any, get_response: Callable[[Any], Any]) -> Any:
        context = app.lambda_context if isinstance(event, Request) else getattr(event, "context", None)
        if context is not None:
            logger.append_keys(function_name=context.function_name, request_id=context.aws_request_id)
        try:
            return get_response(event)
        finally:
            logger.remove_keys(["function_name", "request_id"])
