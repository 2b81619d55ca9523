"""OAuth pages and API: the hand-off form, the provider's callback, the refresh service."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.auth.oauth.flow import STATE_TTL, OAuthFlow
from portal.catalog import AuthOption, Integration
from portal.flow import ConnectFlow, ConnectResult, FormRejected
from portal.middleware import allow_form_action
from portal.sessions import ConnectSession
from portal.views.common import flow_of, json_response, read_json, require_api_key
from portal.views.pages import read_bound_form, render, render_result

# Binds a flow to the browser that started it; the callback compares it with the state.
# Over https the name has the `__Host-` prefix: Secure, Path=/, no Domain, so neither a
# sibling subdomain nor plain http can plant or overwrite it. Browsers refuse `__Host-`
# cookies on plain http, so a development portal on http uses the bare name.
BROWSER_COOKIE = "portal_oauth"
SECURE_BROWSER_COOKIE = "__Host-portal_oauth"


def oauth_of(request: Request) -> OAuthFlow:
    oauth: OAuthFlow = request.app.state.oauth
    return oauth


def browser_cookie_name(flow: ConnectFlow) -> str:
    return SECURE_BROWSER_COOKIE if flow.settings.secure_cookies else BROWSER_COOKIE


def render_start(
    request: Request,
    flow: ConnectFlow,
    session: ConnectSession,
    integration: Integration,
    option: AuthOption,
    csrf: str,
    rejected: FormRejected,
    status_code: int = 200,
) -> Response:
    """The hand-off page: a sign-in button, after the props the provider's URLs need."""
    # The form's answer is a redirect to the provider's sign-in page (or, when the flow
    # cannot start, to the partner's redirect URI); CSP form-action must allow both.
    allow_form_action(request.state, OAuthFlow.form_action_source(option),
                      *flow.redirect_origins(session))
    return render(request, "oauth_start.html", {
        "session": session,
        "integration": integration,
        "option": option,
        "csrf_token": csrf,
        "errors": rejected.errors,
        "values": rejected.values,
    }, status_code=status_code)


async def start(request: Request) -> Response:
    """`POST /connect/s/{id}/oauth`: keep the flow's state, send the browser to sign in."""
    flow = flow_of(request)
    session, binding, form = await read_bound_form(request)
    if session.status.is_final:
        return render_result(request, flow.result(session))
    cookie_name = browser_cookie_name(flow)
    outcome = await oauth_of(request).start(session, form, request.cookies.get(cookie_name))
    if isinstance(outcome, ConnectResult):
        return _finish_response(request, outcome, opener=form.get("opener") == "1")
    if isinstance(outcome, FormRejected):
        integration = flow.integration_of(session)
        option = flow.auth_option(session, integration) if integration else None
        assert integration is not None and option is not None
        return render_start(request, flow, session, integration, option,
                            flow.signer.csrf_token(binding), outcome, status_code=400)
    response = RedirectResponse(outcome.authorize_url, status_code=303)
    response.set_cookie(
        cookie_name,
        outcome.browser_cookie,
        max_age=STATE_TTL,
        # Sent to the start too, so flows started side by side in one browser share it;
        # `__Host-` requires exactly this path and no domain.
        path="/",
        secure=flow.settings.secure_cookies,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to us
    )
    response.headers["cache-control"] = "no-store"
    return response


async def callback(request: Request) -> Response:
    """`GET /oauth/callback`: the provider's answer. Redeems the code at most once."""
    params = {key: value for key, value in request.query_params.items()}
    cookie = request.cookies.get(browser_cookie_name(flow_of(request)))
    finished = await oauth_of(request).finish(params, cookie)
    if finished.result is None:
        # This answer changed nothing (another callback of the session got there first):
        # the session's page shows "Connecting…" or the result that callback reached.
        return RedirectResponse(f"/connect/s/{finished.session_id}", status_code=303)
    return _finish_response(request, finished.result, opener=finished.opener)


def _finish_response(request: Request, result: ConnectResult, *, opener: bool) -> Response:
    if result.redirect_url and not opener:
        return RedirectResponse(result.redirect_url, status_code=303)
    # The session page shows the result (and tells the opener) without the code in the URL.
    return RedirectResponse(f"/connect/s/{result.session.id}", status_code=303)


async def refresh(request: Request) -> Response:
    """`POST /api/v1/oauth/refresh` (API key): fresh tokens for the core API."""
    require_api_key(request)
    body = await read_json(request)
    return json_response(await oauth_of(request).refresh(body))
