"""The partner's logo and accent colour, served from the portal's own origin (portal/brand.py)."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from portal.brand import AccentColors, BrandLogos
from portal.connect_request import ConnectRequest
from portal.errors import NotFound
from portal.views.common import flow_of
from portal.views.pages import BINDING_COOKIE

_ACCENT_PATH = re.compile(r"[0-9a-f]{6}")


async def with_checked_logo(request: Request, asked: ConnectRequest) -> ConnectRequest:
    """The token request with the logo its pages will show: the token's, else
    PORTAL_BRAND_LOGO_URL when it names no partner; fetched now and kept, or none at all
    when it cannot be (the pages then show the name alone, and the mint still succeeds)."""
    url = asked.partner_logo_url
    if url is None and asked.partner_name is None:
        url = flow_of(request).settings.brand_logo_url
    shown = None if url is None else await brand_logos_of(request).remember(url)
    return asked.model_copy(update={"partner_logo_url": shown})


def brand_logos_of(request: Request) -> BrandLogos:
    logos: BrandLogos = request.app.state.brand_logos
    return logos


async def logo(request: Request) -> Response:
    """The logo of a session's pages, to the browser bound to it only."""
    session, _ = await flow_of(request).bound_session(
        request.path_params["session_id"], request.cookies.get(BINDING_COOKIE))
    kept = None
    if session.partner_logo_url:
        kept = await brand_logos_of(request).logo(session.partner_logo_url)
    if kept is None:
        raise NotFound("This session has no logo.")
    return Response(kept.data, media_type=kept.content_type, headers={
        "Cache-Control": "private, max-age=3600",
        "Content-Disposition": "inline",
    })


async def stylesheet(request: Request) -> Response:
    """The accent colour #rrggbb made readable in both themes; the same for everyone."""
    accent = request.path_params["accent"]
    if _ACCENT_PATH.fullmatch(accent) is None:
        raise NotFound("No such stylesheet.")
    return Response(AccentColors.of(f"#{accent}").stylesheet(), media_type="text/css",
                    headers={"Cache-Control": "public, max-age=31536000, immutable"})
