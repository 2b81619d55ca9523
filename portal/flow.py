"""The connect flow: the session state machine and every business rule of a connect.

Views call this module and render what it returns; it never sees a Request. It owns
the order of things: open → choose (picker, auth method) → the auth family reads the
submission → CONNECTING → deliver → COMPLETED | FAILED. What each auth family does is
behind one interface (portal/auth/family.py); how the opener learns the outcome is the
return path (portal/return_path.py).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from portal import metrics
from portal.auth.family import Deliver, FormRejected, Refuse, SendBrowser, Submission
from portal.auth.registry import AuthRegistry
from portal.catalog import AuthOption, Catalog, Integration
from portal.connect_request import ConnectRequest
from portal.delivery import RESULT_RETENTION, Delivery, Ending
from portal.errors import (
    IntegrationNotFound,
    InvalidTokenError,
    MissingOAuth2Config,
    MissingToken,
    SessionClosed,
    SessionFailure,
    SessionInUse,
    SessionNotBound,
    SessionNotFoundError,
    ValidationFailed,
)
from portal.picker import PickerPage, picker_page
from portal.return_path import ConnectResult, ReturnPath
from portal.sessions import ConnectSession, SessionStatus
from portal.settings import Settings
from portal.store import SessionNotFound, SessionStore, TransitionRefused
from portal.store.answers import answered_by_store
from portal.tokens import (
    BrowserBinding,
    Signer,
    TokenRefused,
    browser_claim,
    new_browser_id,
    read_browser_id,
)

logger = logging.getLogger("portal.flow")
T = TypeVar("T")

__all__ = ["RESULT_RETENTION", "ConnectFlow", "IssuedToken"]


@dataclass(frozen=True)
class IssuedToken:
    token: str
    connect_url: str
    expires_at: int
    session_id: str


class ConnectFlow:
    def __init__(
        self,
        *,
        settings: Settings,
        catalog: Catalog,
        store: SessionStore,
        signer: Signer,
        delivery: Delivery,
        families: AuthRegistry,
        returns: ReturnPath | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        metrics.describe_catalog(catalog)
        self.store = store
        self.signer = signer
        self.delivery = delivery
        self.families = families
        self.returns = returns or ReturnPath(allowed_origins=settings.allowed_origins)
        self.clock = clock

    # -- backend API ----------------------------------------------------------------
    async def create_session(
        self,
        request: ConnectRequest,
        *,
        reconnect_connection_id: str | None = None,
        previous_account_id: str | None = None,
        return_to: str | None = None,
    ) -> IssuedToken:
        """A PENDING session and its signed connect token. The keyword arguments are the
        end-user portal's own (portal/end_users/): the connection a reconnect updates and
        the provider account it was made with (when the core API knows it), and the
        portal path the result page offers to go back to; never from a token."""
        if return_to is not None and not (return_to.startswith("/")
                                          and not return_to.startswith("//")):
            raise ValueError("return_to must be a path of this portal")
        self._check_connectable(request)
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
            partner_name=request.partner_name,
            partner_logo_url=request.partner_logo_url,
            accent_color=request.accent_color,
            theme=request.theme,
            locale=request.locale,
            preferred_integrations=list(request.preferred_integrations),
            allowed_integrations=list(request.allowed_integrations),
            reconnect_connection_id=reconnect_connection_id,
            previous_account_id=previous_account_id,
            return_to=return_to,
            expires_at=now + ttl,
            created_at=now,
        )
        await self._store(self.store.create(session, ttl=ttl + RESULT_RETENTION))
        metrics.session_created(session.integration_name)
        token = self.signer.issue_connect_token(session.id, session.expires_at)
        logger.info("session %s created for %s", session.id, session.integration_name or "picker")
        return IssuedToken(
            token=token,
            connect_url=f"{self.settings.public_url}/connect?token={token}",
            expires_at=session.expires_at,
            session_id=session.id,
        )

    def _check_connectable(self, request: ConnectRequest) -> None:
        """The backend learns now, not the user at the end, that a named integration
        cannot be connected at all here (only OAuth options, and no app for them)."""
        integration = (self.catalog.get(request.integration_name)
                       if request.integration_name else None)
        if integration is None:
            return
        named = [item for item in self.families_runnable(integration)
                 if request.auth_method_key in (None, item.key)]
        if named and not any(self._available(integration, item, request.oauth_app_mode,
                                             request.oauth_app_id) for item in named):
            what = (f"{integration.name}'s auth method {request.auth_method_key}"
                    if request.auth_method_key else integration.name)
            raise MissingOAuth2Config(
                f"No OAuth app is set up for {what}: configure a platform app "
                "(PORTAL_OAUTH_APPS) or pass oauthAppMode \"custom\" with an oauthAppId.",
                details={"integrationName": integration.name,
                         "authMethodKey": request.auth_method_key})

    async def session_by_id(self, session_id: str) -> ConnectSession:
        session = None
        if _looks_like_session_id(session_id):
            session = await self._store(self.store.get(session_id))
        if session is None:
            raise SessionNotFoundError("No connect session with that id.")
        return session

    async def looked_up_session(self, session_id: str) -> ConnectSession:
        """The session a backend looks up by id. One that was never submitted and whose
        token has expired can no longer change: it reads FAILED with `EXPIRED` (not
        PENDING, which would keep a backend waiting for nothing). A CONNECTING one reads
        CONNECTING until its delivery ends, however late."""
        session = await self.session_by_id(session_id)
        if session.status is SessionStatus.PENDING and session.expires_at <= self.clock():
            if session.error_code is not None:  # the last failed attempt says why
                return replace(session, status=SessionStatus.FAILED)
            return replace(session, status=SessionStatus.FAILED,
                           error="The connect link expired before the account was connected.",
                           error_code=SessionFailure.EXPIRED)
        return session

    async def session_by_token(self, token: object) -> ConnectSession:
        """The session of a token that is valid now (opening the link)."""
        try:
            claims = self.signer.read_connect_token(token, now=self.clock())
        except TokenRefused as exc:
            raise _token_error(exc.reason) from None
        return await self.session_by_id(claims.session_id)

    async def polled_session(self, token: object) -> ConnectSession:
        """The session a backend (or connect.js) polls with its token.

        The token must be one this portal signed. Once the session is final its result
        stays readable with the token after it expires, for as long as the record is kept
        (RESULT_RETENTION): a backend that polls a moment late still learns the outcome.
        An expired token of a session that is not final (or no longer kept) is refused
        as expired."""
        try:
            claims = self.signer.read_signed_connect_token(token)
        except TokenRefused as exc:
            raise _token_error(exc.reason) from None
        session = await self._store(self.store.get(claims.session_id))
        expired = claims.expires_at <= self.clock()
        if expired and (session is None or not session.status.is_final):
            raise _token_error("expired")
        if session is None:
            raise SessionNotFoundError("No connect session with that id.")
        return session

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
        except TokenRefused:
            raise SessionNotBound("This browser has not opened the connect link.") from None
        if binding.session_id != session_id:
            raise SessionNotBound("This browser has not opened the connect link.")
        session = await self.session_by_id(session_id)
        if not session.status.is_final and session.expires_at <= self.clock():
            raise InvalidTokenError("The connect link has expired.", details={"reason": "expired"})
        return session, binding

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
        if integration is None or not self.options_for(session, integration) or (
                session.allowed_integrations
                and integration.name not in session.allowed_integrations):
            raise IntegrationNotFound("No such integration.")
        return await self._transition(
            session, SessionStatus.PENDING, only_from=_PENDING,
            integration_name=integration.name, chose_integration="1", error="",
            error_code="")

    def families_runnable(self, integration: Integration) -> tuple[AuthOption, ...]:
        """The options whose auth type has a family here (whatever the session)."""
        return tuple(item for item in integration.auth_options if self.families.runs(item))

    def runnable_options(self, integration: Integration) -> tuple[AuthOption, ...]:
        """The options any session could use: run here, and working for a session with
        no app choices of its own (the end-user portal's listing)."""
        return tuple(item for item in self.families_runnable(integration)
                     if self._available(integration, item, None, None))

    def options_for(self, session: ConnectSession,
                    integration: Integration) -> tuple[AuthOption, ...]:
        """The options this session can use: run here and workable with its app choices
        (an OAuth option without an app is never offered)."""
        return tuple(item for item in self.families_runnable(integration)
                     if self._available(integration, item, session.oauth_app_mode,
                                        session.oauth_app_id))

    def _available(self, integration: Integration, option: AuthOption,
                   oauth_app_mode: str | None, oauth_app_id: str | None) -> bool:
        return self.families.available(integration, option, oauth_app_mode=oauth_app_mode,
                                       oauth_app_id=oauth_app_id)

    def picker(self, session: ConnectSession, query: str = "",
               category: str | None = None, *, number: int = 1,
               words_of: Callable[[Integration], str] | None = None) -> PickerPage:
        return picker_page(self.catalog, lambda item: self.options_for(session, item),
                           query, category, preferred=session.preferred_integrations,
                           allowed=session.allowed_integrations, number=number,
                           words_of=words_of)

    def auth_option(self, session: ConnectSession, integration: Integration) -> AuthOption | None:
        """The option to use, or None while the user has to choose among several."""
        runnable = self.options_for(session, integration)
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
        option = next((item for item in self.options_for(session, integration)
                       if item.key == key), None)
        if option is None:
            raise ValidationFailed("No such auth method.", details={"fields": {
                "auth_method": "Choose one of the listed ways to connect."}})
        return await self._transition(
            session, SessionStatus.PENDING, only_from=_PENDING, auth_method_key=option.key,
            chose_auth_method="1", error="", error_code="")

    # -- never a dead end: back, try again, give up ------------------------------------
    def can_go_back(self, session: ConnectSession) -> bool:
        """Whether the user made a choice on the pages that "Back" can undo."""
        return session.status is SessionStatus.PENDING and bool(
            session.chose_auth_method or session.chose_integration)

    async def go_back(self, session: ConnectSession) -> ConnectSession:
        """Undo the user's latest choice (the auth method, else the integration), and
        forget a failed attempt. Only while PENDING: a submitted choice cannot change. An
        OAuth sign-in started for the undone choice can no longer finish (the callback
        checks the session still has the choice it was started for)."""
        if session.status is not SessionStatus.PENDING:
            raise _closed(session.status)
        if session.chose_auth_method:
            changes = {"auth_method_key": "", "chose_auth_method": ""}
        elif session.chose_integration:
            changes = {"integration_name": "", "auth_method_key": "", "chose_integration": "",
                       "chose_auth_method": ""}
        else:
            raise ValidationFailed("There is no choice to go back from.")
        return await self._transition(session, SessionStatus.PENDING, only_from=_PENDING,
                                      error="", error_code="", **changes)

    async def try_again(self, session: ConnectSession) -> ConnectSession:
        """Forget the failed attempt of a PENDING session: its page shows the option again."""
        if session.status is not SessionStatus.PENDING:
            raise _closed(session.status)
        if session.error_code is None:
            return session
        return await self._transition(session, SessionStatus.PENDING, only_from=_PENDING,
                                      error="", error_code="")

    async def give_up(self, session: ConnectSession) -> ConnectResult:
        """The user stops: the session ends FAILED for good, with the last failed attempt's
        reason (or CANCELLED), and the opener or the error redirect learns it."""
        if session.status is not SessionStatus.PENDING:
            raise _closed(session.status)
        code = _failure_of(session.error_code) or SessionFailure.CANCELLED
        message = (session.error if session.error_code
                   else "The user closed the connect page without connecting an account.")
        failed = await self.fail_if_pending(session, code, message or code.meaning)
        if failed is None:
            raise _closed((await self.session_by_id(session.id)).status)
        return self.returns.result(failed)

    async def attempt_failed(
        self, session: ConnectSession, code: SessionFailure, message: str, *,
        from_status: SessionStatus = SessionStatus.PENDING,
    ) -> ConnectSession | None:
        """A failure before any connection exists. While the link is valid and the cause
        is retryable the session stays (or goes back to) PENDING with the reason, and the
        user may try again; otherwise it ends FAILED. None when the session is no longer
        in `from_status` (a cause that lost a race changes nothing)."""
        if code.leaves_open(session.expires_at, self.clock()):
            try:
                failed = await self._transition(
                    session, SessionStatus.PENDING, only_from=frozenset({from_status}),
                    error=message, error_code=code)
            except SessionClosed:
                return None
            logger.info("session %s: attempt failed (%s); the user may try again",
                        session.id, code)
            return failed
        if from_status is SessionStatus.PENDING:
            return await self.fail_if_pending(session, code, message)
        return await self.fail(session, code, message)

    async def submit(
        self, session: ConnectSession, submission: Submission
    ) -> ConnectResult | FormRejected | SendBrowser:
        """The chosen option's family reads the submission; a complete one is delivered.

        A ConnectResult when the session ended here (delivered, failed, or refused by the
        family); FormRejected when nothing changed; SendBrowser when the browser must go
        elsewhere first (the family finishes through its own callback)."""
        if session.status is not SessionStatus.PENDING:
            raise _closed(session.status)
        integration = self.integration_of(session)
        if integration is None:
            raise ValidationFailed("Choose an integration first.")
        option = self.auth_option(session, integration)
        if option is None:
            raise ValidationFailed("Choose how to connect first.")
        outcome = await self.families.family_for(option).submit(
            session, integration, option, submission)
        if isinstance(outcome, FormRejected):
            return outcome
        if isinstance(outcome, SendBrowser):
            if session.auth_method_key != option.key:
                await self._transition(session, SessionStatus.PENDING,
                                       auth_method_key=option.key)
            return outcome
        if isinstance(outcome, Refuse):
            failed = await self.attempt_failed(session, outcome.code, outcome.message)
            if failed is None:
                raise _closed((await self.session_by_id(session.id)).status)
            return self.returns.result(failed)
        assert isinstance(outcome, Deliver)
        session = await self._delivering(self.delivery.connect(session, outcome.body))
        return self.returns.result(session)

    # -- the session's end, for every family -------------------------------------------
    async def begin_connecting(self, session: ConnectSession) -> ConnectSession:
        """PENDING → CONNECTING before the connection is known (OAuth: the code is
        redeemed once); `deliver` sends it. Refused unless the session is PENDING."""
        return await self._delivering(self.delivery.begin(session))

    async def deliver(
        self, session: ConnectSession, body: dict[str, Any], *,
        changes: Mapping[str, str] | None = None,
    ) -> ConnectResult:
        """Send the connection of a session `begin_connecting` moved, through the outbox;
        the result is final, or CONNECTING while the delivery goes on. `changes` are
        session fields written in the same step (`account_changed`)."""
        return self.returns.result(await self._delivering(
            self.delivery.attach(session, body, changes=changes)))

    async def fail(
        self,
        session: ConnectSession,
        code: SessionFailure,
        message: str,
        *,
        only_pending: bool = False,
    ) -> ConnectSession:
        """End the session FAILED. `only_pending`: for causes that must never overrule a
        delivery in flight (a provider's error answer): refused unless still PENDING."""
        only_from = frozenset({SessionStatus.PENDING}) if only_pending else None
        session = await self._delivering(self.delivery.finish(
            Ending.of(session), SessionStatus.FAILED, only_from=only_from,
            changes={"error": message, "error_code": code}))
        logger.warning("session %s failed: %s", session.id, code)
        return session

    async def fail_if_pending(
        self, session: ConnectSession, code: SessionFailure, message: str
    ) -> ConnectSession | None:
        """End a PENDING session FAILED; None when it is no longer pending.

        The store checks PENDING and writes FAILED in one atomic step, so a cause that
        lost a race (a second OAuth answer) can move neither a delivery in flight
        (CONNECTING) nor a finished session.
        """
        if session.status is not SessionStatus.PENDING:
            return None
        try:
            return await self.fail(session, code, message, only_pending=True)
        except SessionClosed:
            return None

    async def _delivering(self, awaitable: Awaitable[ConnectSession]) -> ConnectSession:
        """A delivery step, its store's refusals in the flow's words."""
        try:
            return await self._store(awaitable)
        except TransitionRefused as exc:
            raise _closed(exc.current) from None
        except SessionNotFound:
            raise SessionNotFoundError("No connect session with that id.") from None

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
            raise _closed(exc.current) from None
        except SessionNotFound:
            raise SessionNotFoundError("No connect session with that id.") from None

    @staticmethod
    async def _store(awaitable: Awaitable[T]) -> T:
        return await answered_by_store(awaitable, "session store")


_PENDING = frozenset({SessionStatus.PENDING})


def _failure_of(code: str | None) -> SessionFailure | None:
    return SessionFailure.__members__.get(code) if code else None


def _token_error(reason: str) -> MissingToken | InvalidTokenError:
    """The answer for a connect token refused for `reason` (TokenRefused.reason)."""
    if reason == "missing":
        return MissingToken("A connect token is required.")
    if reason == "expired":
        return InvalidTokenError("The connect token has expired.", details={"reason": "expired"})
    return InvalidTokenError("The connect token is not valid.", details={"reason": "invalid"})


def _closed(status: SessionStatus) -> SessionClosed:
    return SessionClosed(f"This connect session is already {status.value.lower()}.",
                         details={"status": status.value})


# A session id as the portal writes it: str(uuid.uuid4()), lower-case and hyphenated.
_SESSION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _looks_like_session_id(value: str) -> bool:
    return _SESSION_ID.fullmatch(value) is not None
