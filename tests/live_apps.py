"""Small apps the end-to-end tests run beside the portal: a core API that can refuse,
a partner page that uses static/connect.js from the portal, a webhook receiver.

`core_app` and `partner_app` are uvicorn factories (`--factory tests.live_apps:…`),
configured by environment variables so they run in processes of their own.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.demo.core import create_core_app

REFUSED_PREFIX = "reject"


async def read_body(receive: Receive) -> bytes:
    """The whole request body of an ASGI request."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def external_id_of(body: bytes) -> str:
    """The `externalId` of a create (or update) body, "" when it has none."""
    try:
        return str(json.loads(body).get("externalId", ""))
    except (ValueError, AttributeError):
        return ""


def replayed(body: bytes) -> Receive:
    """A `receive` that hands a body already read on to the next app."""
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def refusing_core(api_key: str) -> ASGIApp:
    """The demo core API, except that it refuses connections whose externalId starts with
    "reject" (422), the way a platform refuses a key it cannot use."""
    inner = create_core_app(api_key)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await inner(scope, receive, send)
            return
        body = await read_body(receive)
        external_id = external_id_of(body)
        if external_id.startswith(REFUSED_PREFIX):
            refusal = JSONResponse(
                {"error": "The platform refused this key.", "code": "VALIDATION_ERROR"}, 422)
            await refusal(scope, receive, send)
            return
        await inner(scope, replayed(body), send)

    return app


def core_app() -> ASGIApp:
    return refusing_core(os.environ["CORE_API_KEY"])


PARTNER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Partner</title></head>
<body>
<h1>Partner</h1>
<button id="connect">Connect</button>
<output id="outcome">not started</output>
<script src="%(portal)s/static/connect.js"></script>
<script>
  // Every message this page receives, from anyone, is recorded: tests assert on it.
  window.messages = [];
  window.addEventListener("message", function (event) {
    window.messages.push({origin: event.origin, data: event.data});
  });
  window.calls = [];
  window.connectOutcome = null;
  window.connectOptions = null;
  function start() {
    var options = Object.assign({}, window.connectOptions, {
      onSuccess: function (r) { window.calls.push(["onSuccess", r]); },
      onError: function (r) { window.calls.push(["onError", r]); },
      onClose: function (r) { window.calls.push(["onClose", r]); }
    });
    PortalConnect.open(options).then(function (result) {
      window.connectOutcome = result;
      document.getElementById("outcome").textContent = result.status;
    });
  }
  document.getElementById("connect").addEventListener("click", start);
  // A page that opens the portal by itself, with no click: popup blockers stop that.
  if (location.hash.length > 1) {
    window.connectOptions = JSON.parse(decodeURIComponent(location.hash.slice(1)));
    start();
  }
</script>
</body></html>
"""


def partner_app() -> Starlette:
    portal = os.environ["PORTAL_URL"]

    async def page(request: Request) -> Response:
        return HTMLResponse(PARTNER_PAGE % {"portal": portal})

    async def done(request: Request) -> Response:
        return JSONResponse({"path": request.url.path, "query": list(request.query_params.items())})

    return Starlette(routes=[Route("/", page), Route("/done", done), Route("/failed", done)])


class WebhookReceiver:
    """A partner's webhook endpoint: verifies each delivery with the `standardwebhooks`
    library (not the portal's code), answers 204 or 400, and can fail on purpose."""

    def __init__(self, secret: str, *, failures: int = 0) -> None:
        self.secret = secret
        self.failures_left = failures
        self.deliveries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/hooks", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            payload = None
        with self._lock:
            record = {"body": body, "headers": headers, "payload": payload}
            self.deliveries.append(record)
            if payload is None:
                return Response(status_code=400)
            if self.failures_left > 0:
                self.failures_left -= 1
                return Response(status_code=503)
        return Response(status_code=204)

    @property
    def verified(self) -> list[dict[str, Any]]:
        return [item["payload"] for item in self.deliveries if item["payload"] is not None]
