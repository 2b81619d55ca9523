"""Load and validate catalog files; a bad entry stops start-up with its place named.

Every message reads `<file>: integration '<name>': authOptions[<i>]: <field>: <what is
wrong>`, so an operator can fix a file from the message alone. docs/catalog.md
describes the format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from portal import ssrf
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

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_METHODS = {"GET", "POST", "HEAD"}
# Names the connect form itself uses; a field may not take them.
_RESERVED_KEYS = {"csrf_token", "action", "opener", "integration", "auth_method", "q"}

_INTEGRATION_KEYS = {"name", "displayName", "category", "description", "website", "logo",
                     "authOptions"}
_OPTION_KEYS = {"key", "type", "displayName", "description", "helpUrl"}
_SECRET_TEXT_KEYS = {"placeholder", "pattern", "verification"}
_BASIC_KEYS = {"username", "password", "verification"}
_CUSTOM_KEYS = {"props", "verification"}
_OAUTH_KEYS = {"authUrl", "tokenUrl", "scope", "pkce", "authorizationMethod", "extraParams",
               "props", "issuer", "issParameterSupported", "tokenRequestFormat",
               "customerAppOnly"}
_FIELD_KEYS = {"type", "displayName", "description", "required", "defaultValue",
               "placeholder", "pattern", "min", "max", "format", "options", "markdown"}
_BASIC_FIELD_KEYS = {"displayName", "description", "placeholder", "pattern"}
_VERIFICATION_KEYS = {"method", "url", "headers", "body", "basicAuth", "successStatus",
                      "invalidStatus", "blameField"}


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

    @property
    def categories(self) -> list[str]:
        return sorted({item.category for item in self._by_name.values()})


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
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [f"{source}: not valid JSON ({exc})"]
    if not isinstance(document, dict) or not isinstance(document.get("integrations"), list):
        return [], [f'{source}: expected an object with an "integrations" list']
    unknown = sorted(set(document) - {"integrations", "$schema"})
    problems = [f"{source}: {key}: unknown top-level field" for key in unknown]
    seen: set[str] = set()
    result = []
    for index, raw in enumerate(document["integrations"]):
        where = f"{source}: integrations[{index}]"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            where = f"{source}: integration {raw['name']!r}"
        try:
            integration = _integration(raw, where)
        except CatalogError as exc:
            problems.append(str(exc))
            continue
        if integration.name in seen:
            problems.append(f"{where}: name: is used twice in this file")
            continue
        seen.add(integration.name)
        result.append(integration)
    return result, problems


def _integration(raw: Any, where: str) -> Integration:
    _object(raw, where, _INTEGRATION_KEYS)
    name = _string(raw, "name", where)
    if not _NAME.match(name):
        raise CatalogError(f"{where}: name: must be lower-case letters, digits and '-'")
    options_raw = raw.get("authOptions")
    if not isinstance(options_raw, list) or not options_raw:
        raise CatalogError(f"{where}: authOptions: must be a non-empty list")
    options = tuple(
        _auth_option(option, f"{where}: authOptions[{index}]")
        for index, option in enumerate(options_raw)
    )
    keys = [option.key for option in options]
    if len(set(keys)) != len(keys):
        raise CatalogError(f"{where}: authOptions: two options have the same key")
    logo = _optional_string(raw, "logo", where)
    if logo is not None and not re.fullmatch(r"logos/[a-z0-9-]+\.svg", logo):
        raise CatalogError(
            f"{where}: logo: must name a file shipped in static/, like logos/{name}.svg"
        )
    return Integration(
        name=name,
        display_name=_string(raw, "displayName", where),
        category=_string(raw, "category", where),
        description=_string(raw, "description", where),
        website=_https_url(raw, "website", where),
        auth_options=options,
        logo=logo,
    )


def _auth_option(raw: Any, where: str) -> AuthOption:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: must be an object")
    type_name = _string(raw, "type", where)
    try:
        auth_type = AuthType(type_name)
    except ValueError:
        known = ", ".join(item.value for item in AuthType)
        raise CatalogError(f"{where}: type: is {type_name!r}; expected one of {known}") from None
    where = f"{where} ({raw['key']!r})" if isinstance(raw.get("key"), str) else where
    extra = {
        AuthType.SECRET_TEXT: _SECRET_TEXT_KEYS,
        AuthType.BASIC_AUTH: _BASIC_KEYS,
        AuthType.CUSTOM_AUTH: _CUSTOM_KEYS,
        AuthType.OAUTH2: _OAUTH_KEYS,
        AuthType.PLATFORM_OAUTH2: _OAUTH_KEYS,
    }[auth_type]
    _object(raw, where, _OPTION_KEYS | extra)
    key = _string(raw, "key", where)
    if not _KEY.match(key):
        raise CatalogError(f"{where}: key: must be letters, digits and '_'")
    display_name = _string(raw, "displayName", where)
    description = _optional_string(raw, "description", where) or ""

    fields: tuple[Field, ...]
    oauth = None
    if auth_type is AuthType.SECRET_TEXT:
        pattern = _pattern(raw, where)
        fields = (Field(
            key="secret_text", type=FieldType.SECRET_TEXT, display_name=display_name,
            description=description, required=True, pattern=pattern,
            placeholder=_optional_string(raw, "placeholder", where),
        ),)
    elif auth_type is AuthType.BASIC_AUTH:
        fields = (
            _basic_field(raw, "username", "Username", FieldType.SHORT_TEXT, where),
            _basic_field(raw, "password", "Password", FieldType.SECRET_TEXT, where),
        )
    elif auth_type is AuthType.CUSTOM_AUTH:
        fields = _props(raw, where, required=True)
    else:
        fields = _props(raw, where, required=False)
        oauth = _oauth(raw, where, fields, auth_type)

    verification = None
    if "verification" in raw:
        verification = _verification(raw["verification"], f"{where}: verification", fields)
    return AuthOption(
        key=key,
        type=auth_type,
        display_name=display_name,
        description=description,
        help_url=_https_url(raw, "helpUrl", where) if "helpUrl" in raw else None,
        fields=fields,
        verification=verification,
        oauth=oauth,
    )


def _basic_field(
    raw: dict[str, Any], key: str, label: str, field_type: FieldType, where: str
) -> Field:
    spec = raw.get(key, {})
    where = f"{where}: {key}"
    _object(spec, where, _BASIC_FIELD_KEYS)
    return Field(
        key=key, type=field_type, required=True,
        display_name=_optional_string(spec, "displayName", where) or label,
        description=_optional_string(spec, "description", where) or "",
        placeholder=_optional_string(spec, "placeholder", where),
        pattern=_pattern(spec, where),
    )


def _props(raw: dict[str, Any], where: str, *, required: bool) -> tuple[Field, ...]:
    props = raw.get("props")
    if props is None and not required:
        return ()
    if not isinstance(props, dict) or not props:
        raise CatalogError(f"{where}: props: must be an object of fields, by key")
    fields = tuple(_field(key, spec, f"{where}: props.{key}") for key, spec in props.items())
    if not any(item.is_input for item in fields):
        raise CatalogError(f"{where}: props: needs at least one field that is not MARKDOWN")
    return fields


def _field(key: str, raw: Any, where: str) -> Field:
    if not _KEY.match(key):
        raise CatalogError(f"{where}: the key must be letters, digits and '_'")
    if key in _RESERVED_KEYS:
        raise CatalogError(f"{where}: the key {key!r} is reserved by the connect form")
    _object(raw, where, _FIELD_KEYS)
    type_name = _string(raw, "type", where)
    try:
        field_type = FieldType(type_name)
    except ValueError:
        known = ", ".join(item.value for item in FieldType)
        raise CatalogError(f"{where}: type: is {type_name!r}; expected one of {known}") from None
    if field_type is FieldType.MARKDOWN:
        _object(raw, where, {"type", "markdown"})
        return Field(key=key, type=field_type, markdown=_string(raw, "markdown", where))
    if "markdown" in raw:
        raise CatalogError(f"{where}: markdown: only MARKDOWN fields have it")

    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise CatalogError(f"{where}: required: must be true or false")
    low, high = _number(raw, "min", where), _number(raw, "max", where)
    if low is not None and high is not None and low > high:
        raise CatalogError(f"{where}: min: is larger than max")
    if field_type in {FieldType.CHECKBOX, FieldType.STATIC_DROPDOWN} and (
        low is not None or high is not None or "pattern" in raw
    ):
        raise CatalogError(f"{where}: {type_name} fields take no pattern, min or max")
    field_format = None
    if "format" in raw:
        name = _string(raw, "format", where)
        try:
            field_format = FieldFormat(name)
        except ValueError:
            known = ", ".join(item.value for item in FieldFormat)
            raise CatalogError(f"{where}: format: is {name!r}; expected one of {known}") from None
        if field_type is not FieldType.SHORT_TEXT:
            raise CatalogError(f"{where}: format: only SHORT_TEXT fields take a format")

    options: tuple[Choice, ...] = ()
    if field_type is FieldType.STATIC_DROPDOWN:
        options = _choices(raw.get("options"), f"{where}: options")
    elif "options" in raw:
        raise CatalogError(f"{where}: options: only STATIC_DROPDOWN fields have options")

    default = raw.get("defaultValue")
    if default is not None:
        _check_default(default, field_type, options, low, high, where)
    field = Field(
        key=key,
        type=field_type,
        display_name=_string(raw, "displayName", where),
        description=_optional_string(raw, "description", where) or "",
        required=required,
        default_value=default,
        placeholder=_optional_string(raw, "placeholder", where),
        pattern=_pattern(raw, where),
        min=low,
        max=high,
        format=field_format,
        options=options,
    )
    return field


def _check_default(
    default: Any, field_type: FieldType, options: tuple[Choice, ...],
    low: float | None, high: float | None, where: str,
) -> None:
    where = f"{where}: defaultValue"
    if field_type is FieldType.SECRET_TEXT:
        raise CatalogError(f"{where}: a secret field cannot have a default")
    if field_type is FieldType.CHECKBOX and not isinstance(default, bool):
        raise CatalogError(f"{where}: must be true or false")
    if field_type is FieldType.NUMBER:
        if isinstance(default, bool) or not isinstance(default, int | float):
            raise CatalogError(f"{where}: must be a number")
        if (low is not None and default < low) or (high is not None and default > high):
            raise CatalogError(f"{where}: is outside min and max")
    if field_type is FieldType.STATIC_DROPDOWN and default not in {o.value for o in options}:
        raise CatalogError(f"{where}: must be the value of one of the options")
    if field_type in {FieldType.SHORT_TEXT, FieldType.LONG_TEXT} and not isinstance(default, str):
        raise CatalogError(f"{where}: must be a string")


def _choices(raw: Any, where: str) -> tuple[Choice, ...]:
    if not isinstance(raw, list) or not raw:
        raise CatalogError(f"{where}: must be a non-empty list of {{label, value}}")
    choices = []
    for index, item in enumerate(raw):
        place = f"{where}[{index}]"
        _object(item, place, {"label", "value"})
        choices.append(Choice(label=_string(item, "label", place),
                              value=_string(item, "value", place)))
    values = [choice.value for choice in choices]
    if len(set(values)) != len(values):
        raise CatalogError(f"{where}: two options have the same value")
    return tuple(choices)


def _oauth(raw: dict[str, Any], where: str, props: tuple[Field, ...], auth_type: AuthType
           ) -> OAuthSettings:
    customer_app_only = raw.get("customerAppOnly", False)
    if not isinstance(customer_app_only, bool):
        raise CatalogError(f"{where}: customerAppOnly: must be true or false")
    if customer_app_only and auth_type is not AuthType.OAUTH2:
        raise CatalogError(f"{where}: customerAppOnly: only OAUTH2 options can be limited to "
                           "the customer's own app; PLATFORM_OAUTH2 always uses the platform's")
    urls = {}
    for key in ("authUrl", "tokenUrl"):
        urls[key] = _string(raw, key, where)
        _url_template(urls[key], f"{where}: {key}", props)
        if not customer_app_only:
            _provider_host(urls[key], f"{where}: {key}", props)
    method = raw.get("authorizationMethod", "BODY")
    if method not in {"HEADER", "BODY"}:
        raise CatalogError(f"{where}: authorizationMethod: must be HEADER or BODY")
    pkce = raw.get("pkce", True)  # PKCE unless the entry says the provider refuses it
    if not isinstance(pkce, bool):
        raise CatalogError(f"{where}: pkce: must be true or false")
    scope = raw.get("scope", "")
    if not isinstance(scope, str):
        raise CatalogError(f"{where}: scope: must be a string, as the provider expects it")
    extra = raw.get("extraParams", {})
    if not isinstance(extra, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in extra.items()
    ):
        raise CatalogError(f"{where}: extraParams: must be an object of strings")
    reserved = {"client_id", "client_secret", "redirect_uri", "state", "code_challenge",
                "code_challenge_method", "response_type"} & set(extra)
    if reserved:
        raise CatalogError(f"{where}: extraParams: {sorted(reserved)[0]} is set by the portal")
    issuer = _optional_string(raw, "issuer", where)
    if issuer is not None:
        _url_template(issuer, f"{where}: issuer", props)
        if not customer_app_only:
            _provider_host(issuer, f"{where}: issuer", props)
    iss_supported = raw.get("issParameterSupported", False)
    if not isinstance(iss_supported, bool):
        raise CatalogError(f"{where}: issParameterSupported: must be true or false")
    token_format = raw.get("tokenRequestFormat", "FORM")
    if token_format not in {"FORM", "JSON"}:
        raise CatalogError(f"{where}: tokenRequestFormat: must be FORM or JSON")
    return OAuthSettings(
        auth_url=urls["authUrl"], token_url=urls["tokenUrl"], scope=scope.strip(), pkce=pkce,
        authorization_method=method, extra_params=tuple(extra.items()),
        issuer=issuer, iss_parameter_supported=iss_supported, token_request_format=token_format,
        customer_app_only=customer_app_only,
    )


def _verification(raw: Any, where: str, fields: tuple[Field, ...]) -> Verification:
    _object(raw, where, _VERIFICATION_KEYS)
    method = raw.get("method", "GET")
    if method not in _METHODS:
        raise CatalogError(f"{where}: method: must be one of {', '.join(sorted(_METHODS))}")
    url = _string(raw, "url", where)
    _url_template(url, f"{where}: url", fields)
    inputs = {item.key for item in fields if item.is_input}

    def template(value: Any, place: str) -> str:
        if not isinstance(value, str):
            raise CatalogError(f"{place}: must be a string")
        unknown = set(ssrf.PLACEHOLDER.findall(value)) - inputs
        if unknown:
            raise CatalogError(f"{place}: {{{sorted(unknown)[0]}}} is not a field of this option")
        return value

    headers_raw = raw.get("headers", {})
    if not isinstance(headers_raw, dict):
        raise CatalogError(f"{where}: headers: must be an object of strings")
    headers = []
    for name, value in headers_raw.items():
        if not _HEADER_NAME.match(name):
            raise CatalogError(f"{where}: headers: {name!r} is not a header name")
        headers.append((name, template(value, f"{where}: headers.{name}")))
    body = template(raw["body"], f"{where}: body") if raw.get("body") is not None else None
    basic = None
    if "basicAuth" in raw:
        spec = raw["basicAuth"]
        _object(spec, f"{where}: basicAuth", {"username", "password"})
        basic = (template(spec.get("username"), f"{where}: basicAuth.username"),
                 template(spec.get("password", ""), f"{where}: basicAuth.password"))
    secrets = [item.key for item in fields if item.is_secret]
    blame = raw.get("blameField", secrets[0] if secrets else None)
    if blame not in inputs:
        raise CatalogError(f"{where}: blameField: must name a field of this option")
    return Verification(
        method=method, url=url, headers=tuple(headers), body=body, basic_auth=basic,
        success_status=_statuses(raw, "successStatus", (200,), where),
        invalid_status=_statuses(raw, "invalidStatus", (401, 403), where),
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


def _statuses(raw: dict[str, Any], key: str, default: tuple[int, ...], where: str
              ) -> tuple[int, ...]:
    value = raw.get(key)
    if value is None:
        return default
    if (not isinstance(value, list) or not value
            or not all(isinstance(item, int) and 100 <= item <= 599 for item in value)):
        raise CatalogError(f"{where}: {key}: must be a non-empty list of HTTP status codes")
    return tuple(value)


def _object(raw: Any, where: str, allowed: set[str]) -> None:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: must be an object")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise CatalogError(
            f"{where}: {unknown[0]}: unknown field; expected some of {', '.join(sorted(allowed))}"
        )


def _pattern(raw: dict[str, Any], where: str) -> str | None:
    pattern = _optional_string(raw, "pattern", where)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise CatalogError(f"{where}: pattern: not a valid regular expression ({exc})"
                               ) from None
    return pattern


def _number(raw: dict[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CatalogError(f"{where}: {key}: must be a number")
    return value


def _string(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where}: {key}: is required and must be a non-empty string")
    return value.strip()


def _optional_string(raw: dict[str, Any], key: str, where: str) -> str | None:
    if raw.get(key) is None:
        return None
    return _string(raw, key, where)


def _https_url(raw: dict[str, Any], key: str, where: str) -> str:
    value = _string(raw, key, where)
    if not value.startswith("https://"):
        raise CatalogError(f"{where}: {key}: must be an https:// URL")
    return value
