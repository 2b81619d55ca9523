"""`create_app(settings)`: the one table of routes, middleware and lifespan."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.templating import Jinja2Templates

from portal import errors, i18n, metrics, ssrf
from portal.auth.credentials import CredentialFamily
from portal.auth.credentials.checker import CredentialChecker
from portal.auth.oauth.apps import OAuthApps, load_platform_apps
from portal.auth.oauth.callback import OAuthCallback
from portal.auth.oauth.family import OAuthFamily
from portal.auth.oauth.provider import ClientApp, ProviderClient
from portal.auth.oauth.refresh import TokenRefresh
from portal.auth.oauth.state import OAuthStates
from portal.auth.registry import AuthRegistry
from portal.brand import BrandLogos
from portal.catalog import Catalog, load_catalog
from portal.catalog.i18n import CatalogTranslations
from portal.compression import Compression
from portal.core_api import CoreApiClient
from portal.delivery import OUTBOX_PURPOSE, Delivery, DeliveryTiming
from portal.end_users import EndUserApi
from portal.end_users.invites import Invites
from portal.end_users.links import EndUserLinks
from portal.end_users.portal_page import EndUserPortal
from portal.flow import ConnectFlow
from portal.markdown import render_markdown
from portal.middleware import (
    PortalMiddleware,
    body_limit,
    csp_nonce,
    security_headers,
)
from portal.outbound import HostCheck
from portal.rate_limits import PageRateLimit, RateLimits
from portal.resources import static_dir, templates_dir
from portal.sealing import Sealer
from portal.settings import Settings
from portal.static_assets import COMPRESS_EXCLUDED_TYPES, COMPRESS_MINIMUM_SIZE, StaticAssets
from portal.store import SessionStore
from portal.store.logos import MemoryLogoCache, RedisLogoCache
from portal.store.oauth_state import OAuthStateStore
from portal.store.stores import open_stores
from portal.tokens import Signer
from portal.views import api, brand, end_user_api, end_user_pages, health, oauth, pages
from portal.views.common import error_response
from portal.views.render import render_error
from portal.webhooks import WebhookSender

logger = logging.getLogger("portal")


def create_app(
    settings: Settings,
    *,
    store: SessionStore | None = None,
    oauth_states: OAuthStateStore | None = None,
    catalog: Catalog | None = None,
    core_transport: httpx.AsyncBaseTransport | None = None,
    oauth_transport: httpx.AsyncBaseTransport | None = None,
    oauth_apps: Mapping[str, ClientApp] | None = None,
    outbound_lookup: ssrf.Lookup | None = None,
    clock: Callable[[], float] = time.time,
    delivery_timing: DeliveryTiming | None = None,
    start_delivery_worker: bool = True,
) -> Starlette:
    """Build the portal from `settings` (validated where they are made, portal/settings.py).

    Everything else the portal depends on is made here from the settings, and each can
    be passed in instead, by tests and the demo:

    - `store`, `oauth_states`: the session store and the OAuth state store (by default
      both on one Redis client, or in this process without REDIS_URL). The portal closes
      the stores it opens; one passed in is the caller's to close.
    - `catalog`: instead of the built-in catalog and PORTAL_CATALOG.
    - `core_transport`, `oauth_transport`: the network under the core API client and the
      OAuth provider client (an `httpx.ASGITransport` to an app in the test).
    - `oauth_apps`: platform OAuth apps besides PORTAL_OAUTH_APPS.
    - `outbound_lookup`: the name service of every outbound request (tests map made-up
      names to addresses).
    - `clock`: the wall clock (seconds since the epoch) that session and token expiry and
      webhook timestamps are read from.
    - `delivery_timing`: the clock of the outbox (portal/delivery.py) instead of the one
      made from the settings (tests shorten its pauses and lease).
    - `start_delivery_worker`: False leaves queued jobs to other processes (a test that
      watches a job wait for another process); the inline attempt still runs.
    """
    # A bad catalog stops start-up here, naming the file, the entry and the field.
    catalog = catalog or load_catalog(settings.catalog_paths)
    settings.require_runnable()
    platform_apps = {**load_platform_apps(settings.oauth_apps_file), **(oauth_apps or {})}
    # The one outbound policy: every request that leaves the portal is checked against it.
    outbound = settings.outbound_policy
    lookup = outbound_lookup or ssrf.system_lookup
    timing = delivery_timing or timing_from(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Only what is not passed in is opened (on one Redis client for both).
        stores = open_stores(settings.redis_url if store is None or oauth_states is None
                             else None, prefix=settings.redis_prefix,
                             outbox_shards=settings.outbox_shards,
                             sentinel_password=settings.redis_sentinel_password)
        session_store = store or stores.sessions
        state_store = oauth_states or stores.oauth_states
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
        checker = None
        if settings.verify_credentials:
            checker = CredentialChecker(
                timeout=settings.verification_timeout,
                allow_http_loopback=settings.allow_http_loopback,
                policy=outbound,
                lookup=lookup,
            )
        else:
            logger.warning("PORTAL_VERIFY_CREDENTIALS is off: credentials are saved unchecked")
        webhooks = None
        if settings.webhook_secret:
            webhooks = WebhookSender(
                url=settings.webhook_url,
                secret=settings.webhook_secret,
                clock=clock,
                policy=outbound,
                lookup=lookup,
            )
        provider = ProviderClient(timeout=settings.oauth_timeout, transport=oauth_transport,
                                  policy=outbound, lookup=lookup)
        oauth_family = OAuthFamily(
            public_url=settings.public_url,
            provider=provider,
            apps=OAuthApps(platform=platform_apps, core=core),
            states=OAuthStates(state_store, secret_keys=settings.secret_keys,
                               secure_cookies=settings.secure_cookies),
            allow_http_loopback=settings.allow_http_loopback,
        )
        credential_family = CredentialFamily(
            allow_http_loopback=settings.allow_http_loopback,
            checker=checker,
            hosts=HostCheck(outbound, lookup=lookup),
        )
        delivery = Delivery(
            store=session_store,
            core=core,
            sealer=Sealer(settings.outbox_keys or settings.secret_keys, purpose=OUTBOX_PURPOSE),
            webhooks=webhooks,
            timing=timing,
            clock=clock,
        )
        app.state.flow = ConnectFlow(
            settings=settings,
            catalog=catalog,
            store=session_store,
            signer=Signer(settings.secret_keys),
            delivery=delivery,
            families=AuthRegistry.of(credentials=credential_family, oauth=oauth_family),
            clock=clock,
        )
        app.state.oauth_callback = OAuthCallback(flow=app.state.flow, family=oauth_family)
        # End-user links (eut_): minted and revoked by the backend API, read by the page.
        links = EndUserLinks(settings.secret_keys, stores.revocations, clock=clock)
        app.state.end_user_portal = EndUserPortal(flow=app.state.flow, core=core, links=links)
        app.state.end_user_api = EndUserApi(
            public_url=settings.public_url, catalog=catalog, core=core, links=links,
            invites=Invites.from_settings(settings, redis=stores.redis))
        app.state.oauth_refresh = TokenRefresh(catalog=catalog, family=oauth_family)
        app.state.rate_limits = RateLimits.from_settings(settings, redis=stores.redis)
        app.state.brand_logos = BrandLogos(
            cache=(RedisLogoCache(stores.redis, prefix=settings.redis_prefix)
                   if stores.redis is not None else MemoryLogoCache()),
            policy=outbound, lookup=lookup)
        logger.info("portal ready at %s (sessions: %s)", settings.public_url,
                    session_store.description)
        if start_delivery_worker:
            delivery.start()
        try:
            yield
        finally:
            await delivery.stop()
            if checker is not None:
                await checker.aclose()
            await provider.aclose()
            await app.state.brand_logos.aclose()
            if webhooks is not None:
                await webhooks.aclose()
            await core.aclose()
            await stores.close()

    assets = StaticAssets(static_dir())  # content hashes, computed once at start
    json_body = body_limit(settings.max_json_body)
    form_body = body_limit(settings.max_form_body)
    app = Starlette(
        # Tried in order for every request: the hot paths (lookup, poll) come first.
        routes=[
            Route("/api/v1/connect/session/{session_id}", api.get_session, methods=["GET"]),
            Route("/api/v1/connect/session/poll", api.poll_session, methods=["POST"],
                  middleware=json_body),
            Route("/api/v1/connect/session/poll", api.poll_preflight, methods=["OPTIONS"]),
            Route("/api/v1/connect/token", api.create_token, methods=["POST"],
                  middleware=json_body),
            Route("/api/v1/integrations", api.list_integrations, methods=["GET"]),
            Route("/api/v1/openapi.json", api.openapi, methods=["GET"]),
            Route("/connect", pages.open_link, methods=["GET"]),
            Route("/connect/s/{session_id}", pages.show_session, methods=["GET"]),
            Route("/connect/s/{session_id}", pages.submit_session, methods=["POST"],
                  middleware=form_body),
            Route("/connect/s/{session_id}/status", pages.session_status, methods=["GET"]),
            Route("/connect/s/{session_id}/oauth", oauth.start, methods=["POST"],
                  middleware=form_body),
            Route("/connect/s/{session_id}/brand-logo", brand.logo, methods=["GET"]),
            Route("/connect/brand/{accent}.css", brand.stylesheet, methods=["GET"]),
            Route("/oauth/callback", oauth.callback, methods=["GET"]),
            Route("/api/v1/oauth/refresh", oauth.refresh, methods=["POST"],
                  middleware=json_body),
            Route("/api/v1/end-users/{end_user_id}/connect-token", end_user_api.create_link,
                  methods=["POST"], middleware=json_body),
            Route("/api/v1/end-users/{end_user_id}/invite", end_user_api.invite,
                  methods=["POST"], middleware=json_body),
            Route("/api/v1/end-users/{end_user_id}/connect-tokens",
                  end_user_api.revoke_all_links, methods=["DELETE"]),
            Route("/api/v1/end-users/{end_user_id}/connect-tokens/revoke",
                  end_user_api.revoke_link, methods=["POST"], middleware=json_body),
            Route("/connect/portal", end_user_pages.show_portal, methods=["GET"]),
            Route("/connect/portal/connect", end_user_pages.connect, methods=["POST"],
                  middleware=form_body),
            Route("/connect/portal/connections/{connection_id}/reconnect",
                  end_user_pages.reconnect, methods=["POST"], middleware=form_body),
            Route("/connect/portal/connections/{connection_id}/disconnect",
                  end_user_pages.confirm_disconnect, methods=["GET"]),
            Route("/connect/portal/connections/{connection_id}/disconnect",
                  end_user_pages.disconnect, methods=["POST"], middleware=form_body),
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", health.readyz, methods=["GET"]),
            Route("/metrics", metrics.metrics_endpoint, methods=["GET"]),
            Mount("/static", assets.files(), name="static"),
        ],
        middleware=[
            Middleware(PortalMiddleware, frame_ancestors=settings.frame_ancestors),
            Middleware(PageRateLimit),
            # Inside PortalMiddleware (its headers and access line see the final answer);
            # streamed bodies stay streamed. No HTML: see portal/static_assets.py.
            Middleware(Compression, minimum_size=COMPRESS_MINIMUM_SIZE,
                       exclude_content_types=COMPRESS_EXCLUDED_TYPES),
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
    # The templates ship with the portal and never change under a running process: no
    # stat() of each template file on every render (about 15 µs of a form page's ~1.2 ms
    # here; bench/README.md, "wrk").
    app.state.templates.env.auto_reload = False
    app.state.templates.env.filters["markdown"] = render_markdown
    app.state.templates.env.globals["static_url"] = assets.url
    # The pages' languages (portal/i18n.py), and the catalog's words in each of them.
    app.state.catalog_translations = CatalogTranslations.load(catalog)
    i18n.install(app.state.templates.env, catalog=app.state.catalog_translations)
    return app


def timing_from(settings: Settings) -> DeliveryTiming:
    """The outbox's clock from the settings; a lease well over any one attempt."""
    longest_attempt = max(settings.core_api_timeout, 5.0)  # 5 s: a webhook's timeout
    lease = 2 * longest_attempt + 5
    return DeliveryTiming(
        inline_budget=settings.delivery_inline_budget,
        deadline=settings.delivery_deadline,
        retry_cap=settings.delivery_retry_cap,
        lease=lease,
        reconcile_after=max(300.0, 4 * lease),
    )


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
    return render_error(request, exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "Request failed."
    return await handle_portal_error(request, errors.for_http_status(exc.status_code, message))


async def handle_unexpected_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the operator's log; the user gets a plain page or envelope.
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    response = await handle_portal_error(
        request, errors.InternalError("Something went wrong on our side."))
    # This answer is sent from outside the middleware stack: add its headers here.
    settings: Settings = request.app.state.settings
    response.headers.update(security_headers(request.scope.setdefault("state", {}),
                                             settings.frame_ancestors))
    return response
