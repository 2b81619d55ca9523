"""A demo core API: accepts connections like the platform would and lists them.

It honours `Idempotency-Key` the way the real core API must: the same key returns the
same connection and never creates a second one.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from portal.resources import static_dir, templates_dir

SECRET_FIELDS = ("secretText", "password", "accessToken", "refreshToken")


def create_core_app(api_key: str) -> Starlette:
    """`app.state.oauth_apps` maps an OAuth app id to `{integrationName, clientId,
    clientSecret}`: the customers' own apps, served to the portal by id."""
    connections: list[dict[str, Any]] = []
    oauth_apps: dict[str, dict[str, str]] = {}
    by_idempotency_key: dict[str, dict[str, Any]] = {}
    templates = Jinja2Templates(directory=templates_dir())

    def authorized(request: Request) -> bool:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
        return hmac.compare_digest(presented, api_key.encode())

    async def create(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"error": "Invalid API key", "code": "UNAUTHORIZED"}, 401)
        key = request.headers.get("idempotency-key")
        if key and key in by_idempotency_key:
            return JSONResponse({"connection": _summary(by_idempotency_key[key])}, 200)
        body = await request.json()
        if not isinstance(body, dict) or not body.get("integrationName"):
            return JSONResponse({"error": "integrationName is required",
                                 "code": "VALIDATION_ERROR"}, 400)
        record = {
            "id": f"conn_{uuid.uuid4().hex[:20]}",
            "receivedAt": datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "idempotencyKey": key,
            "body": body,
        }
        connections.append(record)
        if key:
            by_idempotency_key[key] = record
        return JSONResponse({"connection": _summary(record)}, 201)

    async def list_json(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"error": "Invalid API key", "code": "UNAUTHORIZED"}, 401)
        return JSONResponse({"connections": connections})

    async def oauth_app(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"error": "Invalid API key", "code": "UNAUTHORIZED"}, 401)
        app_id = request.path_params["app_id"]
        request.app.state.oauth_app_requests.append(app_id)
        found = oauth_apps.get(app_id)
        if found is None:
            return JSONResponse({"error": "No such OAuth app", "code": "NOT_FOUND"}, 404)
        return JSONResponse({"oauthApp": {"id": app_id, **found}})

    async def page(request: Request) -> Response:
        rows = [{**record, "body": _masked(record["body"])} for record in reversed(connections)]
        response: Response = templates.TemplateResponse(
            request, "demo_core.html", {"connections": rows}
        )
        return response

    app = Starlette(routes=[
        Route("/", page),
        Route("/api/v1/connections", create, methods=["POST"]),
        Route("/api/v1/connections", list_json, methods=["GET"]),
        Route("/api/v1/oauth-apps/{app_id}", oauth_app, methods=["GET"]),
        Mount("/static", StaticFiles(directory=static_dir()), name="static"),
    ])
    app.state.connections = connections
    app.state.oauth_apps = oauth_apps
    app.state.oauth_app_requests = []
    return app


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    body = record["body"]
    return {
        "id": record["id"],
        "integrationName": body.get("integrationName"),
        "externalId": body.get("externalId"),
        "displayName": body.get("displayName"),
        "type": body.get("type"),
    }


def _masked(body: dict[str, Any]) -> dict[str, Any]:
    masked = dict(body)
    for name in SECRET_FIELDS:
        value = masked.get(name)
        if isinstance(value, str) and value:
            masked[name] = value[:3] + "…" + f" ({len(value)} characters)"
    return masked
