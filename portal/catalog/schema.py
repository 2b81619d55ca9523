"""The shape of a catalog entry: an integration, its auth options and their fields.

The vocabulary is the catalog file format's (docs/catalog.md): auth types `OAUTH2`,
`PLATFORM_OAUTH2`, `SECRET_TEXT`, `BASIC_AUTH`, `CUSTOM_AUTH`; field types `SHORT_TEXT`,
`LONG_TEXT`, `SECRET_TEXT`, `NUMBER`, `CHECKBOX`, `STATIC_DROPDOWN` and `MARKDOWN` help
blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

import pydantic
from typing_extensions import TypedDict  # pydantic reads only this one on Python 3.11

from portal.jsonschema import enum_of


class AuthType(StrEnum):
    OAUTH2 = "OAUTH2"
    PLATFORM_OAUTH2 = "PLATFORM_OAUTH2"
    SECRET_TEXT = "SECRET_TEXT"
    BASIC_AUTH = "BASIC_AUTH"
    CUSTOM_AUTH = "CUSTOM_AUTH"

    @property
    def is_oauth(self) -> bool:
        return self in {AuthType.OAUTH2, AuthType.PLATFORM_OAUTH2}


class FieldType(StrEnum):
    SHORT_TEXT = "SHORT_TEXT"
    LONG_TEXT = "LONG_TEXT"
    SECRET_TEXT = "SECRET_TEXT"
    NUMBER = "NUMBER"
    CHECKBOX = "CHECKBOX"
    STATIC_DROPDOWN = "STATIC_DROPDOWN"
    MARKDOWN = "MARKDOWN"


class FieldFormat(StrEnum):
    """Extra checks on a text field whose value names a place on the network."""

    URL = "url"  # an https:// base URL, checked by the SSRF guard
    HOSTNAME = "hostname"  # a host name or public IP address, no scheme or port
    SUBDOMAIN = "subdomain"  # one DNS label


@dataclass(frozen=True, kw_only=True)
class Choice:
    label: str
    value: str


@dataclass(frozen=True, kw_only=True)
class Field:
    """One input of a credential form (or a MARKDOWN help block, which has no value)."""

    key: str
    type: FieldType
    display_name: str = ""
    description: str = ""
    required: bool = False
    default_value: str | float | bool | None = None
    placeholder: str | None = None
    pattern: str | None = None
    min: float | None = None  # NUMBER: smallest value; text: fewest characters
    max: float | None = None  # NUMBER: largest value; text: most characters
    format: FieldFormat | None = None
    options: tuple[Choice, ...] = ()
    markdown: str = ""

    @property
    def is_secret(self) -> bool:
        return self.type is FieldType.SECRET_TEXT

    @property
    def is_input(self) -> bool:
        return self.type is not FieldType.MARKDOWN

    def public(self) -> PublicField:
        if self.type is FieldType.MARKDOWN:
            return {"type": self.type.value, "markdown": self.markdown}
        data: PublicField = {
            "type": self.type.value,
            "displayName": self.display_name,
            "description": self.description,
            "required": self.required,
        }
        if self.default_value is not None:
            data["defaultValue"] = self.default_value
        if self.placeholder is not None:
            data["placeholder"] = self.placeholder
        if self.pattern is not None:
            data["pattern"] = self.pattern
        if self.min is not None:
            data["min"] = self.min
        if self.max is not None:
            data["max"] = self.max
        if self.format:
            data["format"] = self.format.value
        if self.options:
            data["options"] = [{"label": item.label, "value": item.value}
                               for item in self.options]
        return data


@dataclass(frozen=True, kw_only=True)
class Verification:
    """A request that tells a valid credential from a wrong one, before it is saved.

    `url`, `headers`, `body` and the basic-auth pair are templates: `{key}` is replaced
    by the value of the field `key` (percent-encoded in the path and query).
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    basic_auth: tuple[str, str] | None = None
    success_status: tuple[int, ...] = (200,)
    invalid_status: tuple[int, ...] = (401, 403)
    blame_field: str = ""


@dataclass(frozen=True, kw_only=True)
class OAuthSettings:
    """How the OAuth family talks to the provider; `{key}` in URLs is filled from props."""

    auth_url: str
    token_url: str
    scope: str = ""
    # Plain words for the scopes that have them, in the order of `scope`.
    scope_descriptions: tuple[tuple[str, str], ...] = ()
    pkce: bool = True
    authorization_method: str = "BODY"  # HEADER: client credentials as HTTP basic auth
    extra_params: tuple[tuple[str, str], ...] = ()
    # RFC 9207: the provider's issuer identifier (default: the origin of `auth_url`), and
    # whether it always sends `iss` in the authorization response.
    issuer: str | None = None
    iss_parameter_supported: bool = False
    token_request_format: str = "FORM"  # JSON: the token request body is a JSON object
    # Only ever signs in with the customer's own app (`oauthAppMode: "custom"`), never the
    # platform's: set when the end user chooses the provider's host (a self-hosted server).
    customer_app_only: bool = False

    def public(self) -> PublicOAuth:
        return {
            "authUrl": self.auth_url,
            "tokenUrl": self.token_url,
            "scope": self.scope,
            "pkce": self.pkce,
            "authorizationMethod": self.authorization_method,
            "extraParams": dict(self.extra_params),
            "customerAppOnly": self.customer_app_only,
        }


@dataclass(frozen=True, kw_only=True)
class AuthOption:
    key: str
    type: AuthType
    display_name: str
    description: str = ""
    help_url: str | None = None
    # SECRET_TEXT: the one field `secret_text`; BASIC_AUTH: `username` and `password`;
    # CUSTOM_AUTH: the props, in order; OAuth: the props its URLs need (a shop, a tenant).
    fields: tuple[Field, ...] = ()
    verification: Verification | None = None
    oauth: OAuthSettings | None = None

    @property
    def inputs(self) -> tuple[Field, ...]:
        return tuple(item for item in self.fields if item.is_input)

    def public(self) -> PublicAuthOption:
        data: PublicAuthOption = {
            "key": self.key,
            "type": self.type.value,
            "displayName": self.display_name,
            "description": self.description,
        }
        if self.help_url:
            data["helpUrl"] = self.help_url
        if self.type is AuthType.CUSTOM_AUTH or (self.type.is_oauth and self.fields):
            data["props"] = {item.key: item.public() for item in self.fields}
        elif self.fields:
            data["fields"] = {item.key: item.public() for item in self.fields}
        if self.oauth:
            data["oauth"] = self.oauth.public()
        data["verifiesCredentials"] = self.verification is not None
        return data


@dataclass(frozen=True, kw_only=True)
class Integration:
    name: str
    display_name: str
    category: str
    description: str
    website: str
    auth_options: tuple[AuthOption, ...] = field(default=())
    logo: str | None = None

    @property
    def monogram(self) -> str:
        words = [word for word in self.display_name.replace("-", " ").split() if word]
        if len(words) == 1:
            return words[0][:2].title()
        return "".join(word[0] for word in words[:2]).upper()

    @property
    def monogram_hue(self) -> int:
        """A stable colour per integration, so monograms are told apart at a glance."""
        return sum(ord(char) * (index + 1) for index, char in enumerate(self.name)) % 360

    def auth_option(self, key: str | None) -> AuthOption | None:
        """The option named by `key`, or the only one when `key` is None."""
        if key is None:
            return self.auth_options[0] if len(self.auth_options) == 1 else None
        return next((option for option in self.auth_options if option.key == key), None)

    def public(self) -> PublicIntegration:
        return {
            "name": self.name,
            "displayName": self.display_name,
            "category": self.category,
            "description": self.description,
            "website": self.website,
            "logo": self.logo,
            "authOptions": [option.public() for option in self.auth_options],
        }


# -- what `GET /api/v1/integrations` lists (openapi.json's `Integration` and `Field`) ------
# Every key is optional in the document, as the API has always described it.
class PublicChoice(TypedDict, total=False):
    label: str
    value: str


class PublicField(TypedDict, total=False):
    """A credential form field, or a MARKDOWN help block (which has only markdown)."""

    type: Annotated[str, enum_of(FieldType)]
    displayName: str
    description: str
    required: bool
    defaultValue: str | float | bool
    placeholder: str
    pattern: str
    min: float
    max: float
    format: Annotated[str, enum_of(FieldFormat)]
    options: list[PublicChoice]
    markdown: str


class PublicOAuth(TypedDict, total=False):
    authUrl: str
    tokenUrl: str
    scope: str
    pkce: bool
    authorizationMethod: Annotated[str, enum_of(("HEADER", "BODY"))]
    extraParams: dict[str, str]
    customerAppOnly: Annotated[bool, pydantic.Field(description=(
        "Signs in only with the customer's own OAuth app (oauthAppMode custom): the "
        "provider's host is the end user's choice."))]


class PublicAuthOption(TypedDict, total=False):
    key: str
    type: Annotated[str, enum_of(AuthType)]
    displayName: str
    description: str
    helpUrl: str
    fields: Annotated[dict[str, PublicField], pydantic.Field(
        description="SECRET_TEXT: secret_text; BASIC_AUTH: username and password.")]
    props: Annotated[dict[str, PublicField], pydantic.Field(
        description="CUSTOM_AUTH fields, and the props an OAuth option's URLs need.")]
    oauth: PublicOAuth
    verifiesCredentials: Annotated[bool, pydantic.Field(
        description="The portal checks the credential with the provider before saving it.")]


class PublicIntegration(TypedDict, total=False):
    name: str
    displayName: str
    category: str
    description: str
    website: str
    logo: str | None
    authOptions: list[PublicAuthOption]


class IntegrationListing(TypedDict, total=False):
    integrations: list[PublicIntegration]
