"""How the hosted pages are rendered: one page per session step, never cached."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from portal import i18n
from portal.auth.family import FormRejected
from portal.brand import brand_for
from portal.catalog.i18n import CatalogTranslations
from portal.errors import PortalError
from portal.flow import ConnectFlow
from portal.middleware import allow_form_action
from portal.return_path import ConnectResult
from portal.sessions import ConnectSession


def render_option_page(
    request: Request,
    flow: ConnectFlow,
    session: ConnectSession,
    csrf: str,
    rejected: FormRejected,
    status_code: int = 200,
    typed: frozenset[str] = frozenset(),
) -> Response:
    """The page of the chosen auth option, as its family draws it (a credential form, or
    the hand-off to an OAuth provider after the props its URLs need). `typed`: the fields
    the refused post had filled in; a secret among them is not written back, and the page
    says so next to it."""
    integration = flow.integration_of(session)
    assert integration is not None
    option = flow.auth_option(session, integration)
    assert option is not None
    family = flow.families.family_for(option)
    # The form's answer may be a 303 to the family's next stop (a provider's sign-in) or
    # to the partner's redirect URI; CSP form-action must allow them.
    allow_form_action(request.state, *family.form_action_sources(option),
                      *flow.returns.redirect_origins(session))
    return render(request, family.page, {
        "session": session,
        "integration": integration,
        "option": option,
        "csrf_token": csrf,
        "errors": rejected.errors,
        "values": rejected.values,
        "notice": rejected.notice,
        "typed": typed,
        "can_go_back": flow.can_go_back(session),
        **family.page_context(option),
    }, status_code=status_code)


def render_result(request: Request, result: ConnectResult) -> Response:
    payload = {"message": result.message, "targetOrigins": list(result.target_origins)}
    context: dict[str, Any] = {
        "session": result.session,
        "result": result,
        "payload_json": json.dumps(payload).replace("<", "\\u003c"),
    }
    # The page names the app (success, a failure, a reconnect's account warning), in the
    # page's language: `render` localizes the `integration` entry.
    flow: ConnectFlow = request.app.state.flow
    context["integration"] = flow.catalog.get(result.session.integration_name or "")
    return render(request, "result.html", context)


def render_error(request: Request, exc: PortalError) -> Response:
    response = render(request, "error.html", {"code": exc.code, "status": exc.status},
                      status_code=exc.status)
    response.headers.update(exc.headers)
    return response


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    # A theme the token forces ("light" or "dark"); "auto" follows the browser's setting.
    theme = getattr(context.get("session"), "theme", None)
    if theme in ("light", "dark"):
        context = {"theme": theme, **context}
    if "brand" not in context:
        context["brand"] = brand_for(context.get("session"), request.app.state.settings)
    locale = page_locale(request, context.get("session"))
    with i18n.activated(locale):
        response: Response = request.app.state.templates.TemplateResponse(
            request, template, localized(request, context, locale), status_code=status_code
        )
    response.headers["cache-control"] = "no-store"
    response.headers["content-language"] = locale
    return response


def page_locale(request: Request, session: Any = None) -> str:
    """The session's `locale` (a token field) when it has one, else the browser's."""
    return i18n.negotiate(getattr(session, "locale", None),
                          request.headers.get("accept-language"))


# The context entries that are catalog objects: shown in the page's language.
_CATALOG_ENTRIES = ("integration", "option", "options")


def localized(request: Request, context: dict[str, Any], locale: str) -> dict[str, Any]:
    translations: CatalogTranslations | None = getattr(
        request.app.state, "catalog_translations", None)
    if translations is None or locale == i18n.DEFAULT_LOCALE:
        return context
    swapped = dict(context)
    for key in _CATALOG_ENTRIES:
        value = context.get(key)
        if isinstance(value, list | tuple):
            swapped[key] = type(value)(translations.localized(item, locale) for item in value)
        elif value is not None:
            swapped[key] = translations.localized(value, locale)
    return swapped


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
