"""A demo partner app: a page with a Connect button, and the backend route that mints
tokens through the portal's real API (as a partner backend would)."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from portal.resources import static_dir, templates_dir


def create_partner_app(*, portal_url: str, portal_api_key: str, integrations: list[str],
                       partner_url: str) -> Starlette:
    templates = Jinja2Templates(directory=templates_dir())

    async def page(request: Request) -> Response:
        response: Response = templates.TemplateResponse(request, "demo_partner.html", {
            "portal_url": portal_url,
            "integrations": integrations,
        })
        return response

    async def mint(request: Request) -> Response:
        form = await request.json()
        body = {
            "connectionName": "Demo connection",
            "externalId": "demo-user-1",
            "workspaceId": "demo-workspace",
            "allowedOrigins": [partner_url],
            # Used only when the popup is blocked and connect.js falls back to a redirect.
            "successRedirectUri": f"{partner_url}/",
            "errorRedirectUri": f"{partner_url}/",
        }
        if form.get("integrationName"):
            body["integrationName"] = str(form["integrationName"])
        async with httpx.AsyncClient(base_url=portal_url, timeout=10) as client:
            answer = await client.post(
                "/api/v1/connect/token", json=body,
                headers={"Authorization": f"Bearer {portal_api_key}"},
            )
        return JSONResponse(answer.json(), status_code=answer.status_code)

    return Starlette(routes=[
        Route("/", page),
        Route("/mint", mint, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static_dir()), name="static"),
    ])
