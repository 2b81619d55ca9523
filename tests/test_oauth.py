"""The OAuth connect against a real OpenID Connect provider (oidc-provider under node, PKCE
required): both client authentication methods, the attacks RFC 9700 lists for a client
(replayed, forged, missing, expired and other-browser state, a wrong or missing `iss`),
the user denying consent, whose app signs in, the refresh service, and a scan of Redis
and the logs for any secret left in plain form."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.conftest import (
    AUTH,
    FAST_DELIVERY,
    PARTNER_ORIGIN,
    PORTAL_URL,
    csrf_of,
    mint,
    open_page,
    received,
    redis_values,
    session_of,
    token_body,
)
from tests.live_servers import wait_until
from tests.oauth_provider import BASIC, CUSTOM, POST, Provider, run_provider, sign_in, write_config

CALLBACK = f"{PORTAL_URL}/oauth/callback"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with run_provider([CALLBACK]) as running:
        yield running


@pytest.fixture
def portal(make_client: Any, provider: Provider, tmp_path: Path) -> TestClient:
    catalog, apps = write_config(tmp_path, provider.issuer)
    client: TestClient = make_client(catalog_paths=(str(catalog),),
                                     oauth_apps_file=str(apps), allow_http_loopback=True)
    return client


@pytest.fixture
def user() -> Iterator[httpx.Client]:
    """The user's browser at the provider: its own cookies, no automatic redirects."""
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        yield client


def start(portal: TestClient, integration: str = "testid-basic", **mint_args: Any
          ) -> tuple[dict[str, Any], str, httpx.Response]:
    """Mint, open the link, press the sign-in button; returns the token answer, the page
    path and the portal's answer to the button (a 303 to the provider)."""
    answer = mint(portal, integrationName=integration, **mint_args)
    page_path, csrf = open_page(portal, answer["token"])
    pressed = portal.post(f"{page_path}/oauth", data={"csrf_token": csrf},
                          headers={"Origin": PORTAL_URL})
    return answer, page_path, pressed


def without(url: str, name: str, value: str | None = None) -> str:
    """The URL with one query parameter removed, or replaced when `value` is given."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items() if k != name}
    if value is not None:
        query[name] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.mark.parametrize(("integration", "client"), [("testid-basic", BASIC),
                                                     ("testid-post", POST)])
def test_sign_in_delivers_the_tokens_with_each_client_auth_method(
    portal: TestClient, user: httpx.Client, core_app: Starlette, integration: str, client: Any,
) -> None:
    answer, page_path, pressed = start(portal, integration)
    assert pressed.status_code == 303
    authorize = pressed.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["client_id"] == [client.client_id]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["state"][0]) >= 43  # 256 random bits
    assert query["prompt"] == ["consent"]  # the entry's extra authorize parameters

    back = sign_in(user, authorize, stop_at=CALLBACK)
    assert parse_qs(urlsplit(back).query)["iss"] == [_issuer(authorize)]
    finished = portal.get(back)
    assert finished.status_code == 303
    assert finished.headers["location"] == page_path  # the code leaves the address bar
    result = portal.get(page_path)
    assert "Connected" in result.text

    [delivered] = received(core_app)
    body = delivered["body"]
    assert delivered["idempotencyKey"] == answer["sessionId"]
    assert (body["type"], body["integrationName"], body["authMethodKey"]) == (
        "OAUTH2", integration, "oauth2")
    assert body["accessToken"] and body["refreshToken"]
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == 3600
    assert body["scope_oauth"] == "openid offline_access"  # from the token, not the request
    assert "oauthAppId" not in body
    session = session_of(portal, answer["sessionId"])
    assert session["status"] == "COMPLETED"
    assert session["connectionId"] == delivered["id"]


def _issuer(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_redirect_uri_ignores_the_host_header(portal: TestClient) -> None:
    answer = mint(portal, integrationName="testid-basic")
    page_path, csrf = open_page(portal, answer["token"])
    pressed = portal.post(f"{page_path}/oauth", data={"csrf_token": csrf},
                          headers={"Origin": PORTAL_URL, "Host": "attacker.example"})
    assert pressed.status_code == 303
    query = parse_qs(urlsplit(pressed.headers["location"]).query)
    assert query["redirect_uri"] == [CALLBACK]


def test_a_replayed_callback_is_refused_and_delivers_nothing_more(
    portal: TestClient, user: httpx.Client, core_app: Starlette,
) -> None:
    answer, _, pressed = start(portal)
    back = sign_in(user, pressed.headers["location"], stop_at=CALLBACK)
    assert portal.get(back).status_code == 303
    replayed = portal.get(back)
    assert replayed.status_code == 400
    assert "This sign-in cannot be finished" in replayed.text
    assert "OAUTH_STATE_INVALID" in replayed.text
    assert len(received(core_app)) == 1
    assert session_of(portal, answer["sessionId"])["status"] == "COMPLETED"


def test_forged_and_missing_state_change_nothing(
    portal: TestClient, user: httpx.Client, core_app: Starlette,
) -> None:
    answer, _, pressed = start(portal)
    back = sign_in(user, pressed.headers["location"], stop_at=CALLBACK)
    for url in (without(back, "state", "forged-" + "x" * 40), without(back, "state"),
                without(back, "state", "")):
        response = portal.get(url)
        assert response.status_code == 400, url
        assert "OAUTH_STATE_INVALID" in response.text
    assert session_of(portal, answer["sessionId"])["status"] == "PENDING"
    assert received(core_app) == []
    # The real state still works afterwards: the forgeries consumed nothing.
    assert portal.get(back).status_code == 303
    assert session_of(portal, answer["sessionId"])["status"] == "COMPLETED"


def test_an_expired_state_is_refused(
    portal: TestClient, user: httpx.Client, core_app: Starlette,
    redis_client: redis.Redis, redis_prefix: str,
) -> None:
    answer, _, pressed = start(portal)
    back = sign_in(user, pressed.headers["location"], stop_at=CALLBACK)
    [key] = redis_client.keys(f"{redis_prefix}oauth-state:*")
    assert 0 < redis_client.ttl(key) <= 600  # a state lives ten minutes at most
    redis_client.pexpire(key, 1)
    wait_until(lambda: not redis_client.exists(key), timeout=5, what="Redis to expire the state")
    response = portal.get(back)
    assert response.status_code == 400
    assert "OAUTH_STATE_INVALID" in response.text
    assert received(core_app) == []
    assert session_of(portal, answer["sessionId"])["status"] == "PENDING"


def test_a_callback_in_another_browser_is_refused(
    portal: TestClient, user: httpx.Client, core_app: Starlette, make_client: Any,
    provider: Provider, tmp_path: Path,
) -> None:
    answer, _, pressed = start(portal)
    back = sign_in(user, pressed.headers["location"], stop_at=CALLBACK)
    catalog, apps = write_config(tmp_path, provider.issuer)
    other: TestClient = make_client(catalog_paths=(str(catalog),), oauth_apps_file=str(apps),
                                    allow_http_loopback=True)
    response = other.get(back)
    assert response.status_code == 403
    assert "SESSION_NOT_BOUND" in response.text
    assert received(core_app) == []
    assert session_of(portal, answer["sessionId"])["status"] == "PENDING"


def test_a_wrong_iss_is_a_failed_attempt_and_redeems_nothing(
    portal: TestClient, user: httpx.Client, core_app: Starlette,
) -> None:
    answer, page_path, pressed = start(portal)
    back = sign_in(user, pressed.headers["location"], stop_at=CALLBACK)
    response = portal.get(without(back, "iss", "https://attacker.example"))
    assert response.status_code == 303
    session = session_of(portal, answer["sessionId"])
    assert (session["status"], session["errorCode"]) == ("PENDING", "OAUTH_ERROR")
    assert "did not come from Test ID Header" in session["error"]
    assert received(core_app) == []
    page = portal.get(page_path).text
    assert "did not finish the sign-in" in page and "Try again" in page


def test_a_missing_iss_is_refused_when_the_provider_declares_it(
    portal: TestClient, user: httpx.Client, core_app: Starlette,
) -> None:
    answer, _, pressed = start(portal)
    back = sign_in(user, pressed.headers["location"], stop_at=CALLBACK)
    portal.get(without(back, "iss"))
    session = session_of(portal, answer["sessionId"])
    assert (session["status"], session["errorCode"]) == ("PENDING", "OAUTH_ERROR")
    assert received(core_app) == []


def press(portal: TestClient, page_path: str, action: str, **fields: str) -> httpx.Response:
    """A step button of the session's page (Try again, Back, Stop)."""
    response: httpx.Response = portal.post(
        page_path, data={"csrf_token": csrf_of(portal.get(page_path).text), "action": action,
                         **fields}, headers={"Origin": PORTAL_URL})
    return response


def test_a_denied_sign_in_can_be_tried_again_and_succeed_on_the_same_link(
    portal: TestClient, user: httpx.Client, core_app: Starlette,
) -> None:
    done, failed = f"{PARTNER_ORIGIN}/connected", f"{PARTNER_ORIGIN}/failed"
    answer, page_path, pressed = start(portal, successRedirectUri=done,
                                       errorRedirectUri=failed)
    back = sign_in(user, pressed.headers["location"], stop_at=CALLBACK, deny=True)
    assert parse_qs(urlsplit(back).query)["error"] == ["access_denied"]
    finished = portal.get(back)
    # Not to the partner yet: the portal's page says what happened and offers a retry.
    assert finished.status_code == 303 and finished.headers["location"] == page_path
    session = session_of(portal, answer["sessionId"])
    assert (session["status"], session["errorCode"]) == ("PENDING", "OAUTH_ERROR")
    assert "access_denied" in session["error"]  # the provider's word, for the backend
    page = portal.get(page_path).text
    assert "did not finish the sign-in" in page and "access_denied" not in page

    assert press(portal, page_path, "try_again").headers["location"] == page_path
    again = portal.post(f"{page_path}/oauth", data={"csrf_token": csrf_of(
        portal.get(page_path).text)}, headers={"Origin": PORTAL_URL})
    back = sign_in(user, again.headers["location"], stop_at=CALLBACK)
    finished = portal.get(back)
    assert finished.headers["location"] == (
        f"{done}?sessionId={answer['sessionId']}&connectionId="
        f"{received(core_app)[0]['id']}&status=success")
    assert len(received(core_app)) == 1
    session = session_of(portal, answer["sessionId"])
    assert (session["status"], session["errorCode"]) == ("COMPLETED", None)


def test_stopping_after_a_denied_sign_in_returns_the_code_to_the_partner(
    portal: TestClient, user: httpx.Client, core_app: Starlette,
) -> None:
    answer, page_path, pressed = start(
        portal, errorRedirectUri=f"{PARTNER_ORIGIN}/connected")
    portal.get(sign_in(user, pressed.headers["location"], stop_at=CALLBACK, deny=True))
    stopped = press(portal, page_path, "give_up")
    # Redirect mode: the partner learns the code and nothing else.
    assert stopped.headers["location"] == (
        f"{PARTNER_ORIGIN}/connected?sessionId={answer['sessionId']}&status=error"
        "&code=OAUTH_ERROR")
    session = session_of(portal, answer["sessionId"])
    assert (session["status"], session["errorCode"]) == ("FAILED", "OAUTH_ERROR")
    assert received(core_app) == []


def test_a_sign_in_started_for_a_choice_since_undone_cannot_finish(
    portal: TestClient, user: httpx.Client, core_app: Starlette,
) -> None:
    answer = mint(portal, integrationName=None)
    page_path, csrf = open_page(portal, answer["token"])
    press(portal, page_path, "choose", integration="testid-basic")
    pressed = portal.post(f"{page_path}/oauth", data={"csrf_token": csrf},
                          headers={"Origin": PORTAL_URL})
    back = sign_in(user, pressed.headers["location"], stop_at=CALLBACK)
    press(portal, page_path, "back")  # the user changed their mind meanwhile
    press(portal, page_path, "choose", integration="testid-post")
    refused = portal.get(back)
    assert refused.status_code == 400
    assert 'data-error-code="OAUTH_STATE_INVALID"' in refused.text
    assert received(core_app) == []
    session = session_of(portal, answer["sessionId"])
    assert (session["status"], session["integrationName"]) == ("PENDING", "testid-post")


def test_a_customers_own_app_comes_from_the_core_api(
    portal: TestClient, user: httpx.Client, core_app: Starlette,
) -> None:
    core_app.state.oauth_apps["app-7"] = {"integrationName": "testid-post",
                                          "clientId": CUSTOM.client_id,
                                          "clientSecret": CUSTOM.client_secret}
    answer, _, pressed = start(portal, "testid-post", oauthAppMode="custom",
                               oauthAppId="app-7")
    assert parse_qs(urlsplit(pressed.headers["location"]).query)["client_id"] == [
        CUSTOM.client_id]
    back = sign_in(user, pressed.headers["location"], stop_at=CALLBACK)
    portal.get(back)
    [delivered] = received(core_app)
    assert delivered["body"]["oauthAppId"] == "app-7"
    assert session_of(portal, answer["sessionId"])["status"] == "COMPLETED"


def test_no_oauth_app_is_refused_at_minting_or_is_a_failed_attempt(
    portal: TestClient, core_app: Starlette,
) -> None:
    # No platform app for GitHub's sign-in: the backend hears it when minting.
    refused = portal.post("/api/v1/connect/token", headers=AUTH, json=token_body(
        integrationName="github", authMethodKey="oauth2"))
    assert (refused.status_code, refused.json()["code"]) == (400, "MISSING_OAUTH2_CONFIG")
    # A customer's app the core API does not know is only found out at the sign-in.
    answer, page_path, pressed = start(portal, "testid-post", oauthAppMode="custom",
                                       oauthAppId="no-such-app")
    assert pressed.status_code == 303
    assert pressed.headers["location"] == page_path
    page = portal.get(page_path).text
    assert "is not available" in page and "Try again" in page
    session = session_of(portal, answer["sessionId"])
    assert (session["status"], session["errorCode"]) == ("PENDING", "NO_OAUTH_APP")
    assert received(core_app) == []


def test_refresh_service_returns_fresh_tokens_and_refuses_a_bad_one(
    portal: TestClient, user: httpx.Client, core_app: Starlette,
) -> None:
    _, _, pressed = start(portal)
    portal.get(sign_in(user, pressed.headers["location"], stop_at=CALLBACK))
    first = received(core_app)[0]["body"]

    unauthorized = portal.post("/api/v1/oauth/refresh", json={})
    assert unauthorized.status_code == 401
    fresh = portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
        "integrationName": "testid-basic", "refreshToken": first["refreshToken"]})
    assert fresh.status_code == 200, fresh.text
    tokens = fresh.json()
    assert tokens["accessToken"] and tokens["accessToken"] != first["accessToken"]
    assert tokens["refreshToken"] and tokens["tokenType"] == "Bearer"
    assert tokens["expiresIn"] == 3600

    refused = portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
        "integrationName": "testid-basic", "refreshToken": "not-a-refresh-token"})
    assert refused.status_code == 400
    assert refused.json()["code"] == "REFRESH_FAILED"
    assert refused.json()["details"]["reason"] == "invalid_grant"

    invalid = portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
        "integrationName": "testid-basic"})
    assert invalid.status_code == 400
    assert invalid.json()["details"]["fields"] == {
        "refreshToken": "Required: the refresh token to exchange."}
    unknown = portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
        "integrationName": "no-such-app", "refreshToken": "x"})
    assert unknown.json()["code"] == "INTEGRATION_NOT_FOUND"


def test_no_secret_is_left_in_redis_the_logs_or_a_partner_url(
    portal: TestClient, user: httpx.Client, core_app: Starlette, redis_url: str,
    redis_prefix: str, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    answer, _, pressed = start(portal, successRedirectUri=f"{PARTNER_ORIGIN}/done")
    authorize = pressed.headers["location"]
    back = sign_in(user, authorize, stop_at=CALLBACK)
    # Scan Redis between the start and the callback, while the state record exists.
    during = _redis_text(redis_url, redis_prefix)
    assert "oauth-state:" in during
    finished = portal.get(back)
    partner_url = finished.headers["location"]
    assert partner_url.startswith(f"{PARTNER_ORIGIN}/done?sessionId=")
    body = received(core_app)[0]["body"]
    refreshed = portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
        "integrationName": "testid-basic", "refreshToken": body["refreshToken"]}).json()

    code = parse_qs(urlsplit(back).query)["code"][0]
    state = parse_qs(urlsplit(authorize).query)["state"][0]
    secrets = {
        "code": code, "state": state,
        "access token": body["accessToken"], "refresh token": body["refreshToken"],
        "fresh access token": refreshed["accessToken"],
        "basic client secret": BASIC.client_secret, "post client secret": POST.client_secret,
    }
    after = _redis_text(redis_url, redis_prefix)
    # The portal's own log lines (the test's HTTP clients log the URLs they visit).
    logs = "\n".join(record.getMessage() for record in caplog.records
                     if record.name.startswith("portal"))
    assert "GET /oauth/callback 303" in logs
    assert answer["sessionId"] in after  # the scan does see the session
    for name, value in secrets.items():
        assert value not in during, f"{name} in Redis during the flow"
        assert value not in after, f"{name} in Redis after the flow"
        assert value not in logs, f"{name} in a log line"
        assert value not in partner_url, f"{name} in the partner's URL"
    # The test never sees the PKCE verifier, but it knows its S256 challenge: no run of
    # verifier characters anywhere in Redis hashes to it, so the verifier is not there.
    challenge = parse_qs(urlsplit(authorize).query)["code_challenge"][0]
    candidates = set()
    for text in (during, after):
        for run in re.findall(r"[A-Za-z0-9_~.-]{43,}", text):
            candidates.update(run[i:i + size] for size in range(43, min(len(run), 128) + 1)
                              for i in range(len(run) - size + 1))
    assert candidates  # the scan does look at the state record's characters
    assert all(_s256(candidate) != challenge for candidate in candidates)
    assert '"verifier"' not in during


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _redis_text(redis_url: str, prefix: str) -> str:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return "\n".join(f"{key} {value}" for key, value in
                         redis_values(client, prefix).items())
    finally:
        client.close()


def test_openapi_describes_the_refresh_service(portal: TestClient) -> None:
    document = portal.get("/api/v1/openapi.json").json()
    refresh = document["paths"]["/api/v1/oauth/refresh"]["post"]
    assert refresh["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "integrationName", "refreshToken"]
    assert {"REFRESH_FAILED", "NO_OAUTH_APP"} <= set(
        document["components"]["schemas"]["Error"]["properties"]["code"]["enum"])


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not valid JSON"),
    ('{"slack": {}}', 'expected an object with an "apps" object'),
    ('{"apps": {"slack": {"clientId": "id"}}}',
     "apps.slack: needs exactly a non-empty clientId and clientSecret"),
    ('{"apps": {"slack": {"clientId": "id", "clientSecret": "  "}}}',
     "apps.slack: needs exactly a non-empty clientId and clientSecret"),
])
def test_a_bad_oauth_apps_file_stops_the_start_naming_the_entry(
    make_client: Any, tmp_path: Path, content: str, message: str
) -> None:
    from portal.settings import SettingsError

    path = tmp_path / "apps.json"
    path.write_text(content)
    with pytest.raises(SettingsError) as raised:
        make_client(oauth_apps_file=str(path))
    assert message in str(raised.value)
    assert "PORTAL_OAUTH_APPS" in str(raised.value)


def test_oauth_settings_come_from_the_environment() -> None:
    from portal.settings import Settings, SettingsError

    settings = Settings.from_env({"PORTAL_OAUTH_APPS": "/etc/portal/oauth-apps.json",
                                  "PORTAL_OAUTH_TIMEOUT": "4"})
    assert (settings.oauth_apps_file, settings.oauth_timeout) == (
        "/etc/portal/oauth-apps.json", 4.0)
    assert Settings.from_env({}).oauth_apps_file is None
    with pytest.raises(SettingsError, match="PORTAL_OAUTH_TIMEOUT must be between"):
        Settings.from_env({"PORTAL_OAUTH_TIMEOUT": "600"})


# -- the browser cookie (issue 8, finding 9) ----------------------------------------------
PLANTED = "A" * 43  # the shape of a value the portal mints, but not one it issued


def _oauth_cookie(response: httpx.Response, name: str = "portal_oauth") -> str:
    [header] = [value for value in response.headers.get_list("set-cookie")
                if value.startswith(f"{name}=")]
    return header


def test_a_planted_oauth_cookie_is_never_bound_into_the_state(
    portal: TestClient, user: httpx.Client, core_app: Starlette, make_client: Any,
    provider: Provider, tmp_path: Path,
) -> None:
    portal.cookies.set("portal_oauth", PLANTED, domain="portal.test")
    answer, _, pressed = start(portal)
    issued = _oauth_cookie(pressed).split(";", 1)[0].split("=", 1)[1]
    assert issued != PLANTED
    back = sign_in(user, pressed.headers["location"], stop_at=CALLBACK)

    # Whoever planted the value cannot finish the flow with it…
    catalog, apps = write_config(tmp_path, provider.issuer)
    planter: TestClient = make_client(catalog_paths=(str(catalog),), oauth_apps_file=str(apps),
                                      allow_http_loopback=True)
    planter.cookies.set("portal_oauth", PLANTED, domain="portal.test")
    refused = planter.get(back)
    assert refused.status_code == 403 and "SESSION_NOT_BOUND" in refused.text
    assert received(core_app) == []
    assert session_of(portal, answer["sessionId"])["status"] == "PENDING"
    # …and the refusal used up nothing: the browser that started it still finishes it.
    assert portal.get(back).status_code == 303
    assert session_of(portal, answer["sessionId"])["status"] == "COMPLETED"


def test_the_oauth_cookie_is_host_prefixed_over_https(
    settings: Any, core_app: Starlette, provider: Provider, tmp_path: Path, make_app: Any,
) -> None:
    from dataclasses import replace

    public = "https://portal.example"
    catalog, apps = write_config(tmp_path, provider.issuer)
    app = make_app(replace(settings, public_url=public, catalog_paths=(str(catalog),),
                             oauth_apps_file=str(apps), allow_http_loopback=True),
                     core_transport=httpx.ASGITransport(app=core_app))
    with TestClient(app, base_url=public, follow_redirects=False) as browser:
        answer = mint(browser, integrationName="testid-basic")
        page_path, csrf = open_page(browser, answer["token"])
        pressed = browser.post(f"{page_path}/oauth", data={"csrf_token": csrf},
                               headers={"Origin": public})
        assert pressed.status_code == 303
        cookie = _oauth_cookie(pressed, "__Host-portal_oauth")
        attributes = {part.strip().split("=", 1)[0].lower(): part.strip()
                      for part in cookie.split(";")[1:]}
        assert {"secure", "httponly", "path", "samesite"} <= set(attributes)
        assert attributes["path"] == "Path=/" and "domain" not in attributes
        assert not [value for value in pressed.headers.get_list("set-cookie")
                    if value.startswith("portal_oauth=")]
        # The callback reads the prefixed cookie: the user's "deny" reaches the session.
        state = parse_qs(urlsplit(pressed.headers["location"]).query)["state"][0]
        denied = browser.get("/oauth/callback", params={"state": state,
                                                        "error": "access_denied"})
        assert denied.status_code == 303
        assert session_of(browser, answer["sessionId"])["errorCode"] == "OAUTH_ERROR"


def test_tokens_of_a_redeemed_code_wait_sealed_in_the_outbox_while_the_core_api_is_down(
    make_client: Any, provider: Provider, tmp_path: Path, user: httpx.Client,
    core_app: Starlette, redis_url: str, redis_prefix: str,
) -> None:
    """The code is redeemed once; what it yields is never lost, nor kept in the clear."""
    down = threading.Event()
    down.set()
    core = httpx.ASGITransport(app=core_app)

    class Flaky(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if down.is_set() and request.method == "POST":
                return httpx.Response(503)
            return await core.handle_async_request(request)

    catalog, apps = write_config(tmp_path, provider.issuer)
    portal = make_client(catalog_paths=(str(catalog),), oauth_apps_file=str(apps),
                         allow_http_loopback=True, core_transport=Flaky(),
                         delivery_timing=replace(FAST_DELIVERY, inline_budget=0.2))
    answer, _, pressed = start(portal)
    back = sign_in(user, pressed.headers["location"], stop_at=CALLBACK)
    finished = portal.get(back)
    assert finished.status_code == 303
    assert "Finishing your connection" in portal.get(finished.headers["location"]).text
    assert session_of(portal, answer["sessionId"])["status"] == "CONNECTING"
    stored = _redis_text(redis_url, redis_prefix)
    assert f"{redis_prefix}outbox" in stored  # the scan reads the waiting job
    # A second use of the same answer changes nothing: the code was redeemed once.
    again = portal.get(back)
    assert again.status_code == 400  # "already used", and the session is untouched
    down.clear()
    wait_until(lambda: session_of(portal, answer["sessionId"])["status"] == "COMPLETED",
               timeout=10, what="the queued tokens to be delivered")
    [delivered] = received(core_app)
    body = delivered["body"]
    # Nothing the provider gave was readable in Redis while it waited.
    for secret in (body["accessToken"], body["refreshToken"]):
        assert secret not in stored
