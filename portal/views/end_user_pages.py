"""The end-user portal's pages (`/connect/portal`): thin handlers over
portal/end_users/portal_page.py."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portal.catalog.i18n import CatalogTranslations
from portal.end_users.portal_page import (
    NOTICES,
    PORTAL_COOKIE,
    PORTAL_PATH,
    EndUserPortal,
    Visit,
)
from portal.picker import words_in
from portal.views.common import flow_of
from portal.views.pages import MAX_FORM_FIELDS, MAX_FORM_PART, open_session
from portal.views.render import page_locale, redirect, render

MAX_QUERY_LENGTH = 100


def portal_of(request: Request) -> EndUserPortal:
    portal: EndUserPortal = request.app.state.end_user_portal
    return portal


async def show_portal(request: Request) -> Response:
    """`GET /connect/portal?token=eut_…` keeps the link in a cookie and drops the token
    from the address; `GET /connect/portal?q=…&page=…` shows the end user's connections
    and one page of the apps they can connect (static/picker.js loads the same page as
    the user types)."""
    portal = portal_of(request)
    if "token" in request.query_params:
        cookie = await portal.open(request.query_params.get("token"))
        response = redirect(PORTAL_PATH)
        response.set_cookie(
            PORTAL_COOKIE,
            cookie.value,
            max_age=cookie.max_age,
            path=PORTAL_PATH,
            secure=portal.flow.settings.secure_cookies,
            httponly=True,
            samesite="lax",
        )
        return response
    visit = await portal.visit(request.cookies.get(PORTAL_COOKIE))
    translations: CatalogTranslations | None = getattr(
        request.app.state, "catalog_translations", None)
    view = await portal.view(
        visit, request.query_params.get("q", "")[:MAX_QUERY_LENGTH],
        number=_page_number(request.query_params.get("page")),
        words_of=words_in(translations, page_locale(request)))
    notice = request.query_params.get("notice")
    return render(request, "end_user_portal.html", {
        "end_user": view.end_user,
        "connected": view.connected,
        "page": view.page,
        "narrowed": view.narrowed,
        "csrf_token": view.csrf_token,
        "notice": notice if notice in NOTICES else None,
    })


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 5 else 1


async def connect(request: Request) -> Response:
    """`POST /connect/portal/connect` (integration=…): on to a new session's page."""
    portal = portal_of(request)
    visit, form = await read_portal_form(request, portal)
    issued = await portal.connect(visit, form.get("integration"))
    return await open_session(request, flow_of(request), issued.token)


async def reconnect(request: Request) -> Response:
    """`POST /connect/portal/connections/{connection_id}/reconnect`."""
    portal = portal_of(request)
    visit, _ = await read_portal_form(request, portal)
    issued = await portal.reconnect(visit, request.path_params["connection_id"])
    return await open_session(request, flow_of(request), issued.token)


async def confirm_disconnect(request: Request) -> Response:
    """`GET /connect/portal/connections/{connection_id}/disconnect`: are you sure?"""
    portal = portal_of(request)
    visit = await portal.visit(request.cookies.get(PORTAL_COOKIE))
    connection = await portal.owned_connection(visit, request.path_params["connection_id"])
    integration = portal.flow.catalog.get(connection.integration_name)
    return render(request, "end_user_disconnect.html", {
        "connection": connection,
        "integration": integration,
        "csrf_token": portal.flow.signer.csrf_token(visit.binding),
    })


async def disconnect(request: Request) -> Response:
    """`POST /connect/portal/connections/{connection_id}/disconnect`: DELETE it."""
    portal = portal_of(request)
    visit, _ = await read_portal_form(request, portal)
    await portal.disconnect(visit, request.path_params["connection_id"])
    return redirect(f"{PORTAL_PATH}?notice=disconnected")


async def read_portal_form(
    request: Request, portal: EndUserPortal
) -> tuple[Visit, dict[str, str]]:
    """A form post of the portal page: a valid link in this browser's cookie, CSRF- and
    origin-checked, text fields only."""
    visit = await portal.visit(request.cookies.get(PORTAL_COOKIE))
    async with request.form(
        max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_PART
    ) as form_data:
        form = {key: value for key, value in form_data.items() if isinstance(value, str)}
    portal.check_post(visit, form.get("csrf_token"), origin=request.headers.get("origin"),
                      fetch_site=request.headers.get("sec-fetch-site"))
    return visit, form
