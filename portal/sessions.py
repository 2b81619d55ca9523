"""The connect session record and the transitions it may make.

    PENDING ──▶ CONNECTING ──▶ COMPLETED
     │  ▲          │  └────▶ FAILED
     │  └──────────┘
     └────────────────────▶ FAILED

CONNECTING means the connection is on its way to the core API through the outbox
(portal/delivery.py): only the delivery ends it.

A failed *attempt* is not a failed session. While the link is valid, a failure before any
connection exists (the provider said no, the code exchange failed, the core API refused
the connection, no OAuth app after all) leaves the session PENDING with `error` and
`error_code` saying what went wrong, and the user may try again, choose another way or
another app (CONNECTING → PENDING is that step back). The session becomes FAILED — final,
never undone — when the user gives up, when the failure cannot be retried
(`SessionFailure.retryable`), or when the link expires (a lookup reads a PENDING session
whose token expired as FAILED, with the last attempt's reason).

COMPLETED and FAILED are final. A store applies a transition atomically: it checks
the current status and writes the new fields in one step, so two browsers (or two
portal processes) racing on the same session cannot both win. A change written as ""
removes the field.

The record holds no secret: credentials travel to the core API sealed in an outbox job.

Beside these fields a stored record may carry `claimed_by`: a hash of the id of the
browser that first opened the session's link (see `SessionStore.claim`). It is not
part of `ConnectSession`, so nothing but the claim can read or change it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

import pydantic
from typing_extensions import TypedDict  # pydantic reads only this one on Python 3.11

from portal.errors import SessionFailure
from portal.jsonschema import enum_of, string_format

OAuthAppMode = Literal["weavz_managed", "custom"]
OAUTH_APP_MODES: tuple[str, ...] = get_args(OAuthAppMode)


class SessionStatus(StrEnum):
    PENDING = "PENDING"
    CONNECTING = "CONNECTING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in {SessionStatus.COMPLETED, SessionStatus.FAILED}


# Which statuses each target may be reached from.
TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    # PENDING → PENDING records choices made before connecting (the picker's integration,
    # the auth method), their undoing, and a failed attempt; CONNECTING → PENDING is an
    # attempt that failed before any connection existed (see above).
    SessionStatus.PENDING: frozenset({SessionStatus.PENDING, SessionStatus.CONNECTING}),
    # CONNECTING → CONNECTING attaches the delivery job to a session that had to become
    # CONNECTING before its connection was known (an OAuth code is redeemed once).
    SessionStatus.CONNECTING: frozenset({SessionStatus.PENDING, SessionStatus.CONNECTING}),
    SessionStatus.COMPLETED: frozenset({SessionStatus.CONNECTING}),
    SessionStatus.FAILED: frozenset({SessionStatus.PENDING, SessionStatus.CONNECTING}),
}


# Fields stored as JSON lists.
_LIST_FIELDS = frozenset({"allowed_origins", "preferred_integrations", "allowed_integrations"})

# The stored record's field holding the claim; written only by `SessionStore.claim`.
CLAIM_FIELD = "claimed_by"


@dataclass(kw_only=True)
class ConnectSession:
    id: str
    workspace_id: str
    connection_name: str
    external_id: str
    expires_at: int
    created_at: int
    integration_name: str | None = None
    workspace_integration_id: str | None = None
    auth_method_key: str | None = None
    end_user_id: str | None = None
    scope: str | None = None
    oauth_app_mode: str | None = None
    oauth_app_id: str | None = None
    success_redirect_uri: str | None = None
    error_redirect_uri: str | None = None
    allowed_origins: list[str] = field(default_factory=list)
    # Where this session's final event is also sent (per token); never shown by `public()`.
    webhook_url: str | None = None
    status: SessionStatus = SessionStatus.PENDING
    connection_id: str | None = None
    error: str | None = None
    error_code: str | None = None
    # A reconnect from the end-user portal: the connection the delivery updates (PATCH)
    # instead of creating one; and the portal's own path to offer after the result.
    reconnect_connection_id: str | None = None
    return_to: str | None = None
    # A reconnect: the provider account the connection was made with, when the core API
    # knows it; "1" in `account_changed` when the sign-in named another one (the result
    # page warns). Neither is shown by `public()`.
    previous_account_id: str | None = None
    account_changed: str | None = None
    # "1" when the user chose the integration (picker) or the auth method (chooser) on the
    # pages, rather than the token fixing it: only such a choice can be undone ("Back").
    chose_integration: str | None = None
    chose_auth_method: str | None = None
    # When the session became final (seconds since the epoch): its webhook event's time.
    finished_at: int | None = None
    # The outbox job carrying its connection (portal/delivery.py); never shown by `public()`.
    outbox_job: str | None = None
    # How the pages look and speak (token fields; portal/brand.py). `theme` is
    # light|dark|auto; `locale` a base language (en, de, …). The picker shows
    # `preferred_integrations` first and, when `allowed_integrations` is not empty, only those.
    partner_name: str | None = None
    partner_logo_url: str | None = None
    accent_color: str | None = None
    theme: str | None = None
    locale: str | None = None
    preferred_integrations: list[str] = field(default_factory=list)
    allowed_integrations: list[str] = field(default_factory=list)

    # -- storage ------------------------------------------------------------------
    def to_record(self) -> dict[str, str]:
        """Flat string fields, as the stores keep them; empty values are left out."""
        record: dict[str, str] = {}
        for name, value in asdict(self).items():
            if value is None or value == []:
                continue
            if isinstance(value, list):
                record[name] = json.dumps(value, separators=(",", ":"))
            else:
                record[name] = str(value)
        return record

    @classmethod
    def from_record(cls, record: dict[str, str]) -> ConnectSession:
        """The session a stored record holds (names the session no longer has are left
        out: a record written by a newer portal still reads). Every lookup and poll
        decodes one, so each field's conversion is looked up, not worked out."""
        return cls(**{name: convert(raw) for name, raw in record.items()
                      if (convert := _FROM_RECORD.get(name)) is not None})

    # -- the external contract ------------------------------------------------------
    def public(self) -> SessionAnswer:
        """The session as `GET /api/v1/connect/session/{id}` and `poll` describe it.

        A dict literal typed by `SessionAnswer`, not a model: lookup and poll are the hot
        paths, and mypy checks the keys and types at no cost per request."""
        return {
            "id": self.id,
            "integrationName": self.integration_name,
            "workspaceIntegrationId": self.workspace_integration_id,
            "authMethodKey": self.auth_method_key,
            "oauthAppMode": self.oauth_app_mode,
            "oauthAppId": self.oauth_app_id,
            "connectionName": self.connection_name,
            "externalId": self.external_id,
            "status": self.status.value,
            "connectionId": self.connection_id,
            "error": self.error,
            "errorCode": self.error_code,
            "expiresAt": iso8601(self.expires_at),
            "createdAt": iso8601(self.created_at),
        }


def _keep(raw: str) -> str:
    return raw


# How each stored field becomes the session's value (ConnectSession.from_record).
_FROM_RECORD: dict[str, Callable[[str], Any]] = {
    item.name: (json.loads if item.name in _LIST_FIELDS
                else int if item.name in {"expires_at", "created_at", "finished_at"}
                else SessionStatus if item.name == "status" else _keep)
    for item in fields(ConnectSession)
}


# The answer of lookup and poll (openapi.json's `Session`, generated from this).
class SessionAnswer(TypedDict):
    id: Annotated[str, string_format("uuid")]
    integrationName: str | None
    workspaceIntegrationId: str | None
    authMethodKey: str | None
    oauthAppMode: Annotated[str | None, enum_of(OAUTH_APP_MODES, nullable=True)]
    oauthAppId: str | None
    connectionName: str
    externalId: str
    status: Annotated[str, enum_of(SessionStatus)]
    connectionId: str | None
    error: Annotated[str | None, pydantic.Field(description=(
        "Human-readable reason when FAILED; on a PENDING session, why the user's last "
        "attempt failed (they may still try again)."))]
    errorCode: Annotated[str | None, enum_of(SessionFailure, nullable=True), pydantic.Field(
        description=("Machine-readable reason when FAILED, or of the last failed attempt of "
                     "a PENDING session (portal extension)."))]
    expiresAt: Annotated[str, string_format("date-time")]
    createdAt: Annotated[str, string_format("date-time")]


# What `GET /api/v1/connect/session/{id}` answers; poll answers the session flat.
class SessionLookup(TypedDict):
    session: SessionAnswer


def iso8601(timestamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
