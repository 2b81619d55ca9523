"""The OAuth family's callback: the provider's answer, redeemed at most once.

The callback takes the flow's state record exactly once (state.py), refuses another
browser (and puts the record back for the right one), checks `iss` (RFC 9207), and only
then redeems the code, at the token URL kept in the record, never at one built from
callback parameters.

Only a callback that wins the session may end it: an error answer, a missing code or a
wrong `iss` fails a session only while it is PENDING, in one atomic store step. A second
callback of the same session (sign-in started twice in one browser) therefore never
overrules a delivery in flight or a finished session; it shows the session's page and
changes nothing.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portal.auth.connection import connection_body
from portal.auth.oauth.apps import AppChoice
from portal.auth.oauth.family import OAuthFamily
from portal.auth.oauth.provider import Endpoints, ProviderError, TokenSet, clean_text
from portal.auth.oauth.state import MAX_PARAM_LENGTH, StateRecord, StateUnreadable, digest
from portal.catalog import AuthOption, Integration
from portal.errors import (
    IntegrationNotFound,
    InvalidTokenError,
    OAuthStateInvalid,
    SessionClosed,
    SessionFailure,
    SessionNotBound,
)
from portal.flow import ConnectFlow
from portal.return_path import ConnectResult
from portal.sessions import ConnectSession, SessionStatus

logger = logging.getLogger("portal.auth.oauth")


@dataclass(frozen=True)
class Finished:
    """The callback's outcome: the result this callback produced, or None when it changed
    nothing and the browser is best sent to the session's page (which shows "Finishing
    your connection…" or the result another callback reached)."""

    result: ConnectResult | None
    opener: bool  # the flow started in a popup: render the result, do not redirect
    session_id: str


class OAuthCallback:
    def __init__(self, *, flow: ConnectFlow, family: OAuthFamily) -> None:
        self.flow = flow
        self.family = family

    async def finish(self, params: Mapping[str, str], browser_cookie: str | None) -> Finished:
        states = self.family.states
        state = params.get("state", "")
        if not state or len(state) > MAX_PARAM_LENGTH:
            raise OAuthStateInvalid("The sign-in answer has no state.")
        try:
            taken = await states.take(state)
        except StateUnreadable:
            raise OAuthStateInvalid("This sign-in answer cannot be read.") from None
        if taken is None:
            raise OAuthStateInvalid("This sign-in answer was already used, has expired, "
                                    "or was not started here.")
        record, sealed = taken
        if not hmac.compare_digest(digest(browser_cookie or ""), record.browser):
            logger.warning("session %s: OAuth callback from another browser", record.session_id)
            await states.put_back(state, sealed)
            raise SessionNotBound("This sign-in was started in another browser.")

        session = await self.flow.session_by_id(record.session_id)
        integration = self.flow.catalog.get(record.integration)
        option = integration.auth_option(record.option) if integration else None
        if integration is None or option is None or option.oauth is None:
            raise IntegrationNotFound("This integration is no longer available.")
        if (session.status is SessionStatus.PENDING
                and (session.integration_name, session.auth_method_key)
                != (record.integration, record.option)):
            # The user went back and chose otherwise after this sign-in started.
            logger.info("session %s: OAuth answer for a choice since undone", session.id)
            raise OAuthStateInvalid("This sign-in was started for a choice you have since "
                                    "changed.")
        refusal = self._refusal(params, record, session, integration)
        if refusal is None and session.status.is_final:
            raise SessionClosed(f"This connect session is already {session.status.value.lower()}.",
                                details={"status": session.status.value})
        if not session.status.is_final and session.expires_at <= self.flow.clock():
            raise InvalidTokenError("The connect link has expired.", details={"reason": "expired"})
        if refusal is not None:
            return await self._refused(record, session, SessionFailure.OAUTH_ERROR, refusal)
        code = params["code"]  # present and bounded: _refusal checked it

        app = await self.family.app_for(integration, option, AppChoice(record.custom_app_id))
        if app is None:
            return await self._refused(record, session, SessionFailure.NO_OAUTH_APP,
                                       "No OAuth app is set up for this integration.")
        # From here on the code is redeemed once: CONNECTING refuses any second callback.
        session = await self.flow.begin_connecting(session)
        endpoints = Endpoints(auth_url="", token_url=record.token_url, issuer=record.issuer,
                              iss_required=record.iss_required)
        try:
            tokens = await self.family.provider.exchange_code(
                option.oauth, endpoints, app, code=code, verifier=record.verifier,
                redirect_uri=self.family.redirect_uri,
            )
        except ProviderError as exc:
            failed = await self.flow.attempt_failed(
                session, SessionFailure.TOKEN_EXCHANGE_FAILED, exc.message,
                from_status=SessionStatus.CONNECTING)
            return self._finished(failed, record)
        body = _connection_body(session, option, record, tokens)
        changes = _account_change(session, tokens)
        return Finished(await self.flow.deliver(session, body, changes=changes),
                        record.opener, session.id)

    @staticmethod
    def _refusal(params: Mapping[str, str], record: StateRecord,
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

    async def _refused(
        self, record: StateRecord, session: ConnectSession, code: SessionFailure,
        message: str
    ) -> Finished:
        """A failed attempt for an answer that cannot be redeemed, if the session is still
        PENDING; otherwise change nothing. Either way the browser goes on to the session's
        page (which offers to try again) or, once final, to the result."""
        failed = await self.flow.attempt_failed(session, code, message)
        if failed is None:
            logger.info("session %s: %s answer ignored, the session is no longer pending",
                        session.id, code)
        return self._finished(failed, record)

    def _finished(self, session: ConnectSession | None, record: StateRecord) -> Finished:
        if session is None or not session.status.is_final:
            return Finished(None, record.opener, record.session_id)
        return Finished(self.flow.returns.result(session), record.opener, session.id)


def _connection_body(
    session: ConnectSession, option: AuthOption, record: StateRecord, tokens: TokenSet
) -> dict[str, Any]:
    body = connection_body(session, option, tokens.delivery_fields())
    if record.custom_app_id:
        body["oauthAppId"] = record.custom_app_id
    if record.props:
        body["props"] = record.props
    if tokens.account_id is not None:
        body["accountId"] = tokens.account_id  # a portal extension of the create body
    return body


def _account_change(session: ConnectSession, tokens: TokenSet) -> dict[str, str]:
    """A reconnect that signed in to another account than the connection's: still
    delivered (the user chose to reconnect), but the session is marked so that its result
    page warns. Only when the provider names the account, now and before."""
    before, now = session.previous_account_id, tokens.account_id
    if before is None or now is None or before == now:
        return {}
    logger.info("session %s: reconnect signed in to another account than before",
                session.id)
    return {"account_changed": "1"}
