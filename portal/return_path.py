"""The return path: how the opener learns a session's outcome, and who may hear it.

A popup posts `{type: "weavz-connect-result", …}` to its opener, only to the session's
exact target origins (never "*"); a page without an opener sends the browser to the
session's success or error redirect URI with the outcome in the query. The poll endpoint
answers CORS for the partner origins allowed in settings, and a form whose answer may be
such a redirect must have that origin in CSP `form-action`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from portal.sessions import ConnectSession, SessionStatus
from portal.settings import origin_of

RESULT_MESSAGE_TYPE = "weavz-connect-result"


@dataclass(frozen=True)
class ConnectResult:
    """How the opener learns the outcome: a message to post, or a URL to send the user to."""

    session: ConnectSession
    message: dict[str, Any]
    target_origins: tuple[str, ...]
    redirect_url: str | None


class ReturnPath:
    def __init__(self, *, allowed_origins: Sequence[str]) -> None:
        """`allowed_origins`: PORTAL_ALLOWED_ORIGINS, the partner origins of every session
        that does not name its own."""
        self.allowed_origins = tuple(allowed_origins)

    def result(self, session: ConnectSession) -> ConnectResult:
        success = session.status is SessionStatus.COMPLETED
        message: dict[str, Any] = {
            "type": RESULT_MESSAGE_TYPE,
            "status": "success" if success else "error",
            "sessionId": session.id,
            "connectionId": session.connection_id,
            "integrationName": session.integration_name,
            "externalId": session.external_id,
        }
        if not success:
            message["error"] = session.error
            message["code"] = session.error_code
        redirect_url = None
        if not session.status.is_final:
            pass  # still CONNECTING: the session's page shows progress, then this result
        elif success and session.success_redirect_uri:
            redirect_url = _with_query(session.success_redirect_uri, {
                "sessionId": session.id,
                "connectionId": session.connection_id or "",
                "status": "success",
            })
        elif not success and session.error_redirect_uri:
            redirect_url = _with_query(session.error_redirect_uri, {
                "sessionId": session.id,
                "status": "error",
                "code": session.error_code or "FAILED",
            })
        return ConnectResult(
            session=session,
            message=message,
            target_origins=self.target_origins(session),
            redirect_url=redirect_url,
        )

    def target_origins(self, session: ConnectSession) -> tuple[str, ...]:
        """Exactly the origins that may receive this session's result, never "*"."""
        origins = list(session.allowed_origins or self.allowed_origins)
        for uri in (session.success_redirect_uri, session.error_redirect_uri):
            if uri:
                origins.append(origin_of(uri))
        return tuple(dict.fromkeys(origins))

    def may_call_poll(self, origin: str | None) -> bool:
        """Browsers on a partner origin may poll (and read errors); sessions stay per origin."""
        return origin is not None and origin in self.allowed_origins

    def may_read_poll(self, origin: str | None, session: ConnectSession) -> bool:
        """Only the session's own target origins can read the session a poll answers."""
        return origin is not None and origin in self.target_origins(session)

    @staticmethod
    def redirect_origins(session: ConnectSession) -> tuple[str, ...]:
        """Where a no-opener form of this session may send the browser at its end."""
        uris = (session.success_redirect_uri, session.error_redirect_uri)
        return tuple(dict.fromkeys(origin_of(uri) for uri in uris if uri))


def _with_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
