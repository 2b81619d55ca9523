"""The catalog file format as pydantic models: what a catalog file may say, field by field.

These models check the shape of an entry (types, required fields, unknown fields, the
allowed values) and generate the catalog JSON Schema shipped as `catalog.schema.json`.
Rules that need more than one value at a time (placeholders against fields, the SSRF
rules, defaults against options) and the error messages an operator reads live in
`portal.catalog.loader`, which turns a valid document into `portal.catalog.schema` types.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import pydantic
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from portal.jsonschema import ContractSchema, readable

SCHEMA_FILE_NAME = "catalog.schema.json"


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise PydanticCustomError(
            "catalog_pattern", "not a valid regular expression ({reason})", {"reason": str(exc)}
        ) from None
    return pattern


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("catalog_null", "null")
    return value


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _strip_type(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return {**value, "type": value["type"].strip()}
    return value


# Optional, but when the key is written it must have a value: `null` is refused.
NotNull = BeforeValidator(_not_null)
# Names are read without surrounding spaces, as every other text value of a file.
Stripped = BeforeValidator(_strip)
TypeStripped = BeforeValidator(_strip_type)

# `Text` is stripped and must not be empty; `Template` is taken as written (`{key}`
# placeholders and all), since a header value or body may need its spaces.
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Template = str
Regex = Annotated[Text, AfterValidator(_compiles)]
HttpsUrl = Annotated[Text, StringConstraints(pattern=r"^https://")]
Number = Annotated[int | float, WithJsonSchema({"type": "number"})]
StatusList = Annotated[list[Annotated[int, pydantic.Field(ge=100, le=599)]],
                       pydantic.Field(min_length=1)]


class _Model(pydantic.BaseModel):
    # strict: a JSON `"true"` is not a boolean and `1` is not a string; the file says
    # what it means. Unknown fields are errors, so a typo never goes unnoticed.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True,
                              alias_generator=to_camel)


# -- fields of a credential form ---------------------------------------------------------
class Choice(_Model):
    label: Text
    value: Text


class _InputField(_Model):
    display_name: Text
    description: Text | None = None
    required: bool = False
    placeholder: Text | None = None


class _TextInput(_InputField):
    pattern: Regex | None = pydantic.Field(
        None, description="A regular expression the whole value must match.")
    min: Number | None = pydantic.Field(None, description="The fewest characters.")
    max: Number | None = pydantic.Field(None, description="The most characters.")


class ShortTextField(_TextInput):
    type: Literal["SHORT_TEXT"]
    format: Annotated[Literal["url", "hostname", "subdomain"] | None, NotNull, Stripped] = (
        pydantic.Field(
        None, description="url: an https:// base URL; hostname: a host name or public IP "
        "address; subdomain: one DNS label. Checked by the SSRF guard."))
    default_value: str | None = None


class LongTextField(_TextInput):
    type: Literal["LONG_TEXT"]
    default_value: str | None = None


class SecretTextField(_TextInput):
    """Masked, never written back into the page; a secret has no default."""

    type: Literal["SECRET_TEXT"]


class NumberField(_InputField):
    type: Literal["NUMBER"]
    pattern: Regex | None = None
    min: Number | None = pydantic.Field(None, description="The smallest value.")
    max: Number | None = pydantic.Field(None, description="The largest value.")
    default_value: Number | None = None


class CheckboxField(_InputField):
    type: Literal["CHECKBOX"]
    default_value: bool | None = None


class DropdownField(_InputField):
    type: Literal["STATIC_DROPDOWN"]
    options: Annotated[list[Choice], pydantic.Field(min_length=1)]
    default_value: str | None = pydantic.Field(
        None, description="The value of one of the options.")


class MarkdownBlock(_Model):
    """A help block: paragraphs, `- ` lists, **bold**, `code` and [links](https://...)."""

    type: Literal["MARKDOWN"]
    markdown: Text


FormField = Annotated[
    ShortTextField | LongTextField | SecretTextField | NumberField | CheckboxField
    | DropdownField | MarkdownBlock,
    pydantic.Field(discriminator="type"),
    TypeStripped,
]
Props = Annotated[dict[str, FormField], pydantic.Field(
    min_length=1, description="Fields by key (letters, digits and '_'), shown in this order.")]


# -- checking a credential before saving -----------------------------------------------
class BasicAuthTemplate(_Model):
    username: Template
    password: Template = ""


class Verification(_Model):
    """A request that tells a valid credential from a wrong one; `{key}` fills in a field."""

    method: Literal["GET", "POST", "HEAD"] = "GET"
    url: Text
    headers: dict[str, Template] = pydantic.Field(default_factory=dict)
    body: Template | None = None
    basic_auth: Annotated[BasicAuthTemplate | None, NotNull] = None
    success_status: StatusList | None = pydantic.Field(
        None, description="Statuses meaning valid (default [200]).")
    invalid_status: StatusList | None = pydantic.Field(
        None, description="Statuses meaning the credential is wrong (default [401, 403]).")
    blame_field: Annotated[str | None, NotNull] = pydantic.Field(
        None, description="The field the error is shown on (default: the first secret one).")


# -- auth options --------------------------------------------------------------------------
class _Option(_Model):
    key: Annotated[Text, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
    display_name: Text
    description: Text | None = None
    help_url: Annotated[HttpsUrl | None, NotNull] = None


class SecretTextOption(_Option):
    """One secret field, `secret_text`, labelled with the option's displayName."""

    type: Literal["SECRET_TEXT"]
    placeholder: Text | None = None
    pattern: Regex | None = None
    verification: Annotated[Verification | None, NotNull] = None


class CredentialLabel(_Model):
    """How the username or password field of a BASIC_AUTH option reads."""

    display_name: Text | None = None
    description: Text | None = None
    placeholder: Text | None = None
    pattern: Regex | None = None


class BasicAuthOption(_Option):
    type: Literal["BASIC_AUTH"]
    username: CredentialLabel = pydantic.Field(default_factory=CredentialLabel)
    password: CredentialLabel = pydantic.Field(default_factory=CredentialLabel)
    verification: Annotated[Verification | None, NotNull] = None


class CustomAuthOption(_Option):
    type: Literal["CUSTOM_AUTH"]
    props: Props
    verification: Annotated[Verification | None, NotNull] = None


class OAuthOption(_Option):
    type: Literal["OAUTH2", "PLATFORM_OAUTH2"]
    auth_url: Text
    token_url: Text
    scope: str = pydantic.Field("", description="Exactly as the provider expects it.")
    scope_descriptions: dict[str, Text] = pydantic.Field(default_factory=dict, description=(
        "What each scope lets the app do, in plain words for the end user (\"Read your "
        "calendar\"), keyed by a scope named in `scope`; the sign-in page lists them."))
    pkce: bool = True
    authorization_method: Literal["HEADER", "BODY"] = "BODY"
    extra_params: dict[str, str] = pydantic.Field(default_factory=dict)
    props: Props | None = None
    issuer: Text | None = None
    iss_parameter_supported: bool = False
    token_request_format: Literal["FORM", "JSON"] = "FORM"
    customer_app_only: bool = pydantic.Field(
        False, description="OAUTH2 only: sign in with the customer's own app, never the "
        "platform's, so the end user may choose the provider's host.")


AuthOption = Annotated[
    SecretTextOption | BasicAuthOption | CustomAuthOption | OAuthOption,
    pydantic.Field(discriminator="type"),
    TypeStripped,
]


class Integration(_Model):
    name: Annotated[Text, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    display_name: Text
    category: Text
    description: Text
    website: HttpsUrl
    logo: Annotated[Text, StringConstraints(pattern=r"^logos/[a-z0-9-]+\.svg$")] | None = (
        pydantic.Field(None, description="An SVG shipped in static/, like logos/acme.svg."))
    auth_options: Annotated[list[AuthOption], pydantic.Field(min_length=1)]


class CatalogFile(_Model):
    """A catalog file: the built-in one, or an operator's (PORTAL_CATALOG)."""

    model_config = ConfigDict(title="Connect portal catalog")

    schema_: str | None = pydantic.Field(None, alias="$schema", description=(
        "This format's JSON Schema, for editors: catalog.schema.json of the package."))
    integrations: list[Integration]


INTEGRATION = pydantic.TypeAdapter(Integration)

# The model of each discriminated tag, to name an entry's place and its allowed fields.
OPTION_MODELS: dict[str, type[_Model]] = {
    "SECRET_TEXT": SecretTextOption, "BASIC_AUTH": BasicAuthOption,
    "CUSTOM_AUTH": CustomAuthOption, "OAUTH2": OAuthOption, "PLATFORM_OAUTH2": OAuthOption,
}
FIELD_MODELS: dict[str, type[_Model]] = {
    "SHORT_TEXT": ShortTextField, "LONG_TEXT": LongTextField, "SECRET_TEXT": SecretTextField,
    "NUMBER": NumberField, "CHECKBOX": CheckboxField, "STATIC_DROPDOWN": DropdownField,
    "MARKDOWN": MarkdownBlock,
}


def aliases(model: type[pydantic.BaseModel]) -> set[str]:
    """The keys a model accepts, as a file spells them."""
    return {info.alias or name for name, info in model.model_fields.items()}


def json_schema() -> dict[str, Any]:
    """The catalog file format as JSON Schema (draft 2020-12), for editors and checks."""
    schema = CatalogFile.model_json_schema(by_alias=True, schema_generator=ContractSchema)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **readable(schema)}
