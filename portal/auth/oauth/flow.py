"""The OAuth connect: start the authorization code flow, finish it at the callback, and
refresh tokens for the core API. Business rules only; views call it, `oauth.py` talks to
providers, `oauth_apps.py` says whose app, the state store keeps the flow's state.

What a flow keeps between the start and the callback is one encrypted record in the
state store, under a hash of the `state` value: the session, the auth option, the
expected issuer, the validated props, the PKCE verifier and a hash of the browser's
callback cookie. The callback takes the record exactly once (GETDEL), refuses another
browser (and puts the record back for the right one), checks `iss` (RFC 9207), and only
then redeems the code, at the token URL kept in the record, never at one built from
callback parameters.

Only a callback that wins the session may end it: an error answer, a missing code or a
wrong `iss` fails a session only by first moving it PENDING → CONNECTING, the one
transition the store allows from PENDING alone. A second callback of the same session
(sign-in started twice in one browser) therefore never overrules a delivery in flight or
a finished session; it shows the session's page and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from itsdangerous import BadData, URLSafeTimedSerializer

from portal import ssrf
from portal.auth.credentials.form import connection_body, read_form
from portal.auth.oauth.apps import AppChoice, OAuthApps
from portal.auth.oauth.provider import (
    ClientApp,
    Endpoints,
    ProviderClient,
    ProviderError,
    TokenSet,
    clean_text,
    endpoints_for,
    new_state,
    new_verifier,
)
from portal.catalog import AuthOption, AuthType, Integration, OAuthSettings
from portal.connect_request import OAUTH_APP_ID_RULE, is_oauth_app_id
from portal.core_api import DeliveryFailed
from portal.errors import (
    IntegrationNotFound,
    InvalidTokenError,
    PortalError,
    ServiceUnavailable,
    SessionClosed,
    SessionNotBound,
    ValidationFailed,
)
from portal.flow import ConnectFlow, ConnectResult, FormRejected, answered_by_store
from portal.sessions import ConnectSession, SessionStatus
from portal.store.oauth_state import OAuthStateStore

logger = logging.getLogger("portal.auth.oauth.flow")

STATE_TTL = 10 * 60
CALLBACK_PATH = "/oauth/callback"
MAX_PARAM_LENGTH = 4096
MAX_REFRESH_TOKEN_LENGTH = 8192
_STATE_SALT = b"portal.oauth-state.v1"
_BROWSER_COOKIE_SALT = "portal.oauth-browser.v1"

T = TypeVar("T")


class OAuthStateInvalid(PortalError):
    """The callback's state is missing, forged, used or expired; nothing was changed."""

    status = 400
    code = "OAUTH_STATE_INVALID"


class NoOAuthApp(PortalError):
    status = 400
    code = "NO_OAUTH_APP"


class RefreshFailed(PortalError):
    status = 400
    code = "REFRESH_FAILED"


@dataclass(frozen=True)
class Started:
    """Where to send the browser, and the callback cookie that binds the flow to it."""

    authorize_url: str
    browser_cookie: str


@dataclass(frozen=True)
class Finished:
    """The callback's outcome: the result this callback produced, or None when it changed
    nothing and the browser is best sent to the session's page (which shows "Connecting…"
    or the result another callback reached)."""

    result: ConnectResult | None
    opener: bool  # the flow started in a popup: render the result, do not redirect
    session_id: str


@dataclass(frozen=True)
class _StateRecord:
    session_id: str
    integration: str
    option: str
    issuer: str
    iss_required: bool
    token_url: str
    props: dict[str, Any]
    verifier: str | None
    browser: str  # sha256 of the callback cookie
    opener: bool
    custom_app_id: str | None


class OAuthFlow:
    def __init__(
        self,
        *,
        flow: ConnectFlow,
        provider: ProviderClient,
        apps: OAuthApps,
        states: OAuthStateStore,
    ) -> None:
        self.flow = flow
        self.provider = provider
        self.apps = apps
        self.states = states
        self.redirect_uri = flow.settings.public_url + CALLBACK_PATH
        self._box = MultiFernet([
            Fernet(base64.urlsafe_b64encode(hashlib.sha256(_STATE_SALT + key.encode()).digest()))
            for key in flow.settings.secret_keys
        ])
        # itsdangerous signs with the last key and verifies with all: newest first reversed.
        self._cookies = URLSafeTimedSerializer(list(reversed(flow.settings.secret_keys)),
                                               salt=_BROWSER_COOKIE_SALT)

    # -- the hand-off page ----------------------------------------------------------
    @staticmethod
    def form_action_source(option: AuthOption) -> str:
        """The CSP source the hand-off form may lead to: the provider's sign-in origin."""
        assert option.oauth is not None
        template = option.oauth.auth_url
        shape = ssrf.parse_template(template)
        if shape.base is not None:
            return "https:"
        scheme, rest = template.split("://", 1)
        host = rest.split("/", 1)[0]
        if not shape.host_keys:
            return f"{scheme}://{host}"
        # A placeholder in the host: allow any subdomain of the fixed part after it.
        suffix = host.rsplit("}", 1)[1]
        return f"{scheme}://*{suffix}" if suffix.startswith(".") else "https:"

    async def start(
        self,
        session: ConnectSession,
        form: Mapping[str, str],
        browser_cookie: str | None,
    ) -> Started | FormRejected | ConnectResult:
        """Validate props, pick the app, keep the state; a ConnectResult when the session
        failed for good (no OAuth app)."""
        if session.status is not SessionStatus.PENDING:
            raise SessionClosed(f"This connect session is already {session.status.value.lower()}.",
                                details={"status": session.status.value})
        integration, option = self._option_of(session)
        settings = _oauth(option)
        props, rejected = self._read_props(option, form)
        if rejected is not None:
            return rejected
        try:
            endpoints = endpoints_for(settings, _as_text(props),
                                      allow_http_loopback=self.flow.settings.allow_http_loopback)
        except ssrf.UnsafeUrl as exc:
            return FormRejected(errors={exc.field or "": f"url_{exc.reason}"},
                                values=_as_text(props))
        choice = AppChoice.of(option, session.oauth_app_mode, session.oauth_app_id)
        app = await self._app(integration, option, choice)
        if app is None:
            return await self._no_app(session, integration)

        state = new_state()
        verifier = new_verifier() if settings.pkce else None
        browser_cookie = self._browser_cookie(browser_cookie)
        record = _StateRecord(
            session_id=session.id, integration=integration.name, option=option.key,
            issuer=endpoints.issuer, iss_required=endpoints.iss_required,
            token_url=endpoints.token_url, props=props, verifier=verifier,
            browser=_digest(browser_cookie), opener=form.get("opener") == "1",
            custom_app_id=choice.custom_app_id,
        )
        sealed = self._box.encrypt(json.dumps(asdict(record)).encode()).decode()
        await self._state_store(self.states.put(_digest(state), sealed, ttl=STATE_TTL))
        if session.auth_method_key != option.key:
            session = await self.flow.remember_auth_method(session, option.key)
        logger.info("session %s: OAuth flow started for %s", session.id, integration.name)
        url = self.provider.authorization_url(
            settings, endpoints, app, redirect_uri=self.redirect_uri, state=state,
            verifier=verifier,
        )
        return Started(authorize_url=url, browser_cookie=browser_cookie)

    # -- the callback ---------------------------------------------------------------
    async def finish(self, params: Mapping[str, str], browser_cookie: str | None) -> Finished:
        state = params.get("state", "")
        if not state or len(state) > MAX_PARAM_LENGTH:
            raise OAuthStateInvalid("The sign-in answer has no state.")
        sealed = await self._state_store(self.states.take(_digest(state)))
        if sealed is None:
            raise OAuthStateInvalid("This sign-in answer was already used, has expired, "
                                    "or was not started here.")
        try:
            record = _StateRecord(**json.loads(self._box.decrypt(sealed.encode(),
                                                                 ttl=STATE_TTL)))
        except (InvalidToken, ValueError, TypeError):
            raise OAuthStateInvalid("This sign-in answer cannot be read.") from None
        if not hmac.compare_digest(_digest(browser_cookie or ""), record.browser):
            logger.warning("session %s: OAuth callback from another browser", record.session_id)
            await self._put_back(state, sealed)
            raise SessionNotBound("This sign-in was started in another browser.")

        session = await self.flow.session_by_id(record.session_id)
        integration = self.flow.catalog.get(record.integration)
        option = integration.auth_option(record.option) if integration else None
        if integration is None or option is None or option.oauth is None:
            raise IntegrationNotFound("This integration is no longer available.")
        refusal = self._refusal(params, record, session, integration)
        if refusal is None and session.status.is_final:
            raise SessionClosed(f"This connect session is already {session.status.value.lower()}.",
                                details={"status": session.status.value})
        if not session.status.is_final and session.expires_at <= self.flow.clock():
            raise InvalidTokenError("The connect link has expired.", details={"reason": "expired"})
        if refusal is not None:
            return await self._refused(record, session, "OAUTH_ERROR", refusal)
        code = params["code"]  # present and bounded: _refusal checked it

        app = await self._app(integration, option, AppChoice(record.custom_app_id))
        if app is None:
            return await self._refused(record, session, "NO_OAUTH_APP",
                                       "No OAuth app is set up for this integration.")
        # From here on the code is redeemed once: CONNECTING refuses any second callback.
        session = await self.flow.begin_connecting(session)
        endpoints = Endpoints(auth_url="", token_url=record.token_url, issuer=record.issuer,
                              iss_required=record.iss_required)
        try:
            tokens = await self.provider.exchange_code(
                option.oauth, endpoints, app, code=code, verifier=record.verifier,
                redirect_uri=self.redirect_uri,
            )
        except ProviderError as exc:
            session = await self.flow.fail(session, "TOKEN_EXCHANGE_FAILED", exc.message)
            return Finished(self.flow.result(session), record.opener, session.id)
        body = self._connection_body(session, option, record, tokens)
        return Finished(await self.flow.deliver(session, body), record.opener, session.id)

    def _refusal(self, params: Mapping[str, str], record: _StateRecord,
                 session: ConnectSession, integration: Integration) -> str | None:
        """Why this answer cannot be redeemed (the message for the session), or None."""
        name = integration.display_name
        iss = params.get("iss")
        if (iss is None and record.iss_required) or (iss is not None and iss != record.issuer):
            logger.warning("session %s: OAuth answer with a wrong or missing iss", session.id)
            return f"The sign-in answer did not come from {name}."
        if "error" in params:
            error = clean_text(params["error"], 64)
            text = f"{name} did not complete the sign-in ({error})"
            if params.get("error_description"):
                text += f": {clean_text(params['error_description'])}"
            logger.info("session %s: provider answered %s", session.id, error)
            return clean_text(text)
        code = params.get("code", "")
        if not code or len(code) > MAX_PARAM_LENGTH:
            return f"{name} sent no authorization code."
        return None

    # -- the refresh service --------------------------------------------------------
    async def refresh(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ValidationFailed("The request body must be a JSON object.")
        errors: dict[str, str] = {}
        name, token = body.get("integrationName"), body.get("refreshToken")
        key, app_id, props = body.get("authMethodKey"), body.get("oauthAppId"), body.get("props")
        integration = self.flow.catalog.get(name) if isinstance(name, str) else None
        if not isinstance(name, str) or not name:
            errors["integrationName"] = "Required."
        if not isinstance(token, str) or not token or len(token) > MAX_REFRESH_TOKEN_LENGTH:
            errors["refreshToken"] = "Required: the refresh token to exchange."
        if key is not None and not isinstance(key, str):
            errors["authMethodKey"] = "Must be a string."
        if app_id is not None and (not isinstance(app_id, str) or not is_oauth_app_id(app_id)):
            errors["oauthAppId"] = OAUTH_APP_ID_RULE
        if props is not None and not isinstance(props, dict):
            errors["props"] = "Must be an object."
        if errors:
            raise ValidationFailed("The refresh request is not valid.",
                                   details={"fields": errors})
        if integration is None:
            raise IntegrationNotFound("No integration with that name is in the catalog.",
                                      details={"integrationName": str(name)[:100]})
        oauth_options = [item for item in integration.auth_options if item.type.is_oauth]
        if not oauth_options:
            raise ValidationFailed(
                f"{integration.display_name} does not connect with OAuth; "
                "there is nothing to refresh.",
                details={"reason": "not_oauth",
                         "fields": {"integrationName": "Has no OAuth auth method."}})
        option = next((item for item in oauth_options if item.key == key), None) if key else (
            oauth_options[0] if len(oauth_options) == 1 else None)
        if option is None:
            raise ValidationFailed("Name the OAuth auth method to refresh.", details={"fields": {
                "authMethodKey": "Expected one of: "
                + ", ".join(item.key for item in oauth_options) + "."}})
        form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (props or {}).items()}
        checked, rejected = self._read_props(option, form)
        if rejected is not None:
            raise ValidationFailed("The props are not valid.",
                                   details={"fields": {f"props.{k}": v
                                                       for k, v in rejected.errors.items()}})
        settings = _oauth(option)
        try:
            endpoints = endpoints_for(settings, _as_text(checked),
                                      allow_http_loopback=self.flow.settings.allow_http_loopback)
        except ssrf.UnsafeUrl as exc:
            raise ValidationFailed("The props are not valid.", details={"fields": {
                f"props.{exc.field}": f"url_{exc.reason}"}}) from None
        choice = AppChoice(custom_app_id=app_id) if (
            option.type is AuthType.OAUTH2 and app_id) else AppChoice()
        app = await self._app(integration, option, choice)
        if app is None:
            raise NoOAuthApp(f"No OAuth app is set up for {integration.display_name}.")
        assert isinstance(token, str)
        try:
            tokens = await self.provider.refresh(settings, endpoints, app, token)
        except ProviderError as exc:
            failed = RefreshFailed(exc.message, details={"reason": exc.reason})
            if exc.reason != "invalid_grant":
                failed.status = 502
            raise failed from None
        logger.info("tokens refreshed for %s", integration.name)
        return tokens.delivery_fields()

    # -- helpers --------------------------------------------------------------------
    def _option_of(self, session: ConnectSession) -> tuple[Integration, AuthOption]:
        integration = self.flow.integration_of(session)
        option = (self.flow.auth_option(session, integration)
                  if integration is not None else None)
        if integration is None or option is None or not option.type.is_oauth:
            raise ValidationFailed("Choose how to connect first.")
        return integration, option

    def _read_props(
        self, option: AuthOption, form: Mapping[str, str]
    ) -> tuple[dict[str, Any], FormRejected | None]:
        if not option.inputs:
            return {}, None
        # The props of an OAuth option are read exactly like a custom form's fields.
        as_custom = replace(option, type=AuthType.CUSTOM_AUTH, verification=None, oauth=None)
        result = read_form(as_custom, form,
                           allow_http_loopback=self.flow.settings.allow_http_loopback)
        if result.errors:
            return {}, FormRejected(errors=result.errors, values=result.values)
        props: dict[str, Any] = result.credentials["props"]
        return props, None

    async def _app(
        self, integration: Integration, option: AuthOption, choice: AppChoice
    ) -> ClientApp | None:
        try:
            return await self.apps.app_for(integration.name, option, choice)
        except DeliveryFailed as exc:
            raise ServiceUnavailable(
                "The platform could not be reached to start the sign-in. Try again in a moment.",
                details={"reason": exc.code},
            ) from None

    async def _no_app(self, session: ConnectSession, integration: Integration) -> ConnectResult:
        logger.warning("session %s: no OAuth app for %s", session.id, integration.name)
        failed = await self._fail_if_pending(
            session, "NO_OAUTH_APP", f"No OAuth app is set up for {integration.display_name}.")
        if failed is None:
            current = await self.flow.session_by_id(session.id)
            raise SessionClosed(f"This connect session is already {current.status.value.lower()}.",
                                details={"status": current.status.value})
        return self.flow.result(failed)

    async def _refused(
        self, record: _StateRecord, session: ConnectSession, code: str, message: str
    ) -> Finished:
        """Fail the session for an answer that cannot be redeemed, if it is still PENDING;
        otherwise change nothing and send the browser to the session's page."""
        failed = await self._fail_if_pending(session, code, message)
        if failed is None:
            logger.info("session %s: %s answer ignored, the session is no longer pending",
                        session.id, code)
            return Finished(None, record.opener, session.id)
        return Finished(self.flow.result(failed), record.opener, session.id)

    async def _fail_if_pending(
        self, session: ConnectSession, code: str, message: str
    ) -> ConnectSession | None:
        """End a PENDING session FAILED; None when another callback got to it first.

        The store checks PENDING and writes FAILED in one atomic step, so an answer that
        lost the race can move neither a delivery in flight (CONNECTING) nor a finished
        session.
        """
        if session.status is not SessionStatus.PENDING:
            return None
        try:
            return await self.flow.fail(session, code, message, only_pending=True)
        except SessionClosed:
            return None

    def _browser_cookie(self, presented: str | None) -> str:
        """The callback cookie to bind this flow to: the one this browser already holds
        when the portal issued it (so flows started side by side share it), else a new
        one. A value the portal did not sign, or signed more than STATE_TTL ago, is never
        adopted: a cookie planted in the browser cannot become the flow's binding."""
        if presented and len(presented) <= MAX_PARAM_LENGTH:
            try:
                self._cookies.loads(presented, max_age=STATE_TTL)
            except BadData:
                pass
            else:
                return presented
        return self._cookies.dumps(secrets.token_urlsafe(32))

    async def _put_back(self, state: str, sealed: str) -> None:
        """Return a taken state record for the rest of its life: a callback from another
        browser must not use up the flow of the browser that started it."""
        try:
            # Fernet stamps with the wall clock, as its own `ttl` check reads it.
            age = time.time() - self._box.extract_timestamp(sealed.encode())
        except InvalidToken:
            return
        remaining = int(STATE_TTL - age)
        if remaining >= 1:
            await self._state_store(self.states.put(_digest(state), sealed, ttl=remaining))

    @staticmethod
    async def _state_store(awaitable: Awaitable[T]) -> T:
        return await answered_by_store(awaitable, "OAuth state store")

    @staticmethod
    def _connection_body(
        session: ConnectSession, option: AuthOption, record: _StateRecord, tokens: TokenSet
    ) -> dict[str, Any]:
        body = connection_body(session, option, tokens.delivery_fields())
        if record.custom_app_id:
            body["oauthAppId"] = record.custom_app_id
        if record.props:
            body["props"] = record.props
        return body


def _oauth(option: AuthOption) -> OAuthSettings:
    assert option.oauth is not None
    return option.oauth


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def _as_text(props: Mapping[str, Any]) -> dict[str, str]:
    return {key: value if isinstance(value, str) else json.dumps(value)
            for key, value in props.items()}
