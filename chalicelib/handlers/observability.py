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

LEVEL = os.environ.get("TASKQUEUE_LOG_LEVEL", "INFO")
logger = Logger(service="taskqueue", level=LEVEL)
# Every module logs through the standard library as `logging.getLogger(__name__)`: their one
# parent, the package's logger, sends every record through Powertools (JSON, with the keys below).
PARENT = logging.getLogger(__name__.split(".")[0])
PARENT.handlers = logger.handlers
PARENT.setLevel(LEVEL)
PARENT.propagate = False


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
