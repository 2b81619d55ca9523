"""Credential auth family: read what the user typed and shape the core API body.

Knows nothing about HTTP handlers; the view hands it the submitted form fields. The
server is the authority: every field is checked here whatever the browser did, and an
error is a short code per field that the template turns into words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portal import ssrf
from portal.catalog import AuthOption, AuthType, Field, FieldFormat, FieldType
from portal.sessions import ConnectSession

# The auth types this family runs; OAuth options belong to the OAuth family.
CREDENTIAL_TYPES = frozenset({AuthType.SECRET_TEXT, AuthType.BASIC_AUTH, AuthType.CUSTOM_AUTH})
MAX_SECRET_LENGTH = 8192
MAX_TEXT_LENGTH = 2048
MAX_LONG_TEXT_LENGTH = 32 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRUE = {"on", "true", "1", "yes"}


@dataclass
class FormResult:
    """`credentials` for delivery, or `errors` per field (never both).

    `values` holds what the user typed in non-secret fields, to fill the form again;
    `checked` holds every field's value as a string, for verification templates.
    """

    credentials: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    checked: dict[str, str] = field(default_factory=dict)


def read_form(
    option: AuthOption, form: Mapping[str, str], *, allow_http_loopback: bool = False
) -> FormResult:
    if option.type not in CREDENTIAL_TYPES:
        raise ValueError(f"{option.type.value} is not a credential auth type")
    result = FormResult()
    typed: dict[str, Any] = {}
    for item in option.inputs:
        raw = form.get(item.key)
        if not item.is_secret and item.type is not FieldType.CHECKBOX and raw is not None:
            keep = MAX_LONG_TEXT_LENGTH if item.type is FieldType.LONG_TEXT else MAX_TEXT_LENGTH
            result.values[item.key] = raw[:keep]
        if item.type is FieldType.CHECKBOX:
            result.values[item.key] = "on" if (raw or "").lower() in _TRUE else ""
        try:
            value = _read_field(item, raw, allow_http_loopback=allow_http_loopback)
        except _Invalid as exc:
            result.errors[item.key] = exc.code
            continue
        if value is None:
            continue
        typed[item.key] = value
        result.checked[item.key] = _as_text(value)
    if result.errors:
        return result
    if option.type is AuthType.SECRET_TEXT:
        result.credentials = {"secretText": typed["secret_text"]}
    elif option.type is AuthType.BASIC_AUTH:
        result.credentials = {"username": typed["username"], "password": typed["password"]}
    else:
        result.credentials = {"props": typed}
    return result


class _Invalid(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _read_field(item: Field, raw: str | None, *, allow_http_loopback: bool) -> Any:
    """The typed value of one field, None when an optional field was left empty."""
    if item.type is FieldType.CHECKBOX:
        return (raw or "").strip().lower() in _TRUE
    text = (raw or "").strip() if item.type is not FieldType.LONG_TEXT else (raw or "")
    if item.type is FieldType.LONG_TEXT and not text.strip():
        text = ""
    if not text:
        if item.required:
            raise _Invalid("required")
        return item.default_value
    if item.type is FieldType.NUMBER:
        return _number(item, text)
    if item.type is FieldType.STATIC_DROPDOWN:
        if text not in {choice.value for choice in item.options}:
            raise _Invalid("choice")
        return text
    limit = {FieldType.SECRET_TEXT: MAX_SECRET_LENGTH,
             FieldType.LONG_TEXT: MAX_LONG_TEXT_LENGTH}.get(item.type, MAX_TEXT_LENGTH)
    if len(text) > limit:
        raise _Invalid("too_long")
    control = _CONTROL_MULTILINE if item.type is FieldType.LONG_TEXT else _CONTROL
    if control.search(text):
        raise _Invalid("control_characters")
    if item.min is not None and len(text) < item.min:
        raise _Invalid("too_short")
    if item.max is not None and len(text) > item.max:
        raise _Invalid("too_long")
    if item.format is not None:
        text = _format(item.format, text, allow_http_loopback=allow_http_loopback)
    if item.pattern and not re.fullmatch(item.pattern, text):
        raise _Invalid("pattern")
    return text


def _number(item: Field, text: str) -> int | float:
    try:
        number = float(text)
    except ValueError:
        raise _Invalid("not_a_number") from None
    if not math.isfinite(number):
        raise _Invalid("not_a_number")
    if item.min is not None and number < item.min:
        raise _Invalid("too_small")
    if item.max is not None and number > item.max:
        raise _Invalid("too_large")
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _format(kind: FieldFormat, text: str, *, allow_http_loopback: bool) -> str:
    try:
        if kind is FieldFormat.SUBDOMAIN:
            return ssrf.check_subdomain(text.lower())
        if kind is FieldFormat.HOSTNAME:
            host = text.lower().rstrip(".")
            ssrf.check_host(host, allow_loopback=allow_http_loopback)
            return host
        return ssrf.check_base_url(text, allow_http_loopback=allow_http_loopback)
    except ssrf.UnsafeUrl as exc:
        raise _Invalid(f"{kind.value}_{exc.reason}") from None


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def connection_body(
    session: ConnectSession, option: AuthOption, credentials: Mapping[str, Any]
) -> dict[str, Any]:
    """The Weavz create-connection body for a finished credential form."""
    assert session.integration_name is not None
    body: dict[str, Any] = {
        "type": option.type.value,
        "integrationName": session.integration_name,
        "externalId": session.external_id,
        "displayName": session.connection_name,
        "workspaceId": session.workspace_id,
        "authMethodKey": option.key,
    }
    if session.end_user_id:
        body["endUserId"] = session.end_user_id
    if session.scope:
        body["scope"] = session.scope
    body.update(credentials)
    return body
