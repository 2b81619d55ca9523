"""`POST /api/v1/connect/token`: its body as a model (`ConnectRequest`) and its answer.

Every problem is collected per field, so the partner sees all of them at once in
`details.fields`, each in the words below. The model also generates the `TokenRequest`
schema of openapi.json (portal/openapi.py), so the document and the checks cannot part.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import pydantic
from pydantic import AfterValidator, BeforeValidator, ConfigDict, ValidationInfo, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic reads only this one on Python 3.11

from portal.brand import logo_of_data_url
from portal.catalog import Catalog
from portal.errors import IntegrationNotFound, ValidationFailed
from portal.i18n import SUPPORTED as SUPPORTED_LOCALES
from portal.jsonschema import string_format
from portal.sessions import OAUTH_APP_MODES, OAuthAppMode
from portal.settings import MAX_TOKEN_TTL, MIN_TOKEN_TTL, Settings, origin_of

Scope = Literal["ORGANIZATION", "WORKSPACE", "USER"]
SCOPES: tuple[str, ...] = get_args(Scope)
MAX_ID_LENGTH = 200
MAX_URI_LENGTH = 2000
MAX_PARTNER_NAME = 80
# 64 KB of image as base64, plus its `data:image/webp;base64,` prefix.
MAX_LOGO_DATA_URL = 4 * ((64 * 1024 + 2) // 3) + 32
MAX_PREFERRED_INTEGRATIONS = 20
MAX_ALLOWED_INTEGRATIONS = 200
# The languages of the hosted pages (portal/i18n.py translates them).
LOCALES: tuple[str, ...] = SUPPORTED_LOCALES  # portal/i18n.py
Theme = Literal["light", "dark", "auto"]
THEMES: tuple[str, ...] = get_args(Theme)
_ACCENT = re.compile(r"^#[0-9A-Fa-f]{6}$")
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


def _partner_name(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_PARTNER_NAME:
        raise _problem(f"Must be at most {MAX_PARTNER_NAME} characters.")
    if _CONTROL.search(value):
        raise _problem("Must not contain control characters.")
    return value


def _partner_logo_url(value: str, info: ValidationInfo) -> str:
    if len(value) > MAX_URI_LENGTH and not value.startswith("data:"):
        raise _problem(f"Must be at most {MAX_URI_LENGTH} characters.")
    if value.startswith("data:"):
        if len(value) > MAX_LOGO_DATA_URL or logo_of_data_url(value) is None:
            raise _problem("A data URL must be data:image/png|jpeg|webp|gif;base64, of a "
                           "PNG, JPEG, WebP or GIF image of at most 64 KB.")
        return value
    # Plain http only where the portal allows it to loopback (tests and development).
    schemes = {"https", "http"} if _settings(info).allow_http_loopback else {"https"}
    if _exact_origin(value, allow_path=True) is None or urlsplit(value).scheme not in schemes:
        raise _problem("Must be an https URL or a base64 image data URL.")
    return value


def _locale(value: str) -> str:
    base = value.strip().replace("_", "-").split("-")[0].lower()
    if base not in LOCALES:
        raise _problem("Must be one of: " + ", ".join(LOCALES) + " (a region such as de-CH "
                       "is read as its language).")
    return base


def _at_most(limit: int) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    def check(value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) > limit:
            raise _problem(f"Must be a list of at most {limit} integration names.")
        return value
    return check


def _integration_names(value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    catalog: Catalog | None = (info.context or {}).get("catalog")
    unknown = [name for name in value if catalog is not None and catalog.get(name) is None]
    if unknown:
        listed = ", ".join(repr(name[:100]) for name in unknown[:5])
        raise _problem(f"Not in the catalog: {listed}.")
    return tuple(dict.fromkeys(value))


def _none_as_auto(value: Any) -> Any:
    return "auto" if value is None else value


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
PartnerName = Annotated[str, AfterValidator(_partner_name),
                        WithJsonSchema({"type": "string", "maxLength": MAX_PARTNER_NAME})]
LogoUrl = Annotated[str, AfterValidator(_partner_logo_url), WithJsonSchema({
    "type": "string", "maxLength": MAX_LOGO_DATA_URL,
    "description": "An https URL (at most 2000 characters) or a data:image/png|jpeg|webp|gif;"
                   "base64 URL."})]
AccentColor = Annotated[str, pydantic.Field(pattern=_ACCENT.pattern),
                        AfterValidator(str.lower)]
Locale = Annotated[str, AfterValidator(_locale),
                   WithJsonSchema({"type": "string", "examples": list(LOCALES)})]

# Lists of catalog names: not too many, then each known (checked in this order).
PreferredNames = Annotated[
    tuple[str, ...], AfterValidator(_at_most(MAX_PREFERRED_INTEGRATIONS)),
    AfterValidator(_integration_names), BeforeValidator(_none_as_empty),
    WithJsonSchema({"type": "array", "items": {"type": "string"},
                    "maxItems": MAX_PREFERRED_INTEGRATIONS})]
AllowedNames = Annotated[
    tuple[str, ...], AfterValidator(_at_most(MAX_ALLOWED_INTEGRATIONS)),
    AfterValidator(_integration_names), BeforeValidator(_none_as_empty),
    WithJsonSchema({"type": "array", "items": {"type": "string"},
                    "maxItems": MAX_ALLOWED_INTEGRATIONS})]
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
    partner_name: PartnerName | None = pydantic.Field(
        None, description="Who asks, as the pages name it (default PORTAL_BRAND_NAME). "
        "Portal extension.")
    partner_logo_url: LogoUrl | None = pydantic.Field(
        None, description="The partner's logo: PNG, JPEG, WebP or GIF of at most 64 KB "
        "(no SVG). The portal fetches and serves it; the browser never loads it from this "
        "URL. Portal extension.")
    accent_color: AccentColor | None = pydantic.Field(
        None, description="#rrggbb for buttons and links; the portal adjusts it until "
        "contrast is AA. Portal extension.")
    theme: Annotated[Theme, BeforeValidator(_none_as_auto)] = pydantic.Field(
        "auto", description="auto follows the browser's light or dark preference. "
        "Portal extension.")
    locale: Locale | None = pydantic.Field(
        None, description="Language of the pages: one of " + ", ".join(LOCALES) + " (a "
        "region such as de-CH is read as its language). Default: the browser's "
        "Accept-Language. Portal extension.")
    preferred_integrations: PreferredNames = pydantic.Field(
        (), description="Catalog names the picker shows first, in this order. "
        "Portal extension.")
    allowed_integrations: AllowedNames = pydantic.Field(
        (), description="Catalog names the picker is limited to (empty: all). "
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
    "accentColor": "Must be a colour like #1a73e8.",
    "theme": "Must be one of: " + ", ".join(THEMES) + ".",
    "partnerLogoUrl": "Must be an https URL or a base64 image data URL.",
    "preferredIntegrations": f"Must be a list of at most {MAX_PREFERRED_INTEGRATIONS} "
                             "integration names.",
    "allowedIntegrations": f"Must be a list of at most {MAX_ALLOWED_INTEGRATIONS} "
                           "integration names.",
}
_ALIASES = {name: info.alias or name for name, info in ConnectRequest.model_fields.items()}
_OUT_OF_RANGE = f"Must be between {MIN_TOKEN_TTL} and {MAX_TOKEN_TTL} seconds."


def parse_connect_request(body: Any, *, settings: Settings, catalog: Catalog) -> ConnectRequest:
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    try:
        request = ConnectRequest.model_validate(
            body, context={"settings": settings, "catalog": catalog})
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
        allowed = request.allowed_integrations
        if allowed and integration.name not in allowed:
            raise ValidationFailed(
                f"{request.integration_name!r} is not one of allowedIntegrations.",
                details={"fields": {"integrationName": "Must be one of allowedIntegrations."}},
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
