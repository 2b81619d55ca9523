"""End to end in a real Chromium: a partner page opens the connect popup, the user signs
in and consents at a real OpenID Connect provider (PKCE required), the popup reports
success to the partner and closes, the demo core API receives the tokens over HTTP, and
the refresh service exchanges the refresh token for fresh ones. Once per client
authentication method (client_secret_basic, client_secret_post)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from portal.settings import Settings
from tests.conftest import AUTH, CORE_API_KEY, received
from tests.live_servers import bound_socket, server_thread
from tests.oauth_provider import run_provider, write_config

pytestmark = pytest.mark.browser

PARTNER_PAGE = """<!doctype html><title>Partner</title>
<button id="connect">Connect</button><pre id="result"></pre>
<script>
  document.getElementById("connect").onclick = function () {
    window.open(new URLSearchParams(location.search).get("connect"), "connect",
                "width=500,height=600");
  };
  window.addEventListener("message", function (event) {
    document.getElementById("result").textContent =
      JSON.stringify({origin: event.origin, data: event.data});
  });
</script>"""


def partner_app() -> Starlette:
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PARTNER_PAGE)
    return Starlette(routes=[Route("/", page)])


@pytest.fixture
def stack(settings: Settings, core_app: Starlette, tmp_path: Path, make_app: Any
          ) -> Iterator[dict[str, str]]:
    """The portal, the demo core API and a partner page under uvicorn, and the provider."""
    portal_socket = bound_socket()
    portal_url = f"http://127.0.0.1:{portal_socket.getsockname()[1]}"
    with (run_provider([f"{portal_url}/oauth/callback"]) as provider,
          server_thread(core_app) as core_url, server_thread(partner_app()) as partner_url):
        catalog, apps = write_config(tmp_path, provider.issuer)
        app = make_app(replace(
            settings, public_url=portal_url, core_api_url=core_url, core_api_key=CORE_API_KEY,
            catalog_paths=(str(catalog),), oauth_apps_file=str(apps),
            allow_http_loopback=True, allowed_origins=(partner_url,),
        ))
        with server_thread(app, portal_socket):
            yield {"portal": portal_url, "partner": partner_url, "core": core_url,
                   "issuer": provider.issuer}


@pytest.mark.parametrize("integration", ["testid-basic", "testid-post"])
def test_popup_sign_in_delivers_tokens_and_the_refresh_service_renews_them(
    stack: dict[str, str], page: Page, core_app: Starlette, integration: str
) -> None:
    minted = httpx.post(f"{stack['portal']}/api/v1/connect/token", headers=AUTH, json={
        "integrationName": integration, "connectionName": "My Test ID",
        "externalId": "user-7", "workspaceId": "ws-1"})
    assert minted.status_code == 200, minted.text
    answer = minted.json()
    page.goto(f"{stack['partner']}/?" + urlencode({"connect": answer["connectUrl"]}))

    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    popup.get_by_role("button", name="Sign in with Test ID").click()
    popup.wait_for_url(f"{stack['issuer']}/interaction/**")
    popup.fill("input[name=login]", "alice")
    popup.fill("input[name=password]", "any-password")
    popup.get_by_role("button", name="Sign-in").click()
    popup.get_by_role("button", name="Continue").click()  # consent
    popup.wait_for_event("close")

    expect(page.locator("#result")).to_contain_text('"status":"success"')
    message = json.loads(page.locator("#result").text_content() or "{}")
    assert message["origin"] == stack["portal"]
    assert message["data"]["sessionId"] == answer["sessionId"]
    assert set(message["data"]) == {"type", "status", "sessionId", "connectionId",
                                    "integrationName", "externalId"}  # no token in it

    [delivered] = received(core_app)
    body = delivered["body"]
    assert body["type"] == "OAUTH2" and body["integrationName"] == integration
    assert body["accessToken"] and body["refreshToken"] and body["tokenType"] == "Bearer"
    assert message["data"]["connectionId"] == delivered["id"]

    refreshed = httpx.post(f"{stack['portal']}/api/v1/oauth/refresh", headers=AUTH, json={
        "integrationName": integration, "refreshToken": body["refreshToken"]})
    assert refreshed.status_code == 200, refreshed.text
    tokens: dict[str, Any] = refreshed.json()
    assert tokens["accessToken"] and tokens["accessToken"] != body["accessToken"]
    # The fresh token is accepted by the provider it came from.
    userinfo = httpx.get(f"{stack['issuer']}/me",
                         headers={"Authorization": f"Bearer {tokens['accessToken']}"})
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == "alice"
