"""Errors the portal answers with: one code per cause, the same codes on pages and the API.

The JSON envelope everywhere is `{"error": "human text", "code": "ENUM", "details": {...}}`.
"""

from __future__ import annotations

from typing import Any


class PortalError(Exception):
    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def envelope(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, "details": self.details}


class Unauthorized(PortalError):
    status = 401
    code = "UNAUTHORIZED"


class MissingToken(PortalError):
    status = 401
    code = "MISSING_TOKEN"


class InvalidTokenError(PortalError):
    status = 401
    code = "INVALID_TOKEN"


class ValidationFailed(PortalError):
    status = 400
    code = "VALIDATION_ERROR"


class IntegrationNotFound(PortalError):
    status = 404
    code = "INTEGRATION_NOT_FOUND"


class SessionNotFoundError(PortalError):
    status = 404
    code = "SESSION_NOT_FOUND"


class SessionNotBound(PortalError):
    """The browser has no valid binding cookie for this session (link opened elsewhere)."""

    status = 403
    code = "SESSION_NOT_BOUND"


class SessionInUse(PortalError):
    """The link was already opened in another browser: the session belongs to that one."""

    status = 403
    code = "SESSION_IN_USE"


class CsrfFailed(PortalError):
    status = 403
    code = "CSRF_FAILED"


class SessionClosed(PortalError):
    """The session already finished or is being finished; nothing more can be submitted."""

    status = 409
    code = "SESSION_CLOSED"


class ServiceUnavailable(PortalError):
    status = 503
    code = "SERVICE_UNAVAILABLE"


class PayloadTooLarge(PortalError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"
