"""The OAuth family's start: validate the option's props, pick whose app signs the user
in, keep the flow's state and send the browser to the provider's sign-in page.

Its callback is portal/auth/oauth/callback.py, its token refresh service refresh.py;
provider.py talks to providers, apps.py says whose app, state.py keeps the flow's state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from portal import ssrf
from portal.auth.family import Cookie, FormRejected, Refuse, SendBrowser, Submission
from portal.auth.fields import read_fields
from portal.auth.oauth.apps import AppChoice, OAuthApps
from portal.auth.oauth.provider import (
    ClientApp,
    ProviderClient,
    endpoints_for,
    new_state,
    new_verifier,
)
from portal.auth.oauth.state import STATE_TTL, OAuthStates, StateRecord, digest
from portal.catalog import AuthOption, FieldFormat, Integration, OAuthSettings
from portal.core_api import DeliveryFailed
from portal.errors import ServiceUnavailable, SessionFailure
from portal.field_problems import FieldProblem
from portal.sessions import ConnectSession

logger = logging.getLogger("portal.auth.oauth")

CALLBACK_PATH = "/oauth/callback"


class OAuthFamily:
    page = "oauth_start.html"

    def __init__(
        self,
        *,
        public_url: str,
        provider: ProviderClient,
        apps: OAuthApps,
        states: OAuthStates,
        allow_http_loopback: bool = False,
    ) -> None:
        self.provider = provider
        self.apps = apps
        self.states = states
        self.allow_http_loopback = allow_http_loopback
        self.redirect_uri = public_url + CALLBACK_PATH

    def page_context(self, option: AuthOption) -> dict[str, Any]:
        return {}

    def form_action_sources(self, option: AuthOption) -> tuple[str, ...]:
        """The provider's sign-in origin, where the hand-off form leads."""
        template = oauth_settings(option).auth_url
        shape = ssrf.parse_template(template)
        if shape.base is not None:
            return ("https:",)
        scheme, rest = template.split("://", 1)
        host = rest.split("/", 1)[0]
        if not shape.host_keys:
            return (f"{scheme}://{host}",)
        # A placeholder in the host: allow any subdomain of the fixed part after it.
        suffix = host.rsplit("}", 1)[1]
        return (f"{scheme}://*{suffix}" if suffix.startswith(".") else "https:",)

    async def submit(
        self,
        session: ConnectSession,
        integration: Integration,
        option: AuthOption,
        submission: Submission,
    ) -> SendBrowser | FormRejected | Refuse:
        settings = oauth_settings(option)
        props, rejected = self.read_props(option, submission.form)
        if rejected is not None:
            return rejected
        try:
            endpoints = endpoints_for(settings, props_as_text(props),
                                      allow_http_loopback=self.allow_http_loopback)
        except ssrf.UnsafeUrl as exc:
            return FormRejected(errors={exc.field or "": FieldProblem.refused(FieldFormat.URL,
                                                                             exc.reason)},
                                values=props_as_text(props))
        choice = AppChoice.of(option, session.oauth_app_mode, session.oauth_app_id)
        app = await self.app_for(integration, option, choice)
        if app is None:
            logger.warning("session %s: no OAuth app for %s", session.id, integration.name)
            return Refuse(SessionFailure.NO_OAUTH_APP,
                          f"No OAuth app is set up for {integration.display_name}.")

        state = new_state()
        verifier = new_verifier() if settings.pkce else None
        cookie = self.states.browser_cookie(submission.cookies.get(self.states.cookie_name))
        await self.states.keep(state, StateRecord(
            session_id=session.id, integration=integration.name, option=option.key,
            issuer=endpoints.issuer, iss_required=endpoints.iss_required,
            token_url=endpoints.token_url, props=props, verifier=verifier,
            browser=digest(cookie), opener=submission.form.get("opener") == "1",
            custom_app_id=choice.custom_app_id,
        ))
        logger.info("session %s: OAuth flow started for %s", session.id, integration.name)
        url = self.provider.authorization_url(
            settings, endpoints, app, redirect_uri=self.redirect_uri, state=state,
            verifier=verifier,
        )
        return SendBrowser(url, Cookie(self.states.cookie_name, cookie, max_age=STATE_TTL))

    def read_props(
        self, option: AuthOption, form: Mapping[str, str]
    ) -> tuple[dict[str, Any], FormRejected | None]:
        """An OAuth option's props, read by the same rules as a credential form's fields."""
        read = read_fields(option.inputs, form, allow_http_loopback=self.allow_http_loopback)
        if read.errors:
            return {}, FormRejected(errors=read.errors, values=read.values)
        return read.typed, None

    def available(self, integration: Integration, option: AuthOption, *,
                  oauth_app_mode: str | None, oauth_app_id: str | None) -> bool:
        """A customer's app (`oauthAppId`) is looked up at the core API when the user
        signs in; the platform's must be configured here."""
        if AppChoice.of(option, oauth_app_mode, oauth_app_id).custom_app_id is not None:
            return True
        return self.apps.platform_app(integration.name, option) is not None

    async def app_for(
        self, integration: Integration, option: AuthOption, choice: AppChoice
    ) -> ClientApp | None:
        """Whose app signs the user in; None when there is none. A core API that cannot
        answer is a 503 the user can retry, never a failed session."""
        try:
            return await self.apps.app_for(integration.name, option, choice)
        except DeliveryFailed as exc:
            raise ServiceUnavailable(
                "The platform could not be reached to start the sign-in. Try again in a moment.",
                details={"reason": exc.code},
            ) from None


def oauth_settings(option: AuthOption) -> OAuthSettings:
    assert option.oauth is not None
    return option.oauth


def props_as_text(props: Mapping[str, Any]) -> dict[str, str]:
    """Props as the text URL templates take (numbers and booleans as JSON)."""
    return {key: value if isinstance(value, str) else json.dumps(value)
            for key, value in props.items()}
