"""The core API client: the only module that talks to the platform's core API.

It makes one attempt per call and says what came of it; retrying is the outbox's job
(portal/delivery.py). A create is answered by one of three outcomes:

- `Created`: 2xx with a connection id. The core API stored it.
- `Rejected`: a definite 4xx (not 408, 409, 425 or 429). Nothing was stored; the reason is
  the core's own, safe to show the user.
- `Unknown`: no answer, a timeout, 408/409/425/429, 5xx, or a 2xx without a readable id.
  The request may or may not have been stored: the portal must never call this failed.
  It sends the same body again with the same `Idempotency-Key: <sessionId>`, and the core
  API answers with the connection it already holds.

What the portal expects of the core API (docs/delivery.md): the same Idempotency-Key
returns the same connection and never creates a second one, for at least
PORTAL_DELIVERY_DEADLINE; and, for the reconciler, `GET /api/v1/connections?
idempotencyKey=<sessionId>` lists the connection created with that key, if any.
"""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from portal import ssrf
from portal.errors import SessionFailure
from portal.outbound import OutboundPolicy, guarded_client

logger = logging.getLogger("portal.core_api")

# 4xx answers that say "not now" rather than "never": the request is sent again.
RETRYABLE_4XX = frozenset({408, 409, 425, 429})


@dataclass(frozen=True)
class Created:
    connection_id: str


@dataclass(frozen=True)
class Rejected:
    code: SessionFailure
    message: str  # safe to show the user


@dataclass(frozen=True)
class Unknown:
    reason: str  # for the log: an exception's class name or "HTTP 503"
    retry_after: float | None = None  # seconds, from the answer's Retry-After


Outcome = Created | Rejected | Unknown


class DeliveryFailed(Exception):
    """The core API could not answer a read (an OAuth app); `message` is safe to show,
    `code` (CORE_API_UNAVAILABLE or CORE_API_ERROR) says why, for the error's details."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CoreApiClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: OutboundPolicy | None = None,
        lookup: ssrf.Lookup = ssrf.system_lookup,
    ) -> None:
        # Through the guarded outbound path; CORE_API_URL's host is the operator's own,
        # trusted whatever it resolves to (often a private address).
        self._http = guarded_client(
            policy=(policy or OutboundPolicy()).trusting(httpx.URL(base_url).host),
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            user_agent="connect-portal",
            timeout=timeout,
            transport=transport,
            lookup=lookup,
        )

    async def create_connection(self, body: dict[str, Any], *, session_id: str) -> Outcome:
        """POST /api/v1/connections once, with `Idempotency-Key: <session_id>`."""
        try:
            response = await self._http.post(
                "/api/v1/connections", json=body, headers={"Idempotency-Key": session_id})
        except httpx.TransportError as exc:
            return Unknown(type(exc).__name__)
        status = response.status_code
        if status in RETRYABLE_4XX or status >= 500:
            return Unknown(f"HTTP {status}", retry_after(response))
        payload = _json(response)
        if response.is_success:
            connection = payload.get("connection") if isinstance(payload, dict) else None
            connection_id = connection.get("id") if isinstance(connection, dict) else None
            if isinstance(connection_id, str) and connection_id:
                return Created(connection_id)
            logger.error("core API answered %d without a connection id (session %s)",
                         status, session_id)
            return Unknown(f"HTTP {status} without a connection id")
        message = payload.get("error") if isinstance(payload, dict) else None
        logger.warning("core API refused the connection: %d (session %s)", status, session_id)
        text = message if isinstance(message, str) and message else "The platform refused it."
        return Rejected(SessionFailure.CORE_API_REJECTED, text[:300])

    async def find_connection(self, session_id: str) -> Created | Rejected | Unknown:
        """The connection created with `Idempotency-Key: <session_id>`, asked by the
        reconciler about a session whose job was lost: Created when the core API holds
        one, Rejected when it answers that it holds none (or cannot be asked: 404/405 on
        the listing itself), Unknown when it cannot answer now."""
        try:
            response = await self._http.get("/api/v1/connections",
                                             params={"idempotencyKey": session_id})
        except httpx.TransportError as exc:
            return Unknown(type(exc).__name__)
        if response.status_code in RETRYABLE_4XX or response.status_code >= 500:
            return Unknown(f"HTTP {response.status_code}", retry_after(response))
        payload = _json(response)
        listed = payload.get("connections") if isinstance(payload, dict) else None
        if response.is_success and isinstance(listed, list):
            for item in listed:
                connection_id = item.get("id") if isinstance(item, dict) else None
                if isinstance(connection_id, str) and connection_id:
                    return Created(connection_id)
        elif response.is_success:
            return Unknown(f"HTTP {response.status_code} without a connection list")
        return Rejected(SessionFailure.DELIVERY_FAILED,
                        "The connection could not be saved. Please connect again.")

    async def fetch_oauth_app(
        self, app_id: str, *, integration_name: str
    ) -> tuple[str, str] | None:
        """GET /api/v1/oauth-apps/{id}: a customer's client id and secret, None if unknown.

        Raises DeliveryFailed when the core API cannot answer. The secret is never logged.
        The id is one quoted path segment; an empty id or a dot segment, which the URL
        would resolve to another path of the core API, is an unknown app.
        """
        if app_id in {"", ".", ".."}:
            return None
        try:
            response = await self._http.get(
                f"/api/v1/oauth-apps/{quote(app_id, safe='')}"
            )
        except httpx.TransportError as exc:
            logger.warning("core API unreachable for OAuth app %s: %s", app_id,
                           type(exc).__name__)
            raise DeliveryFailed("CORE_API_UNAVAILABLE",
                                 "The platform could not be reached.") from None
        if response.status_code == 404:
            return None
        if not response.is_success:
            logger.warning("core API answered %d for OAuth app %s", response.status_code, app_id)
            raise DeliveryFailed("CORE_API_UNAVAILABLE",
                                 "The platform could not give its OAuth app.")
        try:
            payload = response.json()
        except ValueError:
            payload = None
        app = payload.get("oauthApp") if isinstance(payload, dict) else None
        client_id = app.get("clientId") if isinstance(app, dict) else None
        secret = app.get("clientSecret") if isinstance(app, dict) else None
        owner = app.get("integrationName") if isinstance(app, dict) else None
        if not (isinstance(client_id, str) and client_id and isinstance(secret, str) and secret):
            logger.error("core API gave OAuth app %s without client credentials", app_id)
            raise DeliveryFailed("CORE_API_ERROR",
                                 "The platform gave an unexpected answer.")
        if owner is not None and owner != integration_name:
            logger.warning("OAuth app %s belongs to another integration", app_id)
            return None
        return client_id, secret

    async def aclose(self) -> None:
        await self._http.aclose()


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the answer asks the client to wait (Retry-After: seconds or an HTTP date)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
