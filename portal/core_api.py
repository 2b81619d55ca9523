"""The core API client: the only module that sends connections to the platform.

Every create carries `Idempotency-Key: <sessionId>`, so a retry after a timeout or a
5xx can never create a second connection. A definite answer (2xx with an id, or a 4xx)
is final; transport errors, 429 and 5xx are retried a bounded number of times.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from portal import ssrf
from portal.errors import SessionFailure
from portal.outbound import OutboundPolicy, guarded_client

logger = logging.getLogger("portal.core_api")

RETRY_DELAYS = (0.25, 1.0)


@dataclass(frozen=True)
class Delivered:
    connection_id: str


class DeliveryFailed(Exception):
    """The core API did not accept the connection; `message` is safe to show a user."""

    def __init__(self, code: SessionFailure, message: str) -> None:
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
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
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
        self._retry_delays = retry_delays

    async def create_connection(self, body: dict[str, Any], *, session_id: str) -> Delivered:
        """POST /api/v1/connections; returns the new connection id or raises DeliveryFailed."""
        attempts = len(self._retry_delays) + 1
        for attempt in range(attempts):
            try:
                response = await self._http.post(
                    "/api/v1/connections", json=body, headers={"Idempotency-Key": session_id}
                )
            except httpx.TransportError as exc:
                logger.warning(
                    "core API unreachable (session %s, attempt %d/%d): %s",
                    session_id, attempt + 1, attempts, type(exc).__name__,
                )
                if attempt + 1 < attempts:
                    await asyncio.sleep(self._retry_delays[attempt])
                    continue
                raise DeliveryFailed(
                    SessionFailure.CORE_API_UNAVAILABLE, "The platform could not be reached."
                ) from None
            if response.status_code in {429} or response.status_code >= 500:
                logger.warning(
                    "core API answered %d (session %s, attempt %d/%d)",
                    response.status_code, session_id, attempt + 1, attempts,
                )
                if attempt + 1 < attempts:
                    await asyncio.sleep(self._retry_delays[attempt])
                    continue
                raise DeliveryFailed(SessionFailure.CORE_API_UNAVAILABLE,
                                     "The platform is not accepting connections right now.")
            return self._read_created(response, session_id)
        raise AssertionError("unreachable")

    @staticmethod
    def _read_created(response: httpx.Response, session_id: str) -> Delivered:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.is_success:
            connection = payload.get("connection") if isinstance(payload, dict) else None
            connection_id = connection.get("id") if isinstance(connection, dict) else None
            if isinstance(connection_id, str) and connection_id:
                return Delivered(connection_id=connection_id)
            logger.error("core API answered %d without a connection id (session %s)",
                         response.status_code, session_id)
            raise DeliveryFailed(SessionFailure.CORE_API_ERROR,
                                 "The platform gave an unexpected answer.")
        message = payload.get("error") if isinstance(payload, dict) else None
        logger.warning("core API refused the connection: %d (session %s)",
                       response.status_code, session_id)
        text = message if isinstance(message, str) and message else "The platform refused it."
        raise DeliveryFailed(SessionFailure.CORE_API_REJECTED, text[:300])

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
            raise DeliveryFailed(SessionFailure.CORE_API_UNAVAILABLE,
                                 "The platform could not be reached.") from None
        if response.status_code == 404:
            return None
        if not response.is_success:
            logger.warning("core API answered %d for OAuth app %s", response.status_code, app_id)
            raise DeliveryFailed(SessionFailure.CORE_API_UNAVAILABLE,
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
            raise DeliveryFailed(SessionFailure.CORE_API_ERROR,
                                 "The platform gave an unexpected answer.")
        if owner is not None and owner != integration_name:
            logger.warning("OAuth app %s belongs to another integration", app_id)
            return None
        return client_id, secret

    async def aclose(self) -> None:
        await self._http.aclose()
