"""Credential auth family: read what the user typed and shape the core API body.

Knows nothing about HTTP handlers; the view hands it the submitted form fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from portal.catalog import AuthOption, AuthType
from portal.sessions import ConnectSession

MAX_SECRET_LENGTH = 8192
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass
class FormResult:
    """Either `credentials` for delivery, or `errors` per field (never both)."""

    credentials: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def read_form(option: AuthOption, form: Mapping[str, str]) -> FormResult:
    if option.type is AuthType.SECRET_TEXT:
        return _secret_text(option, form)
    raise ValueError(f"{option.type.value} is not a credential auth type")


def _secret_text(option: AuthOption, form: Mapping[str, str]) -> FormResult:
    value = form.get("secret_text", "").strip()
    if not value:
        return FormResult(errors={"secret_text": "required"})
    if len(value) > MAX_SECRET_LENGTH:
        return FormResult(errors={"secret_text": "too_long"})
    if _CONTROL.search(value):
        return FormResult(errors={"secret_text": "control_characters"})
    if option.pattern and not re.fullmatch(option.pattern, value):
        return FormResult(errors={"secret_text": "pattern"})
    return FormResult(credentials={"secretText": value})


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
