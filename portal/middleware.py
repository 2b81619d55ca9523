"""Plain ASGI middleware: security headers on every response, and an access log
that never records a query string (connect links carry their token there)."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_logger = logging.getLogger("portal.access")

# Keys in the ASGI scope's "state" (what views see as `request.state`).
NONCE_STATE = "csp_nonce"
FORM_ACTION_STATE = "csp_form_action"


def content_security_policy(
    *, nonce: str, form_action: tuple[str, ...] = (), frame_ancestors: tuple[str, ...] = ()
) -> str:
    """The policy of one response: only scripts carrying its nonce run."""
    return "; ".join([
        "default-src 'none'",
        f"script-src 'nonce-{nonce}'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action " + " ".join(dict.fromkeys(("'self'", *form_action))),
        "base-uri 'none'",
        "frame-ancestors " + (" ".join(frame_ancestors) or "'none'"),
    ])


def allow_form_action(state: Any, *origins: str) -> None:
    """Let this response's forms (and the redirects they end in) go to `origins` too."""
    current: tuple[str, ...] = getattr(state, FORM_ACTION_STATE, ())
    setattr(state, FORM_ACTION_STATE, (*current, *origins))


def security_headers(state: dict[str, Any], frame_ancestors: tuple[str, ...]) -> dict[str, str]:
    """The headers of one response, from the nonce and form targets in its request state."""
    headers = {
        "content-security-policy": content_security_policy(
            nonce=state.setdefault(NONCE_STATE, secrets.token_urlsafe(18)),
            form_action=state.get(FORM_ACTION_STATE, ()),
            frame_ancestors=frame_ancestors,
        ),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }
    if not frame_ancestors:
        headers["x-frame-options"] = "DENY"
    return headers


class SecurityHeadersMiddleware:
    """CSP with a fresh nonce per response, and the headers every portal response carries.

    No Cross-Origin-Opener-Policy: the connect pages must keep their `window.opener`.
    """

    def __init__(self, app: ASGIApp, *, frame_ancestors: tuple[str, ...] = ()) -> None:
        self.app = app
        self.frame_ancestors = frame_ancestors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        state[NONCE_STATE] = secrets.token_urlsafe(18)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(security_headers(state, self.frame_ancestors))
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            access_logger.info(
                "%s %s %d %.1fms", scope["method"], scope["path"], status,
                (time.perf_counter() - started) * 1000,
            )
