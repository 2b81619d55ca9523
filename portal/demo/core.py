"""A demo core API: accepts connections like the platform would and lists them.

It honours `Idempotency-Key` the way the real core API must: the same key returns the
same connection and never creates a second one.

Its page (`/`) shows what it received with every secret masked. Masking works from an
allow-list, never a deny-list: a top-level field is shown only when it is one of the
Weavz body's known plain fields, and a prop only when the catalog says it is plain text
(`SHORT_TEXT`, `NUMBER`, `CHECKBOX`, `STATIC_DROPDOWN`). A secret prop, a `LONG_TEXT`
(where keys and certificates get pasted), a prop or field it does not know, and every
prop when no catalog was given, are masked. A new secret field is then hidden by default
instead of shown until someone remembers to list it.
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

from portal.catalog import Catalog, FieldType
from portal.resources import static_dir, templates_dir

# Fields of the create-connection body that never hold a secret; all others are masked
# on the page (secretText, password, accessToken, refreshToken, data, anything new).
PLAIN_FIELDS = frozenset({
    "type", "integrationName", "externalId", "displayName", "workspaceId", "endUserId",
    "authMethodKey", "scope", "oauthAppId", "username", "tokenType", "expiresIn",
    "scope_oauth", "accountId",
})
PLAIN_PROP_TYPES = frozenset({
    FieldType.SHORT_TEXT, FieldType.NUMBER, FieldType.CHECKBOX, FieldType.STATIC_DROPDOWN,
})


def create_core_app(api_key: str, *, catalog: Catalog | None = None) -> Starlette:
    """`app.state.oauth_apps` maps an OAuth app id to `{integrationName, clientId,
    clientSecret}`: the customers' own apps, served to the portal by id.

    `catalog` tells the page which props are plain text; without it every prop is masked.
    """
    connections: list[dict[str, Any]] = []
    oauth_apps: dict[str, dict[str, str]] = {}
    by_idempotency_key: dict[str, dict[str, Any]] = {}
    end_users: dict[str, dict[str, Any]] = {}
    # Every request the end-user calls received, as (method, path): tests read it.
    requests: list[tuple[str, str]] = []
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
        workspace = request.query_params.get("workspaceId")
        end_user = request.query_params.get("endUserId")
        if workspace is not None or end_user is not None:
            listed = [_summary(record) for record in connections
                      if record.get("status", "ACTIVE") != "DELETED"
                      and (workspace is None or record["body"].get("workspaceId") == workspace)
                      and (end_user is None or record["body"].get("endUserId") == end_user)]
            return JSONResponse({"connections": listed})
        key = request.query_params.get("idempotencyKey")
        if key is not None:
            # What the portal's reconciler asks (docs/delivery.md): the connection made
            # with this Idempotency-Key, if any.
            found = by_idempotency_key.get(key)
            return JSONResponse({"connections": [_summary(found)] if found else []})
        return JSONResponse({"connections": connections})

    async def update(request: Request) -> Response:
        """PATCH /api/v1/connections/{id}: a reconnect replaces the credential of the
        connection in place; the same Idempotency-Key answers the same again."""
        if not authorized(request):
            return JSONResponse({"error": "Invalid API key", "code": "UNAUTHORIZED"}, 401)
        requests.append(("PATCH", request.url.path))
        found = _find(request.path_params["connection_id"])
        if found is None:
            return JSONResponse({"error": "No such connection", "code": "NOT_FOUND"}, 404)
        body = await request.json()
        if not isinstance(body, dict):
            return JSONResponse({"error": "JSON object expected",
                                 "code": "VALIDATION_ERROR"}, 400)
        key = request.headers.get("idempotency-key")
        if not (key and found.get("updatedBy") == key):
            found["body"] = body
            found["updatedBy"] = key
            found["updates"] = found.get("updates", 0) + 1
        return JSONResponse({"connection": _summary(found)}, 200)

    async def delete(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"error": "Invalid API key", "code": "UNAUTHORIZED"}, 401)
        requests.append(("DELETE", request.url.path))
        found = _find(request.path_params["connection_id"])
        if found is None:
            return JSONResponse({"error": "No such connection", "code": "NOT_FOUND"}, 404)
        found["status"] = "DELETED"
        return Response(status_code=204)

    def _find(connection_id: str) -> dict[str, Any] | None:
        return next((record for record in connections if record["id"] == connection_id
                     and record.get("status", "ACTIVE") != "DELETED"), None)

    async def create_end_user(request: Request) -> Response:
        """POST /api/v1/end-users: register a demo end user."""
        if not authorized(request):
            return JSONResponse({"error": "Invalid API key", "code": "UNAUTHORIZED"}, 401)
        body = await request.json()
        fields = ("workspaceId", "externalId")
        if not isinstance(body, dict) or not all(isinstance(body.get(f), str) and body[f]
                                                 for f in fields):
            return JSONResponse({"error": "workspaceId and externalId are required",
                                 "code": "VALIDATION_ERROR"}, 400)
        end_user = {"id": f"eu_{uuid.uuid4().hex[:16]}", "workspaceId": body["workspaceId"],
                    "externalId": body["externalId"],
                    "displayName": body.get("displayName") or body["externalId"],
                    "email": body.get("email")}
        end_users[end_user["id"]] = end_user
        return JSONResponse({"endUser": end_user}, 201)

    async def get_end_user(request: Request) -> Response:
        if not authorized(request):
            return JSONResponse({"error": "Invalid API key", "code": "UNAUTHORIZED"}, 401)
        found = end_users.get(request.path_params["end_user_id"])
        if found is None:
            return JSONResponse({"error": "No such end user", "code": "NOT_FOUND"}, 404)
        return JSONResponse({"endUser": found})

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
        rows = [{**record, "body": _masked(record["body"], catalog)}
                for record in reversed(connections)]
        response: Response = templates.TemplateResponse(
            request, "demo_core.html", {"connections": rows}
        )
        return response

    app = Starlette(routes=[
        Route("/", page),
        Route("/api/v1/connections", create, methods=["POST"]),
        Route("/api/v1/connections", list_json, methods=["GET"]),
        Route("/api/v1/connections/{connection_id}", update, methods=["PATCH"]),
        Route("/api/v1/connections/{connection_id}", delete, methods=["DELETE"]),
        Route("/api/v1/end-users", create_end_user, methods=["POST"]),
        Route("/api/v1/end-users/{end_user_id}", get_end_user, methods=["GET"]),
        Route("/api/v1/oauth-apps/{app_id}", oauth_app, methods=["GET"]),
        Mount("/static", StaticFiles(directory=static_dir()), name="static"),
    ])
    app.state.connections = connections
    app.state.oauth_apps = oauth_apps
    app.state.end_users = end_users
    app.state.requests = requests
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
        "status": record.get("status", "ACTIVE"),
        "endUserId": body.get("endUserId"),
        "workspaceId": body.get("workspaceId"),
        "accountId": body.get("accountId"),
    }


def _masked(body: dict[str, Any], catalog: Catalog | None) -> dict[str, Any]:
    masked: dict[str, Any] = {}
    for name, value in body.items():
        if name == "props" and isinstance(value, dict):
            plain = _plain_props(body, catalog)
            masked[name] = {key: item if key in plain else _mask(item)
                            for key, item in value.items()}
        else:
            masked[name] = value if name in PLAIN_FIELDS else _mask(value)
    return masked


def _plain_props(body: dict[str, Any], catalog: Catalog | None) -> frozenset[str]:
    """The props the catalog knows to be plain text for this body's auth option."""
    name, key = body.get("integrationName"), body.get("authMethodKey")
    integration = catalog.get(name) if catalog is not None and isinstance(name, str) else None
    if integration is None:
        return frozenset()
    option = next((item for item in integration.auth_options if item.key == key), None)
    if option is None:
        return frozenset()
    return frozenset(item.key for item in option.fields if item.type in PLAIN_PROP_TYPES)


def _mask(value: Any) -> Any:
    """Only the length of a string is shown, never a part of it; other values are hidden."""
    if value is None or value == "":
        return value
    if isinstance(value, str):
        return f"•••••• (hidden, {len(value)} characters)"
    return "•••••• (hidden)"
