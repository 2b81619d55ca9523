"""The OAuth family's refresh service: fresh tokens for the core API, on its request.

`POST /api/v1/oauth/refresh` names the integration, the auth method, the customer's app
when there is one, and the props the provider's URLs need; the refresh token is sent to
the token URL those props give, with the same app that signed the user in.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from portal import ssrf
from portal.auth.oauth.apps import AppChoice
from portal.auth.oauth.family import OAuthFamily, oauth_settings, props_as_text
from portal.auth.oauth.provider import ProviderError, endpoints_for
from portal.catalog import AuthType, Catalog, FieldFormat
from portal.connect_request import OAUTH_APP_ID_RULE, is_oauth_app_id
from portal.errors import (
    IntegrationNotFound,
    NoOAuthApp,
    RefreshFailed,
    RefreshProviderFailed,
    ValidationFailed,
)
from portal.field_problems import FieldProblem

logger = logging.getLogger("portal.auth.oauth")

MAX_REFRESH_TOKEN_LENGTH = 8192


class TokenRefresh:
    def __init__(self, *, catalog: Catalog, family: OAuthFamily) -> None:
        self.catalog = catalog
        self.family = family

    async def refresh(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ValidationFailed("The request body must be a JSON object.")
        errors: dict[str, str] = {}
        name, token = body.get("integrationName"), body.get("refreshToken")
        key, app_id, props = body.get("authMethodKey"), body.get("oauthAppId"), body.get("props")
        integration = self.catalog.get(name) if isinstance(name, str) else None
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
        checked, rejected = self.family.read_props(option, form)
        if rejected is not None:
            raise ValidationFailed("The props are not valid.",
                                   details={"fields": {f"props.{k}": v
                                                       for k, v in rejected.errors.items()}})
        settings = oauth_settings(option)
        try:
            endpoints = endpoints_for(settings, props_as_text(checked),
                                      allow_http_loopback=self.family.allow_http_loopback)
        except ssrf.UnsafeUrl as exc:
            raise ValidationFailed("The props are not valid.", details={"fields": {
                f"props.{exc.field}": FieldProblem.refused(FieldFormat.URL, exc.reason)}}) from None
        choice = AppChoice(custom_app_id=app_id) if (
            option.type is AuthType.OAUTH2 and app_id) else AppChoice()
        app = await self.family.app_for(integration, option, choice)
        if app is None:
            raise NoOAuthApp(f"No OAuth app is set up for {integration.display_name}.")
        assert isinstance(token, str)
        try:
            tokens = await self.family.provider.refresh(settings, endpoints, app, token)
        except ProviderError as exc:
            # A refused grant is the caller's to handle (400); anything else, the provider's.
            refused = RefreshFailed if exc.reason == "invalid_grant" else RefreshProviderFailed
            raise refused(exc.message, details={"reason": exc.reason}) from None
        logger.info("tokens refreshed for %s", integration.name)
        return tokens.delivery_fields()
