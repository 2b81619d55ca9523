"""The portal's one error vocabulary: every code it answers with, and the exceptions that
carry them.

- `ErrorCode`: the code of an error answer, with its HTTP status, the key of the text a
  hosted page shows for it (`PAGE_TEXTS`) and what it means (README, openapi.json). An
  API answer is the envelope `{"error": "human text", "code": "ENUM", "details": {...}}`.
- `SessionFailure`: why a session ended FAILED: its `errorCode`, the `code` of the
  result message and of the error redirect. Not an HTTP answer: the request that fails a
  session answers with the result page, so these codes have no status.
- `PortalError` and its subclasses, in the manner of httpx's exceptions: one leaf class
  per code, under an intermediate class per kind, so a caller can catch "any not-found":

      PortalError
      ├── ClientError        the request cannot be served as sent (400, 405, 413)
      ├── AuthError          the caller did not prove it may do this (401, 403)
      ├── NotFoundError      (404)
      ├── ConflictError      the session is past the step asked for (409)
      ├── UpstreamError      a provider the portal called answered badly (502)
      ├── UnavailableError   a store or the core API does not answer (503)
      └── ServerError        a bug (500)

A class's code and status are fixed by the class; nothing sets them on an instance. A
leaf's status is its code's, except for the one code with two statuses: REFRESH_FAILED
is 400 when the provider refused the refresh token (`RefreshFailed`) and 502 when the
provider failed (`RefreshProviderFailed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from portal.i18n import gettext


class ErrorCode(StrEnum):
    """Every code the portal answers an HTTP request with; the wire value is the name.

    Each member: its HTTP statuses (the first is the usual one), its message key (the
    text a hosted page shows, in PAGE_TEXTS; issue 11's catalog translates it), and what
    it means, for the README's and openapi.json's tables.
    """

    statuses: tuple[int, ...]
    message_key: str
    meaning: str

    def __new__(
        cls, value: str, statuses: int | tuple[int, ...], message_key: str, meaning: str
    ) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.statuses = statuses if isinstance(statuses, tuple) else (statuses,)
        member.message_key = message_key
        member.meaning = meaning
        return member

    @property
    def status(self) -> int:
        return self.statuses[0]

    @property
    def page_text(self) -> PageText:
        """The page's words, in the language of the page being rendered."""
        return PAGE_TEXTS[self.message_key].translated()

    # -- the request ------------------------------------------------------------------
    BAD_REQUEST = (
        "BAD_REQUEST", 400, "error.something_went_wrong",
        "The request could not be read, such as a malformed form body.")
    VALIDATION_ERROR = (
        "VALIDATION_ERROR", 400, "error.something_went_wrong",
        "The request is not valid; `details.fields` says what is wrong with each field.")
    METHOD_NOT_ALLOWED = (
        "METHOD_NOT_ALLOWED", 405, "error.something_went_wrong",
        "The path does not take this method.")
    PAYLOAD_TOO_LARGE = (
        "PAYLOAD_TOO_LARGE", 413, "error.payload_too_large",
        "The body is larger than the route takes (PORTAL_MAX_JSON_BODY, "
        "PORTAL_MAX_FORM_BODY).")
    OAUTH_STATE_INVALID = (
        "OAUTH_STATE_INVALID", 400, "error.oauth_state_invalid",
        "Hosted pages: the OAuth callback's state is missing, forged, used or expired; "
        "nothing was changed.")
    NO_OAUTH_APP = (
        "NO_OAUTH_APP", 400, "error.something_went_wrong",
        "No OAuth app is set up for the integration (the platform's, or the customer's "
        "`oauthAppId`).")
    MISSING_OAUTH2_CONFIG = (
        "MISSING_OAUTH2_CONFIG", 400, "error.something_went_wrong",
        "Minting a token: the integration (or the `authMethodKey` named) can only be "
        "connected by OAuth, and no OAuth app is set up for it (no platform app in "
        "PORTAL_OAUTH_APPS, and no `oauthAppMode: \"custom\"` with an `oauthAppId`).")
    REFRESH_FAILED = (
        "REFRESH_FAILED", (400, 502), "error.something_went_wrong",
        "The provider did not refresh the tokens: 400 when it refused the refresh token "
        "(`details.reason` `invalid_grant`), 502 when it failed (unreachable, timed out, "
        "a 5xx, an unreadable answer or another OAuth error, in `details.reason`).")
    # -- who is asking ----------------------------------------------------------------
    UNAUTHORIZED = (
        "UNAUTHORIZED", 401, "error.something_went_wrong",
        "The API key is missing or is not one of PORTAL_API_KEYS.")
    MISSING_TOKEN = (
        "MISSING_TOKEN", 401, "error.link_incomplete",
        "No connect token was given.")
    INVALID_TOKEN = (
        "INVALID_TOKEN", 401, "error.link_invalid",
        "The connect token or link is not valid or has expired (`details.reason`: "
        "`invalid` or `expired`).")
    SESSION_NOT_BOUND = (
        "SESSION_NOT_BOUND", 403, "error.session_not_bound",
        "Hosted pages: this browser has not opened the session's connect link, or the "
        "OAuth sign-in was started in another browser.")
    SESSION_IN_USE = (
        "SESSION_IN_USE", 403, "error.session_in_use",
        "Hosted pages: the connect link was already opened in another browser.")
    CSRF_FAILED = (
        "CSRF_FAILED", 403, "error.form_expired",
        "Hosted pages: the form was sent from another site, or its CSRF token expired.")
    # -- what was asked for -----------------------------------------------------------
    NOT_FOUND = (
        "NOT_FOUND", 404, "error.page_not_found",
        "No such path.")
    INTEGRATION_NOT_FOUND = (
        "INTEGRATION_NOT_FOUND", 404, "error.integration_not_found",
        "No integration of that name is in the catalog (any more).")
    SESSION_NOT_FOUND = (
        "SESSION_NOT_FOUND", 404, "error.session_not_found",
        "No connect session has that id.")
    END_USER_NOT_FOUND = (
        "END_USER_NOT_FOUND", 404, "error.end_user_not_found",
        "The core API knows no end user with that id (or one of another workspace).")
    SESSION_CLOSED = (
        "SESSION_CLOSED", 409, "error.session_closed",
        "Hosted pages: the session is already finished, or past the step asked for "
        "(`details.status`).")
    # -- the portal and what it depends on --------------------------------------------
    SERVICE_UNAVAILABLE = (
        "SERVICE_UNAVAILABLE", 503, "error.service_unavailable",
        "The session store, the OAuth state store or the core API does not answer; "
        "try again.")
    INTERNAL_ERROR = (
        "INTERNAL_ERROR", 500, "error.something_went_wrong",
        "A bug; the traceback is in the portal's log.")
    RATE_LIMITED = (
        "RATE_LIMITED", 429, "error.rate_limited",
        "Too many requests of this kind: hosted pages or polls from one client IP, mints "
        "with one API key, form submits on one session, invites per end user; the "
        "`Retry-After` header says when to try again.")
    NOT_CONFIGURED = (
        "NOT_CONFIGURED", 501, "error.not_configured",
        "This portal is not set up for the call (invites without PORTAL_SMTP_URL).")


class SessionFailure(StrEnum):
    """Why an attempt failed, or a session ended FAILED (its `errorCode`); the session's
    `error` says it in words. `retryable`: while the link is valid the user may try again
    after this (the session stays PENDING, see portal/sessions.py); the others end the
    session. DELIVERY_FAILED and CORE_API_REJECTED come from delivery (portal/delivery.py),
    EXPIRED from a lookup, CANCELLED from the user, the others from OAuth."""

    meaning: str
    retryable: bool

    def __new__(cls, value: str, meaning: str, retryable: bool) -> SessionFailure:
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        member.retryable = retryable
        return member

    def leaves_open(self, expires_at: float, now: float) -> bool:
        """Whether an attempt that failed with this cause leaves the session open for
        another (back to PENDING) rather than ending it FAILED: the cause is retryable
        and the link has not expired. The one rule for the pages and the outbox."""
        return self.retryable and expires_at > now

    DELIVERY_FAILED = (
        "DELIVERY_FAILED",
        "The core API did not confirm the connection before PORTAL_DELIVERY_DEADLINE (it "
        "kept being unreachable, answering 429 or 5xx, or answering without a connection "
        "id), or the reconciler found the delivery lost and the core API holds no "
        "connection for the session.", False)
    CORE_API_REJECTED = (
        "CORE_API_REJECTED", "The core API refused the connection; `error` gives its reason.",
        True)
    EXPIRED = (
        "EXPIRED",
        "The connect link expired before the user finished (how a lookup by id reads a "
        "session that was never submitted once its token expired; no webhook is sent).",
        False)
    CANCELLED = (
        "CANCELLED",
        "The user chose to stop (Close / Return on the connect page) without connecting. "
        "When an attempt had failed before, the session ends with that attempt's code "
        "instead.", False)
    OAUTH_ERROR = (
        "OAUTH_ERROR",
        "The provider's sign-in answered with an error, without a code, or from the wrong "
        "issuer.", True)
    NO_OAUTH_APP = (
        "NO_OAUTH_APP",
        "No OAuth app is set up for the integration (a customer's `oauthAppId` the core API "
        "does not know; a platform app missing is refused when the token is minted, "
        "MISSING_OAUTH2_CONFIG).", True)
    TOKEN_EXCHANGE_FAILED = (
        "TOKEN_EXCHANGE_FAILED", "The provider did not exchange the sign-in's code for tokens.",
        True)


@dataclass(frozen=True)
class PageText:
    """What a hosted page says for an error: a title and what to do next."""

    title: str
    advice: str

    def translated(self) -> PageText:
        """In the language of the page being rendered (portal/i18n.py); English here,
        extracted for translators by babel.cfg's page_texts."""
        return PageText(gettext(self.title), gettext(self.advice))


# The English of every message key; templates/error.html shows `code.page_text`.
PAGE_TEXTS: dict[str, PageText] = {
    "error.something_went_wrong": PageText(
        "Something went wrong", "Go back to the app you came from and try again."),
    "error.link_incomplete": PageText(
        "This link is incomplete", "Open the connect link again from the app you came from."),
    "error.link_invalid": PageText(
        "This link is not valid or has expired",
        "Connect links work for a limited time. Go back to the app you came from and start "
        "again."),
    "error.session_not_found": PageText(
        "This connect session no longer exists",
        "Go back to the app you came from and start again."),
    "error.session_not_bound": PageText(
        "Open the link in this browser first",
        "This page belongs to a connect link opened in another browser or window. Open the "
        "link you were given again."),
    "error.session_in_use": PageText(
        "This link was already opened in another browser",
        "For your safety, a connect link works in one browser only, the first one that "
        "opens it. Nothing was changed. Ask the app you came from for a new link."),
    "error.form_expired": PageText(
        "This form has expired", "Reload the page and try again."),
    "error.payload_too_large": PageText(
        "What you sent is too large",
        "Nothing was saved. Go back, check what you entered and try again."),
    "error.session_closed": PageText(
        "This connection is already finished",
        "Close this window and return to the app you came from."),
    "error.integration_not_found": PageText(
        "This app is not available",
        "Go back to the app you came from and choose another one."),
    "error.service_unavailable": PageText("The portal is busy", "Try again in a moment."),
    "error.end_user_not_found": PageText(
        "This link is not valid", "Ask the app you came from for a new link."),
    "error.rate_limited": PageText(
        "Too many attempts", "Wait a little, then try again."),
    "error.not_configured": PageText(
        "Not available here", "Go back to the app you came from."),
    "error.page_not_found": PageText(
        "Page not found", "Check the address, or go back to the app you came from."),
    "error.oauth_state_invalid": PageText(
        "This sign-in cannot be finished",
        "The answer from the sign-in page was already used, has expired, or was not started "
        "here. Go back to the connect window and sign in again."),
}


# -- the exceptions ----------------------------------------------------------------------
class PortalError(Exception):
    """An error the portal answers with. Raise a leaf class: it names the code."""

    code: ClassVar[ErrorCode]
    status: ClassVar[int]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            if "status" not in cls.__dict__:
                cls.status = cls.code.status
            if cls.status not in cls.code.statuses:
                raise TypeError(f"{cls.__name__}: {cls.code} does not answer {cls.status}")

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        if not hasattr(type(self), "code"):
            raise TypeError(f"{type(self).__name__} names no code: raise a leaf class")
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def envelope(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code.value, "details": self.details}

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the envelope (Retry-After of a 429)."""
        return {}


class ClientError(PortalError):
    """The request cannot be served as it was sent."""


class AuthError(PortalError):
    """The caller did not prove it may do this: no API key, no valid token or link, or
    another browser than the one the session belongs to."""


class NotFoundError(PortalError):
    """What the request names does not exist."""


class ConflictError(PortalError):
    """The session is past the step the request is for."""


class UpstreamError(PortalError):
    """A provider the portal called for this request answered badly."""


class UnavailableError(PortalError):
    """Something the portal depends on does not answer; the same request may work later."""


class ServerError(PortalError):
    """A bug in the portal."""


# -- ClientError --
class BadRequest(ClientError):
    """A request the framework could not read (an HTTPException without a code of its own)."""

    code = ErrorCode.BAD_REQUEST


class ValidationFailed(ClientError):
    code = ErrorCode.VALIDATION_ERROR


class MissingOAuth2Config(ClientError):
    code = ErrorCode.MISSING_OAUTH2_CONFIG


class MethodNotAllowed(ClientError):
    code = ErrorCode.METHOD_NOT_ALLOWED


class PayloadTooLarge(ClientError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class OAuthStateInvalid(ClientError):
    """The callback's state is missing, forged, used or expired; nothing was changed."""

    code = ErrorCode.OAUTH_STATE_INVALID


class NoOAuthApp(ClientError):
    code = ErrorCode.NO_OAUTH_APP


class RefreshFailed(ClientError):
    """The provider refused the refresh token (`invalid_grant`): the connection must be
    made again. For a provider that failed, RefreshProviderFailed."""

    code = ErrorCode.REFRESH_FAILED


# -- AuthError --
class Unauthorized(AuthError):
    code = ErrorCode.UNAUTHORIZED


class MissingToken(AuthError):
    code = ErrorCode.MISSING_TOKEN


class InvalidTokenError(AuthError):
    """The connect token or link is not valid or has expired. (portal/tokens.py's
    TokenRefused is why; this is the answer.)"""

    code = ErrorCode.INVALID_TOKEN


class SessionNotBound(AuthError):
    """The browser has no valid binding cookie for this session (link opened elsewhere)."""

    code = ErrorCode.SESSION_NOT_BOUND


class SessionInUse(AuthError):
    """The link was already opened in another browser: the session belongs to that one."""

    code = ErrorCode.SESSION_IN_USE


class CsrfFailed(AuthError):
    code = ErrorCode.CSRF_FAILED


# -- NotFoundError --
class NotFound(NotFoundError):
    """No route for the path."""

    code = ErrorCode.NOT_FOUND


class IntegrationNotFound(NotFoundError):
    code = ErrorCode.INTEGRATION_NOT_FOUND


class SessionNotFoundError(NotFoundError):
    """No session with that id (the store's own SessionNotFound is why; this is the answer)."""

    code = ErrorCode.SESSION_NOT_FOUND


class EndUserNotFound(NotFoundError):
    code = ErrorCode.END_USER_NOT_FOUND


# -- ConflictError --
class SessionClosed(ConflictError):
    """The session already finished or is being finished; nothing more can be submitted."""

    code = ErrorCode.SESSION_CLOSED


# -- UpstreamError --
class RefreshProviderFailed(UpstreamError):
    """The provider failed the refresh: unreachable, timed out, a 5xx, an unreadable
    answer or an OAuth error other than `invalid_grant`."""

    code = ErrorCode.REFRESH_FAILED
    status = 502


# -- UnavailableError --
class ServiceUnavailable(UnavailableError):
    code = ErrorCode.SERVICE_UNAVAILABLE


class RateLimited(ClientError):
    code = ErrorCode.RATE_LIMITED

    def __init__(self, message: str, *, retry_after: int = 60,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = max(1, retry_after)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


# -- ServerError --
class InternalError(ServerError):
    code = ErrorCode.INTERNAL_ERROR


class NotConfigured(ServerError):
    """The operator has not set up what the call needs (501)."""

    code = ErrorCode.NOT_CONFIGURED


def for_http_status(status: int, message: str) -> PortalError:
    """The error to answer with for a status the framework raised (Starlette's
    HTTPException): its own class for 404 and 405, InternalError for a 5xx, else
    BadRequest."""
    kind: type[PortalError] = {404: NotFound, 405: MethodNotAllowed}.get(
        status, InternalError if status >= 500 else BadRequest)
    return kind(message)
