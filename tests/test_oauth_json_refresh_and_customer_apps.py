"""Two OAuth branches through the portal's API, against a token endpoint served over real
HTTP on loopback that takes only a JSON body (as Notion's does):

- `POST /api/v1/oauth/refresh` for an option with `tokenRequestFormat: "JSON"` sends the
  refresh as a JSON object, with the client credentials inside it (`BODY`) or in basic
  auth (`HEADER`);
- a customer's own OAuth app that the core API says belongs to another integration is
  no app at all: the sign-in is a failed attempt (`NO_OAUTH_APP`) and a refresh answers
  it, and its client
  id and secret reach no provider."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.conftest import AUTH, mint, open_page, received, session_of, submit
from tests.live_servers import server_thread

PLATFORM_ID, PLATFORM_SECRET = "platform-client", "platform-secret-Qw3Er5Ty7Ui9Op1As"
CUSTOMER_ID, CUSTOMER_SECRET = "customer-client", "customer-secret-Zx2Cv4Bn6Mm8Kl0Jh"
REFRESH_TOKEN = "refresh-Gt5Hy7Ju9Ki1Lo3"


def json_only_token_endpoint() -> Starlette:
    """Refuses anything but a JSON object (415), records what it received, and exchanges
    REFRESH_TOKEN for fresh tokens."""
    async def token(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        raw = await request.body()
        request.app.state.requests.append({"content_type": content_type, "raw": raw,
                                           "authorization": request.headers.get("authorization")})
        if content_type != "application/json":
            return JSONResponse({"error": "invalid_request",
                                 "error_description": "JSON bodies only"}, status_code=415)
        body = json.loads(raw)
        if body.get("grant_type") != "refresh_token" or body.get("refresh_token") != REFRESH_TOKEN:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse({"access_token": "fresh-access-1", "refresh_token": "fresh-refresh-1",
                             "token_type": "bearer", "expires_in": 3600})

    app = Starlette(routes=[Route("/token", token, methods=["POST"])])
    app.state.requests = []
    return app


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Starlette]]:
    app = json_only_token_endpoint()
    with server_thread(app) as url:
        yield url, app


def oauth_entry(name: str, url: str, **option: Any) -> dict[str, Any]:
    return {"name": name, "displayName": name.title(), "category": "Testing",
            "description": "A JSON-only token endpoint.", "website": "https://acme.example",
            "authOptions": [{"key": "oauth2", "type": "OAUTH2", "displayName": "Sign in",
                             "authUrl": f"{url}/authorize", "tokenUrl": f"{url}/token",
                             "scope": "read", **option}]}


@pytest.fixture
def portal(make_client: Any, endpoint: tuple[str, Starlette], tmp_path: Path) -> TestClient:
    url = endpoint[0]
    catalog = tmp_path / "json.json"
    catalog.write_text(json.dumps({"integrations": [
        oauth_entry("notionish", url, tokenRequestFormat="JSON"),
        oauth_entry("notionish-basic", url, tokenRequestFormat="JSON",
                    authorizationMethod="HEADER"),
        oauth_entry("formish", url),  # the default FORM body, which this endpoint refuses
    ]}))
    apps = tmp_path / "apps.json"
    platform = {"clientId": PLATFORM_ID, "clientSecret": PLATFORM_SECRET}
    apps.write_text(json.dumps({"apps": {"notionish": platform, "notionish-basic": platform,
                                         "formish": platform}}))
    client: TestClient = make_client(catalog_paths=(str(catalog),), oauth_apps_file=str(apps),
                                     allow_http_loopback=True)
    return client


def refresh(portal: TestClient, integration: str, **extra: str) -> Any:
    return portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
        "integrationName": integration, "refreshToken": REFRESH_TOKEN, **extra})


def test_refresh_sends_a_json_body_with_the_client_credentials_inside(
    portal: TestClient, endpoint: tuple[str, Starlette],
) -> None:
    answer = refresh(portal, "notionish")
    assert answer.status_code == 200, answer.text
    assert (answer.json()["accessToken"], answer.json()["refreshToken"]) == (
        "fresh-access-1", "fresh-refresh-1")
    [request] = endpoint[1].state.requests
    assert request["content_type"] == "application/json"
    assert request["authorization"] is None
    assert json.loads(request["raw"]) == {
        "grant_type": "refresh_token", "refresh_token": REFRESH_TOKEN,
        "client_id": PLATFORM_ID, "client_secret": PLATFORM_SECRET}


def test_refresh_with_header_auth_sends_json_and_basic_auth(
    portal: TestClient, endpoint: tuple[str, Starlette],
) -> None:
    answer = refresh(portal, "notionish-basic")
    assert answer.status_code == 200, answer.text
    assert answer.json()["accessToken"] == "fresh-access-1"
    [request] = endpoint[1].state.requests
    assert request["content_type"] == "application/json"
    assert request["authorization"] == "Basic " + base64.b64encode(
        f"{PLATFORM_ID}:{PLATFORM_SECRET}".encode()).decode()
    sent = json.loads(request["raw"])
    assert (sent["grant_type"], sent["refresh_token"]) == ("refresh_token", REFRESH_TOKEN)
    assert "client_secret" not in sent


def test_the_same_endpoint_refuses_a_form_body(
    portal: TestClient, endpoint: tuple[str, Starlette],
) -> None:
    """The control: without tokenRequestFormat JSON the refresh fails here."""
    answer = refresh(portal, "formish")
    assert answer.status_code == 502, answer.text
    assert answer.json()["code"] == "REFRESH_FAILED"
    [request] = endpoint[1].state.requests
    assert request["content_type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("owner", ["formish", "github"])
def test_a_customer_app_of_another_integration_is_no_app(
    portal: TestClient, endpoint: tuple[str, Starlette], core_app: Starlette, owner: str,
) -> None:
    core_app.state.oauth_apps["app-9"] = {"integrationName": owner, "clientId": CUSTOMER_ID,
                                          "clientSecret": CUSTOMER_SECRET}
    custom = {"oauthAppMode": "custom", "oauthAppId": "app-9"}
    minted = mint(portal, integrationName="notionish", authMethodKey="oauth2", **custom)
    page_path, csrf = open_page(portal, minted["token"])
    pressed = submit(portal, f"{page_path}/oauth", csrf)
    assert pressed.status_code == 303
    assert pressed.headers["location"] == page_path  # not to the provider
    assert "is not available" in portal.get(page_path).text
    session = session_of(portal, minted["sessionId"])
    # A failed attempt: the user may try again (once the customer fixes their app).
    assert (session["status"], session["errorCode"]) == ("PENDING", "NO_OAUTH_APP")

    refused = refresh(portal, "notionish", oauthAppId="app-9")
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "NO_OAUTH_APP"
    assert core_app.state.oauth_app_requests == ["app-9"]  # asked once, refused since
    assert endpoint[1].state.requests == []  # its credentials went nowhere
    assert received(core_app) == []


def test_a_customer_app_of_this_integration_signs_in_and_refreshes(
    portal: TestClient, endpoint: tuple[str, Starlette], core_app: Starlette,
) -> None:
    """The control for the test above: the same app, owned by this integration."""
    core_app.state.oauth_apps["app-9"] = {"integrationName": "notionish",
                                          "clientId": CUSTOMER_ID,
                                          "clientSecret": CUSTOMER_SECRET}
    minted = mint(portal, integrationName="notionish", authMethodKey="oauth2",
                  oauthAppMode="custom", oauthAppId="app-9")
    page_path, csrf = open_page(portal, minted["token"])
    pressed = submit(portal, f"{page_path}/oauth", csrf)
    assert pressed.status_code == 303
    authorize = urlsplit(pressed.headers["location"])
    assert parse_qs(authorize.query)["client_id"] == [CUSTOMER_ID]

    answer = refresh(portal, "notionish", oauthAppId="app-9")
    assert answer.status_code == 200, answer.text
    [request] = endpoint[1].state.requests
    sent = json.loads(request["raw"])
    assert (sent["client_id"], sent["client_secret"]) == (CUSTOMER_ID, CUSTOMER_SECRET)
