"""The backend API as its contract pins it (portal/openapi.json, the README's "Backend
API"): mint, look up, poll, the catalog, errors."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.conftest import AUTH, PARTNER_ORIGIN, mint, open_page, submit, token_body


def test_token_answer_has_token_connect_url_expiry_and_session_id(client: TestClient) -> None:
    answer = mint(client)
    assert set(answer) == {"token", "connectUrl", "expiresAt", "sessionId"}
    assert answer["token"].startswith("cst_")
    assert answer["connectUrl"] == f"http://portal.test/connect?token={answer['token']}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", answer["expiresAt"])


def test_session_lookup_returns_the_contract_fields_pending(client: TestClient) -> None:
    answer = mint(client, endUserId="eu-1", scope="WORKSPACE", authMethodKey="api_key")
    response = client.get(f"/api/v1/connect/session/{answer['sessionId']}", headers=AUTH)
    assert response.status_code == 200
    session = response.json()["session"]
    assert session["id"] == answer["sessionId"]
    assert session["status"] == "PENDING"
    assert session["integrationName"] == "openai"
    assert session["authMethodKey"] == "api_key"
    assert session["connectionName"] == "My OpenAI"
    assert session["externalId"] == "user-42"
    assert session["connectionId"] is None and session["error"] is None
    assert session["expiresAt"] == answer["expiresAt"]
    for name in ("workspaceIntegrationId", "oauthAppMode", "oauthAppId", "createdAt"):
        assert name in session


def test_poll_returns_completed_after_secret_text_submit(client: TestClient) -> None:
    answer = mint(client)
    page_path, csrf = open_page(client, answer["token"])
    submit(client, page_path, csrf, secret_text="sk-live-abc")
    polled = client.post("/api/v1/connect/session/poll", json={"token": answer["token"]})
    assert polled.status_code == 200
    body = polled.json()
    assert body["status"] == "COMPLETED"
    assert body["connectionId"].startswith("conn_")
    assert body["id"] == answer["sessionId"]


def test_poll_needs_no_api_key_but_a_token(client: TestClient) -> None:
    response = client.post("/api/v1/connect/session/poll", json={})
    assert response.status_code == 401
    assert response.json()["code"] == "MISSING_TOKEN"


def test_api_key_is_required_and_checked(client: TestClient) -> None:
    body = token_body()
    missing = client.post("/api/v1/connect/token", json=body)
    wrong = client.post("/api/v1/connect/token", json=body,
                        headers={"Authorization": "Bearer not-the-key-0000000000"})
    basic = client.post("/api/v1/connect/token", json=body,
                        headers={"Authorization": "Basic dGVzdDp0ZXN0"})
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.json()["code"] == "UNAUTHORIZED"
        assert set(response.json()) == {"error", "code", "details"}


def test_validation_error_names_every_bad_field(client: TestClient) -> None:
    response = client.post("/api/v1/connect/token", headers=AUTH, json={
        "integrationName": "openai",
        "connectionName": "",
        "externalId": 7,
        "scope": "EVERYONE",
        "oauthAppMode": "custom",
        "expiresIn": 10,
        "surprise": True,
    })
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "VALIDATION_ERROR"
    assert set(error["details"]["fields"]) == {
        "connectionName", "externalId", "workspaceId", "scope", "oauthAppId", "expiresIn",
        "surprise",
    }


def test_unknown_integration_is_integration_not_found(client: TestClient) -> None:
    response = client.post("/api/v1/connect/token", headers=AUTH,
                           json=token_body(integrationName="no-such-app"))
    assert response.status_code == 404
    assert response.json()["code"] == "INTEGRATION_NOT_FOUND"


def test_unknown_auth_method_is_a_validation_error(client: TestClient) -> None:
    response = client.post("/api/v1/connect/token", headers=AUTH,
                           json=token_body(authMethodKey="oauth"))
    assert response.status_code == 400
    assert "authMethodKey" in response.json()["details"]["fields"]


def test_unknown_session_is_session_not_found(client: TestClient) -> None:
    for session_id in ("00000000-0000-4000-8000-000000000000", "not-a-uuid", "x" * 300):
        response = client.get(f"/api/v1/connect/session/{session_id}", headers=AUTH)
        assert response.status_code == 404
        assert response.json()["code"] == "SESSION_NOT_FOUND"


def test_redirect_uris_must_be_on_an_allowed_origin(client: TestClient) -> None:
    ok = client.post("/api/v1/connect/token", headers=AUTH, json=token_body(
        successRedirectUri=f"{PARTNER_ORIGIN}/done?x=1",
        errorRedirectUri=f"{PARTNER_ORIGIN}/oops",
    ))
    assert ok.status_code == 200
    for hostile in (
        "https://evil.example/done",
        "//evil.example/done",
        "https://partner.example@evil.example/",
        "https://partner.example.evil.example/",
        "javascript:alert(1)",
        "https://partner.example\\@evil.example",
        "https://partner.example/\r\nx",
        "http://partner.example/done",
        "https://partner.example:444/done",
        "https://pártner.example/",
    ):
        response = client.post("/api/v1/connect/token", headers=AUTH,
                               json=token_body(successRedirectUri=hostile))
        assert response.status_code == 400, hostile
        assert "successRedirectUri" in response.json()["details"]["fields"], hostile


def test_allowed_origins_must_be_configured_origins(client: TestClient) -> None:
    ok = client.post("/api/v1/connect/token", headers=AUTH,
                     json=token_body(allowedOrigins=[PARTNER_ORIGIN]))
    assert ok.status_code == 200
    for bad in (["https://evil.example"], [f"{PARTNER_ORIGIN}/path"], "https://x", [1]):
        response = client.post("/api/v1/connect/token", headers=AUTH,
                               json=token_body(allowedOrigins=bad))
        assert response.status_code == 400
        assert "allowedOrigins" in response.json()["details"]["fields"]


def test_integrations_catalog_is_public_and_filterable(client: TestClient) -> None:
    everything = client.get("/api/v1/integrations")
    assert everything.status_code == 200
    names = [item["name"] for item in everything.json()["integrations"]]
    assert {"openai", "anthropic", "sendgrid", "mistral", "airtable"} <= set(names)
    one = client.get("/api/v1/integrations", params={"name": "openai"}).json()
    assert [item["name"] for item in one["integrations"]] == ["openai"]
    assert one["integrations"][0]["authOptions"][0]["type"] == "SECRET_TEXT"
    missing = client.get("/api/v1/integrations", params={"name": "nope"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "INTEGRATION_NOT_FOUND"


def test_unknown_api_route_answers_the_json_envelope(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    wrong_method = client.get("/api/v1/connect/token")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "METHOD_NOT_ALLOWED"


def test_openapi_document_describes_every_api_route(client: TestClient) -> None:
    document = client.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {
        "/api/v1/connect/token", "/api/v1/connect/session/{sessionId}",
        "/api/v1/connect/session/poll", "/api/v1/integrations",
    } <= set(document["paths"])


# -- oauthAppId is a path segment at the core API (issue 8, finding 9) --------------------
NOT_PLAIN_APP_IDS = ["..", ".", "../oauth-apps/x", "a/b", "app 1", "%2e%2e", "a?b", "a#b",
                     "-app", "é-app", "x" * 129]


class RecordingCore(httpx.AsyncBaseTransport):
    """The demo core API, recording the exact path of every request it receives."""

    def __init__(self, core_app: Starlette) -> None:
        self._inner = httpx.ASGITransport(app=core_app)
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.raw_path.decode())
        return await self._inner.handle_async_request(request)


@pytest.mark.parametrize("app_id", NOT_PLAIN_APP_IDS)
def test_an_oauth_app_id_that_is_not_a_plain_identifier_is_refused(
    make_client: Any, core_app: Starlette, app_id: str
) -> None:
    core = RecordingCore(core_app)
    client: TestClient = make_client(core_transport=core)
    minted = client.post("/api/v1/connect/token", headers=AUTH, json=token_body(
        integrationName="github", oauthAppMode="custom", oauthAppId=app_id))
    assert minted.status_code == 400, minted.text
    assert minted.json()["code"] == "VALIDATION_ERROR"
    assert "oauthAppId" in minted.json()["details"]["fields"]
    refreshed = client.post("/api/v1/oauth/refresh", headers=AUTH, json={
        "integrationName": "github", "refreshToken": "r-1", "oauthAppId": app_id})
    assert refreshed.status_code == 400, refreshed.text
    assert refreshed.json()["code"] == "VALIDATION_ERROR"
    assert "oauthAppId" in refreshed.json()["details"]["fields"]
    assert core.paths == []


@pytest.mark.parametrize("app_id", ["app_123", "oa-1.2:eu", "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                                    "A" * 128])
def test_a_plain_oauth_app_id_is_fetched_at_exactly_its_path(
    make_client: Any, core_app: Starlette, app_id: str
) -> None:
    core = RecordingCore(core_app)
    client: TestClient = make_client(core_transport=core)
    minted = client.post("/api/v1/connect/token", headers=AUTH, json=token_body(
        integrationName="github", oauthAppMode="custom", oauthAppId=app_id))
    assert minted.status_code == 200, minted.text
    refreshed = client.post("/api/v1/oauth/refresh", headers=AUTH, json={
        "integrationName": "github", "refreshToken": "r-1", "oauthAppId": app_id})
    assert refreshed.json()["code"] == "NO_OAUTH_APP"  # the demo core has no such app
    assert core.paths == [f"/api/v1/oauth-apps/{app_id.replace(':', '%3A')}"]


@pytest.mark.parametrize("app_id", ["..", ".", "", "a/b"])
async def test_the_core_api_client_keeps_an_oauth_app_id_inside_its_path(app_id: str) -> None:
    from portal.core_api import CoreApiClient

    paths: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(404)

    core = CoreApiClient(base_url="http://core.test", api_key="k" * 20,
                         transport=httpx.MockTransport(answer))
    try:
        assert await core.fetch_oauth_app(app_id, integration_name="github") is None
    finally:
        await core.aclose()
    assert paths == (["/api/v1/oauth-apps/a%2Fb"] if app_id == "a/b" else [])


def test_refresh_for_an_integration_without_oauth_says_so(client: TestClient) -> None:
    response = client.post("/api/v1/oauth/refresh", headers=AUTH, json={
        "integrationName": "openai", "refreshToken": "r-1"})
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "VALIDATION_ERROR"
    assert error["error"] == "OpenAI does not connect with OAuth; there is nothing to refresh."
    assert error["details"] == {"reason": "not_oauth",
                                "fields": {"integrationName": "Has no OAuth auth method."}}
