"""Real HTTP servers for the catalog tests: an ASGI app under uvicorn on a free loopback
port, in a background thread, ready when `serve` returns."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

STARTUP_DEADLINE = 15.0


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve(app: Any, sock: socket.socket | None = None) -> Iterator[str]:
    """Run `app` until the block ends; yields its base URL, http://127.0.0.1:<port>."""
    sock = sock or free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=2,
    ))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_DEADLINE
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        threading.Event().wait(0.01)  # poll the readiness flag, not a fixed sleep
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


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
