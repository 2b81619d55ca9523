"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portal.store import StoreUnavailable


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    store = request.app.state.flow.store
    try:
        await store.ping()
    except StoreUnavailable:
        return JSONResponse(
            {"status": "unavailable", "store": store.description}, status_code=503
        )
    return JSONResponse({"status": "ready", "store": store.description})
