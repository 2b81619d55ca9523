"""Token and refresh requests (portal/auth/oauth/provider.py), sent with httpx through
the guarded outbound path: both client authentication methods, form and JSON requests,
JSON and form-encoded answers, OAuth error bodies, size caps, and (issue 8, finding 1)
no connection at all to a token host that resolves to a refused address, so the client
secret and the PKCE verifier never leave the portal for it."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import socket
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from portal.auth.oauth.provider import (
    MAX_TOKEN_RESPONSE_BYTES,
    ClientApp,
    Endpoints,
    ProviderClient,
    ProviderError,
    TokenSet,
    clean_text,
)
from portal.catalog import OAuthSettings
from portal.outbound import OutboundPolicy
from tests.conftest import AUTH, PORTAL_URL, mint, open_page
from tests.fake_network import Listener, Names
from tests.live_servers import server_thread, trickling_server, wait_until

T = TypeVar("T")
APP = ClientApp(client_id="portal-client", client_secret="platform-secret-Qw8Er4Ty6Ui2")
VERIFIER = "pkce-verifier-" + "v" * 50
DEVELOPMENT = OutboundPolicy(allow_http_loopback=True)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def oauth(**overrides: Any) -> OAuthSettings:
    values: dict[str, Any] = {"auth_url": "https://idp.example/authorize",
                              "token_url": "https://idp.example/token", "scope": "read",
                              "pkce": True}
    values.update(overrides)
    return OAuthSettings(**values)


def token_endpoint() -> Starlette:
    """A token endpoint whose answer `app.state.answer` sets; it records every request."""
    async def token(request: Request) -> Response:
        body = (await request.body()).decode()
        request.app.state.requests.append({
            "content_type": request.headers.get("content-type", ""),
            "accept": request.headers.get("accept", ""),
            "authorization": request.headers.get("authorization"),
            "body": body})
        answer: Response = request.app.state.answer
        return answer

    app = Starlette(routes=[Route("/token", token, methods=["POST"])])
    app.state.requests = []
    app.state.answer = JSONResponse({"access_token": "at-1", "token_type": "bearer",
                                     "expires_in": 3600, "refresh_token": "rt-1"})
    return app


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[str, Starlette]]:
    app = token_endpoint()
    with server_thread(app) as url:
        yield url, app


@pytest.fixture
def provider(endpoint: tuple[str, Starlette]) -> tuple[str, Starlette]:
    url, app = endpoint
    app.state.requests.clear()
    app.state.answer = JSONResponse({"access_token": "at-1", "token_type": "bearer",
                                     "expires_in": 3600, "refresh_token": "rt-1"})
    return f"{url}/token", app


def exchange(token_url: str, settings: OAuthSettings | None = None, *,
             policy: OutboundPolicy = DEVELOPMENT, lookup: Any = None,
             timeout: float = 3.0) -> TokenSet:
    async def go() -> TokenSet:
        client = ProviderClient(timeout=timeout, policy=policy,
                                **({"lookup": lookup} if lookup else {}))
        try:
            return await client.exchange_code(
                settings or oauth(), Endpoints(auth_url="", token_url=token_url, issuer="",
                                               iss_required=False),
                APP, code="code-1", verifier=VERIFIER, redirect_uri=f"{PORTAL_URL}/cb")
        finally:
            await client.aclose()
    return run(go())


def refresh(token_url: str, settings: OAuthSettings | None = None) -> TokenSet:
    async def go() -> TokenSet:
        client = ProviderClient(timeout=3.0, policy=DEVELOPMENT)
        try:
            return await client.refresh(
                settings or oauth(), Endpoints(auth_url="", token_url=token_url, issuer="",
                                               iss_required=False), APP, "rt-old")
        finally:
            await client.aclose()
    return run(go())


def basic(app: ClientApp) -> str:
    return "Basic " + base64.b64encode(f"{app.client_id}:{app.client_secret}".encode()).decode()


# -- how the request is written ----------------------------------------------------------------
def test_client_secret_basic_sends_the_credentials_in_the_header_only(
    provider: tuple[str, Starlette],
) -> None:
    url, app = provider
    tokens = exchange(url, oauth(authorization_method="HEADER"))
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_in) == ("at-1", "rt-1",
                                                                             3600)
    [sent] = app.state.requests
    assert sent["authorization"] == basic(APP)
    assert sent["content_type"] == "application/x-www-form-urlencoded"
    assert sent["accept"] == "application/json"
    form = parse_qs(sent["body"])
    assert form == {"grant_type": ["authorization_code"], "code": ["code-1"],
                    "redirect_uri": [f"{PORTAL_URL}/cb"], "code_verifier": [VERIFIER]}


def test_client_secret_post_sends_the_credentials_in_the_form(
    provider: tuple[str, Starlette],
) -> None:
    url, app = provider
    exchange(url, oauth(authorization_method="BODY"))
    [sent] = app.state.requests
    assert sent["authorization"] is None
    form = parse_qs(sent["body"])
    assert form["client_id"] == [APP.client_id]
    assert form["client_secret"] == [APP.client_secret]
    assert form["grant_type"] == ["authorization_code"]


@pytest.mark.parametrize("method", ["BODY", "HEADER"])
def test_a_json_token_request_carries_the_same_fields(
    provider: tuple[str, Starlette], method: str
) -> None:
    url, app = provider
    refresh(url, oauth(authorization_method=method, token_request_format="JSON"))
    [sent] = app.state.requests
    assert sent["content_type"] == "application/json"
    body = json.loads(sent["body"])
    assert (body["grant_type"], body["refresh_token"]) == ("refresh_token", "rt-old")
    if method == "BODY":
        assert (body["client_id"], body["client_secret"]) == (APP.client_id, APP.client_secret)
        assert sent["authorization"] is None
    else:
        assert "client_secret" not in body
        assert sent["authorization"] == basic(APP)


# -- how the answer is read -----------------------------------------------------------------
def test_a_form_encoded_answer_is_read_like_githubs(provider: tuple[str, Starlette]) -> None:
    url, app = provider
    app.state.answer = Response(
        "access_token=gho_abc&scope=repo%2Cgist&token_type=bearer",
        media_type="application/x-www-form-urlencoded")
    tokens = exchange(url)
    assert (tokens.access_token, tokens.scope, tokens.token_type) == ("gho_abc", "repo,gist",
                                                                     "bearer")


def test_a_refresh_without_a_new_refresh_token_keeps_the_old_one(
    provider: tuple[str, Starlette],
) -> None:
    url, app = provider
    app.state.answer = JSONResponse({"access_token": "at-2", "expires_in": "60"})
    tokens = refresh(url)
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_in) == ("at-2", "rt-old",
                                                                             60)


@pytest.mark.parametrize(("answer", "reason", "shown"), [
    (JSONResponse({"error": "invalid_grant", "error_description": "Code \u202eexpired\u202c"},
                  status_code=400),
     "invalid_grant", "The provider refused the sign-in (invalid_grant): Code expired"),
    (Response("error=bad_verification_code&error_description=The+code+is+wrong",
              media_type="application/x-www-form-urlencoded"),
     "bad_verification_code",
     "The provider refused the sign-in (bad_verification_code): The code is wrong"),
    (JSONResponse({"error": "invalid_client\u200b\u2066"}, status_code=401),
     "invalid_client", "The provider refused the sign-in (invalid_client)"),
    (PlainTextResponse("upstream broke", status_code=502),
     "status_502", "The provider answered with an error (HTTP 502)."),
    (PlainTextResponse("<html>maintenance</html>"),
     "not_json", "The provider gave an answer that could not be read."),
    (Response("[" * 100_000, media_type="application/json"),
     "not_json", "The provider gave an answer that could not be read."),
    (JSONResponse({"token_type": "bearer"}),
     "no_access_token", "The provider's answer had no access token."),
    (Response(b"x" * (MAX_TOKEN_RESPONSE_BYTES + 1), media_type="application/json"),
     "too_large", "The provider gave an answer that could not be read."),
])
def test_provider_answers_that_are_not_tokens_become_provider_errors(
    provider: tuple[str, Starlette], answer: Response, reason: str, shown: str
) -> None:
    url, app = provider
    app.state.answer = answer
    with pytest.raises(ProviderError) as caught:
        exchange(url)
    assert (caught.value.reason, caught.value.message) == (reason, shown)


def test_a_token_endpoint_that_does_not_answer_in_time_is_a_timeout() -> None:
    silent = Listener(silent=True)
    try:
        with pytest.raises(ProviderError) as caught:
            exchange(f"http://127.0.0.1:{silent.port}/token", timeout=0.5)
        assert caught.value.reason == "timeout"
    finally:
        silent.close()


def test_a_token_endpoint_that_trickles_its_answer_is_cut_off_at_the_deadline() -> None:
    """A byte every 0.2 s never trips the 0.5 s wait for each read; the token request as
    a whole still ends at twice the timeout instead of when the provider stops."""
    with trickling_server("/token", methods=["POST"], head=b'{"access_token": "',
                          tail=b'", "token_type": "bearer"}',
                          media_type="application/json") as url:
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            exchange(f"{url}/token", timeout=0.5)
        took = time.monotonic() - started
    assert caught.value.reason == "timeout"
    assert took < 2.5, f"the token request took {took:.1f} s"


@pytest.mark.parametrize(("text", "cleaned"), [
    ("Bad \u202egnp.exe\u202c code", "Bad gnp.exe code"),
    ("zero\u200bwidth\u2060joined\ufeff", "zero width joined"),
    ("isolate \u2066x\u2069 \u2067y\u2069 \u2068z\u2069", "isolate x y z"),
    ("line\u2028break\u2029para\x00nul\x7fdel\x85nel", "line break para nul del nel"),
    ("private \ue000use", "private use"),
    ("  plain  text, kept: é ü 日本  ", "plain text, kept: é ü 日本"),
])
def test_provider_text_loses_invisible_and_direction_changing_characters(
    text: str, cleaned: str
) -> None:
    assert clean_text(text) == cleaned


# -- issue 8, finding 1: a token host that resolves inside gets nothing -----------------------
def test_a_token_host_resolving_to_a_refused_address_gets_no_connection() -> None:
    listener = Listener()
    try:
        names = Names({"idp.attacker-example.com": ["127.0.0.1"]})
        url = f"https://idp.attacker-example.com:{listener.port}/oauth/token"
        with pytest.raises(ProviderError) as caught:
            exchange(url, policy=OutboundPolicy(), lookup=names)
        assert caught.value.reason == "refused"
        assert caught.value.message == (
            "The sign-in server's address is not allowed from this portal.")
        assert names.calls == ["idp.attacker-example.com"]
        # PORTAL_OUTBOUND_ALLOW opens it: the same request now connects (a ClientHello).
        allowed = OutboundPolicy(allow_networks=(ipaddress.ip_network("127.0.0.1/32"),))
        with pytest.raises(ProviderError) as unreachable:
            exchange(url, policy=allowed, lookup=names)
        assert unreachable.value.reason == "unreachable"  # the listener speaks no TLS
        assert len(listener.connections) == 1  # the first connection it ever saw
        assert listener.connections[0][:1] == b"\x16"
    finally:
        listener.close()


def self_hosted_entry() -> dict[str, Any]:
    return {"name": "selfhosted", "displayName": "Self-hosted", "category": "Testing",
            "description": "An app that runs on the customer's own server.",
            "website": "https://selfhosted.example",
            "authOptions": [{"key": "oauth2", "type": "OAUTH2", "displayName": "Sign in",
                             "customerAppOnly": True,
                             "authUrl": "{base_url}/oauth/authorize",
                             "tokenUrl": "{base_url}/oauth/token",
                             "props": {"base_url": {"type": "SHORT_TEXT", "required": True,
                                                    "displayName": "Server URL",
                                                    "format": "url"}}}]}


def test_a_typed_server_url_resolving_to_loopback_never_gets_a_client_hello(
    make_client: Any, core_app: Starlette, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The red team's case, end to end in the production posture: the user types a server
    URL whose public-looking name resolves to 127.0.0.1, signs in, and the callback's code
    would be redeemed there with the client secret and the PKCE verifier. The system
    resolver itself is made to answer so (as the attacker's DNS would): the portal must
    not even open a TCP connection, on the callback or on a refresh."""
    listener = Listener()
    real_getaddrinfo = socket.getaddrinfo

    def attacker_dns(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("sso.customer-example.com", b"sso.customer-example.com"):
            host = "127.0.0.1"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", attacker_dns)
    try:
        catalog = tmp_path / "selfhosted.json"
        catalog.write_text(json.dumps({"integrations": [self_hosted_entry()]}))
        portal: TestClient = make_client(catalog_paths=(str(catalog),))
        core_app.state.oauth_apps["cust-1"] = {"integrationName": "selfhosted",
                                               "clientId": "customer-id",
                                               "clientSecret": "customer-secret"}
        typed = f"https://sso.customer-example.com:{listener.port}"
        answer = mint(portal, integrationName="selfhosted", authMethodKey="oauth2",
                      oauthAppMode="custom", oauthAppId="cust-1")
        page_path, csrf = open_page(portal, answer["token"])
        pressed = portal.post(f"{page_path}/oauth", headers={"Origin": PORTAL_URL},
                              data={"csrf_token": csrf, "base_url": typed})
        assert pressed.status_code == 303
        assert pressed.headers["location"].startswith(f"{typed}/oauth/authorize?")
        state = parse_qs(urlsplit(pressed.headers["location"]).query)["state"][0]
        back = portal.get("/oauth/callback?" + urlencode({"state": state, "code": "c-1"}))
        assert back.status_code == 303
        session = portal.get(f"/api/v1/connect/session/{answer['sessionId']}",
                             headers=AUTH).json()["session"]
        # A failed attempt (nothing connected, the link still valid): PENDING, with why.
        assert (session["status"], session["errorCode"]) == ("PENDING", "TOKEN_EXCHANGE_FAILED")
        assert session["error"] == "The sign-in server's address is not allowed from this portal."

        refreshed = portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
            "integrationName": "selfhosted", "refreshToken": "r-1", "oauthAppId": "cust-1",
            "props": {"base_url": typed}})
        assert refreshed.status_code >= 400
        assert refreshed.json()["details"]["reason"] == "refused"
        assert core_app.state.connections == []

        # Control: a connection we open ourselves is the first the listener ever saw.
        socket.create_connection(("127.0.0.1", listener.port)).close()
        wait_until(lambda: len(listener.connections) >= 1, timeout=5, what="the control")
        assert listener.connections == [b""]
    finally:
        listener.close()


def test_the_oauth_family_uses_no_private_authlib_client_code() -> None:
    package = Path(__file__).resolve().parent.parent / "portal" / "auth" / "oauth"
    sources = {path.name: path.read_text() for path in package.glob("*.py")}
    assert "provider.py" in sources
    for file, source in sources.items():
        for name in ("AsyncOAuth2Client", "_fetch_token", "_refresh_token", "httpx_client",
                     "base_client", "warnings"):
            assert name not in source, (file, name)
