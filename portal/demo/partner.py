"""A demo partner app: a page with a Connect button, and the backend route that mints
tokens through the portal's real API (as a partner backend would).

Its "End user" part registers a demo end user at the demo core API (once), then mints an
end-user link (`eut_`) or sends an invite through the portal's API; the invite arrives at
the demo's mail catcher, listed at `/mail`.
"""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from portal.demo.mail import MailCatcher
from portal.resources import static_dir, templates_dir

DEMO_END_USER = {"workspaceId": "demo-workspace", "externalId": "demo-user-1",
                 "displayName": "Ada Lovelace", "email": "ada@example.com"}


def create_partner_app(*, portal_url: str, portal_api_key: str, integrations: list[str],
                       partner_url: str, core_url: str | None = None,
                       core_api_key: str | None = None,
                       mail: MailCatcher | None = None) -> Starlette:
    templates = Jinja2Templates(directory=templates_dir())
    end_user: dict[str, str] = {}

    async def page(request: Request) -> Response:
        response: Response = templates.TemplateResponse(request, "demo_partner.html", {
            "portal_url": portal_url,
            "integrations": integrations,
            "end_user": DEMO_END_USER if core_url and core_api_key else None,
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
            # Who asks, on every page of the portal (issue 11's brand and context).
            "partnerName": "Demo partner app",
        }
        for field in ("integrationName", "locale", "theme"):
            if form.get(field):
                body[field] = str(form[field])
        async with httpx.AsyncClient(base_url=portal_url, timeout=10) as client:
            answer = await client.post(
                "/api/v1/connect/token", json=body,
                headers={"Authorization": f"Bearer {portal_api_key}"},
            )
        return JSONResponse(answer.json(), status_code=answer.status_code)

    async def demo_end_user() -> str:
        """The demo end user's id at the core API, registered on first use."""
        if "id" not in end_user:
            async with httpx.AsyncClient(base_url=core_url or "", timeout=10) as client:
                answer = await client.post("/api/v1/end-users", json=DEMO_END_USER,
                                           headers={"Authorization": f"Bearer {core_api_key}"})
                answer.raise_for_status()
                end_user["id"] = answer.json()["endUser"]["id"]
        return end_user["id"]

    async def end_user_call(path: str, body: dict[str, object]) -> Response:
        end_user_id = await demo_end_user()
        async with httpx.AsyncClient(base_url=portal_url, timeout=30) as client:
            answer = await client.post(
                f"/api/v1/end-users/{end_user_id}/{path}", json=body,
                headers={"Authorization": f"Bearer {portal_api_key}"})
        return JSONResponse(answer.json(), status_code=answer.status_code)

    async def end_user_link(request: Request) -> Response:
        return await end_user_call("connect-token", {})

    async def end_user_invite(request: Request) -> Response:
        return await end_user_call("invite", {"email": DEMO_END_USER["email"]})

    async def mailbox(request: Request) -> Response:
        response: Response = templates.TemplateResponse(request, "demo_mail.html", {
            "messages": mail.messages if mail else [], "enabled": mail is not None})
        return response

    routes = [
        Route("/", page),
        Route("/mint", mint, methods=["POST"]),
        Route("/mail", mailbox),
    ]
    if core_url and core_api_key:
        routes += [Route("/end-user/link", end_user_link, methods=["POST"]),
                   Route("/end-user/invite", end_user_invite, methods=["POST"])]
    return Starlette(routes=[
        *routes,
        Mount("/static", StaticFiles(directory=static_dir()), name="static"),
    ])
