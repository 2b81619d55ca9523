"""The connect flow: the session state machine and every business rule of a connect.

Views call this module and render what it returns; it never sees a Request. It owns
the order of things: validate → mark CONNECTING → deliver → COMPLETED | FAILED.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from portal.auth.credentials.checker import CredentialChecker, Outcome
from portal.auth.credentials.form import CREDENTIAL_TYPES, FormResult, connection_body, read_form
from portal.catalog import AuthOption, Catalog, FieldFormat, Integration
from portal.connect_request import ConnectRequest
from portal.core_api import CoreApiClient, DeliveryFailed
from portal.errors import (
    CsrfFailed,
    IntegrationNotFound,
    InvalidTokenError,
    MissingToken,
    ServiceUnavailable,
    SessionClosed,
    SessionInUse,
    SessionNotBound,
    SessionNotFoundError,
    ValidationFailed,
)
from portal.outbound import HostCheck
from portal.sessions import ConnectSession, SessionStatus
from portal.settings import Settings, origin_of
from portal.store import SessionNotFound, SessionStore, StoreUnavailable, TransitionRefused
from portal.tokens import (
    BrowserBinding,
    InvalidToken,
    Signer,
    browser_claim,
    new_browser_id,
    read_browser_id,
)
from portal.webhooks import WebhookSender

logger = logging.getLogger("portal.flow")
T = TypeVar("T")

# How long a finished session stays readable by the backend after its token expires.
RESULT_RETENTION = 60 * 60
RESULT_MESSAGE_TYPE = "weavz-connect-result"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    connect_url: str
    expires_at: int
    session_id: str


@dataclass(frozen=True)
class ConnectResult:
    """How the opener learns the outcome: a message to post, or a URL to send the user to."""

    session: ConnectSession
    message: dict[str, Any]
    target_origins: tuple[str, ...]
    redirect_url: str | None


@dataclass(frozen=True)
class FormRejected:
    """The form had errors; nothing changed. `values` holds only non-secret input.

    `notice` is a form-wide reason, such as the provider being unreachable for the check.
    """

    errors: dict[str, str]
    values: dict[str, str]
    notice: str | None = None


@dataclass(frozen=True)
class PickerPage:
    """What the picker shows: every integration that can be connected here, and which of
    them match the search (the others are rendered hidden, for instant filtering)."""

    query: str
    category: str | None
    categories: list[str]
    integrations: list[Integration]
    matches: frozenset[str]


class ConnectFlow:
    def __init__(
        self,
        *,
        settings: Settings,
        catalog: Catalog,
        store: SessionStore,
        signer: Signer,
        core: CoreApiClient,
        checker: CredentialChecker | None = None,
        webhooks: WebhookSender | None = None,
        hosts: HostCheck | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.store = store
        self.signer = signer
        self.core = core
        self.checker = checker
        self.webhooks = webhooks
        self.hosts = hosts
        self.clock = clock

    # -- backend API ----------------------------------------------------------------
    async def create_session(self, request: ConnectRequest) -> IssuedToken:
        now = int(self.clock())
        ttl = request.expires_in or self.settings.token_ttl
        session = ConnectSession(
            id=str(uuid.uuid4()),
            integration_name=request.integration_name,
            workspace_id=request.workspace_id,
            connection_name=request.connection_name,
            external_id=request.external_id,
            end_user_id=request.end_user_id,
            workspace_integration_id=request.workspace_integration_id,
            auth_method_key=request.auth_method_key,
            scope=request.scope,
            oauth_app_mode=request.oauth_app_mode,
            oauth_app_id=request.oauth_app_id,
            success_redirect_uri=request.success_redirect_uri,
            error_redirect_uri=request.error_redirect_uri,
            allowed_origins=list(request.allowed_origins),
            webhook_url=request.webhook_url,
            expires_at=now + ttl,
            created_at=now,
        )
        await self._store(self.store.create(session, ttl=ttl + RESULT_RETENTION))
        token = self.signer.issue_connect_token(session.id, session.expires_at)
        logger.info("session %s created for %s", session.id, session.integration_name or "picker")
        return IssuedToken(
            token=token,
            connect_url=f"{self.settings.public_url}/connect?token={token}",
            expires_at=session.expires_at,
            session_id=session.id,
        )

    async def session_by_id(self, session_id: str) -> ConnectSession:
        session = None
        if _looks_like_session_id(session_id):
            session = await self._store(self.store.get(session_id))
        if session is None:
            raise SessionNotFoundError("No connect session with that id.")
        return session

    async def session_by_token(self, token: object) -> ConnectSession:
        try:
            claims = self.signer.read_connect_token(token, now=self.clock())
        except InvalidToken as exc:
            if exc.reason == "missing":
                raise MissingToken("A connect token is required.") from None
            if exc.reason == "expired":
                raise InvalidTokenError(
                    "The connect token has expired.", details={"reason": "expired"}
                ) from None
            raise InvalidTokenError(
                "The connect token is not valid.", details={"reason": "invalid"}
            ) from None
        return await self.session_by_id(claims.session_id)

    # -- hosted pages ---------------------------------------------------------------
    async def open(
        self, token: object, browser_id: str | None
    ) -> tuple[ConnectSession, str, str]:
        """Check the link's token and claim its session for this browser.

        The first browser to open a link holds its session for good (a hash of its id is
        kept in the session record); the same browser may open it again, any other gets
        SessionInUse and nothing changes. So a user who forwards their link cannot get
        someone else's credential saved under their externalId. `browser_id` is the
        browser cookie's value (a new one is made when it is missing or malformed).
        Returns the session, the browser-binding cookie value and the browser id.
        """
        session = await self.session_by_token(token)
        browser_id = read_browser_id(browser_id) or new_browser_id()
        try:
            holds = await self._store(self.store.claim(session.id, browser_claim(browser_id)))
        except SessionNotFound:
            raise SessionNotFoundError("No connect session with that id.") from None
        if not holds:
            logger.warning("session %s: link opened in a second browser, refused", session.id)
            raise SessionInUse("This link was already opened in another browser.")
        cookie, _ = self.signer.issue_browser_binding(session.id, browser_id=browser_id)
        return session, cookie, browser_id

    async def bound_session(
        self, session_id: str, cookie: str | None
    ) -> tuple[ConnectSession, BrowserBinding]:
        """The session this browser was bound to by `open`; refused for any other browser."""
        try:
            binding = self.signer.read_browser_binding(cookie)
        except InvalidToken:
            raise SessionNotBound("This browser has not opened the connect link.") from None
        if binding.session_id != session_id:
            raise SessionNotBound("This browser has not opened the connect link.")
        session = await self.session_by_id(session_id)
        if not session.status.is_final and session.expires_at <= self.clock():
            raise InvalidTokenError("The connect link has expired.", details={"reason": "expired"})
        return session, binding

    def check_csrf(
        self, binding: BrowserBinding, token: object, *, origin: str | None, fetch_site: str | None
    ) -> None:
        """A form post must come from this portal's own page in the bound browser.

        Under `Referrer-Policy: no-referrer` browsers send `Origin: null` for form posts,
        so a null Origin falls back to `Sec-Fetch-Site`; the CSRF token is checked always.
        """
        if origin not in (None, "null") and origin != self.settings.public_origin:
            raise CsrfFailed("The form was sent from another site.")
        if fetch_site is not None and fetch_site not in {"same-origin", "none"}:
            raise CsrfFailed("The form was sent from another site.")
        if not self.signer.check_csrf_token(token, binding):
            raise CsrfFailed("The form has expired or was not sent by this page.")

    def integration_of(self, session: ConnectSession) -> Integration | None:
        if session.integration_name is None:
            return None
        integration = self.catalog.get(session.integration_name)
        if integration is None:
            # The catalog changed under a live session.
            raise IntegrationNotFound("This integration is no longer available.")
        return integration

    async def choose_integration(self, session: ConnectSession, name: object) -> ConnectSession:
        """The picker: fix the integration of a session minted without one."""
        if session.integration_name is not None:
            raise SessionClosed("An integration was already chosen for this session.")
        integration = self.catalog.get(name) if isinstance(name, str) else None
        if integration is None or not self.runnable_options(integration):
            raise IntegrationNotFound("No such integration.")
        return await self._transition(
            session, SessionStatus.PENDING, integration_name=integration.name
        )

    def runnable_options(self, integration: Integration) -> tuple[AuthOption, ...]:
        """The options this portal can run: credential forms and OAuth (oauth_flow.py)."""
        return tuple(item for item in integration.auth_options
                     if item.type in CREDENTIAL_TYPES or item.type.is_oauth)

    def picker(self, query: str = "", category: str | None = None) -> PickerPage:
        """Integrations the user can connect here, filtered by words and a category."""
        words = query.lower().split()[:10]
        categories = sorted({item.category for item in self.catalog
                             if self.runnable_options(item)})
        if category not in categories:
            category = None
        shown = [item for item in self.catalog if self.runnable_options(item)]
        matches = set()
        for item in shown:
            text = f"{item.name} {item.display_name} {item.category} {item.description}".lower()
            if (not category or item.category == category) and all(w in text for w in words):
                matches.add(item.name)
        return PickerPage(query=query, category=category, categories=categories,
                          integrations=shown, matches=frozenset(matches))

    def auth_option(self, session: ConnectSession, integration: Integration) -> AuthOption | None:
        """The option to use, or None while the user has to choose among several."""
        runnable = self.runnable_options(integration)
        if session.auth_method_key is not None:
            chosen = next((item for item in runnable if item.key == session.auth_method_key),
                          None)
            if chosen is not None:
                return chosen
        return runnable[0] if len(runnable) == 1 else None

    async def choose_auth_method(self, session: ConnectSession, key: object) -> ConnectSession:
        """The auth-method choice, when an integration has several and none was fixed."""
        integration = self.integration_of(session)
        if integration is None:
            raise ValidationFailed("Choose an integration first.")
        if self.auth_option(session, integration) is not None:
            raise SessionClosed("An auth method was already chosen for this session.")
        option = next((item for item in self.runnable_options(integration) if item.key == key),
                      None)
        if option is None:
            raise ValidationFailed("No such auth method.", details={"fields": {
                "auth_method": "Choose one of the listed ways to connect."}})
        return await self._transition(
            session, SessionStatus.PENDING, auth_method_key=option.key
        )

    async def submit_credentials(
        self, session: ConnectSession, form: Mapping[str, str]
    ) -> ConnectResult | FormRejected:
        integration = self.integration_of(session)
        if integration is None:
            raise ValidationFailed("Choose an integration first.")
        option = self.auth_option(session, integration)
        if option is None:
            raise ValidationFailed("Choose how to connect first.")
        if option.type.is_oauth:
            raise ValidationFailed("This app connects by signing in, not with a form.")
        result: FormResult = read_form(
            option, form, allow_http_loopback=self.settings.allow_http_loopback
        )
        if result.errors:
            return FormRejected(errors=result.errors, values=result.values)
        if self.hosts is not None:
            # Host names the core API will connect to must resolve to allowed addresses.
            for item in option.inputs:
                host = result.checked.get(item.key)
                if item.format is FieldFormat.HOSTNAME and host:
                    refusal = await self.hosts.refusal(host)
                    if refusal is not None:
                        return FormRejected(errors={item.key: f"hostname_{refusal}"},
                                            values=result.values)
        if option.verification is not None and self.checker is not None:
            check = await self.checker.check(option.verification, result.checked)
            if check.outcome is Outcome.REJECTED and check.field:
                return FormRejected(errors={check.field: "rejected"}, values=result.values)
            if check.outcome is Outcome.UNSAFE and check.field:
                return FormRejected(errors={check.field: f"url_{check.reason}"},
                                    values=result.values)
            if check.outcome is Outcome.UNSENDABLE and check.field:
                return FormRejected(errors={check.field: check.reason}, values=result.values)
            if check.outcome is not Outcome.VALID:
                return FormRejected(errors={}, values=result.values,
                                    notice="provider_unavailable")

        session = await self._transition(session, SessionStatus.CONNECTING)
        body = connection_body(session, option, result.credentials)
        # Once CONNECTING, finish even if the browser goes away mid-request.
        return await asyncio.shield(self._deliver(session, body))

    # -- for the OAuth family (oauth_flow.py) -------------------------------------------
    async def remember_auth_method(self, session: ConnectSession, key: str) -> ConnectSession:
        return await self._transition(session, SessionStatus.PENDING, auth_method_key=key)

    async def begin_connecting(self, session: ConnectSession) -> ConnectSession:
        return await self._transition(session, SessionStatus.CONNECTING)

    async def fail(
        self, session: ConnectSession, code: str, message: str, *, only_pending: bool = False
    ) -> ConnectSession:
        """End the session FAILED. `only_pending`: for causes that must never overrule a
        delivery in flight (a provider's error answer): refused unless still PENDING."""
        only_from = frozenset({SessionStatus.PENDING}) if only_pending else None
        session = await self._transition(session, SessionStatus.FAILED, only_from=only_from,
                                         error=message, error_code=code)
        logger.warning("session %s failed: %s", session.id, code)
        self._finished(session)
        return session

    async def deliver(self, session: ConnectSession, body: dict[str, Any]) -> ConnectResult:
        """Send a CONNECTING session's connection; finishes even if the browser goes away."""
        return await asyncio.shield(self._deliver(session, body))

    async def _deliver(self, session: ConnectSession, body: dict[str, Any]) -> ConnectResult:
        try:
            delivered = await self.core.create_connection(body, session_id=session.id)
        except DeliveryFailed as exc:
            logger.warning("session %s failed: %s", session.id, exc.code)
            session = await self._transition(
                session, SessionStatus.FAILED, error=exc.message, error_code=exc.code
            )
        else:
            logger.info("session %s completed as connection %s", session.id,
                        delivered.connection_id)
            session = await self._transition(
                session, SessionStatus.COMPLETED, connection_id=delivered.connection_id
            )
        self._finished(session)
        return self.result(session)

    def _finished(self, session: ConnectSession) -> None:
        """A session just became final here (and only here: transitions are atomic)."""
        if self.webhooks is not None:
            self.webhooks.session_finished(session)

    def result(self, session: ConnectSession) -> ConnectResult:
        success = session.status is SessionStatus.COMPLETED
        message: dict[str, Any] = {
            "type": RESULT_MESSAGE_TYPE,
            "status": "success" if success else "error",
            "sessionId": session.id,
            "connectionId": session.connection_id,
            "integrationName": session.integration_name,
            "externalId": session.external_id,
        }
        if not success:
            message["error"] = session.error
            message["code"] = session.error_code
        redirect_url = None
        if success and session.success_redirect_uri:
            redirect_url = _with_query(session.success_redirect_uri, {
                "sessionId": session.id,
                "connectionId": session.connection_id or "",
                "status": "success",
            })
        elif not success and session.error_redirect_uri:
            redirect_url = _with_query(session.error_redirect_uri, {
                "sessionId": session.id,
                "status": "error",
                "code": session.error_code or "FAILED",
            })
        return ConnectResult(
            session=session,
            message=message,
            target_origins=self.target_origins(session),
            redirect_url=redirect_url,
        )

    def target_origins(self, session: ConnectSession) -> tuple[str, ...]:
        """Exactly the origins that may receive this session's result, never "*"."""
        origins = list(session.allowed_origins or self.settings.allowed_origins)
        for uri in (session.success_redirect_uri, session.error_redirect_uri):
            if uri:
                origins.append(origin_of(uri))
        return tuple(dict.fromkeys(origins))

    def may_call_poll(self, origin: str | None) -> bool:
        """Browsers on a partner origin may poll (and read errors); sessions stay per origin."""
        return origin is not None and origin in self.settings.allowed_origins

    @staticmethod
    def redirect_origins(session: ConnectSession) -> tuple[str, ...]:
        """Where a no-opener form of this session may send the browser at its end."""
        uris = (session.success_redirect_uri, session.error_redirect_uri)
        return tuple(dict.fromkeys(origin_of(uri) for uri in uris if uri))

    async def _transition(
        self,
        session: ConnectSession,
        to: SessionStatus,
        *,
        only_from: frozenset[SessionStatus] | None = None,
        **changes: str,
    ) -> ConnectSession:
        try:
            return await self._store(
                self.store.transition(session.id, to, only_from=only_from, **changes)
            )
        except TransitionRefused as exc:
            raise SessionClosed(
                f"This connect session is already {exc.current.value.lower()}.",
                details={"status": exc.current.value},
            ) from None
        except SessionNotFound:
            raise SessionNotFoundError("No connect session with that id.") from None

    @staticmethod
    async def _store(awaitable: Awaitable[T]) -> T:
        return await answered_by_store(awaitable, "session store")


def _looks_like_session_id(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _with_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


async def answered_by_store(awaitable: Awaitable[T], what: str) -> T:
    """Await a store call; an unreachable store is a 503 the user can retry, logged once."""
    try:
        return await awaitable
    except StoreUnavailable as exc:
        logger.error("%s unavailable: %s", what, exc)
        raise ServiceUnavailable(
            "The portal cannot reach its session store. Try again in a moment."
        ) from None
