"""Hosted pages: open the link, the picker, the credential form, the result."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal.errors import PortalError, SessionClosed
from portal.flow import RESULT_RETENTION, ConnectFlow, ConnectResult, FormRejected
from portal.middleware import allow_form_action
from portal.sessions import ConnectSession, SessionStatus
from portal.settings import MAX_TOKEN_TTL
from portal.tokens import BrowserBinding
from portal.views.common import flow_of

BINDING_COOKIE = "portal_binding"
# Site-wide, so that it reaches `GET /connect` (the binding cookie only reaches its
# session's pages). `__Host-` keeps it to this exact host, Secure and Path=/ on https, so
# a sibling subdomain cannot plant one; browsers refuse that prefix on plain http.
BROWSER_COOKIE = "portal_browser"
BROWSER_COOKIE_HTTPS = "__Host-portal_browser"
MAX_FORM_FIELDS = 50
MAX_FORM_PART = 64 * 1024


async def open_link(request: Request) -> Response:
    """`GET /connect?token=…`: bind this browser to the session, then drop the token.

    The session goes to the first browser that opens the link (`ConnectFlow.open`); the
    browser cookie names that browser, and is refreshed on every open.
    """
    flow = flow_of(request)
    browser_cookie = BROWSER_COOKIE_HTTPS if flow.settings.secure_cookies else BROWSER_COOKIE
    session, cookie, browser_id = await flow.open(
        request.query_params.get("token"), request.cookies.get(browser_cookie)
    )
    response = redirect(f"/connect/s/{session.id}")
    response.set_cookie(
        browser_cookie,
        browser_id,
        # Outlives any session record it may have claimed (the longest token plus the
        # time a result stays readable), and no longer.
        max_age=MAX_TOKEN_TTL + RESULT_RETENTION,
        path="/",
        secure=flow.settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    response.set_cookie(
        BINDING_COOKIE,
        cookie,
        max_age=max(60, session.expires_at - int(flow.clock())),
        path=f"/connect/s/{session.id}",
        secure=flow.settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response


async def show_session(request: Request) -> Response:
    flow = flow_of(request)
    session, binding = await flow.bound_session(
        request.path_params["session_id"], request.cookies.get(BINDING_COOKIE)
    )
    if session.status.is_final:
        return render_result(request, flow.result(session))
    csrf = flow.signer.csrf_token(binding)
    if session.status is SessionStatus.CONNECTING:
        return render(request, "connecting.html", {"session": session}, status_code=409)
    if session.integration_name is None:
        return render_picker(request, flow, session, csrf)
    integration = flow.integration_of(session)
    assert integration is not None
    if flow.auth_option(session, integration) is None:
        return render_auth_methods(request, flow, session, csrf)
    return render_form(request, flow, session, csrf, FormRejected(errors={}, values={}))


async def read_bound_form(
    request: Request,
) -> tuple[ConnectSession, BrowserBinding, dict[str, str]]:
    """A form post on a session page: from the bound browser, CSRF-checked, text fields only."""
    flow = flow_of(request)
    session, binding = await flow.bound_session(
        request.path_params["session_id"], request.cookies.get(BINDING_COOKIE)
    )
    async with request.form(
        max_files=0, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FORM_PART
    ) as form_data:
        form = {key: value for key, value in form_data.items() if isinstance(value, str)}
    flow.check_csrf(
        binding,
        form.get("csrf_token"),
        origin=request.headers.get("origin"),
        fetch_site=request.headers.get("sec-fetch-site"),
    )
    return session, binding, form


async def submit_session(request: Request) -> Response:
    flow = flow_of(request)
    session, binding, form = await read_bound_form(request)

    if form.get("action") == "choose":
        await flow.choose_integration(session, form.get("integration"))
        return redirect(f"/connect/s/{session.id}")
    if form.get("action") == "auth_method":
        await flow.choose_auth_method(session, form.get("auth_method"))
        return redirect(f"/connect/s/{session.id}")

    try:
        outcome = await flow.submit_credentials(session, form)
    except SessionClosed:
        current = await flow.session_by_id(session.id)
        if current.status.is_final:
            return render_result(request, flow.result(current))
        raise
    if isinstance(outcome, FormRejected):
        return render_form(
            request, flow, session, flow.signer.csrf_token(binding), outcome, status_code=400
        )
    if outcome.redirect_url and form.get("opener") != "1":
        return redirect(outcome.redirect_url)
    return render_result(request, outcome)


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def render_picker(
    request: Request, flow: ConnectFlow, session: ConnectSession, csrf: str
) -> Response:
    query = request.query_params.get("q", "")[:100]
    page = flow.picker(query, request.query_params.get("category") or None)
    return render(request, "picker.html", {
        "session": session,
        "csrf_token": csrf,
        "page": page,
    })


def render_auth_methods(
    request: Request, flow: ConnectFlow, session: ConnectSession, csrf: str
) -> Response:
    integration = flow.integration_of(session)
    assert integration is not None
    return render(request, "auth_method.html", {
        "session": session,
        "csrf_token": csrf,
        "integration": integration,
        "options": flow.runnable_options(integration),
    })


def render_form(
    request: Request,
    flow: ConnectFlow,
    session: ConnectSession,
    csrf: str,
    rejected: FormRejected,
    status_code: int = 200,
) -> Response:
    integration = flow.integration_of(session)
    assert integration is not None
    option = flow.auth_option(session, integration)
    assert option is not None
    if option.type.is_oauth:
        from portal.views.oauth import render_start

        return render_start(request, flow, session, integration, option, csrf, rejected,
                            status_code)
    # The form may end in a 303 to the partner's redirect URI; CSP form-action must allow it.
    allow_form_action(request.state, *flow.redirect_origins(session))
    response = render(request, "connect.html", {
        "session": session,
        "integration": integration,
        "option": option,
        "csrf_token": csrf,
        "errors": rejected.errors,
        "values": rejected.values,
        "notice": rejected.notice,
        "checked": option.verification is not None and flow.settings.verify_credentials,
    }, status_code=status_code)
    return response


def render_result(request: Request, result: ConnectResult) -> Response:
    payload = {"message": result.message, "targetOrigins": list(result.target_origins)}
    return render(request, "result.html", {
        "session": result.session,
        "result": result,
        "payload_json": json.dumps(payload).replace("<", "\\u003c"),
    })


def render_error(request: Request, exc: PortalError) -> Response:
    return render(request, "error.html", {"code": exc.code, "status": exc.status},
                  status_code=exc.status)


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    response: Response = request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status_code
    )
    response.headers["cache-control"] = "no-store"
    return response

