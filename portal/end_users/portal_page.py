"""The end-user portal page (`/connect/portal`): the logic, without a Request (like
portal/flow.py); portal/views/end_user_pages.py draws it.

An end user opens their link (`eut_…`, portal/end_users/links.py) once; the link's token
then lives in a signed, HttpOnly cookie of this browser (`open`), so it leaves the
address bar. Every later request reads that cookie's link again through `EndUserLinks`,
so a link that expired or was revoked stops working at once (`visit`).

What the page shows and touches is only ever what the link allows: the end user's own
connections in the link's workspace, for the integrations the link names (all runnable
catalog entries, or its one). The apps with connections come first, each with its
connections; the other allowed apps follow a page at a time, searched on the server like
the picker's (portal/picker.py), so the page weighs the same for any catalog. A
reconnect or a disconnect names a connection id; it is looked up among those connections
here, server-side, and anything else is a 404 with nothing changed (`owned_connection`).

Connecting is an ordinary connect session (`ConnectFlow.create_session`) made for the
end user, which the result page offers to leave back to this page (`return_to`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from itsdangerous import BadData

from portal.catalog import Integration
from portal.connect_request import MAX_ID_LENGTH, ConnectRequest
from portal.core_api import CoreApiClient, CoreConnection, DeliveryFailed, EndUser
from portal.csrf import check_form_post
from portal.end_users.links import EndUserLink, EndUserLinks, LinkRefused
from portal.errors import (
    EndUserNotFound,
    IntegrationNotFound,
    InvalidTokenError,
    MissingToken,
    NotFound,
    ServiceUnavailable,
)
from portal.flow import ConnectFlow, IssuedToken
from portal.picker import PickerPage, picker_page
from portal.tokens import BrowserBinding, serializer

T = TypeVar("T")

PORTAL_PATH = "/connect/portal"
# The cookie holding this browser's link: only sent to the portal's own pages.
PORTAL_COOKIE = "portal_end_user"
_COOKIE_SALT = "portal.end-user-portal-cookie.v1"
# What the CSRF binding's "session id" is made of: never a session's UUID.
_BINDING_PREFIX = "end-user-portal:"
MAX_COOKIE_LENGTH = 2048
SEPARATOR = " \u2013 "  # an en dash between spaces
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# The notices the page shows after a redirect (`?notice=`); anything else is ignored.
NOTICES = frozenset({"disconnected"})


@dataclass(frozen=True)
class Visit:
    """What this browser's cookie proves: a link valid now, and the binding its forms'
    CSRF tokens are tied to."""

    link: EndUserLink
    token: str
    binding: BrowserBinding


@dataclass(frozen=True)
class IntegrationRow:
    integration: Integration
    connections: tuple[CoreConnection, ...]


@dataclass(frozen=True)
class PortalView:
    """The end user, their connected apps (each with its connections, in catalog order),
    one page of the allowed apps they have not connected, and whether the link names one
    app (then there is nothing to search)."""

    end_user: EndUser
    connected: tuple[IntegrationRow, ...]
    page: PickerPage
    narrowed: bool
    csrf_token: str


@dataclass(frozen=True)
class PortalCookie:
    value: str
    max_age: int


class EndUserPortal:
    def __init__(self, *, flow: ConnectFlow, links: EndUserLinks, core: CoreApiClient) -> None:
        self.flow = flow
        self.links = links
        self.core = core
        self._cookies = serializer(flow.settings.secret_keys, _COOKIE_SALT)

    # -- the link and this browser ---------------------------------------------------
    async def open(self, token: object) -> PortalCookie:
        """`GET /connect/portal?token=…`: the cookie that carries a valid link from now on."""
        if not isinstance(token, str) or not token:
            raise MissingToken("A link token is required.")
        link = await self._read_link(token)
        nonce = secrets.token_urlsafe(16)
        value = self._cookies.dumps({"t": token, "n": nonce})
        return PortalCookie(value=value, max_age=max(1, link.expires_at - int(self.flow.clock())))

    async def visit(self, cookie: str | None) -> Visit:
        """The link of this browser's cookie, read again now (expiry and revocation)."""
        if not cookie:
            raise MissingToken("Open the link you were given first.")
        if len(cookie) > MAX_COOKIE_LENGTH or not cookie.isascii():
            raise _invalid()
        try:
            payload = self._cookies.loads(cookie)
        except (BadData, UnicodeDecodeError, ValueError):
            raise _invalid() from None
        token = payload.get("t") if isinstance(payload, dict) else None
        nonce = payload.get("n") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not isinstance(nonce, str):
            raise _invalid()
        link = await self._read_link(token)
        binding = BrowserBinding(session_id=_BINDING_PREFIX + link.jti, nonce=nonce)
        return Visit(link=link, token=token, binding=binding)

    async def _read_link(self, token: str) -> EndUserLink:
        """The link, valid now: not expired, not revoked (asked of the store each time)."""
        try:
            return await self.links.read(token)
        except LinkRefused as exc:
            raise exc.error() from None

    def check_post(
        self, visit: Visit, csrf_token: object, *, origin: str | None, fetch_site: str | None
    ) -> None:
        """A form post must come from this page in this browser (portal/csrf.py)."""
        check_form_post(self.flow.signer, visit.binding, csrf_token,
                        public_origin=self.flow.settings.public_origin,
                        origin=origin, fetch_site=fetch_site)

    # -- what the page shows ---------------------------------------------------------
    async def view(
        self,
        visit: Visit,
        query: str = "",
        *,
        number: int = 1,
        words_of: Callable[[Integration], str] | None = None,
    ) -> PortalView:
        end_user = await self.end_user(visit)
        integrations = self.allowed_integrations(visit.link)
        connections = await self.connections(visit)
        connected = tuple(
            IntegrationRow(integration=item, connections=tuple(
                connection for connection in connections
                if connection.integration_name == item.name))
            for item in integrations
            if any(connection.integration_name == item.name for connection in connections)
        )
        taken = {row.integration.name for row in connected}
        narrowed = visit.link.integration_name is not None
        if narrowed:
            query = ""  # one app: nothing to search
        others = [item.name for item in integrations if item.name not in taken]
        if others:
            page = picker_page(self.flow.catalog, self.flow.runnable_options, query,
                               allowed=others, words_of=words_of, number=number)
        else:  # an empty `allowed` would mean every app
            page = PickerPage(query=query, category=None, categories=[], integrations=[],
                              total=0)
        return PortalView(end_user=end_user, connected=connected, page=page,
                          narrowed=narrowed,
                          csrf_token=self.flow.signer.csrf_token(visit.binding))

    async def end_user(self, visit: Visit) -> EndUser:
        link = visit.link
        end_user = await _core(self.core.get_end_user(link.end_user_id))
        if end_user is None or end_user.workspace_id != link.workspace_id:
            raise EndUserNotFound("The end user of this link no longer exists.")
        return end_user

    def allowed_integrations(self, link: EndUserLink) -> tuple[Integration, ...]:
        """The runnable catalog entries the link allows: its one, or every one."""
        if link.integration_name is not None:
            integration = self.flow.catalog.get(link.integration_name)
            if integration is None or not self.flow.runnable_options(integration):
                raise IntegrationNotFound("This integration is no longer available.")
            return (integration,)
        return tuple(item for item in self.flow.catalog if self.flow.runnable_options(item))

    async def connections(self, visit: Visit) -> list[CoreConnection]:
        """The end user's connections in the link's workspace, for the integrations the
        link allows; nothing else the core API lists."""
        link = visit.link
        allowed = {item.name for item in self.allowed_integrations(link)}
        listed = await _core(self.core.list_connections(link.workspace_id, link.end_user_id))
        return [item for item in listed
                if item.end_user_id == link.end_user_id
                and item.workspace_id in {link.workspace_id, None}
                and item.integration_name in allowed]

    async def owned_connection(self, visit: Visit, connection_id: str) -> CoreConnection:
        """The connection `connection_id` if it is one this page shows; 404 otherwise."""
        found = next((item for item in await self.connections(visit)
                      if item.id == connection_id), None)
        if found is None:
            raise NotFound("No such connection.")
        return found

    # -- what the page does ----------------------------------------------------------
    async def connect(self, visit: Visit, integration_name: object) -> IssuedToken:
        """A connect session for one of the allowed integrations, for this end user."""
        integration = next((item for item in self.allowed_integrations(visit.link)
                            if item.name == integration_name), None)
        if integration is None:
            raise IntegrationNotFound("No such integration.")
        return await self._session(visit, integration, None)

    async def reconnect(self, visit: Visit, connection_id: str) -> IssuedToken:
        """A connect session whose delivery updates `connection_id` (checked to be this
        end user's, in this workspace) instead of creating a connection."""
        connection = await self.owned_connection(visit, connection_id)
        integration = self.flow.catalog.get(connection.integration_name)
        if integration is None:
            raise IntegrationNotFound("This integration is no longer available.")
        return await self._session(visit, integration, connection)

    async def disconnect(self, visit: Visit, connection_id: str) -> CoreConnection:
        connection = await self.owned_connection(visit, connection_id)
        if not await _core(self.core.delete_connection(connection.id)):
            raise NotFound("No such connection.")
        return connection

    async def _session(
        self, visit: Visit, integration: Integration, connection: CoreConnection | None
    ) -> IssuedToken:
        end_user = await self.end_user(visit)
        link = visit.link
        name = (connection.display_name if connection is not None and connection.display_name
                else connection_name(end_user, integration))
        body = {
            "integrationName": integration.name,
            "workspaceId": link.workspace_id,
            "endUserId": end_user.id,
            "externalId": _bounded(end_user.external_id) or end_user.id,
            "connectionName": _bounded(name) or integration.display_name,
            "workspaceIntegrationId": link.workspace_integration_id,
        }
        request = ConnectRequest.model_validate(
            body, context={"settings": self.flow.settings})
        return await self.flow.create_session(
            request,
            reconnect_connection_id=connection.id if connection is not None else None,
            previous_account_id=connection.account_id if connection is not None else None,
            return_to=PORTAL_PATH,
        )


def connection_name(end_user: EndUser, integration: Integration) -> str:
    """The display name, an en dash and the integration's name; the display name is cut
    so that the whole fits in a connection name."""
    suffix = SEPARATOR + _clean(integration.display_name)
    person = _clean(end_user.display_name) or _clean(end_user.external_id)
    room = MAX_ID_LENGTH - len(suffix)
    if room < 1:
        return _bounded(integration.display_name)
    if len(person) > room:
        person = person[:room - 1].rstrip() + "\u2026"
    return person + suffix


def _clean(value: str) -> str:
    return " ".join(_CONTROL.sub(" ", value).split())


def _bounded(value: str) -> str:
    return _clean(value)[:MAX_ID_LENGTH].strip()


def _invalid() -> InvalidTokenError:
    return InvalidTokenError("The link is not valid.", details={"reason": "invalid"})


async def _core(awaitable: Awaitable[T]) -> T:
    """A core API read or delete; one it cannot answer is a 503 the user may retry."""
    try:
        return await awaitable
    except DeliveryFailed as exc:
        raise ServiceUnavailable(exc.message, details={"reason": exc.code}) from None
