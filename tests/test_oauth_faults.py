"""The OAuth connect when the provider misbehaves, against a stand-in provider served over
real HTTP on loopback (a real provider cannot be made to fail on demand): token endpoint
down, slow, 5xx, not JSON, `invalid_client`, an error description full of HTML; props
kept with the state and never read from the callback; provider quirks (extra authorize
parameters, scope from the token, provider fields in `data`); hostile shop names."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.conftest import (
    AUTH,
    PORTAL_URL,
    csrf_of,
    mint,
    open_page,
    received,
    session_of,
    token_body,
)
from tests.hostile_values import HOSTILE_SHOPS
from tests.live_apps import WebhookReceiver
from tests.live_servers import RedisServer, bound_socket, server_thread, wait_until

CLIENT_ID = "fake-client"
CLIENT_SECRET = "fake-secret-Lp3Qz8Rw1Tx6Vy0Bn4Mc7Kd2Jf9"
HOSTILE_DESCRIPTION = '<script>alert("x")</script><b>bad</b>'


def fake_provider() -> Starlette:
    """A token endpoint whose answer `app.state.mode` chooses; it records each request."""
    async def token(request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            form = await request.json()
        else:
            form = dict(await request.form())
        request.app.state.requests.append({"path": request.url.path, "form": form,
                                           "content_type": content_type,
                                           "authorization": request.headers.get("authorization")})
        mode = request.app.state.mode
        if mode == "slow":
            await asyncio.sleep(10)
        if mode == "5xx":
            return PlainTextResponse("upstream broke", status_code=502)
        if mode == "not_json":
            return PlainTextResponse("<html>maintenance</html>", status_code=200)
        if mode == "invalid_client":
            return JSONResponse({"error": "invalid_client",
                                 "error_description": HOSTILE_DESCRIPTION}, status_code=401)
        return JSONResponse({
            "access_token": "fake-access-token-1", "refresh_token": "fake-refresh-token-1",
            "token_type": "bearer", "expires_in": "7200", "scope": "read",
            "instance_url": "https://acme.my.salesforce.example", "workspace_id": "ws-9",
        })

    app = Starlette(routes=[Route("/{shop}/token", token, methods=["POST"]),
                            Route("/token", token, methods=["POST"])])
    app.state.mode = "ok"
    app.state.requests = []
    return app


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[str, Starlette]]:
    app = fake_provider()
    with server_thread(app, bound_socket()) as url:
        yield url, app


@pytest.fixture
def fake(provider: tuple[str, Starlette]) -> Iterator[Starlette]:
    app = provider[1]
    app.state.mode = "ok"
    app.state.requests.clear()
    yield app


def entries(url: str) -> list[dict[str, Any]]:
    def entry(name: str, **option: Any) -> dict[str, Any]:
        return {"name": name, "displayName": name.title(), "category": "Testing",
                "description": "A stand-in provider.", "website": "https://fake.example",
                "authOptions": [{"key": "oauth2", "type": "OAUTH2", "displayName": "Sign in",
                                 "scope": "read write", **option}]}
    return [
        entry("fake", authUrl=f"{url}/authorize", tokenUrl=f"{url}/token",
              authorizationMethod="HEADER", extraParams={"access_type": "offline"}),
        entry("fakeshop", authUrl=f"{url}/{{shop}}/authorize", tokenUrl=f"{url}/{{shop}}/token",
              props={"shop": {"type": "SHORT_TEXT", "displayName": "Shop", "required": True,
                              "format": "subdomain"}}),
        entry("fakejson", authUrl=f"{url}/authorize", tokenUrl=f"{url}/token",
              tokenRequestFormat="JSON"),
        entry("fakejsonbasic", authUrl=f"{url}/authorize", tokenUrl=f"{url}/token",
              tokenRequestFormat="JSON", authorizationMethod="HEADER"),
        {**entry("fakeplatform", authUrl=f"{url}/authorize", tokenUrl=f"{url}/token"),
         "authOptions": [{"key": "oauth2", "type": "PLATFORM_OAUTH2", "displayName": "Sign in",
                          "authUrl": f"{url}/authorize", "tokenUrl": f"{url}/token"}]},
    ]


@pytest.fixture
def portal(make_client: Any, provider: tuple[str, Starlette], tmp_path: Path) -> TestClient:
    catalog = tmp_path / "fake.json"
    catalog.write_text(json.dumps({"integrations": entries(provider[0])}))
    apps = tmp_path / "apps.json"
    app = {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}
    apps.write_text(json.dumps({"apps": {
        name: app for name in ("fake", "fakeshop", "fakejson", "fakejsonbasic", "fakeplatform",
                               "shopify", "gmail", "notion", "salesforce", "zendesk",
                               "microsoft-outlook")}}))
    client: TestClient = make_client(catalog_paths=(str(catalog),), oauth_apps_file=str(apps),
                                     allow_http_loopback=True, oauth_timeout=0.5)
    return client


def start(portal: TestClient, integration: str = "fake", mint_args: dict[str, str] | None = None,
          **fields: str) -> tuple[str, str, TestClient, Any]:
    answer = mint(portal, integrationName=integration, authMethodKey="oauth2",
                  **(mint_args or {}))
    page_path, csrf = open_page(portal, answer["token"])
    pressed = portal.post(f"{page_path}/oauth", data={"csrf_token": csrf, **fields},
                          headers={"Origin": PORTAL_URL})
    return answer["sessionId"], page_path, portal, pressed


def callback(portal: TestClient, pressed: Any, **params: str) -> Any:
    state = parse_qs(urlsplit(pressed.headers["location"]).query)["state"][0]
    return portal.get("/oauth/callback?" + urlencode({"state": state, **params}))


def test_provider_quirks_reach_the_core_api(portal: TestClient, fake: Starlette,
                                            core_app: Starlette) -> None:
    session_id, _, _, pressed = start(portal)
    query = parse_qs(urlsplit(pressed.headers["location"]).query)
    assert query["access_type"] == ["offline"] and query["scope"] == ["read write"]
    # No `iss` and the entry does not declare it: accepted (RFC 9207 applies when it is).
    assert callback(portal, pressed, code="c-1").status_code == 303
    [request] = fake.state.requests
    assert request["authorization"].startswith("Basic ")  # HEADER: client_secret_basic
    assert "client_secret" not in request["form"]
    assert request["form"]["code"] == "c-1"
    assert request["form"]["redirect_uri"] == f"{PORTAL_URL}/oauth/callback"
    assert len(request["form"]["code_verifier"]) >= 43
    body = received(core_app)[0]["body"]
    assert body["expiresIn"] == 7200 and body["scope_oauth"] == "read"  # the token's scope
    assert body["data"] == {"instance_url": "https://acme.my.salesforce.example",
                            "workspace_id": "ws-9"}
    assert session_of(portal, session_id)["status"] == "COMPLETED"


def test_props_are_kept_with_the_state_and_never_read_from_the_callback(
    portal: TestClient, fake: Starlette, core_app: Starlette,
) -> None:
    _, _, _, pressed = start(portal, "fakeshop", shop="Acme")
    assert urlsplit(pressed.headers["location"]).path == "/acme/authorize"
    callback(portal, pressed, code="c-2", shop="evil")
    [request] = fake.state.requests
    assert request["path"] == "/acme/token"
    assert request["authorization"] is None  # BODY: client_secret_post
    assert request["form"]["client_secret"] == CLIENT_SECRET
    assert received(core_app)[0]["body"]["props"] == {"shop": "acme"}


@pytest.mark.parametrize("shop", HOSTILE_SHOPS)
def test_hostile_shop_names_are_refused_before_anything_is_kept(
    portal: TestClient, redis_client: Any, redis_prefix: str, shop: str
) -> None:
    session_id, _, _, pressed = start(portal, "shopify", shop=shop)
    assert pressed.status_code == 400
    assert 'id="shop-error"' in pressed.text
    assert redis_client.keys(f"{redis_prefix}oauth-state:*") == []
    assert session_of(portal, session_id)["status"] == "PENDING"


def form_action_of(portal: TestClient, integration: str) -> str:
    answer = mint(portal, integrationName=integration, authMethodKey="oauth2")
    page_path, _ = open_page(portal, answer["token"])
    policy = portal.get(page_path).headers["content-security-policy"]
    return next(part for part in policy.split("; ") if part.startswith("form-action "))


def test_the_sign_in_page_may_post_on_to_the_providers_origin_only(
    portal: TestClient, provider: tuple[str, Starlette]
) -> None:
    """The hand-off form's answer is a 303 to the provider, which browsers check against
    CSP form-action: the page allows the sign-in origin of the option's authUrl, with a
    wildcard for a placeholder in front of a fixed suffix, and nothing else."""
    assert form_action_of(portal, "fake") == f"form-action 'self' {provider[0]}"
    assert form_action_of(portal, "shopify") == "form-action 'self' https://*.myshopify.com"


def test_a_good_shop_signs_in_at_that_shop(portal: TestClient) -> None:
    _, _, _, pressed = start(portal, "shopify", shop="acme-store")
    assert pressed.headers["location"].startswith(
        "https://acme-store.myshopify.com/admin/oauth/authorize?")


def test_google_and_notion_get_their_extra_authorize_parameters(portal: TestClient) -> None:
    *_, google = start(portal, "gmail")
    query = parse_qs(urlsplit(google.headers["location"]).query)
    assert (query["access_type"], query["prompt"]) == (["offline"], ["consent"])
    assert query["code_challenge_method"] == ["S256"]
    _, _, _, notion = start(portal, "notion")
    assert parse_qs(urlsplit(notion.headers["location"]).query)["owner"] == ["user"]


@pytest.mark.parametrize(("mode", "reason"), [
    ("5xx", "HTTP 502"),
    ("not_json", "could not be read"),
    ("slow", "did not answer in time"),
    ("invalid_client", "invalid_client"),
])
def test_token_endpoint_failures_are_a_failed_attempt_the_user_can_retry(
    portal: TestClient, fake: Starlette, core_app: Starlette, mode: str, reason: str,
) -> None:
    fake.state.mode = mode
    session_id, page_path, _, pressed = start(portal)
    assert callback(portal, pressed, code="c-3").status_code == 303
    session = session_of(portal, session_id)
    # Nothing was connected and the link is valid: the session goes back to PENDING.
    assert (session["status"], session["errorCode"]) == ("PENDING", "TOKEN_EXCHANGE_FAILED")
    assert reason in session["error"]  # the provider's reason, for the backend
    assert len(session["error"]) <= 200
    assert received(core_app) == []
    page = portal.get(page_path).text
    assert "did not finish the sign-in" in page and "Try again" in page
    assert "<script>alert" not in page and "<b>bad" not in page
    assert reason not in page  # the provider's words stay off the page
    assert portal.get("/readyz").json()["outbox"]["depth"] == 0


def test_token_endpoint_down_is_a_failed_attempt(
    make_client: Any, tmp_path: Path, core_app: Starlette
) -> None:
    closed = bound_socket()  # bound, never listening: connections are refused
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    catalog = tmp_path / "down.json"
    catalog.write_text(json.dumps({"integrations": entries(url)}))
    apps = tmp_path / "apps.json"
    apps.write_text(json.dumps({"apps": {"fake": {"clientId": CLIENT_ID,
                                                  "clientSecret": CLIENT_SECRET}}}))
    portal: TestClient = make_client(catalog_paths=(str(catalog),), oauth_apps_file=str(apps),
                                     allow_http_loopback=True)
    session_id, _, _, pressed = start(portal)
    callback(portal, pressed, code="c-4")
    closed.close()
    session = session_of(portal, session_id)
    assert (session["status"], session["errorCode"]) == ("PENDING", "TOKEN_EXCHANGE_FAILED")
    assert session["error"] == "The provider could not be reached."
    assert received(core_app) == []


def test_an_authorization_error_with_html_goes_to_the_backend_capped_never_to_the_page(
    portal: TestClient, fake: Starlette, core_app: Starlette
) -> None:
    session_id, page_path, _, pressed = start(portal)
    callback(portal, pressed, error="server_error",
             error_description=HOSTILE_DESCRIPTION + "x" * 500)
    session = session_of(portal, session_id)
    assert (session["status"], session["errorCode"]) == ("PENDING", "OAUTH_ERROR")
    assert len(session["error"]) <= 200
    page = portal.get(page_path).text
    assert "<script>alert" not in page and "&lt;script&gt;" not in page
    assert "server_error" not in page
    assert fake.state.requests == [] and received(core_app) == []


def test_a_callback_without_a_code_fails_and_exchanges_nothing(
    portal: TestClient, fake: Starlette
) -> None:
    session_id, _, _, pressed = start(portal)
    callback(portal, pressed)
    assert session_of(portal, session_id)["errorCode"] == "OAUTH_ERROR"
    assert fake.state.requests == []


def test_two_flows_of_one_session_redeem_one_code(
    portal: TestClient, fake: Starlette, core_app: Starlette
) -> None:
    answer = mint(portal, integrationName="fake")
    page_path, csrf = open_page(portal, answer["token"])
    first, second = (portal.post(f"{page_path}/oauth", data={"csrf_token": csrf},
                                 headers={"Origin": PORTAL_URL}) for _ in range(2))
    assert callback(portal, first, code="c-5").status_code == 303
    refused = callback(portal, second, code="c-6")
    assert refused.status_code == 409
    assert [r["form"]["code"] for r in fake.state.requests] == ["c-5"]
    assert len(received(core_app)) == 1


@pytest.mark.parametrize(("integration", "basic"), [("fakejson", False),
                                                    ("fakejsonbasic", True)])
def test_a_json_token_request_for_providers_that_need_one(
    portal: TestClient, fake: Starlette, core_app: Starlette, integration: str, basic: bool
) -> None:
    session_id, _, _, pressed = start(portal, integration)
    callback(portal, pressed, code="c-7")
    [request] = fake.state.requests
    assert request["content_type"] == "application/json"
    assert request["form"]["code"] == "c-7"
    assert request["form"]["grant_type"] == "authorization_code"
    if basic:
        assert request["authorization"].startswith("Basic ")
        assert "client_secret" not in request["form"]
    else:
        assert request["authorization"] is None
        assert (request["form"]["client_id"], request["form"]["client_secret"]) == (
            CLIENT_ID, CLIENT_SECRET)
    assert session_of(portal, session_id)["status"] == "COMPLETED"


def test_a_wrong_iss_redeems_nothing_anywhere(portal: TestClient, fake: Starlette) -> None:
    session_id, _, _, pressed = start(portal)
    callback(portal, pressed, code="c-8", iss="https://other-provider.example")
    assert session_of(portal, session_id)["errorCode"] == "OAUTH_ERROR"
    assert fake.state.requests == []


def test_platform_oauth2_always_uses_the_platforms_app(
    portal: TestClient, core_app: Starlette
) -> None:
    core_app.state.oauth_apps["app-1"] = {"integrationName": "fakeplatform",
                                          "clientId": "customer", "clientSecret": "c-secret"}
    _, _, _, pressed = start(portal, "fakeplatform",
                             {"oauthAppMode": "custom", "oauthAppId": "app-1"})
    assert parse_qs(urlsplit(pressed.headers["location"]).query)["client_id"] == [CLIENT_ID]
    assert core_app.state.oauth_app_requests == []


def test_a_customers_app_is_fetched_once_and_kept_briefly(
    portal: TestClient, fake: Starlette, core_app: Starlette
) -> None:
    core_app.state.oauth_apps["app-2"] = {"integrationName": "fake",
                                          "clientId": "customer-2", "clientSecret": "c2-secret"}
    custom = {"oauthAppMode": "custom", "oauthAppId": "app-2"}
    for _ in range(2):
        _, _, _, pressed = start(portal, "fake", custom)
        callback(portal, pressed, code="c-9")
    assert core_app.state.oauth_app_requests == ["app-2"]
    assert [r["authorization"] for r in fake.state.requests] == [
        "Basic " + base64.b64encode(b"customer-2:c2-secret").decode()] * 2
    assert [c["body"]["oauthAppId"] for c in received(core_app)] == ["app-2", "app-2"]


def test_refresh_uses_the_props_for_the_token_url_and_checks_them(
    portal: TestClient, fake: Starlette
) -> None:
    refreshed = portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
        "integrationName": "fakeshop", "refreshToken": "r-1", "props": {"shop": "acme"}})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["data"] == {"instance_url": "https://acme.my.salesforce.example",
                                        "workspace_id": "ws-9"}
    [request] = fake.state.requests
    assert request["path"] == "/acme/token"
    assert request["form"]["grant_type"] == "refresh_token"
    assert request["form"]["refresh_token"] == "r-1"
    for shop in ("evil.com#", "127.0.0.1", "a@b"):
        hostile = portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
            "integrationName": "fakeshop", "refreshToken": "r-1", "props": {"shop": shop}})
        assert hostile.status_code == 400
        assert "props.shop" in hostile.json()["details"]["fields"]
    assert len(fake.state.requests) == 1


def test_refresh_when_the_provider_fails_is_a_502(portal: TestClient, fake: Starlette) -> None:
    fake.state.mode = "5xx"
    failed = portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
        "integrationName": "fake", "refreshToken": "r-2"})
    assert failed.status_code == 502
    assert failed.json()["code"] == "REFRESH_FAILED"
    assert failed.json()["details"]["reason"] == "status_502"


def test_salesforce_signs_in_at_production_or_a_sandbox(portal: TestClient) -> None:
    page_path = open_page(portal, mint(portal, integrationName="salesforce")["token"])[0]
    assert 'id="environment"' in portal.get(page_path).text
    for environment, host in (("login", "login.salesforce.com"), ("test", "test.salesforce.com")):
        _, _, _, pressed = start(portal, "salesforce", environment=environment)
        assert urlsplit(pressed.headers["location"]).netloc == host
    _, _, _, refused = start(portal, "salesforce", environment="evil.example")
    assert refused.status_code == 400 and 'id="environment-error"' in refused.text


def test_oauth_outcomes_send_the_session_webhooks_without_tokens(
    make_client: Any, provider: tuple[str, Starlette], fake: Starlette, tmp_path: Path
) -> None:
    secret = "whsec_" + base64.b64encode(b"o" * 32).decode()
    hooks = WebhookReceiver(secret)
    catalog = tmp_path / "fake.json"
    catalog.write_text(json.dumps({"integrations": entries(provider[0])}))
    apps = tmp_path / "apps.json"
    apps.write_text(json.dumps({"apps": {"fake": {"clientId": CLIENT_ID,
                                                  "clientSecret": CLIENT_SECRET}}}))
    with server_thread(hooks.app) as url:
        portal: TestClient = make_client(
            catalog_paths=(str(catalog),), oauth_apps_file=str(apps), allow_http_loopback=True,
            webhook_url=f"{url}/hooks", webhook_secret=secret)
        completed_id, _, _, pressed = start(portal)
        callback(portal, pressed, code="c-10")
        denied_id, denied_path, _, pressed = start(portal)
        callback(portal, pressed, error="access_denied")
        # A denied sign-in is a failed attempt: no event until the user stops.
        wait_until(lambda: len(hooks.verified) >= 1, timeout=10, what="the first webhook")
        wait_until(lambda: portal.get("/readyz").json()["outbox"]["depth"] == 0, timeout=10,
                   what="an empty outbox: every event queued so far sent")
        assert {event["data"]["id"] for event in hooks.verified} == {completed_id}
        portal.post(denied_path, data={"csrf_token": csrf_of(portal.get(denied_path).text),
                                       "action": "give_up"}, headers={"Origin": PORTAL_URL})
        wait_until(lambda: len(hooks.verified) >= 2, timeout=10, what="two webhooks")
        wait_until(lambda: portal.get("/readyz").json()["outbox"]["depth"] == 0, timeout=10,
                   what="an empty outbox")
    assert len(hooks.verified) == 2  # one event per session, none twice
    events = {event["data"]["id"]: event for event in hooks.verified}
    assert events[completed_id]["type"] == "connect.session.completed"
    assert events[denied_id]["type"] == "connect.session.failed"
    assert events[denied_id]["data"]["errorCode"] == "OAUTH_ERROR"
    raw = b"".join(delivery["body"] for delivery in hooks.deliveries).decode()
    for value in ("fake-access-token-1", "fake-refresh-token-1", "c-10", CLIENT_SECRET):
        assert value not in raw


def test_a_callback_while_redis_is_down_answers_503_and_redeems_nothing(
    make_client: Any, provider: tuple[str, Starlette], fake: Starlette, tmp_path: Path,
    core_app: Starlette, own_redis: RedisServer,
) -> None:
    catalog = tmp_path / "fake.json"
    catalog.write_text(json.dumps({"integrations": entries(provider[0])}))
    apps = tmp_path / "apps.json"
    apps.write_text(json.dumps({"apps": {"fake": {"clientId": CLIENT_ID,
                                                  "clientSecret": CLIENT_SECRET}}}))
    portal: TestClient = make_client(catalog_paths=(str(catalog),), redis_url=own_redis.url,
                                     oauth_apps_file=str(apps), allow_http_loopback=True)
    _, _, _, pressed = start(portal)
    own_redis.stop()
    answer = callback(portal, pressed, code="c-11")
    assert answer.status_code == 503
    assert "The portal is busy" in answer.text
    assert fake.state.requests == [] and received(core_app) == []


def test_zendesk_subdomain_and_microsoft_tenant_fill_the_provider_urls(
    portal: TestClient,
) -> None:
    _, _, _, zendesk = start(portal, "zendesk", subdomain="acme")
    assert zendesk.headers["location"].startswith(
        "https://acme.zendesk.com/oauth/authorizations/new?")
    _, _, _, common = start(portal, "microsoft-outlook", tenant="")
    assert urlsplit(common.headers["location"]).path == "/common/oauth2/v2.0/authorize"
    _, _, _, contoso = start(portal, "microsoft-outlook", tenant="contoso")
    assert urlsplit(contoso.headers["location"]).path == "/contoso/oauth2/v2.0/authorize"
    _, _, _, hostile = start(portal, "microsoft-outlook", tenant="../evil")
    assert hostile.status_code == 400 and 'id="tenant-error"' in hostile.text


# -- an operator entry whose token URL the end user chooses (issue 8, finding 1) ----------
def recording_listener() -> Starlette:
    """Any request to any path is recorded with its credentials, and answered like a token
    endpoint would: the host an end user typed, which must never see the platform app."""
    async def anything(request: Request) -> Response:
        request.app.state.requests.append({
            "method": request.method, "path": request.url.path, "query": request.url.query,
            "authorization": request.headers.get("authorization") or "",
            "body": (await request.body()).decode(errors="replace")})
        return JSONResponse({"access_token": "typed-host-token", "token_type": "bearer"})

    app = Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST"])])
    app.state.requests = []
    return app


def self_hosted_entry(**option: Any) -> dict[str, Any]:
    return {"name": "selfhosted", "displayName": "Self-hosted", "category": "Testing",
            "description": "An app that runs on the customer's own server.",
            "website": "https://selfhosted.example",
            "authOptions": [{"key": "oauth2", "type": "OAUTH2", "displayName": "Sign in",
                             "authUrl": "{base_url}/oauth/authorize",
                             "tokenUrl": "{base_url}/oauth/token", **option,
                             "props": {"base_url": {"type": "SHORT_TEXT", "required": True,
                                                    "displayName": "Server URL",
                                                    "format": "url"}}}]}


def test_a_host_the_user_types_never_receives_the_platform_app(
    make_client: Any, core_app: Starlette, tmp_path: Path
) -> None:
    from portal.catalog import CatalogError

    apps = tmp_path / "apps.json"
    apps.write_text(json.dumps({"apps": {"selfhosted": {"clientId": CLIENT_ID,
                                                        "clientSecret": CLIENT_SECRET}}}))
    unmarked = tmp_path / "unmarked.json"
    unmarked.write_text(json.dumps({"integrations": [self_hosted_entry()]}))
    with pytest.raises(CatalogError, match=r"authUrl: \{base_url\} lets the end user choose"):
        make_client(catalog_paths=(str(unmarked),), oauth_apps_file=str(apps),
                    allow_http_loopback=True)

    marked = tmp_path / "marked.json"
    marked.write_text(json.dumps({"integrations": [self_hosted_entry(customerAppOnly=True)]}))
    portal: TestClient = make_client(catalog_paths=(str(marked),), oauth_apps_file=str(apps),
                                     allow_http_loopback=True)
    listener = recording_listener()
    core_app.state.oauth_apps["cust-1"] = {"integrationName": "selfhosted",
                                           "clientId": "customer-id",
                                           "clientSecret": "customer-secret"}
    with server_thread(listener) as typed:
        # The platform's app is configured for this integration, but never used for it:
        # without the customer's own app there is no way to connect, said at minting.
        refused_mint = portal.post("/api/v1/connect/token", headers=AUTH, json=token_body(
            integrationName="selfhosted", authMethodKey="oauth2"))
        assert (refused_mint.status_code, refused_mint.json()["code"]) == (
            400, "MISSING_OAUTH2_CONFIG")
        refused = portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
            "integrationName": "selfhosted", "refreshToken": "r-1",
            "props": {"base_url": typed}})
        assert (refused.status_code, refused.json()["code"]) == (400, "NO_OAUTH_APP")

        # The customer's own app goes to the customer's own server, and only it does.
        _, _, _, custom = start(portal, "selfhosted",
                                {"oauthAppMode": "custom", "oauthAppId": "cust-1"},
                                base_url=typed)
        assert custom.headers["location"].startswith(f"{typed}/oauth/authorize?")
        assert callback(portal, custom, code="c-typed").status_code == 303
        refreshed = portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
            "integrationName": "selfhosted", "refreshToken": "r-2", "oauthAppId": "cust-1",
            "props": {"base_url": typed}})
        assert refreshed.status_code == 200, refreshed.text

    seen = json.dumps(listener.state.requests)
    assert len(listener.state.requests) == 2  # the customer's exchange and refresh
    assert "customer-secret" in seen
    assert CLIENT_ID not in seen and CLIENT_SECRET not in seen
    assert base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode() not in seen


# -- an error answer while a delivery is in flight (issue 8, finding 2) ----------------------
class SlowCore(httpx.AsyncBaseTransport):
    """The core API, holding every create-connection request until the test lets it go."""

    def __init__(self, core_app: Starlette) -> None:
        self._inner = httpx.ASGITransport(app=core_app)
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/connections":
            self.arrived.set()
            await anyio.to_thread.run_sync(self.release.wait)
        return await self._inner.handle_async_request(request)


# What a second callback of the same session may bring; none may move it out of CONNECTING.
LATE_ANSWERS = [{"error": "access_denied"}, {"code": "c-late", "iss": "https://evil.example"},
                {}]


@pytest.mark.parametrize("late", LATE_ANSWERS, ids=["error", "wrong-iss", "no-code"])
def test_an_error_answer_cannot_overrule_a_delivery_in_flight(
    make_client: Any, provider: tuple[str, Starlette], fake: Starlette, core_app: Starlette,
    tmp_path: Path, late: dict[str, str],
) -> None:
    secret = "whsec_" + base64.b64encode(b"r" * 32).decode()
    hooks = WebhookReceiver(secret)
    catalog = tmp_path / "fake.json"
    catalog.write_text(json.dumps({"integrations": entries(provider[0])}))
    apps = tmp_path / "apps.json"
    apps.write_text(json.dumps({"apps": {"fake": {"clientId": CLIENT_ID,
                                                  "clientSecret": CLIENT_SECRET}}}))
    slow = SlowCore(core_app)
    with server_thread(hooks.app) as hooks_url:
        portal: TestClient = make_client(
            core_transport=slow, catalog_paths=(str(catalog),), oauth_apps_file=str(apps),
            allow_http_loopback=True, webhook_url=f"{hooks_url}/hooks", webhook_secret=secret)
        answer = mint(portal, integrationName="fake")
        page_path, csrf = open_page(portal, answer["token"])
        # Sign-in started twice in one browser: two states for one session.
        first, second = (portal.post(f"{page_path}/oauth", data={"csrf_token": csrf},
                                     headers={"Origin": PORTAL_URL}) for _ in range(2))
        finished: list[Any] = []
        with ThreadPoolExecutor(max_workers=1) as pool:
            delivery = pool.submit(lambda: finished.append(callback(portal, first, code="c-1")))
            try:
                wait_until(slow.arrived.is_set, timeout=10, what="the delivery to reach the core")
                assert session_of(portal, answer["sessionId"])["status"] == "CONNECTING"

                overruled = callback(portal, second, **late)
                assert overruled.status_code == 303
                assert overruled.headers["location"] == page_path  # the page: "Finishing…"
                assert "Finishing your connection" in portal.get(page_path).text
                assert session_of(portal, answer["sessionId"])["status"] == "CONNECTING"
            finally:
                slow.release.set()
            delivery.result(timeout=30)
        session = session_of(portal, answer["sessionId"])
        assert (session["status"], session["error"]) == ("COMPLETED", None)
        assert len(received(core_app)) == 1
        assert [r["form"]["code"] for r in fake.state.requests] == ["c-1"]
        wait_until(lambda: len(hooks.verified) >= 1, timeout=10, what="the webhook")
    assert [event["type"] for event in hooks.verified] == ["connect.session.completed"]


def test_an_error_answer_that_read_the_session_before_a_delivery_claimed_it_changes_nothing(
    portal: TestClient, fake: Starlette, core_app: Starlette,
) -> None:
    """The race: callback 2 reads PENDING, then callback 1 moves the session to CONNECTING
    before callback 2 writes. Its write must be refused by the store, not applied."""
    from portal.sessions import SessionStatus

    answer = mint(portal, integrationName="fake")
    page_path, csrf = open_page(portal, answer["token"])
    first, second = (portal.post(f"{page_path}/oauth", data={"csrf_token": csrf},
                                 headers={"Origin": PORTAL_URL}) for _ in range(2))
    store = portal.app.state.flow.store  # type: ignore[attr-defined]
    real_get = store.get

    async def read_then_claimed_by_the_other_callback(session_id: str) -> Any:
        seen = await real_get(session_id)
        if seen is not None and seen.status is SessionStatus.PENDING:
            await store.transition(session_id, SessionStatus.CONNECTING)  # callback 1
        return seen  # what callback 2 read: PENDING

    store.get = read_then_claimed_by_the_other_callback
    try:
        overruled = callback(portal, second, error="access_denied")
    finally:
        store.get = real_get
    assert overruled.status_code == 303 and overruled.headers["location"] == page_path
    session = session_of(portal, answer["sessionId"])
    assert (session["status"], session["error"]) == ("CONNECTING", None)
    assert fake.state.requests == [] and received(core_app) == []
    del first
