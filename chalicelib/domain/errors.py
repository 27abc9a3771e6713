"""Domain errors. Each maps to exactly one Taskcluster error code (handlers/errors.py)."""

from __future__ import annotations

from typing import Any


class QueueError(Exception):
    code = "InternalServerError"
    status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ResourceNotFound(QueueError):
    code, status = "ResourceNotFound", 404


class RequestConflict(QueueError):
    code, status = "RequestConflict", 409


class InputError(QueueError):
    code, status = "InputError", 400


class InputValidationError(QueueError):
    code, status = "InputValidationError", 400


class MalformedPayload(QueueError):
    code, status = "MalformedPayload", 400


class InvalidRequestArguments(QueueError):
    code, status = "InvalidRequestArguments", 400


class InputTooLarge(QueueError):
    code, status = "InputTooLarge", 413


class ResourceExpired(QueueError):
    code, status = "ResourceExpired", 410


class AuthenticationFailed(QueueError):
    code, status = "AuthenticationFailed", 401


class InsufficientScopes(QueueError):
    code, status = "InsufficientScopes", 403
