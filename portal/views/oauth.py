"""OAuth pages and API: the hand-off form's post, the provider's callback, the refresh
service. The hand-off page itself is the OAuth family's option page (views/render.py)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from portal.auth.oauth.callback import OAuthCallback
from portal.auth.oauth.refresh import TokenRefresh
from portal.return_path import ConnectResult
from portal.views.common import json_response, read_json, require_api_key
from portal.views.pages import next_page_url, read_bound_form, submit_to_family
from portal.views.render import redirect


async def start(request: Request) -> Response:
    """`POST /connect/s/{id}/oauth`: keep the flow's state, send the browser to sign in."""
    session, binding, form = await read_bound_form(request)
    return await submit_to_family(request, session, binding, form, on_result=_finish_response)


async def callback(request: Request) -> Response:
    """`GET /oauth/callback`: the provider's answer. Redeems the code at most once."""
    oauth: OAuthCallback = request.app.state.oauth_callback
    params = {key: value for key, value in request.query_params.items()}
    cookie = request.cookies.get(oauth.family.states.cookie_name)
    finished = await oauth.finish(params, cookie)
    if finished.result is None:
        # A failed attempt the user may retry, or an answer that changed nothing (another
        # callback of the session got there first): the session's page shows what to do
        # next, "Finishing your connection…", or the result.
        return redirect(f"/connect/s/{finished.session_id}")
    return _finish_response(request, finished.result, finished.opener)


def _finish_response(request: Request, result: ConnectResult, opener: bool) -> Response:
    if result.redirect_url and not opener:
        return redirect(result.redirect_url)
    # The session page shows the result (and tells the opener) without the code in the
    # URL, or "Finishing your connection…" until there is one.
    if result.session.status.is_final:
        return redirect(f"/connect/s/{result.session.id}")
    return redirect(next_page_url(result.session, opener))


async def refresh(request: Request) -> Response:
    """`POST /api/v1/oauth/refresh` (API key): fresh tokens for the core API."""
    require_api_key(request)
    body = await read_json(request)
    refresher: TokenRefresh = request.app.state.oauth_refresh
    return json_response(await refresher.refresh(body))
