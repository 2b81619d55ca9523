"""Load and validate catalog files; a bad entry stops start-up with its place named.

Every message reads `<file>: integration '<name>': authOptions[<i>] ('<key>'): <field>:
<what is wrong>`, so an operator can fix a file from the message alone. docs/catalog.md
describes the format.

An entry is checked in two steps. `portal.catalog.document` checks its shape (types,
required and unknown fields, allowed values); a shape error is named here the way an
operator reads it. Then the rules that relate several values are checked (placeholders
against fields, the SSRF rules, whose OAuth app may use which host, defaults against
options) while the entry becomes the `portal.catalog.schema` types the portal uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pydantic

from portal import ssrf
from portal.catalog import document
from portal.catalog.schema import (
    AuthOption,
    AuthType,
    Choice,
    Field,
    FieldFormat,
    FieldType,
    Integration,
    OAuthSettings,
    Verification,
)

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
# Names the connect form itself uses; a field may not take them.
_RESERVED_KEYS = {"csrf_token", "action", "opener", "integration", "auth_method", "q"}
# Authorize parameters the portal sets itself.
_PORTAL_PARAMS = {"client_id", "client_secret", "redirect_uri", "state", "code_challenge",
                  "code_challenge_method", "response_type"}


class CatalogError(ValueError):
    """A catalog file or entry is invalid; the message names the file, entry and field."""


class Catalog:
    def __init__(self, integrations: Iterable[Integration]) -> None:
        self._by_name = {integration.name: integration for integration in integrations}

    def get(self, name: str) -> Integration | None:
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[Integration]:
        return iter(sorted(self._by_name.values(), key=lambda item: item.display_name.lower()))

    def __len__(self) -> int:
        return len(self._by_name)


def load_catalog(extra_paths: Iterable[str] = ()) -> Catalog:
    """The built-in catalog, then every operator file; later entries override by name."""
    builtin = resources.files("portal.catalog") / "integrations.json"
    entries = parse_catalog(builtin.read_text(encoding="utf-8"), source="built-in catalog")
    for raw_path in extra_paths:
        for file in catalog_files(Path(raw_path)):
            entries.extend(parse_catalog(read_catalog_file(file), source=str(file)))
    return Catalog(entries)


def catalog_files(path: Path) -> list[Path]:
    """A file, or every `*.json` file of a directory in name order."""
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise CatalogError(f"{path}: the directory has no *.json catalog file")
        return files
    if not path.exists():
        raise CatalogError(f"{path}: no such file or directory")
    return [path]


def read_catalog_file(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CatalogError(f"{file}: cannot be read ({reason})") from None


def parse_catalog(text: str, *, source: str) -> list[Integration]:
    """Every entry of a catalog file; raises CatalogError at the first problem."""
    entries, problems = check_catalog(text, source=source)
    if problems:
        raise CatalogError(problems[0])
    return entries


def check_catalog(text: str, *, source: str) -> tuple[list[Integration], list[str]]:
    """The valid entries of a catalog file and a message for each invalid one."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [f"{source}: not valid JSON ({exc})"]
    if not isinstance(parsed, dict) or not isinstance(parsed.get("integrations"), list):
        return [], [f'{source}: expected an object with an "integrations" list']
    unknown = sorted(set(parsed) - document.aliases(document.CatalogFile))
    problems = [f"{source}: {key}: unknown top-level field" for key in unknown]
    seen: set[str] = set()
    result = []
    for index, raw in enumerate(parsed["integrations"]):
        where = f"{source}: integrations[{index}]"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            where = f"{source}: integration {raw['name']!r}"
        try:
            integration = _integration(_validated(raw, where), where)
        except CatalogError as exc:
            problems.append(str(exc))
            continue
        if integration.name in seen:
            problems.append(f"{where}: name: is used twice in this file")
            continue
        seen.add(integration.name)
        result.append(integration)
    return result, problems


# -- step 1: the shape, and where a shape error is --------------------------------------
def _validated(raw: Any, where: str) -> document.Integration:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: must be an object")
    try:
        return document.INTEGRATION.validate_python(raw)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False)
        # An unknown field first: it is most often a typo of the field reported missing.
        first = min(errors, key=lambda error: error["type"] != "extra_forbidden")
        raise CatalogError(_describe(first, raw, where)) from None


# What is wrong with a value of the wrong type or form, by field; a field not named here
# is text: "is required and must be a non-empty string".
_SHAPE = {
    "required": "must be true or false",
    "pkce": "must be true or false",
    "issParameterSupported": "must be true or false",
    "customerAppOnly": "must be true or false",
    "min": "must be a number",
    "max": "must be a number",
    "authorizationMethod": "must be HEADER or BODY",
    "tokenRequestFormat": "must be FORM or JSON",
    "method": "must be one of GET, HEAD, POST",
    "scope": "must be a string, as the provider expects it",
    "extraParams": "must be an object of strings",
    "headers": "must be an object of strings",
    "body": "must be a string",
    "successStatus": "must be a non-empty list of HTTP status codes",
    "invalidStatus": "must be a non-empty list of HTTP status codes",
    "blameField": "must name a field of this option",
    "authOptions": "must be a non-empty list",
    "props": "must be an object of fields, by key",
    "options": "must be a non-empty list of {label, value}",
    "verification": "must be an object",
    "username": "must be an object",
    "password": "must be an object",
    "basicAuth": "must be an object",
}
_PATTERN = {
    "name": "must be lower-case letters, digits and '-'",
    "key": "must be letters, digits and '_'",
    "website": "must be an https:// URL",
    "helpUrl": "must be an https:// URL",
}
_DEFAULT_VALUE = {
    document.ShortTextField: "must be a string",
    document.LongTextField: "must be a string",
    document.NumberField: "must be a number",
    document.CheckboxField: "must be true or false",
    document.DropdownField: "must be the value of one of the options",
}
_NOT_OBJECT = {"model_type", "model_attributes_type", "dict_type"}
_INPUT_FIELD_KEYS = set().union(*(document.aliases(model)
                                  for model in document.FIELD_MODELS.values()))


def _describe(error: Mapping[str, Any], raw: dict[str, Any], where: str) -> str:
    """`<where>: <place>: <field>: <what is wrong>` for one pydantic error of an entry."""
    loc = list(error["loc"])
    model: type[pydantic.BaseModel] = document.Integration
    node: Any = raw
    place = where
    while len(loc) > 1:
        part = loc[0]
        if part in {"authOptions", "props"}:
            index = loc[1]
            item = node[part][index]
            place += f": authOptions[{index}]" if part == "authOptions" else f": props.{index}"
            if len(loc) == 2:
                return f"{place}: {_union_problem(error, item, part)}"
            if part == "authOptions" and isinstance(item.get("key"), str):
                place += f" ({item['key']!r})"
            models = document.OPTION_MODELS if part == "authOptions" else document.FIELD_MODELS
            model, node, loc = models[loc[2]], item, loc[3:]
        elif part == "options" and model is document.DropdownField:
            place += f": options[{loc[1]}]"
            model, node, loc = document.Choice, node["options"][loc[1]], loc[2:]
            if not loc:
                return f"{place}: must be an object"
        elif part in {"username", "password"} and model is document.BasicAuthOption:
            place += f": {part}"
            model, node, loc = document.CredentialLabel, node[part], loc[1:]
        elif part == "verification":
            place += ": verification"
            model, node, loc = document.Verification, node[part], loc[1:]
        elif part == "basicAuth":
            if error["type"] == "extra_forbidden":
                return f"{place}: basicAuth: {_unknown(document.BasicAuthTemplate, loc[1], {})}"
            return f"{place}: basicAuth.{loc[1]}: must be a string"
        elif part == "headers":
            return f"{place}: headers.{loc[1]}: must be a string"
        else:
            break
    if not loc:
        return f"{place}: must be an object"
    field = str(loc[0])
    if error["type"] == "extra_forbidden":
        return f"{place}: {_unknown(model, field, node)}"
    return f"{place}: {field}: {_field_problem(model, field, error, node)}"


def _union_problem(error: Mapping[str, Any], item: Any, part: str) -> str:
    """An auth option or form field whose `type` names no known kind."""
    if not isinstance(item, dict):
        return "must be an object"
    unknown = sorted(set(item) - _INPUT_FIELD_KEYS)
    if part == "props" and unknown:
        return _unknown(document.MarkdownBlock, unknown[0], item)
    kind = item.get("type")
    if error["type"] == "union_tag_invalid" and isinstance(kind, str) and kind.strip():
        known = ", ".join(item.value for item in (AuthType if part == "authOptions"
                                                  else FieldType))
        return f"type: is {kind.strip()!r}; expected one of {known}"
    return "type: is required and must be a non-empty string"


def _unknown(model: type[pydantic.BaseModel], key: str, node: Any) -> str:
    allowed = document.aliases(model)
    if model in document.FIELD_MODELS.values() and key not in _INPUT_FIELD_KEYS:
        allowed = _INPUT_FIELD_KEYS  # not a key of any field type
    elif model in _DEFAULT_VALUE or model is document.SecretTextField:
        kind = node["type"]
        if key == "markdown":
            return "markdown: only MARKDOWN fields have it"
        if key in {"pattern", "min", "max"}:
            return f"{kind} fields take no pattern, min or max"
        if key == "format":
            return "format: only SHORT_TEXT fields take a format"
        if key == "options":
            return "options: only STATIC_DROPDOWN fields have options"
        if key == "defaultValue":
            return "defaultValue: a secret field cannot have a default"
    return f"{key}: unknown field; expected some of {', '.join(sorted(allowed))}"


def _field_problem(model: type[pydantic.BaseModel], field: str, error: Mapping[str, Any],
                   node: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "catalog_null":
        return _SHAPE.get(field, "is required and must be a non-empty string")
    if kind.startswith("catalog_"):  # raised by the document's own validators
        return str(error["msg"])
    if kind in _NOT_OBJECT and field in _SHAPE:
        return _SHAPE[field]
    if field == "defaultValue":
        return _DEFAULT_VALUE[model]
    value = error.get("input")
    if field == "format" and kind == "literal_error" and isinstance(value, str) and value.strip():
        known = ", ".join(item.value for item in FieldFormat)
        return f"is {value.strip()!r}; expected one of {known}"
    if kind == "string_pattern_mismatch" and field == "logo":
        return f"must name a file shipped in static/, like logos/{node.get('name')}.svg"
    if kind == "string_pattern_mismatch" and field in _PATTERN:
        return _PATTERN[field]
    return _SHAPE.get(field, "is required and must be a non-empty string")


# -- step 2: the rules between values, and the types the portal uses -------------------
def _integration(entry: document.Integration, where: str) -> Integration:
    options = tuple(
        _auth_option(option, f"{where}: authOptions[{index}] ({option.key!r})")
        for index, option in enumerate(entry.auth_options)
    )
    keys = [option.key for option in options]
    if len(set(keys)) != len(keys):
        raise CatalogError(f"{where}: authOptions: two options have the same key")
    return Integration(
        name=entry.name,
        display_name=entry.display_name,
        category=entry.category,
        description=entry.description,
        website=entry.website,
        auth_options=options,
        logo=entry.logo,
    )


def _auth_option(entry: document.SecretTextOption | document.BasicAuthOption
                 | document.CustomAuthOption | document.OAuthOption, where: str) -> AuthOption:
    auth_type = AuthType(entry.type)
    fields: tuple[Field, ...]
    oauth = None
    verification_spec = None
    if isinstance(entry, document.SecretTextOption):
        fields = (Field(
            key="secret_text", type=FieldType.SECRET_TEXT, display_name=entry.display_name,
            description=entry.description or "", required=True, pattern=entry.pattern,
            placeholder=entry.placeholder,
        ),)
        verification_spec = entry.verification
    elif isinstance(entry, document.BasicAuthOption):
        fields = (
            _credential(entry.username, "username", "Username", FieldType.SHORT_TEXT),
            _credential(entry.password, "password", "Password", FieldType.SECRET_TEXT),
        )
        verification_spec = entry.verification
    elif isinstance(entry, document.CustomAuthOption):
        fields = _props(entry.props, where)
        verification_spec = entry.verification
    else:
        fields = _props(entry.props, where) if entry.props is not None else ()
        oauth = _oauth(entry, where, fields)

    verification = None
    if verification_spec is not None:
        verification = _verification(verification_spec, f"{where}: verification", fields)
    return AuthOption(
        key=entry.key,
        type=auth_type,
        display_name=entry.display_name,
        description=entry.description or "",
        help_url=entry.help_url,
        fields=fields,
        verification=verification,
        oauth=oauth,
    )


def _credential(spec: document.CredentialLabel, key: str, label: str, field_type: FieldType
                ) -> Field:
    return Field(
        key=key, type=field_type, required=True,
        display_name=spec.display_name or label,
        description=spec.description or "",
        placeholder=spec.placeholder,
        pattern=spec.pattern,
    )


def _props(props: dict[str, Any], where: str) -> tuple[Field, ...]:
    fields = tuple(_field(key, spec, f"{where}: props.{key}") for key, spec in props.items())
    if not any(item.is_input for item in fields):
        raise CatalogError(f"{where}: props: needs at least one field that is not MARKDOWN")
    return fields


def _field(key: str, spec: Any, where: str) -> Field:
    if not _KEY.match(key):
        raise CatalogError(f"{where}: the key must be letters, digits and '_'")
    if key in _RESERVED_KEYS:
        raise CatalogError(f"{where}: the key {key!r} is reserved by the connect form")
    field_type = FieldType(spec.type)
    if isinstance(spec, document.MarkdownBlock):
        return Field(key=key, type=field_type, markdown=spec.markdown)
    low: float | None = getattr(spec, "min", None)
    high: float | None = getattr(spec, "max", None)
    if low is not None and high is not None and low > high:
        raise CatalogError(f"{where}: min: is larger than max")
    options: tuple[Choice, ...] = ()
    if isinstance(spec, document.DropdownField):
        options = tuple(Choice(label=item.label, value=item.value) for item in spec.options)
        if len({choice.value for choice in options}) != len(options):
            raise CatalogError(f"{where}: options: two options have the same value")
    default = getattr(spec, "default_value", None)
    if default is not None:
        place = f"{where}: defaultValue"
        if field_type is FieldType.NUMBER and (
            (low is not None and default < low) or (high is not None and default > high)
        ):
            raise CatalogError(f"{place}: is outside min and max")
        if field_type is FieldType.STATIC_DROPDOWN and default not in {o.value for o in options}:
            raise CatalogError(f"{place}: must be the value of one of the options")
    field_format = getattr(spec, "format", None)
    return Field(
        key=key,
        type=field_type,
        display_name=spec.display_name,
        description=spec.description or "",
        required=spec.required,
        default_value=default,
        placeholder=spec.placeholder,
        pattern=getattr(spec, "pattern", None),
        min=low,
        max=high,
        format=FieldFormat(field_format) if field_format else None,
        options=options,
    )


def _oauth(entry: document.OAuthOption, where: str, props: tuple[Field, ...]) -> OAuthSettings:
    if entry.customer_app_only and entry.type != AuthType.OAUTH2:
        raise CatalogError(f"{where}: customerAppOnly: only OAUTH2 options can be limited to "
                           "the customer's own app; PLATFORM_OAUTH2 always uses the platform's")
    for key, url in (("authUrl", entry.auth_url), ("tokenUrl", entry.token_url)):
        _oauth_url(url, f"{where}: {key}", props, entry.customer_app_only)
    reserved = _PORTAL_PARAMS & set(entry.extra_params)
    if reserved:
        raise CatalogError(f"{where}: extraParams: {sorted(reserved)[0]} is set by the portal")
    if entry.issuer is not None:
        _oauth_url(entry.issuer, f"{where}: issuer", props, entry.customer_app_only)
    scopes = [word for word in re.split(r"[\s,]+", entry.scope) if word]
    unknown = sorted(set(entry.scope_descriptions) - set(scopes))
    if unknown:
        raise CatalogError(f"{where}: scopeDescriptions: {unknown[0]!r} is not in scope")
    return OAuthSettings(
        auth_url=entry.auth_url, token_url=entry.token_url, scope=entry.scope.strip(),
        scope_descriptions=tuple((word, entry.scope_descriptions[word]) for word in scopes
                                 if word in entry.scope_descriptions),
        pkce=entry.pkce, authorization_method=entry.authorization_method,
        extra_params=tuple(entry.extra_params.items()), issuer=entry.issuer,
        iss_parameter_supported=entry.iss_parameter_supported,
        token_request_format=entry.token_request_format,
        customer_app_only=entry.customer_app_only,
    )


def _oauth_url(template: str, where: str, props: tuple[Field, ...], customer_app_only: bool
               ) -> None:
    _url_template(template, where, props)
    if not customer_app_only:
        _provider_host(template, where, props)


def _verification(spec: document.Verification, where: str, fields: tuple[Field, ...]
                  ) -> Verification:
    _url_template(spec.url, f"{where}: url", fields)
    inputs = {item.key for item in fields if item.is_input}

    def template(value: str, place: str) -> str:
        unknown = set(ssrf.PLACEHOLDER.findall(value)) - inputs
        if unknown:
            raise CatalogError(f"{place}: {{{sorted(unknown)[0]}}} is not a field of this option")
        return value

    headers = []
    for name, value in spec.headers.items():
        if not _HEADER_NAME.match(name):
            raise CatalogError(f"{where}: headers: {name!r} is not a header name")
        headers.append((name, template(value, f"{where}: headers.{name}")))
    body = template(spec.body, f"{where}: body") if spec.body is not None else None
    basic = None
    if spec.basic_auth is not None:
        basic = (template(spec.basic_auth.username, f"{where}: basicAuth.username"),
                 template(spec.basic_auth.password, f"{where}: basicAuth.password"))
    secrets = [item.key for item in fields if item.is_secret]
    blame = spec.blame_field if spec.blame_field is not None else (
        secrets[0] if secrets else None)
    if blame not in inputs:
        raise CatalogError(f"{where}: blameField: must name a field of this option")
    return Verification(
        method=spec.method, url=spec.url, headers=tuple(headers), body=body, basic_auth=basic,
        success_status=tuple(spec.success_status or (200,)),
        invalid_status=tuple(spec.invalid_status or (401, 403)),
        blame_field=blame,
    )


def _url_template(template: str, where: str, fields: tuple[Field, ...]) -> None:
    """Placeholders must be fields whose values are checked for the place they fill."""
    try:
        shape = ssrf.parse_template(template)
    except ValueError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    by_key = {item.key: item for item in fields if item.is_input}
    for key in shape.keys:
        if key not in by_key:
            raise CatalogError(f"{where}: {{{key}}} is not a field of this option")
        if by_key[key].is_secret:
            # URLs end up in logs and proxies; a secret goes in a header or the body.
            raise CatalogError(f"{where}: {{{key}}} is a secret and cannot be part of a URL")
    if shape.base is not None and by_key[shape.base].format is not FieldFormat.URL:
        raise CatalogError(f'{where}: {{{shape.base}}} starts the URL, so its field needs '
                           f'"format": "url"')
    for key in shape.host_keys:
        field = by_key[key]
        if field.type is not FieldType.STATIC_DROPDOWN and field.format not in {
            FieldFormat.SUBDOMAIN, FieldFormat.HOSTNAME
        }:
            raise CatalogError(f'{where}: {{{key}}} is in the host, so its field needs '
                               f'"format": "subdomain" or a STATIC_DROPDOWN')
    if shape.base is None and not shape.host_keys:
        try:
            ssrf.check_url(ssrf.PLACEHOLDER.sub("x", template), allow_http_loopback=True)
        except ssrf.UnsafeUrl as exc:
            raise CatalogError(f"{where}: not a safe https URL ({exc.reason})") from None


def _provider_host(template: str, where: str, fields: tuple[Field, ...]) -> None:
    """An OAuth URL of an option that may use the platform's app must name the provider.

    The platform's client id and secret go to the token URL, and the issuer decides which
    provider an answer is accepted from, so the end user may only choose leading labels
    in front of a fixed suffix of at least two labels (`{shop}.myshopify.com`), or a
    STATIC_DROPDOWN value the catalog fixes. A base-URL or whole-host placeholder, or
    one in the registrable part of the name, is for `customerAppOnly` options only.
    """
    shape = ssrf.parse_template(template)
    chosen = shape.base
    if chosen is None and shape.host_keys:
        authority = re.split(r"[/?#]", template.split("://", 1)[1], maxsplit=1)[0]
        host = re.sub(r":(\d+|\{[A-Za-z_][A-Za-z0-9_]*\})$", "", authority)
        by_key = {item.key: item for item in fields}

        def operator_value(match: re.Match[str]) -> str:
            field = by_key[match.group(1)]
            if field.type is not FieldType.STATIC_DROPDOWN:
                return match.group(0)
            # The dropdown value with the fewest labels: the case that leaves the least.
            return min((choice.value for choice in field.options), key=lambda v: v.count("."))

        labels = ssrf.PLACEHOLDER.sub(operator_value, host).split(".")
        fixed = 0
        while fixed < len(labels) and "{" not in labels[-1 - fixed]:
            fixed += 1
        user_labels = [label for label in labels if "{" in label]
        if user_labels and fixed < 2:
            chosen = ssrf.PLACEHOLDER.findall(user_labels[-1])[-1]
    if chosen is not None:
        raise CatalogError(
            f"{where}: {{{chosen}}} lets the end user choose the host; with the platform's "
            "OAuth app this URL must name the provider (placeholders only in labels before "
            "at least two fixed ones, like https://{shop}.myshopify.com), or mark the option "
            '"customerAppOnly": true to sign in with the customer\'s own app only'
        )
