"""Plain ASGI middleware: the security headers of every response, an access log that never
records a query string (connect links carry their token there), and the body cap of a route."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.errors import PayloadTooLarge
from portal.logs import REQUEST_ID_HEADER, escape_controls, request_id_from, request_id_var

access_logger = logging.getLogger("portal.access")

# Keys in the ASGI scope's "state" (what views see as `request.state`).
NONCE_STATE = "csp_nonce"
FORM_ACTION_STATE = "csp_form_action"


def content_security_policy(
    *, nonce: str | None, form_action: tuple[str, ...] = (),
    frame_ancestors: tuple[str, ...] = (),
) -> str:
    """The policy of one response: only scripts carrying its nonce run (none without one)."""
    return "; ".join([
        "default-src 'none'",
        f"script-src 'nonce-{nonce}'" if nonce else "script-src 'none'",
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


def csp_nonce(state: Any) -> str:
    """This response's script nonce, drawn the first time a page asks for it."""
    nonce: str | None = getattr(state, NONCE_STATE, None)
    if nonce is None:
        nonce = secrets.token_urlsafe(18)
        setattr(state, NONCE_STATE, nonce)
    return nonce


def security_headers(state: dict[str, Any], frame_ancestors: tuple[str, ...]) -> dict[str, str]:
    """The headers of one response, from the nonce and form targets in its request state.

    A response that drew no nonce (JSON, redirects, static files) runs no script at all.
    """
    nonce = state.get(NONCE_STATE)
    headers = {
        "content-security-policy": content_security_policy(
            nonce=nonce, form_action=state.get(FORM_ACTION_STATE, ()),
            frame_ancestors=frame_ancestors,
        ),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }
    if not frame_ancestors:
        headers["x-frame-options"] = "DENY"
    return headers


def logged_path(scope: Scope) -> str:
    """The path as the client sent it, still percent-encoded (`%0d%0a` stays as typed, so
    it cannot start a log line of its own), and never the query string."""
    raw_path = scope.get("raw_path")
    if isinstance(raw_path, bytes):
        return escape_controls(raw_path.decode("ascii", "backslashreplace"))
    return escape_controls(str(scope["path"]))


_REQUEST_ID_NAME = REQUEST_ID_HEADER.encode("latin-1")


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of the request header `name` (lower case), without building a
    Headers object: this runs on every request."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class PortalMiddleware:
    """What every portal response gets, in one pass over `send`: the security headers
    (CSP with a fresh nonce for each page that runs a script), and one access-log line
    with method, path, status and duration, never the query string.

    No Cross-Origin-Opener-Policy: the connect pages must keep their `window.opener`.
    """

    def __init__(self, app: ASGIApp, *, frame_ancestors: tuple[str, ...] = ()) -> None:
        self.app = app
        self.frame_ancestors = frame_ancestors
        # Most answers (the API, redirects, static files) share one set of headers.
        self._static = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in security_headers({}, frame_ancestors).items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        status = 500
        # The request's id: a sane incoming X-Request-ID, else a new one; in every log
        # line of the request (portal.logs), on the answer and on core API calls.
        request_id = request_id_from(header(scope, _REQUEST_ID_NAME))
        request_id_token = request_id_var.set(request_id)
        id_header = (REQUEST_ID_HEADER.encode("latin-1"), request_id.encode("latin-1"))

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if NONCE_STATE in state or FORM_ACTION_STATE in state:
                    headers = MutableHeaders(scope=message)
                    headers.update(security_headers(state, self.frame_ancestors))
                    headers[REQUEST_ID_HEADER] = request_id
                else:
                    message["headers"] = [*message.get("headers", ()), *self._static,
                                          id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            path = logged_path(scope)
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            access_logger.info(
                "%s %s %d %.1fms", scope["method"], path, status, duration_ms,
                extra={"method": scope["method"], "path": path, "status": status,
                       "duration_ms": duration_ms},
            )
            request_id_var.reset(request_id_token)


class BodyLimit:
    """The body cap of one route: a request whose Content-Length says more than `max_bytes`,
    or whose body (chunked or not) grows past it as it streams in, gets PayloadTooLarge
    from `receive`, before the handler has read (or changed) anything. The app's error
    handlers answer it: the JSON envelope on /api/, the error page elsewhere.

    A handler that never reads the body is left alone; the server drops the unread rest
    (for no longer than the header timeout: portal.server)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        too_large = (declared.isascii() and declared.isdigit()
                     and (len(declared) > 18 or int(declared) > self.max_bytes))
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            if too_large:
                raise self.refusal()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self.refusal()
            return message

        await self.app(scope, receive_within_limit, send)

    def refusal(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body is over the limit of {self.max_bytes} bytes.",
            details={"maxBytes": self.max_bytes},
        )


def body_limit(max_bytes: int) -> list[Middleware]:
    """`Route(..., middleware=body_limit(n))`: cap that route's request body at `n` bytes."""
    return [Middleware(BodyLimit, max_bytes=max_bytes)]
