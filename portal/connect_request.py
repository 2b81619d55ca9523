"""Validation of `POST /api/v1/connect/token` bodies into a typed `ConnectRequest`.

Every problem is collected per field, so the partner sees all of them at once in
`details.fields`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from portal.catalog import Catalog
from portal.errors import IntegrationNotFound, ValidationFailed
from portal.settings import MAX_TOKEN_TTL, MIN_TOKEN_TTL, Settings, origin_of

SCOPES = ("ORGANIZATION", "WORKSPACE", "USER")
OAUTH_APP_MODES = ("weavz_managed", "custom")
MAX_ID_LENGTH = 200
MAX_URI_LENGTH = 2000
_ID_FIELDS = ("connectionName", "externalId", "workspaceId")
_OPTIONAL_ID_FIELDS = ("endUserId", "workspaceIntegrationId", "authMethodKey", "oauthAppId")
_KNOWN_FIELDS = frozenset(
    {
        "integrationName", *_ID_FIELDS, *_OPTIONAL_ID_FIELDS, "scope", "oauthAppMode",
        "successRedirectUri", "errorRedirectUri", "allowedOrigins", "expiresIn", "webhookUrl",
    }
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An OAuth app id becomes a path segment at the core API (`GET /api/v1/oauth-apps/{id}`,
# with the core API key): a plain identifier, never `..`, `/`, `?` or a space.
_OAUTH_APP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
OAUTH_APP_ID_RULE = ("Must be a plain identifier: up to 128 letters, digits, '_', '.', ':' "
                     "or '-', starting with a letter or digit.")


def is_oauth_app_id(value: str) -> bool:
    return _OAUTH_APP_ID.fullmatch(value) is not None


@dataclass(frozen=True, kw_only=True)
class ConnectRequest:
    connection_name: str
    external_id: str
    workspace_id: str
    integration_name: str | None = None
    end_user_id: str | None = None
    workspace_integration_id: str | None = None
    auth_method_key: str | None = None
    scope: str | None = None
    oauth_app_mode: str | None = None
    oauth_app_id: str | None = None
    success_redirect_uri: str | None = None
    error_redirect_uri: str | None = None
    allowed_origins: tuple[str, ...] = ()
    expires_in: int | None = None
    webhook_url: str | None = None


def parse_connect_request(body: Any, *, settings: Settings, catalog: Catalog) -> ConnectRequest:
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    errors: dict[str, str] = {}
    for name in sorted(set(body) - _KNOWN_FIELDS):
        errors[name] = "Unknown field."

    values: dict[str, Any] = {}
    for name in _ID_FIELDS:
        values[name] = _identifier(body, name, errors, required=True)
    for name in _OPTIONAL_ID_FIELDS:
        values[name] = _identifier(body, name, errors, required=False)
    integration_name = _identifier(body, "integrationName", errors, required=False)
    scope = _choice(body, "scope", SCOPES, errors)
    oauth_app_mode = _choice(body, "oauthAppMode", OAUTH_APP_MODES, errors)
    if values["oauthAppId"] is not None and not is_oauth_app_id(values["oauthAppId"]):
        errors["oauthAppId"] = OAUTH_APP_ID_RULE
        values["oauthAppId"] = None
    if oauth_app_mode == "custom" and not values["oauthAppId"] and "oauthAppId" not in errors:
        errors["oauthAppId"] = 'Required when oauthAppMode is "custom".'

    allowed_origins = _allowed_origins(body, settings, errors)
    success_uri = _redirect_uri(body, "successRedirectUri", settings, errors)
    error_uri = _redirect_uri(body, "errorRedirectUri", settings, errors)
    webhook_url = _webhook_url(body, settings, errors)
    expires_in = _expires_in(body, errors)

    if errors:
        raise ValidationFailed(
            "The request has invalid fields: " + ", ".join(sorted(errors)) + ".",
            details={"fields": errors},
        )

    if integration_name is not None:
        integration = catalog.get(integration_name)
        if integration is None:
            raise IntegrationNotFound(
                f"No integration named {integration_name!r} is in the catalog.",
                details={"integrationName": integration_name},
            )
        key = values["authMethodKey"]
        if key is not None and integration.auth_option(key) is None:
            known = [option.key for option in integration.auth_options]
            raise ValidationFailed(
                f"{integration_name!r} has no auth method {key!r}.",
                details={"fields": {"authMethodKey": f"Expected one of: {', '.join(known)}."}},
            )

    return ConnectRequest(
        integration_name=integration_name,
        connection_name=values["connectionName"],
        external_id=values["externalId"],
        workspace_id=values["workspaceId"],
        end_user_id=values["endUserId"],
        workspace_integration_id=values["workspaceIntegrationId"],
        auth_method_key=values["authMethodKey"],
        scope=scope,
        oauth_app_mode=oauth_app_mode,
        oauth_app_id=values["oauthAppId"],
        success_redirect_uri=success_uri,
        error_redirect_uri=error_uri,
        allowed_origins=allowed_origins,
        expires_in=expires_in,
        webhook_url=webhook_url,
    )


def _identifier(body: dict[str, Any], name: str, errors: dict[str, str], *, required: bool
                ) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            errors[name] = "Required."
        return None
    if not isinstance(value, str):
        errors[name] = "Must be a string."
        return None
    value = value.strip()
    if not value:
        if required:
            errors[name] = "Required."
        return None
    if len(value) > MAX_ID_LENGTH:
        errors[name] = f"Must be at most {MAX_ID_LENGTH} characters."
        return None
    if _CONTROL.search(value):
        errors[name] = "Must not contain control characters."
        return None
    return value


def _choice(body: dict[str, Any], name: str, choices: tuple[str, ...], errors: dict[str, str]
            ) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if value not in choices:
        errors[name] = "Must be one of: " + ", ".join(choices) + "."
        return None
    return str(value)


def _allowed_origins(body: dict[str, Any], settings: Settings, errors: dict[str, str]
                     ) -> tuple[str, ...]:
    value = body.get("allowedOrigins")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        errors["allowedOrigins"] = "Must be a list of origins."
        return ()
    origins = []
    for item in value:
        origin = _exact_origin(item)
        if origin is None or origin not in settings.allowed_origins:
            errors["allowedOrigins"] = (
                f"{item[:100]!r} is not one of the portal's allowed origins "
                "(PORTAL_ALLOWED_ORIGINS)."
            )
            return ()
        origins.append(origin)
    return tuple(dict.fromkeys(origins))


def _redirect_uri(body: dict[str, Any], name: str, settings: Settings, errors: dict[str, str]
                  ) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        errors[name] = "Must be an absolute URL."
        return None
    if len(value) > MAX_URI_LENGTH:
        errors[name] = f"Must be at most {MAX_URI_LENGTH} characters."
        return None
    origin = _exact_origin(value, allow_path=True)
    if origin is None:
        errors[name] = "Must be an absolute http(s) URL without user info, spaces or backslashes."
        return None
    if origin not in settings.allowed_origins:
        errors[name] = f"Origin {origin} is not one of the portal's allowed origins."
        return None
    if urlsplit(value).fragment:
        errors[name] = "Must not contain a fragment."
        return None
    return value


def _webhook_url(body: dict[str, Any], settings: Settings, errors: dict[str, str]
                 ) -> str | None:
    if body.get("webhookUrl") is None:
        return None
    if not settings.webhook_secret:
        errors["webhookUrl"] = "Webhooks are not enabled on this portal (PORTAL_WEBHOOK_SECRET)."
        return None
    return _redirect_uri(body, "webhookUrl", settings, errors)


def _exact_origin(value: str, *, allow_path: bool = False) -> str | None:
    """The origin of `value`, or None for anything a browser might read differently."""
    if not value.isascii() or _CONTROL.search(value) or "\\" in value or " " in value:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        return None
    if parts.scheme not in {"http", "https"} or not parts.hostname or "@" in parts.netloc:
        return None
    if "%" in parts.netloc:
        return None
    if not allow_path and (parts.path not in {"", "/"} or parts.query or parts.fragment):
        return None
    return origin_of(value)


def _expires_in(body: dict[str, Any], errors: dict[str, str]) -> int | None:
    value = body.get("expiresIn")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        errors["expiresIn"] = "Must be a whole number of seconds."
        return None
    if not MIN_TOKEN_TTL <= value <= MAX_TOKEN_TTL:
        errors["expiresIn"] = f"Must be between {MIN_TOKEN_TTL} and {MAX_TOKEN_TTL} seconds."
        return None
    return value
