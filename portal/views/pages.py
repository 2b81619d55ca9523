"""Hosted pages: open the link, the picker, the credential form, the result."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portal.auth.family import FormRejected, SendBrowser, Submission
from portal.catalog.i18n import CatalogTranslations
from portal.csrf import check_form_post
from portal.errors import SessionClosed
from portal.flow import RESULT_RETENTION, ConnectFlow
from portal.middleware import allow_form_action
from portal.picker import words_in
from portal.rate_limits import rate_limits_of
from portal.return_path import ConnectResult
from portal.sessions import ConnectSession, SessionStatus
from portal.settings import MAX_TOKEN_TTL
from portal.tokens import BrowserBinding
from portal.views.common import flow_of
from portal.views.render import (
    page_locale,
    redirect,
    render,
    render_option_page,
    render_result,
)

BINDING_COOKIE = "portal_binding"
# Site-wide, so that it reaches `GET /connect` (the binding cookie only reaches its
# session's pages). `__Host-` keeps it to this exact host, Secure and Path=/ on https, so
# a sibling subdomain cannot plant one; browsers refuse that prefix on plain http.
BROWSER_COOKIE = "portal_browser"
BROWSER_COOKIE_HTTPS = "__Host-portal_browser"
MAX_FORM_FIELDS = 50
# How often the "Finishing your connection…" page looks again (meta refresh, no script).
CONNECTING_REFRESH = 2
# The query of a session page reached from a form without an opener (`progress_url`).
THEN_REDIRECT = "then=redirect"
MAX_FORM_PART = 64 * 1024


async def open_link(request: Request) -> Response:
    """`GET /connect?token=…`: bind this browser to the session, then drop the token.

    The session goes to the first browser that opens the link (`ConnectFlow.open`); the
    browser cookie names that browser, and is refreshed on every open.
    """
    return await open_session(request, flow_of(request), request.query_params.get("token"))


async def open_session(request: Request, flow: ConnectFlow, token: object) -> Response:
    """Claim the session of `token` for this browser and go to its page, with the cookies
    that bind it (`open_link`; also the end-user portal's connect, portal/views/
    end_user_pages.py)."""
    browser_cookie = BROWSER_COOKIE_HTTPS if flow.settings.secure_cookies else BROWSER_COOKIE
    session, cookie, browser_id = await flow.open(token, request.cookies.get(browser_cookie))
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
        # Outlives the link, so that a page opened after it expired says so (rather than
        # "open the link in this browser") and a result stays readable.
        max_age=max(60, session.expires_at - int(flow.clock())) + RESULT_RETENTION,
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
        result = flow.returns.result(session)
        if result.redirect_url and request.url.query == THEN_REDIRECT:
            return redirect(result.redirect_url)
        return render_result(request, result)
    csrf = flow.signer.csrf_token(binding)
    if session.status is SessionStatus.CONNECTING:
        return render(request, "connecting.html",
                      {"session": session, "integration": flow.integration_of(session),
                       "refresh_seconds": CONNECTING_REFRESH},
                      status_code=409)
    if session.error_code is not None:
        return render_attempt_failed(request, flow, session, csrf)
    if session.integration_name is None:
        return render_picker(request, flow, session, csrf)
    integration = flow.integration_of(session)
    assert integration is not None
    if flow.auth_option(session, integration) is None:
        return render_auth_methods(request, flow, session, csrf)
    return render_option_page(request, flow, session, csrf, FormRejected(errors={}, values={}))


async def session_status(request: Request) -> Response:
    """`GET /connect/s/{id}/status`: where this browser's session is, for the form's
    progress words (static/progress.js). Nothing but the status."""
    flow = flow_of(request)
    session, _ = await flow.bound_session(
        request.path_params["session_id"], request.cookies.get(BINDING_COOKIE)
    )
    return JSONResponse({"status": session.status.value}, headers={"Cache-Control": "no-store"})


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
    check_form_post(
        flow.signer,
        binding,
        form.get("csrf_token"),
        public_origin=flow.settings.public_origin,
        origin=request.headers.get("origin"),
        fetch_site=request.headers.get("sec-fetch-site"),
    )
    # Before the form reaches its family: a refused submit checks nothing with a provider.
    await rate_limits_of(request).check_submit(session.id)
    return session, binding, form


async def submit_session(request: Request) -> Response:
    flow = flow_of(request)
    session, binding, form = await read_bound_form(request)

    action = form.get("action")
    if action == "choose":
        await flow.choose_integration(session, form.get("integration"))
        return redirect(f"/connect/s/{session.id}")
    if action == "auth_method":
        await flow.choose_auth_method(session, form.get("auth_method"))
        return redirect(f"/connect/s/{session.id}")
    if action in {"back", "try_again", "give_up"}:
        return await _step(request, session, action, opener=form.get("opener") == "1")

    return await submit_to_family(request, session, binding, form, on_result=_show_result)


async def submit_to_family(
    request: Request,
    session: ConnectSession,
    binding: BrowserBinding,
    form: dict[str, str],
    *,
    on_result: Callable[[Request, ConnectResult, bool], Response],
) -> Response:
    """A bound, CSRF-checked form post, handed to the chosen option's family by the flow.

    A second submit of a session that another one already moved on (a double click,
    Enter twice, a second tab) joins it: it answers what the first will, the result or
    "Finishing your connection…", never an error. Errors show the option's page again;
    `on_result(request, result, opener)` answers a session that ended here."""
    flow = flow_of(request)
    opener = form.get("opener") == "1"
    try:
        outcome = await flow.submit(session, Submission(form=form, cookies=request.cookies))
    except SessionClosed:
        current = await flow.session_by_id(session.id)
        if current.status.is_final:
            return on_result(request, flow.returns.result(current), opener)
        if current.status is SessionStatus.CONNECTING:
            return redirect(progress_url(current.id, opener))
        raise
    if isinstance(outcome, FormRejected):
        return render_option_page(
            request, flow, session, flow.signer.csrf_token(binding), outcome, status_code=400,
            typed=frozenset(key for key, value in form.items() if value.strip()),
        )
    if isinstance(outcome, SendBrowser):
        return send_browser(request, flow, outcome)
    return on_result(request, outcome, opener)


async def _step(request: Request, session: ConnectSession, action: str, *,
                opener: bool) -> Response:
    """Back, Try again, Close: the ways forward every page offers. A step the session has
    already moved past (a second tab, a double click) shows where the session is now."""
    flow = flow_of(request)
    try:
        if action == "back":
            await flow.go_back(session)
        elif action == "try_again":
            await flow.try_again(session)
        else:
            return _show_result(request, await flow.give_up(session), opener)
    except SessionClosed:
        pass
    return redirect(f"/connect/s/{session.id}")


def _show_result(request: Request, result: ConnectResult, opener: bool) -> Response:
    if not result.session.status.is_final:
        return redirect(next_page_url(result.session, opener))
    if result.redirect_url and not opener:
        return redirect(result.redirect_url)
    return render_result(request, result)


def next_page_url(session: ConnectSession, opener: bool) -> str:
    """Where a session that is not final goes on: its page (a failed attempt shows what to
    do next there), or the progress page while it is CONNECTING."""
    if session.status is SessionStatus.CONNECTING:
        return progress_url(session.id, opener)
    return f"/connect/s/{session.id}"


def progress_url(session_id: str, opener: bool) -> str:
    """The session's page while its delivery goes on ("Finishing your connection…"); a
    page without an opener carries `then=redirect`, so that once the session is final it
    goes on to the redirect URI as an immediate result would have."""
    return f"/connect/s/{session_id}" + ("" if opener else f"?{THEN_REDIRECT}")


def send_browser(request: Request, flow: ConnectFlow, outcome: SendBrowser) -> Response:
    """On to where a family needs the browser next, with the cookie that binds it there."""
    response = redirect(outcome.url)
    if outcome.cookie is not None:
        response.set_cookie(
            outcome.cookie.name,
            outcome.cookie.value,
            max_age=outcome.cookie.max_age,
            # Site-wide, so flows started side by side in one browser share it; `__Host-`
            # names require exactly this path and no domain.
            path="/",
            secure=flow.settings.secure_cookies,
            httponly=True,
            samesite="lax",  # sent on the provider's top-level redirect back to us
        )
    return response


def render_picker(
    request: Request, flow: ConnectFlow, session: ConnectSession, csrf: str
) -> Response:
    query = request.query_params.get("q", "")[:100]
    translations: CatalogTranslations | None = getattr(
        request.app.state, "catalog_translations", None)
    # The search finds an app by its words in the page's language too.
    page = flow.picker(session, query, request.query_params.get("category") or None,
                       number=_page_number(request.query_params.get("page")),
                       words_of=words_in(translations, page_locale(request, session)))
    return render(request, "picker.html", {
        "session": session,
        "csrf_token": csrf,
        "page": page,
    })


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 5 else 1


def render_auth_methods(
    request: Request, flow: ConnectFlow, session: ConnectSession, csrf: str
) -> Response:
    integration = flow.integration_of(session)
    assert integration is not None
    return render(request, "auth_method.html", {
        "session": session,
        "csrf_token": csrf,
        "integration": integration,
        "options": flow.options_for(session, integration),
        "can_go_back": flow.can_go_back(session),
    })


def render_attempt_failed(
    request: Request, flow: ConnectFlow, session: ConnectSession, csrf: str
) -> Response:
    """A failed attempt of a session the user can still finish: what happened, in plain
    words, and the ways forward (try again, choose another way or app, give up)."""
    integration = flow.integration_of(session)
    # "Stop" answers with a 303 to the partner's error redirect URI: CSP form-action.
    allow_form_action(request.state, *flow.returns.redirect_origins(session))
    return render(request, "attempt_failed.html", {
        "session": session,
        "csrf_token": csrf,
        "integration": integration,
        "failure": session.error_code,
        "can_go_back": flow.can_go_back(session),
        "back_to_picker": bool(session.chose_integration and not session.chose_auth_method),
        "partner_redirect": bool(session.error_redirect_uri),
    })
