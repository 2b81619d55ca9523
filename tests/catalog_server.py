"""A stand-in provider API for the catalog tests, served with `tests.live_servers`."""

from __future__ import annotations

from typing import Any

STARTUP_DEADLINE = 15.0


def provider_app() -> Any:
    """A stand-in for a provider's API: answers like one, and records every request.

    `/v1/me` accepts `Bearer good-key`, `/basic` accepts alice / good-pass; while
    `app.state.down` is set both answer 503, as a provider in trouble does.
    """
    import base64

    import anyio
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, RedirectResponse, Response
    from starlette.routing import Route

    async def me(request: Request) -> Response:
        record(request)
        if request.app.state.down:
            return JSONResponse({"error": "maintenance"}, status_code=503)
        if request.headers.get("authorization") == "Bearer good-key":
            return JSONResponse({"id": "u1"})
        return JSONResponse({"error": "invalid api key"}, status_code=401)

    async def basic(request: Request) -> Response:
        record(request)
        if request.app.state.down:
            return JSONResponse({"error": "maintenance"}, status_code=503)
        expected = "Basic " + base64.b64encode(b"alice:good-pass").decode()
        if request.headers.get("authorization") == expected:
            return JSONResponse({"id": "u1"})
        return JSONResponse({"error": "bad credentials"}, status_code=403)

    async def moved(request: Request) -> Response:
        record(request)
        return RedirectResponse("/v1/me", status_code=302)

    async def slow(request: Request) -> Response:
        record(request)
        # A provider that accepts the connection and never answers in time; the server's
        # shutdown cancels this.
        await anyio.sleep(60)
        return JSONResponse({"id": "u1"})

    def record(request: Request) -> None:
        request.app.state.requests.append({
            "path": request.url.path,
            "query": request.url.query,
            "host": request.headers.get("host"),
            "authorization": request.headers.get("authorization"),
        })

    app = Starlette(routes=[
        Route("/v1/me", me), Route("/basic", basic), Route("/moved", moved),
        Route("/slow", slow),
    ])
    app.state.requests = []
    app.state.down = False
    return app
