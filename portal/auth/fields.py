"""Read what the user typed into an auth option's fields: a credential form's fields or
an OAuth option's props, by the same rules.

Knows nothing about HTTP handlers; the view hands it the submitted form fields. The
server is the authority: every field is checked here whatever the browser did, and an
error is a FieldProblem per field, which the template turns into words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from portal import ssrf
from portal.catalog import Field, FieldFormat, FieldType
from portal.field_problems import FieldProblem

MAX_SECRET_LENGTH = 8192
MAX_TEXT_LENGTH = 2048
MAX_LONG_TEXT_LENGTH = 32 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRUE = {"on", "true", "1", "yes"}


@dataclass
class FieldsRead:
    """`typed` values for delivery, or `errors` per field (never both).

    `values` holds what the user typed in non-secret fields, to fill the form again;
    `checked` holds every field's value as a string, for verification templates.
    """

    typed: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, FieldProblem] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    checked: dict[str, str] = field(default_factory=dict)


def read_fields(
    inputs: Sequence[Field], form: Mapping[str, str], *, allow_http_loopback: bool = False
) -> FieldsRead:
    """Every input field of an option, typed and checked; optional empty fields left out."""
    result = FieldsRead()
    for item in inputs:
        raw = form.get(item.key)
        if not item.is_secret and item.type is not FieldType.CHECKBOX and raw is not None:
            keep = MAX_LONG_TEXT_LENGTH if item.type is FieldType.LONG_TEXT else MAX_TEXT_LENGTH
            result.values[item.key] = raw[:keep]
        if item.type is FieldType.CHECKBOX:
            result.values[item.key] = "on" if (raw or "").lower() in _TRUE else ""
        try:
            value = _read_field(item, raw, allow_http_loopback=allow_http_loopback)
        except _Invalid as exc:
            result.errors[item.key] = exc.problem
            continue
        if value is None:
            continue
        result.typed[item.key] = value
        result.checked[item.key] = as_text(value)
    if result.errors:
        result.typed.clear()
    return result


class _Invalid(Exception):
    def __init__(self, problem: FieldProblem) -> None:
        super().__init__(problem)
        self.problem = problem


def _read_field(item: Field, raw: str | None, *, allow_http_loopback: bool) -> Any:
    """The typed value of one field, None when an optional field was left empty."""
    if item.type is FieldType.CHECKBOX:
        return (raw or "").strip().lower() in _TRUE
    text = (raw or "").strip() if item.type is not FieldType.LONG_TEXT else (raw or "")
    if item.type is FieldType.LONG_TEXT and not text.strip():
        text = ""
    if not text:
        if item.required:
            raise _Invalid(FieldProblem.REQUIRED)
        return item.default_value
    if item.type is FieldType.NUMBER:
        return _number(item, text)
    if item.type is FieldType.STATIC_DROPDOWN:
        if text not in {choice.value for choice in item.options}:
            raise _Invalid(FieldProblem.CHOICE)
        return text
    limit = {FieldType.SECRET_TEXT: MAX_SECRET_LENGTH,
             FieldType.LONG_TEXT: MAX_LONG_TEXT_LENGTH}.get(item.type, MAX_TEXT_LENGTH)
    if len(text) > limit:
        raise _Invalid(FieldProblem.TOO_LONG)
    control = _CONTROL_MULTILINE if item.type is FieldType.LONG_TEXT else _CONTROL
    if control.search(text):
        raise _Invalid(FieldProblem.CONTROL_CHARACTERS)
    if item.min is not None and len(text) < item.min:
        raise _Invalid(FieldProblem.TOO_SHORT)
    if item.max is not None and len(text) > item.max:
        raise _Invalid(FieldProblem.TOO_LONG)
    if item.format is not None:
        text = _format(item.format, text, allow_http_loopback=allow_http_loopback)
    if item.pattern and not re.fullmatch(item.pattern, text):
        raise _Invalid(FieldProblem.PATTERN)
    return text


def _number(item: Field, text: str) -> int | float:
    try:
        number = float(text)
    except ValueError:
        raise _Invalid(FieldProblem.NOT_A_NUMBER) from None
    if not math.isfinite(number):
        raise _Invalid(FieldProblem.NOT_A_NUMBER)
    if item.min is not None and number < item.min:
        raise _Invalid(FieldProblem.TOO_SMALL)
    if item.max is not None and number > item.max:
        raise _Invalid(FieldProblem.TOO_LARGE)
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
        raise _Invalid(FieldProblem.refused(kind, exc.reason)) from None


def as_text(value: Any) -> str:
    """A typed value as the text a URL or check template takes (JSON-ish for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
