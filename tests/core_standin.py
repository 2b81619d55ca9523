"""A core API stand-in with fault modes, run as a process of its own (`core_standin_process`).

It accepts connections as the real core API must (`POST /api/v1/connections`, bearer key,
`Idempotency-Key`: the same key gives the same connection, 200, never a second one),
lists them (`GET /api/v1/connections[?idempotencyKey=K]`), and receives Standard
Webhooks deliveries (`POST /_webhooks`, checked against CORE_STANDIN_WEBHOOK_SECRET).

A test or benchmark steers it over HTTP, so it can run in another process:

    POST /_control/mode   {"mode": "ok", "latency_ms": 50}
                          {"mode": "status", "status": 503, "retry_after": 2, "for_seconds": 20}
                          {"mode": "slow", "seconds": 20}          saves, then answers late
                          {"mode": "save_then_status", "status": 500}
                          {"mode": "malformed"}                    saves, 201 with a non-JSON body
                          {"mode": "reject", "status": 422, "error": "..."}   saves nothing
                          {"webhook_status": 503, "webhook_for_seconds": 5}   webhooks only
    POST /_control/reset  forget every connection, webhook and count (the mode stays)
    GET  /_control/stats  {"posts", "connections", "by_key", "duplicate_accounts", "webhooks",
                           "posts_by_key", "webhook_attempts", "request_ids", "mode"}

A mode with `for_seconds` ends by itself: each request compares the monotonic clock with
the end of the window, so no background task is needed. `latency_ms` (any mode; without
it the last untimed "ok" latency) delays every connection request before anything else.
The control routes have no authentication: the stand-in is for loopback tests only.

    uvicorn --factory tests.core_standin:app_from_env   (CORE_STANDIN_API_KEY, and
                                                        CORE_STANDIN_WEBHOOK_SECRET optional)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from tests.live_servers import ServerProcess

MODES = frozenset({"ok", "status", "slow", "save_then_status", "malformed", "reject"})
WEBHOOK_TOLERANCE = 5 * 60  # seconds a webhook-timestamp may differ from now (Standard Webhooks)
READY_PATH = "/_control/stats"


class ControlError(ValueError):
    """A /_control/mode body the stand-in does not understand."""


@dataclass(frozen=True)
class Mode:
    name: str = "ok"
    latency: float = 0.0  # seconds
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0
    error: str = "The platform refused this connection."
    until: float | None = None  # monotonic end of the window; None: until changed


@dataclass
class WebhookMode:
    status: int | None = None
    until: float | None = None


@dataclass
class State:
    api_key: str
    webhook_key: bytes | None
    base: Mode = field(default_factory=Mode)
    override: Mode | None = None
    webhook_mode: WebhookMode = field(default_factory=WebhookMode)
    posts: int = 0
    connections: list[dict[str, Any]] = field(default_factory=list)
    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_by_key: Counter[str] = field(default_factory=Counter)
    posts_by_key: Counter[str] = field(default_factory=Counter)
    webhooks: Counter[str] = field(default_factory=Counter)
    webhook_attempts: int = 0
    # The X-Request-ID of each connection request (POST and GET), in arrival order.
    request_ids: list[str | None] = field(default_factory=list)

    def mode(self) -> Mode:
        """The mode in force now: a timed one until its window ends, then the base."""
        override = self.override
        if override is not None and (override.until is None or time.monotonic() < override.until):
            return override
        self.override = None
        return self.base

    def webhook_status(self) -> int | None:
        mode = self.webhook_mode
        if mode.status is not None and (mode.until is None or time.monotonic() < mode.until):
            return mode.status
        self.webhook_mode = WebhookMode()
        return None

    def save(self, key: str | None, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The connection for `key`, created unless the key already has one; and whether it
        was created. No await in here, so two requests with one key cannot both create."""
        if key and key in self.by_key:
            return self.by_key[key], False
        record = {
            "id": f"conn_{uuid.uuid4().hex[:20]}",
            "idempotencyKey": key,
            "externalId": body.get("externalId"),
            "integrationName": body.get("integrationName"),
            "receivedAt": datetime.now(tz=UTC).isoformat(timespec="milliseconds"),
        }
        self.connections.append(record)
        if key:
            self.by_key[key] = record
            self.created_by_key[key] += 1
        return record, True

    def stats(self) -> dict[str, Any]:
        accounts = Counter(record["externalId"] for record in self.connections)
        mode = self.mode()
        return {
            "posts": self.posts,
            "connections": [{name: record[name] for name in ("id", "idempotencyKey", "externalId")}
                            for record in self.connections],
            "by_key": dict(self.created_by_key),
            "duplicate_accounts": sum(1 for count in accounts.values() if count > 1),
            "webhooks": dict(self.webhooks),
            "posts_by_key": dict(self.posts_by_key),
            "webhook_attempts": self.webhook_attempts,
            "request_ids": list(self.request_ids),
            "mode": {"name": mode.name, "latency_ms": round(mode.latency * 1000),
                     "remaining_s": (None if mode.until is None
                                     else round(max(0.0, mode.until - time.monotonic()), 3))},
        }

    def reset(self) -> None:
        self.posts = 0
        self.connections.clear()
        self.by_key.clear()
        self.created_by_key.clear()
        self.posts_by_key.clear()
        self.webhooks.clear()
        self.webhook_attempts = 0
        self.request_ids.clear()


def create_standin_app(api_key: str, *, webhook_secret: str | None = None) -> Starlette:
    state = State(api_key=api_key, webhook_key=_webhook_key(webhook_secret))

    def authorized(request: Request) -> bool:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
        return hmac.compare_digest(presented, api_key.encode())

    def unauthorized() -> Response:
        return JSONResponse({"error": "Invalid API key", "code": "UNAUTHORIZED"}, 401)

    async def create(request: Request) -> Response:
        state.posts += 1
        state.request_ids.append(request.headers.get("x-request-id"))
        if not authorized(request):
            return unauthorized()
        mode = state.mode()
        if mode.latency:
            await asyncio.sleep(mode.latency)
        key = request.headers.get("idempotency-key") or None
        if key:
            state.posts_by_key[key] += 1
        if mode.name == "status":
            headers = {"Retry-After": mode.retry_after} if mode.retry_after else None
            return JSONResponse({"error": "Unavailable", "code": "UNAVAILABLE"}, mode.status,
                                headers=headers)
        if mode.name == "reject":
            return JSONResponse({"error": mode.error, "code": "VALIDATION_ERROR"}, mode.status)
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("integrationName"):
            return JSONResponse({"error": "integrationName is required",
                                 "code": "VALIDATION_ERROR"}, 400)
        record, created = state.save(key, body)
        answer = {"connection": {"id": record["id"],
                                 "integrationName": record["integrationName"],
                                 "externalId": record["externalId"]}}
        if mode.name == "slow":
            await asyncio.sleep(mode.seconds)
        elif mode.name == "save_then_status":
            return JSONResponse({"error": "Internal error", "code": "INTERNAL"}, mode.status)
        elif mode.name == "malformed":
            return Response("<html>not json", 201 if created else 200,
                            media_type="application/json")
        return JSONResponse(answer, 201 if created else 200)

    async def listing(request: Request) -> Response:
        state.request_ids.append(request.headers.get("x-request-id"))
        if not authorized(request):
            return unauthorized()
        key = request.query_params.get("idempotencyKey")
        found = (state.connections if key is None
                 else [record for record in state.connections if record["idempotencyKey"] == key])
        return JSONResponse({"connections": found})

    async def set_mode(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise ControlError("the body must be a JSON object")
            _apply(state, body)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse(state.stats()["mode"])

    async def reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"reset": True})

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    async def webhook(request: Request) -> Response:
        if state.webhook_key is None:
            return JSONResponse({"error": "no CORE_STANDIN_WEBHOOK_SECRET"}, 404)
        state.webhook_attempts += 1
        forced = state.webhook_status()
        if forced is not None:
            return JSONResponse({"error": "forced by /_control/mode"}, forced)
        body = await request.body()
        webhook_id = request.headers.get("webhook-id", "")
        if not webhook_id or not _signed(state.webhook_key, webhook_id,
                                         request.headers.get("webhook-timestamp", ""),
                                         request.headers.get("webhook-signature", ""), body):
            return JSONResponse({"error": "bad signature"}, 400)
        state.webhooks[webhook_id] += 1
        return JSONResponse({"received": True})

    app = Starlette(routes=[
        Route("/api/v1/connections", create, methods=["POST"]),
        Route("/api/v1/connections", listing, methods=["GET"]),
        Route("/_control/mode", set_mode, methods=["POST"]),
        Route("/_control/reset", reset, methods=["POST"]),
        Route("/_control/stats", stats, methods=["GET"]),
        Route("/_webhooks", webhook, methods=["POST"]),
    ])
    app.state.standin = state
    return app


def app_from_env() -> Starlette:
    """The uvicorn factory: CORE_STANDIN_API_KEY, optional CORE_STANDIN_WEBHOOK_SECRET."""
    api_key = os.environ.get("CORE_STANDIN_API_KEY", "")
    if not api_key:
        raise RuntimeError("CORE_STANDIN_API_KEY is required")
    return create_standin_app(api_key,
                              webhook_secret=os.environ.get("CORE_STANDIN_WEBHOOK_SECRET") or None)


def _apply(state: State, body: dict[str, Any]) -> None:
    """Set the core and/or the webhook mode from a /_control/mode body (or raise)."""
    window = body.get("for_seconds")
    if "mode" in body:
        name = body["mode"]
        if name not in MODES:
            raise ControlError(f"mode must be one of {sorted(MODES)}")
        latency = (float(body["latency_ms"]) / 1000 if "latency_ms" in body
                   else state.base.latency)
        retry_after = body.get("retry_after")
        mode = Mode(
            name=name, latency=latency,
            status=int(body.get("status", 422 if name == "reject" else
                                503 if name == "status" else 500)),
            retry_after=None if retry_after is None else str(retry_after),
            seconds=float(body.get("seconds", 0)),
            error=str(body.get("error", Mode.error)),
            until=None if window is None else time.monotonic() + float(window),
        )
        if name == "ok" and window is None:
            state.base, state.override = mode, None
        else:
            state.override = mode
    if "webhook_status" in body:
        status = body["webhook_status"]
        webhook_window = body.get("webhook_for_seconds")
        state.webhook_mode = WebhookMode(
            status=None if status is None else int(status),
            until=None if webhook_window is None else time.monotonic() + float(webhook_window))


def _webhook_key(secret: str | None) -> bytes | None:
    if secret is None:
        return None
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise RuntimeError("CORE_STANDIN_WEBHOOK_SECRET must be whsec_<base64>") from None


def _signed(key: bytes, webhook_id: str, timestamp: str, signatures: str, body: bytes) -> bool:
    """Standard Webhooks: one of the space-separated `v1,<base64>` signatures is the
    HMAC-SHA256 of "id.timestamp.body", and the timestamp is recent."""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > WEBHOOK_TOLERANCE:
        return False
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(signature.encode(), expected.encode())
        for version, _, signature in (item.partition(",") for item in signatures.split())
    )


# -- running it, and steering it, from a test or benchmark ----------------------------------

def core_standin_process(log_path: Path, *, api_key: str,
                         webhook_secret: str | None = None) -> ServerProcess:
    """The stand-in as a `ServerProcess` on a socket bound here (one uvicorn worker, so
    all its state is in one process); ready once its stats answer."""
    # Imported here: the app itself (what the child process imports) needs none of it.
    from tests.live_servers import bound_socket, uvicorn_process

    env = {"CORE_STANDIN_API_KEY": api_key}
    if webhook_secret is not None:
        env["CORE_STANDIN_WEBHOOK_SECRET"] = webhook_secret
    return uvicorn_process("tests.core_standin:app_from_env", env=env, log_path=log_path,
                           sock=bound_socket(), ready_path=READY_PATH)


def set_mode(url: str, **body: Any) -> dict[str, Any]:
    """POST /_control/mode with `body`; the mode in force afterwards."""
    response = httpx.post(f"{url}/_control/mode", json=body, timeout=10)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def stats(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}{READY_PATH}", timeout=10)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def reset(url: str) -> None:
    httpx.post(f"{url}/_control/reset", timeout=10).raise_for_status()
