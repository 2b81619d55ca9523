"""`create_app(settings)`: the one table of routes, middleware and lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from portal import errors, ssrf
from portal.auth.credentials.checker import CredentialChecker
from portal.auth.oauth.apps import OAuthApps, load_platform_apps
from portal.auth.oauth.flow import OAuthFlow
from portal.auth.oauth.provider import ClientApp, ProviderClient
from portal.catalog import Catalog, load_catalog
from portal.core_api import CoreApiClient
from portal.flow import ConnectFlow
from portal.markdown import render_markdown
from portal.middleware import (
    PortalMiddleware,
    body_limit,
    csp_nonce,
    security_headers,
)
from portal.outbound import HostCheck, OutboundPolicy
from portal.resources import static_dir, templates_dir
from portal.settings import Settings, SettingsError
from portal.store import SessionStore, open_store
from portal.store.oauth_state import open_state_store
from portal.tokens import Signer
from portal.views import api, health, oauth, pages
from portal.views.common import error_response
from portal.webhooks import WebhookSender

logger = logging.getLogger("portal")


def create_app(
    settings: Settings,
    *,
    store: SessionStore | None = None,
    catalog: Catalog | None = None,
    core_transport: httpx.AsyncBaseTransport | None = None,
    oauth_transport: httpx.AsyncBaseTransport | None = None,
    oauth_apps: Mapping[str, ClientApp] | None = None,
    outbound_lookup: ssrf.Lookup | None = None,
) -> Starlette:
    """Build the portal. `store`, `catalog`, the transports and `oauth_apps` (platform apps
    besides PORTAL_OAUTH_APPS) are for tests and the demo; `outbound_lookup` replaces the
    name service of every outbound request (tests map made-up names to addresses)."""
    # A bad catalog stops start-up here, naming the file, the entry and the field.
    catalog = catalog or load_catalog(settings.catalog_paths)
    if not settings.secret_keys:
        raise SettingsError("PORTAL_SECRET_KEYS is required")
    if not settings.core_api_url or not settings.core_api_key:
        raise SettingsError("CORE_API_URL and CORE_API_KEY are required")
    platform_apps = {**load_platform_apps(settings.oauth_apps_file), **(oauth_apps or {})}
    # The one outbound policy: every request that leaves the portal is checked against it.
    try:
        outbound = OutboundPolicy.from_setting(settings.outbound_allow,
                                               allow_http_loopback=settings.allow_http_loopback)
    except ValueError as exc:
        raise SettingsError(f"PORTAL_OUTBOUND_ALLOW: {exc}") from None
    lookup = outbound_lookup or ssrf.system_lookup

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        session_store = store or open_store(settings.redis_url, prefix=settings.redis_prefix)
        if settings.redis_url is None and store is None:
            logger.warning(
                "REDIS_URL is not set: sessions are kept in this process only. "
                "Run a single process, and expect sessions to be lost on restart."
            )
        core = CoreApiClient(
            base_url=settings.core_api_url or "",
            api_key=settings.core_api_key or "",
            timeout=settings.core_api_timeout,
            transport=core_transport,
            policy=outbound,
            lookup=lookup,
        )
        checker = CredentialChecker(
            timeout=settings.verification_timeout,
            allow_http_loopback=settings.allow_http_loopback,
            policy=outbound,
            lookup=lookup,
        )
        if not settings.verify_credentials:
            logger.warning("PORTAL_VERIFY_CREDENTIALS is off: credentials are saved unchecked")
        webhooks = None
        if settings.webhook_secret:
            webhooks = WebhookSender(
                url=settings.webhook_url,
                secret=settings.webhook_secret,
                retry_delays=settings.webhook_retry_delays,
                policy=outbound,
                lookup=lookup,
            )
        app.state.flow = ConnectFlow(
            settings=settings,
            catalog=catalog,
            store=session_store,
            signer=Signer(settings.secret_keys),
            core=core,
            checker=checker if settings.verify_credentials else None,
            webhooks=webhooks,
            hosts=HostCheck(outbound, lookup=lookup),
        )
        oauth_states = open_state_store(settings.redis_url, prefix=settings.redis_prefix)
        provider = ProviderClient(timeout=settings.oauth_timeout, transport=oauth_transport,
                                  policy=outbound, lookup=lookup)
        app.state.oauth = OAuthFlow(
            flow=app.state.flow,
            provider=provider,
            apps=OAuthApps(platform=platform_apps, core=core),
            states=oauth_states,
        )
        logger.info("portal ready at %s (sessions: %s)", settings.public_url,
                    session_store.description)
        try:
            yield
        finally:
            await oauth_states.close()
            await checker.aclose()
            await provider.aclose()
            if webhooks is not None:
                await webhooks.aclose()
            await core.aclose()
            await session_store.close()

    json_body = body_limit(settings.max_json_body)
    form_body = body_limit(settings.max_form_body)
    app = Starlette(
        routes=[
            Route("/api/v1/connect/token", api.create_token, methods=["POST"],
                  middleware=json_body),
            Route("/api/v1/connect/session/poll", api.poll_session, methods=["POST"],
                  middleware=json_body),
            Route("/api/v1/connect/session/poll", api.poll_preflight, methods=["OPTIONS"]),
            Route("/api/v1/connect/session/{session_id}", api.get_session, methods=["GET"]),
            Route("/api/v1/integrations", api.list_integrations, methods=["GET"]),
            Route("/api/v1/openapi.json", api.openapi, methods=["GET"]),
            Route("/connect", pages.open_link, methods=["GET"]),
            Route("/connect/s/{session_id}", pages.show_session, methods=["GET"]),
            Route("/connect/s/{session_id}", pages.submit_session, methods=["POST"],
                  middleware=form_body),
            Route("/connect/s/{session_id}/oauth", oauth.start, methods=["POST"],
                  middleware=form_body),
            Route("/oauth/callback", oauth.callback, methods=["GET"]),
            Route("/api/v1/oauth/refresh", oauth.refresh, methods=["POST"],
                  middleware=json_body),
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", health.readyz, methods=["GET"]),
            Mount("/static", StaticFiles(directory=static_dir()), name="static"),
        ],
        middleware=[
            Middleware(PortalMiddleware, frame_ancestors=settings.frame_ancestors),
        ],
        exception_handlers={
            errors.PortalError: handle_portal_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected_error,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.templates = Jinja2Templates(
        directory=templates_dir(), context_processors=[template_nonce]
    )
    app.state.templates.env.filters["markdown"] = render_markdown
    return app


def template_nonce(request: Request) -> dict[str, Any]:
    """Templates mark their scripts with `nonce="{{ csp_nonce() }}"`; only a page that
    does draws a nonce."""
    return {"csp_nonce": lambda: csp_nonce(request.state)}


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def handle_portal_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.PortalError)
    if _wants_json(request):
        return error_response(exc)
    return pages.render_error(request, exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = errors.PortalError(exc.detail if isinstance(exc.detail, str) else "Request failed.")
    error.status = exc.status_code
    error.code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
    return await handle_portal_error(request, error)


async def handle_unexpected_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the operator's log; the user gets a plain page or envelope.
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    error = errors.PortalError("Something went wrong on our side.")
    error.status = 500
    error.code = "INTERNAL_ERROR"
    response = await handle_portal_error(request, error)
    # This answer is sent from outside the middleware stack: add its headers here.
    settings: Settings = request.app.state.settings
    response.headers.update(security_headers(request.scope.setdefault("state", {}),
                                             settings.frame_ancestors))
    return response
