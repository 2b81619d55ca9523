"""A sandbox OAuth provider for `connect-portal demo`: a consent page and a token endpoint.

It is small but strict like a real one: the redirect URI must match exactly, PKCE S256 is
required, a code is single use and short-lived, the client authenticates at the token
endpoint (basic auth or body), `iss` comes back with every answer (RFC 9207), and refresh
tokens work. Demo only: everything lives in this process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from portal.auth.oauth.provider import ClientApp
from portal.catalog import Integration, parse_catalog
from portal.resources import static_dir, templates_dir

SANDBOX_INTEGRATION = "sandbox-oauth"
CODE_TTL = 60


def sandbox_catalog_entry(provider_url: str) -> dict[str, Any]:
    """The catalog entry that points the portal at the sandbox provider."""
    return {
        "name": SANDBOX_INTEGRATION,
        "displayName": "Sandbox ID",
        "category": "Demo",
        "description": "A sandbox OAuth provider that runs with the demo.",
        "website": "https://example.com",
        "authOptions": [{
            "key": "oauth2", "type": "PLATFORM_OAUTH2", "displayName": "Sign in",
            "description": "Sign in at the sandbox provider and approve access.",
            "authUrl": f"{provider_url}/authorize", "tokenUrl": f"{provider_url}/token",
            "scope": "profile", "pkce": True, "authorizationMethod": "HEADER",
            "issParameterSupported": True,
        }],
    }


@dataclass(frozen=True)
class Sandbox:
    app: Starlette
    integration: Integration
    client: ClientApp


def sandbox_for_demo(*, host: str, port: int, portal_url: str) -> Sandbox | None:
    """The sandbox provider on `port`, its catalog entry and the platform's app for it;
    None unless the demo runs on a loopback address (plain http is only allowed there)."""
    try:
        if not ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        return None
    url = f"http://{host}:{port}"
    client = ClientApp(client_id="demo-portal", client_secret=secrets.token_urlsafe(32))
    [integration] = parse_catalog(json.dumps({"integrations": [sandbox_catalog_entry(url)]}),
                                  source="sandbox provider")
    app = create_sandbox_provider(issuer=url, client_id=client.client_id,
                                  client_secret=client.client_secret,
                                  redirect_uri=f"{portal_url}/oauth/callback")
    return Sandbox(app=app, integration=integration, client=client)


def create_sandbox_provider(*, issuer: str, client_id: str, client_secret: str,
                            redirect_uri: str) -> Starlette:
    templates = Jinja2Templates(directory=templates_dir())
    codes: dict[str, dict[str, Any]] = {}
    refresh_tokens: set[str] = set()

    def back(state: str, **params: str) -> Response:
        query = urlencode({**params, "state": state, "iss": issuer})
        return RedirectResponse(f"{redirect_uri}?{query}", status_code=303)

    async def authorize(request: Request) -> Response:
        params = request.query_params
        if params.get("client_id") != client_id or params.get("redirect_uri") != redirect_uri:
            # Never redirect to a URI that is not registered.
            return templates.TemplateResponse(request, "demo_provider.html",
                                              {"problem": "unknown_client"}, status_code=400)
        state = params.get("state", "")
        if params.get("response_type") != "code":
            return back(state, error="unsupported_response_type")
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return back(state, error="invalid_request",
                        error_description="PKCE with S256 is required")
        return templates.TemplateResponse(request, "demo_provider.html", {
            "problem": None, "state": state, "challenge": params["code_challenge"],
            "scope": params.get("scope", ""),
        })

    async def decide(request: Request) -> Response:
        form = await request.form()
        state, challenge = str(form.get("state", "")), str(form.get("challenge", ""))
        if form.get("decision") != "allow":
            return back(state, error="access_denied",
                        error_description="The user did not allow access")
        code = secrets.token_urlsafe(32)
        codes[code] = {"challenge": challenge, "expires": time.monotonic() + CODE_TTL,
                       "scope": str(form.get("scope", ""))}
        return back(state, code=code)

    def client_ok(request: Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            try:
                presented = base64.b64decode(header[6:]).decode()
            except ValueError:
                return False
            expected = f"{client_id}:{client_secret}"
        else:
            presented = f"{form.get('client_id')}:{form.get('client_secret')}"
            expected = f"{client_id}:{client_secret}"
        return hmac.compare_digest(presented.encode(), expected.encode())

    def tokens(scope: str) -> dict[str, Any]:
        refresh = "sbr_" + secrets.token_urlsafe(24)
        refresh_tokens.add(refresh)
        return {"access_token": "sba_" + secrets.token_urlsafe(24), "token_type": "Bearer",
                "expires_in": 3600, "refresh_token": refresh, "scope": scope,
                "account": {"id": "sandbox-user-1", "name": "Sandbox user"}}

    async def token(request: Request) -> Response:
        form = {key: str(value) for key, value in (await request.form()).items()}
        if not client_ok(request, form):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in refresh_tokens:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            refresh_tokens.discard(form["refresh_token"])  # rotated
            return JSONResponse(tokens("profile"))
        grant = codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if (grant is None or grant["expires"] < time.monotonic()
                or form.get("redirect_uri") != redirect_uri
                or not hmac.compare_digest(digest.rstrip(b"=").decode(), grant["challenge"])):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse(tokens(grant["scope"]))

    return Starlette(routes=[
        Route("/authorize", authorize, methods=["GET"]),
        Route("/authorize", decide, methods=["POST"]),
        Route("/token", token, methods=["POST"]),
        Mount("/static", StaticFiles(directory=static_dir()), name="static"),
    ])
