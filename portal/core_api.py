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

from portal import metrics, ssrf
from portal.errors import SessionFailure
from portal.logs import REQUEST_ID_HEADER, request_id_var
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


@dataclass(frozen=True)
class EndUser:
    """An end user as the core API keeps them (`GET /api/v1/end-users/{id}`)."""

    id: str
    workspace_id: str
    external_id: str
    display_name: str
    email: str | None = None


@dataclass(frozen=True)
class CoreConnection:
    """One connection as the core API lists it (`GET /api/v1/connections`)."""

    id: str
    integration_name: str
    external_id: str
    display_name: str
    status: str
    end_user_id: str | None
    workspace_id: str | None
    # The provider account it was made with (`accountId`, a portal extension), if known.
    account_id: str | None = None


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
        # Each call carries the id of the request it is made for (X-Request-ID), so the
        # core API's logs can be joined with the portal's; none outside a request.
        self._http.event_hooks = {"request": [_send_request_id]}

    @metrics.core_api_call("create")
    async def create_connection(
        self, body: dict[str, Any], *, session_id: str, replaces: str | None = None
    ) -> Outcome:
        """POST /api/v1/connections once, with `Idempotency-Key: <session_id>`; or, for a
        reconnect, PATCH /api/v1/connections/{replaces} with the same body and key."""
        headers = {"Idempotency-Key": session_id}
        try:
            if replaces is None:
                response = await self._http.post("/api/v1/connections", json=body,
                                                 headers=headers)
            else:
                response = await self._http.patch(
                    f"/api/v1/connections/{_segment(replaces)}", json=body, headers=headers)
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

    @metrics.core_api_call("find")
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

    async def get_end_user(self, end_user_id: str) -> EndUser | None:
        """GET /api/v1/end-users/{id}: the end user, None when the core API knows none.
        Raises DeliveryFailed when it cannot answer."""
        response = await self._read("end_user", f"/api/v1/end-users/{_segment(end_user_id)}")
        if response is None:
            return None
        payload = _json(response)
        item = payload.get("endUser") if isinstance(payload, dict) else None
        fields = _strings(item, "id", "workspaceId", "externalId")
        if fields is None or fields[0] != end_user_id:
            raise DeliveryFailed("CORE_API_ERROR", "The platform gave an unexpected answer.")
        assert isinstance(item, dict)
        display = item.get("displayName")
        email = item.get("email")
        return EndUser(id=fields[0], workspace_id=fields[1], external_id=fields[2],
                       display_name=display if isinstance(display, str) and display
                       else fields[2],
                       email=email if isinstance(email, str) and email else None)

    async def list_connections(self, workspace_id: str, end_user_id: str
                               ) -> list[CoreConnection]:
        """GET /api/v1/connections?workspaceId=…&endUserId=…: the end user's connections.

        Only items that name this workspace and end user are returned, whatever else the
        core API lists: the portal never shows or touches another's connection."""
        response = await self._read("list_connections", "/api/v1/connections", params={
            "workspaceId": workspace_id, "endUserId": end_user_id})
        payload = _json(response) if response is not None else None
        listed = payload.get("connections") if isinstance(payload, dict) else None
        if not isinstance(listed, list):
            raise DeliveryFailed("CORE_API_ERROR", "The platform gave an unexpected answer.")
        connections = []
        for item in listed:
            fields = _strings(item, "id", "integrationName")
            if fields is None or not isinstance(item, dict):
                continue
            connection = CoreConnection(
                id=fields[0], integration_name=fields[1],
                external_id=str(item.get("externalId") or ""),
                display_name=str(item.get("displayName") or fields[1]),
                status=str(item.get("status") or "ACTIVE"),
                end_user_id=item.get("endUserId") if isinstance(item.get("endUserId"), str)
                else None,
                workspace_id=item.get("workspaceId")
                if isinstance(item.get("workspaceId"), str) else None,
                account_id=item.get("accountId")
                if isinstance(item.get("accountId"), str) and item.get("accountId") else None)
            if connection.end_user_id == end_user_id and connection.workspace_id in {
                    workspace_id, None}:
                connections.append(connection)
        return connections

    async def delete_connection(self, connection_id: str) -> bool:
        """DELETE /api/v1/connections/{id}; False when the core API has no such connection.
        Raises DeliveryFailed when it cannot answer."""
        path = f"/api/v1/connections/{_segment(connection_id)}"
        return await self._send("delete_connection", "DELETE", path) is not None

    async def _read(self, operation: str, path: str, *, params: dict[str, str] | None = None
                    ) -> httpx.Response | None:
        """GET `path`: the answer, None on 404; DeliveryFailed when it cannot answer."""
        return await self._send(operation, "GET", path, params=params)

    async def _send(self, operation: str, method: str, path: str, *,
                    params: dict[str, str] | None = None) -> httpx.Response | None:
        """`method path`: the answer, None on 404; DeliveryFailed when it cannot answer.
        Timed and counted as `operation` (portal_core_api_requests_total)."""
        started = time.perf_counter()
        try:
            response = await self._http.request(method, path, params=params)
        except httpx.TransportError as exc:
            metrics.core_api_answer(operation, started, None)
            logger.warning("core API unreachable for %s: %s", operation, type(exc).__name__)
            raise DeliveryFailed("CORE_API_UNAVAILABLE",
                                 "The platform could not be reached.") from None
        metrics.core_api_answer(operation, started, response.status_code)
        if response.status_code == 404:
            return None
        if not response.is_success:
            logger.warning("core API answered %d for %s", response.status_code, operation)
            raise DeliveryFailed("CORE_API_UNAVAILABLE", "The platform could not answer.")
        return response

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
        response = await self._read("oauth_app", f"/api/v1/oauth-apps/{quote(app_id, safe='')}")
        if response is None:
            return None
        payload = _json(response)
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


async def _send_request_id(request: httpx.Request) -> None:
    request_id = request_id_var.get()
    if request_id is not None:
        request.headers[REQUEST_ID_HEADER] = request_id


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


def _segment(value: str) -> str:
    """`value` as one path segment: quoted, and never a dot segment the URL would resolve."""
    if value in {"", ".", ".."}:
        return quote(value or "-", safe="") + "_"
    return quote(value, safe="")


def _strings(item: Any, *names: str) -> tuple[str, ...] | None:
    """The values of `names` in `item` when every one is a non-empty string, else None."""
    if not isinstance(item, dict):
        return None
    values = tuple(item.get(name) for name in names)
    if not all(isinstance(value, str) and value for value in values):
        return None
    return tuple(str(value) for value in values)
