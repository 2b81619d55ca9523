"""The floor the portal is measured against: a bare Starlette endpoint doing one Redis GET.

Run under uvicorn with `--factory bench.floor:create_floor_app`; it reads
`BENCH_REDIS_URL` and `BENCH_REDIS_PREFIX`. The Redis client is the portal's own
(`portal.store.stores.redis_client`), so the only difference left is the portal's work.

For `bench/run.py --breakdown`, two steps between the floor and the portal:
`GET /record/{sessionId}` reads the portal's session record (one GET), parses it and
returns it as JSON,
and `create_floor_app_with_portal_middleware` is the same app behind the portal's own
middleware and logging set-up.

For `bench/wrk.py`, `GET /page/{size}` returns a fixed HTML page of exactly `size` bytes
(built once per size, no Redis): what serving the connect page would cost if rendering
it were free.

For `bench/run.py --access-log-compare`, `create_portal_with_sync_log` is the portal as
`serve` runs it (`portal.asgi:app_from_env`) but with every log record, the access line
included, formatted and written in the request's own task instead of through the queue.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from portal.app import create_app
from portal.logs import configure_logging
from portal.middleware import PortalMiddleware
from portal.settings import Settings
from portal.store.stores import redis_client


def create_floor_app(middleware: list[Middleware] | None = None) -> Starlette:
    url = os.environ["BENCH_REDIS_URL"]
    prefix = os.environ["BENCH_REDIS_PREFIX"]
    client = redis_client(url)

    async def lookup(request: Request) -> Response:
        value = await client.get(f"{prefix}floor:{request.path_params['key']}")
        if value is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response(value, media_type="application/json")

    async def session_record(request: Request) -> Response:
        raw = await client.get(f"{prefix}session:{request.path_params['session_id']}")
        if raw is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({"session": json.loads(raw)})

    async def constant(request: Request) -> Response:
        # No Redis at all: how fast the load generator can go against this server.
        return JSONResponse({"status": "ok"})

    pages: dict[int, bytes] = {}

    async def static_page(request: Request) -> Response:
        size: int = request.path_params["size"]
        if size not in pages:
            pages[size] = fixed_page(size)
        return HTMLResponse(pages[size])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    return Starlette(
        routes=[
            Route("/floor/{key}", lookup),
            Route("/record/{session_id}", session_record),
            Route("/ceiling", constant),
            Route("/page/{size:int}", static_page),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )


def fixed_page(size: int) -> bytes:
    """An HTML page of exactly `size` bytes (at least the bare frame's length)."""
    head = b"<!doctype html><html><head><title>Connect</title></head><body><p>"
    tail = b"</p></body></html>\n"
    filler = size - len(head) - len(tail)
    return head + b"x" * max(0, filler) + tail


def create_floor_app_with_portal_middleware() -> Starlette:
    configure_logging(os.environ.get("PORTAL_LOG_LEVEL", "INFO"))
    return create_floor_app(
        [Middleware(PortalMiddleware)]
    )


def create_portal_with_sync_log() -> Starlette:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format, queued=False)
    settings.require_production_secrets()
    return create_app(settings)
