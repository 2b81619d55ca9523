"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from portal import metrics
from portal.store import StoreUnavailable


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready while the store answers: the portal can take connections then, even with the
    core API down (they wait in the outbox). `outbox` says how many jobs are queued and
    how long the oldest has waited: a growing depth means deliveries are not getting
    through."""
    flow = request.app.state.flow
    store = flow.store
    try:
        await store.ping()
        depth = await flow.delivery.outbox.depth(now=flow.clock())
        metrics.outbox_depth(depth)
    except StoreUnavailable:
        return JSONResponse(
            {"status": "unavailable", "store": store.description}, status_code=503
        )
    return JSONResponse({
        "status": "ready",
        "store": store.description,
        "outbox": {"depth": depth.jobs, "oldestAgeSeconds": round(depth.oldest_age, 1),
                   "inFlightHere": flow.delivery.in_flight},
    })
