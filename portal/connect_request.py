"""`POST /api/v1/connect/token`: its body as a model (`ConnectRequest`) and its answer.

Every problem is collected per field, so the partner sees all of them at once in
`details.fields`, each in the words below. The model also generates the `TokenRequest`
schema of openapi.json (portal/openapi.py), so the document and the checks cannot part.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import pydantic
from pydantic import AfterValidator, BeforeValidator, ConfigDict, ValidationInfo, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic reads only this one on Python 3.11

from portal.catalog import Catalog
from portal.errors import IntegrationNotFound, ValidationFailed
from portal.jsonschema import string_format
from portal.sessions import OAUTH_APP_MODES, OAuthAppMode
from portal.settings import MAX_TOKEN_TTL, MIN_TOKEN_TTL, Settings, origin_of

Scope = Literal["ORGANIZATION", "WORKSPACE", "USER"]
SCOPES: tuple[str, ...] = get_args(Scope)
MAX_ID_LENGTH = 200
MAX_URI_LENGTH = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An OAuth app id becomes a path segment at the core API (`GET /api/v1/oauth-apps/{id}`,
# with the core API key): a plain identifier, never `..`, `/`, `?` or a space.
_OAUTH_APP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
OAUTH_APP_ID_RULE = ("Must be a plain identifier: up to 128 letters, digits, '_', '.', ':' "
                     "or '-', starting with a letter or digit.")


def is_oauth_app_id(value: str) -> bool:
    return _OAUTH_APP_ID.fullmatch(value) is not None


def _problem(text: str) -> PydanticCustomError:
    return PydanticCustomError("connect_request", "{reason}", {"reason": text})


def _settings(info: ValidationInfo) -> Settings:
    """The portal's settings, which `parse_connect_request` passes as validation context."""
    settings: Settings = (info.context or {})["settings"]
    return settings


# -- the value rules, each with the schema it documents ---------------------------------
def _identifier(value: str, *, required: bool) -> str | None:
    value = value.strip()
    if not value:
        if required:
            raise _problem("Required.")
        return None
    if len(value) > MAX_ID_LENGTH:
        raise _problem(f"Must be at most {MAX_ID_LENGTH} characters.")
    if _CONTROL.search(value):
        raise _problem("Must not contain control characters.")
    return value


def _required_identifier(value: str) -> str:
    return _identifier(value, required=True) or ""


def _optional_identifier(value: str) -> str | None:
    return _identifier(value, required=False)


def _oauth_app_id(value: str | None) -> str | None:
    if value is not None and not is_oauth_app_id(value):
        raise _problem(OAUTH_APP_ID_RULE)
    return value


def _redirect_uri(value: str | None, info: ValidationInfo) -> str | None:
    if value is None:
        return None
    if not value:
        raise _problem("Must be an absolute URL.")
    if len(value) > MAX_URI_LENGTH:
        raise _problem(f"Must be at most {MAX_URI_LENGTH} characters.")
    origin = _exact_origin(value, allow_path=True)
    if origin is None:
        raise _problem("Must be an absolute http(s) URL without user info, spaces or "
                       "backslashes.")
    if origin not in _settings(info).allowed_origins:
        raise _problem(f"Origin {origin} is not one of the portal's allowed origins.")
    if urlsplit(value).fragment:
        raise _problem("Must not contain a fragment.")
    return value


def _webhooks_enabled(value: Any, info: ValidationInfo) -> Any:
    if value is not None and not _settings(info).webhook_secret:
        raise _problem("Webhooks are not enabled on this portal (PORTAL_WEBHOOK_SECRET).")
    return value


def _none_as_empty(value: Any) -> Any:
    return () if value is None else value


def _allowed_origins(value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    origins = []
    for item in value:
        origin = _exact_origin(item)
        if origin is None or origin not in _settings(info).allowed_origins:
            raise _problem(f"{item[:100]!r} is not one of the portal's allowed origins "
                           "(PORTAL_ALLOWED_ORIGINS).")
        origins.append(origin)
    return tuple(dict.fromkeys(origins))


_ID_SCHEMA = {"type": "string", "maxLength": MAX_ID_LENGTH}
RequiredId = Annotated[str, AfterValidator(_required_identifier), WithJsonSchema(_ID_SCHEMA)]
OptionalId = Annotated[str, AfterValidator(_optional_identifier), WithJsonSchema(_ID_SCHEMA)]
Uri = Annotated[str, string_format("uri")]
OAuthAppId = Annotated[str, AfterValidator(_optional_identifier), AfterValidator(_oauth_app_id),
                       WithJsonSchema({"type": "string",
                                       "pattern": f"^{_OAUTH_APP_ID.pattern}$"})]
Lifetime = Annotated[pydantic.StrictInt, pydantic.Field(ge=MIN_TOKEN_TTL, le=MAX_TOKEN_TTL)]


# A valid token request, as `flow.create_session` takes it (openapi.json's TokenRequest).
class ConnectRequest(pydantic.BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel)

    integration_name: OptionalId | None = pydantic.Field(
        None, description="Omit to let the user pick from the catalog.")
    connection_name: RequiredId
    external_id: RequiredId
    workspace_id: RequiredId
    end_user_id: OptionalId | None = None
    workspace_integration_id: OptionalId | None = None
    auth_method_key: OptionalId | None = None
    scope: Scope | None = None
    oauth_app_mode: OAuthAppMode | None = None
    oauth_app_id: OAuthAppId | None = (
        pydantic.Field(None, validate_default=True, description=(
            "Required when oauthAppMode is custom. A plain identifier: it is a path segment "
            "of GET /api/v1/oauth-apps/{id} at the core API.")))
    success_redirect_uri: Annotated[Uri | None, AfterValidator(_redirect_uri)] = (
        pydantic.Field(None, description="Origin must be one of PORTAL_ALLOWED_ORIGINS."))
    error_redirect_uri: Annotated[Uri | None, AfterValidator(_redirect_uri)] = (
        pydantic.Field(None, description="Origin must be one of PORTAL_ALLOWED_ORIGINS."))
    allowed_origins: Annotated[tuple[str, ...], AfterValidator(_allowed_origins),
                               BeforeValidator(_none_as_empty)] = (
        pydantic.Field((), description=(
            "Origins that may receive the popup's result message; a subset of "
            "PORTAL_ALLOWED_ORIGINS. Portal extension.")))
    webhook_url: Annotated[Uri | None, AfterValidator(_redirect_uri),
                           BeforeValidator(_webhooks_enabled)] = pydantic.Field(
        None, description=(
            "Also send this session's signed connect.session.completed / "
            "connect.session.failed event here. Its origin must be one of "
            "PORTAL_ALLOWED_ORIGINS, and PORTAL_WEBHOOK_SECRET must be set. Portal extension."))
    expires_in: Lifetime | None = pydantic.Field(
        None, description="Token lifetime in seconds (default PORTAL_TOKEN_TTL). "
        "Portal extension.")

    @pydantic.field_validator("oauth_app_id")
    @classmethod
    def _custom_mode_names_its_app(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("oauth_app_mode") == "custom" and not value:
            raise _problem('Required when oauthAppMode is "custom".')
        return value


# What `POST /api/v1/connect/token` answers (openapi.json's TokenResponse).
class TokenAnswer(TypedDict):
    token: Annotated[str, pydantic.Field(pattern="^cst_")]
    connectUrl: Annotated[str, string_format("uri")]
    expiresAt: Annotated[str, string_format("date-time")]
    sessionId: Annotated[str, string_format("uuid")]


# What a value of the wrong type reads as, by field; anything else a field of the request
# says is in `_problem` texts above.
_WRONG_TYPE = {
    "scope": "Must be one of: " + ", ".join(SCOPES) + ".",
    "oauthAppMode": "Must be one of: " + ", ".join(OAUTH_APP_MODES) + ".",
    "successRedirectUri": "Must be an absolute URL.",
    "errorRedirectUri": "Must be an absolute URL.",
    "webhookUrl": "Must be an absolute URL.",
    "allowedOrigins": "Must be a list of origins.",
    "expiresIn": "Must be a whole number of seconds.",
}
_ALIASES = {name: info.alias or name for name, info in ConnectRequest.model_fields.items()}
_OUT_OF_RANGE = f"Must be between {MIN_TOKEN_TTL} and {MAX_TOKEN_TTL} seconds."


def parse_connect_request(body: Any, *, settings: Settings, catalog: Catalog) -> ConnectRequest:
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    try:
        request = ConnectRequest.model_validate(body, context={"settings": settings})
    except pydantic.ValidationError as exc:
        errors = _field_errors(exc.errors(include_url=False))
        raise ValidationFailed(
            "The request has invalid fields: " + ", ".join(sorted(errors)) + ".",
            details={"fields": errors},
        ) from None

    if request.integration_name is not None:
        integration = catalog.get(request.integration_name)
        if integration is None:
            raise IntegrationNotFound(
                f"No integration named {request.integration_name!r} is in the catalog.",
                details={"integrationName": request.integration_name},
            )
        key = request.auth_method_key
        if key is not None and integration.auth_option(key) is None:
            known = [option.key for option in integration.auth_options]
            raise ValidationFailed(
                f"{request.integration_name!r} has no auth method {key!r}.",
                details={"fields": {"authMethodKey": f"Expected one of: {', '.join(known)}."}},
            )
    return request


def _field_errors(errors: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return field_errors(errors, aliases=_ALIASES, wrong_type=_WRONG_TYPE,
                        out_of_range=_OUT_OF_RANGE)


def field_errors(
    errors: Sequence[Mapping[str, Any]],
    *,
    aliases: Mapping[str, str],
    wrong_type: Mapping[str, str],
    out_of_range: str,
) -> dict[str, str]:
    """One text per bad field of a request model's pydantic errors: unknown fields first,
    then in the order of the model. `aliases` maps Python names to wire names (a default
    checked by a validator is named by its Python name); a custom error's own message
    (types `connect_request`, `end_user_request`) is the field's text."""
    unknown = sorted(str(error["loc"][0]) for error in errors
                     if error["type"] == "extra_forbidden")
    fields = dict.fromkeys(unknown, "Unknown field.")
    for error in errors:
        name = aliases.get(str(error["loc"][0]), str(error["loc"][0]))
        if error["type"] == "extra_forbidden" or name in fields:
            continue
        if error["type"] in {"connect_request", "end_user_request"}:
            fields[name] = str(error["msg"])
        elif error["type"] == "missing" or error.get("input", "") is None:
            fields[name] = "Required."
        elif error["type"] in {"greater_than_equal", "less_than_equal"}:
            fields[name] = out_of_range
        else:
            fields[name] = wrong_type.get(name, "Must be a string.")
    return fields


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
