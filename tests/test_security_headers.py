"""Security headers on every response: a CSP with a fresh nonce per response, framing
refused unless configured, no referrer, no sniffing, no caching of flow pages, no COOP."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from portal.settings import Settings, SettingsError
from portal.tokens import Signer
from tests.conftest import (
    AUTH,
    PARTNER_ORIGIN,
    PORTAL_URL,
    mint,
    open_page,
    submit,
    token_body,
)

HOSTILE_CATALOG = Path(__file__).parent / "data" / "hostile_catalog.json"


def policy(response: httpx.Response) -> dict[str, str]:
    header = response.headers["content-security-policy"]
    directives = (part.strip().split(" ", 1) for part in header.split(";"))
    return {name: value for name, value in directives}


def nonce_of(response: httpx.Response) -> str:
    match = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{20,})'", policy(response)["script-src"])
    assert match, policy(response)["script-src"]
    return match.group(1)


def flow_pages(client: TestClient, **mint_overrides: Any) -> dict[str, httpx.Response]:
    answer = mint(client, **mint_overrides)
    opened = client.get("/connect", params={"token": answer["token"]})
    form = client.get(opened.headers["location"])
    page_path, csrf = opened.headers["location"], re.search(
        r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    result = submit(client, page_path, csrf, secret_text="sk-live-abcdef", opener="1")
    return {
        "open": opened,
        "form": form,
        "result": result,
        "error page": client.get("/connect", params={"token": "cst_forged"}),
        "api": client.get("/api/v1/integrations"),
    }


def test_every_response_carries_the_strict_policy(client: TestClient) -> None:
    for name, response in flow_pages(client).items():
        directives = policy(response)
        assert directives["default-src"] == "'none'", name
        assert directives["style-src"] == "'self'", name
        assert directives["img-src"] == "'self' data:", name
        assert directives["base-uri"] == "'none'", name
        assert directives["frame-ancestors"] == "'none'", name
        assert directives["form-action"] == "'self'", name
        assert "'unsafe-inline'" not in response.headers["content-security-policy"], name
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.headers["referrer-policy"] == "no-referrer", name
        assert response.headers["x-frame-options"] == "DENY", name
        assert "cross-origin-opener-policy" not in response.headers, name


def test_flow_pages_are_not_cached(client: TestClient) -> None:
    pages = flow_pages(client)
    for name in ("open", "form", "result", "error page", "api"):
        assert pages[name].headers["cache-control"] == "no-store", name


def test_each_page_with_scripts_has_its_own_nonce_and_its_scripts_carry_it(
    client: TestClient,
) -> None:
    first, second = flow_pages(client), flow_pages(client)
    nonces = {nonce_of(pages[name]) for pages in (first, second) for name in ("form", "result")}
    assert len(nonces) == 4
    for pages in (first, second):
        # Answers without a script of their own (redirects, the API) run none.
        for name in ("open", "api"):
            assert policy(pages[name])["script-src"] == "'none'", name
        # An error page runs only its own "Close this window" script.
        error_page = pages["error page"]
        [script] = re.findall(r"<script\b[^>]*>", error_page.text)
        assert f'nonce="{nonce_of(error_page)}"' in script and "/static/close.js" in script
        for name in ("form", "result"):
            html = pages[name].text
            scripts = re.findall(r"<script\b[^>]*\bsrc=[^>]*>", html)
            assert scripts, name
            for tag in scripts:
                assert f'nonce="{nonce_of(pages[name])}"' in tag, (name, tag)


def test_form_action_adds_only_the_redirect_origins_a_flow_needs(client: TestClient) -> None:
    form = flow_pages(client, errorRedirectUri=f"{PARTNER_ORIGIN}/failed")["form"]
    assert policy(form)["form-action"] == f"'self' {PARTNER_ORIGIN}"
    plain = flow_pages(client)["form"]
    assert policy(plain)["form-action"] == "'self'"


def test_frame_ancestors_can_allow_partners_that_embed_the_portal(make_client: Any) -> None:
    client = make_client(frame_ancestors=("https://embed.example",))
    form = flow_pages(client)["form"]
    assert policy(form)["frame-ancestors"] == "https://embed.example"
    assert "x-frame-options" not in form.headers


def test_frame_ancestors_setting_is_read_and_checked() -> None:
    env = {"PORTAL_FRAME_ANCESTORS": "https://a.example, https://B.example:8443/"}
    settings = Settings.from_env(env)
    assert settings.frame_ancestors == ("https://a.example", "https://b.example:8443")
    assert Settings.from_env({}).frame_ancestors == ()
    with pytest.raises(SettingsError, match="PORTAL_FRAME_ANCESTORS"):
        Settings.from_env({"PORTAL_FRAME_ANCESTORS": "https://a.example/embed"})
    with pytest.raises(SettingsError, match="PORTAL_FRAME_ANCESTORS"):
        Settings.from_env({"PORTAL_FRAME_ANCESTORS": "*"})


def test_catalog_description_with_markup_renders_as_text(make_client: Any) -> None:
    client = make_client(catalog_paths=(str(HOSTILE_CATALOG),))
    answer = mint(client, integrationName="hostile")
    page_path, _ = open_page(client, answer["token"])
    html = client.get(page_path).text
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in html
    assert "<script>window.pwned" not in html



def test_form_posted_under_no_referrer_is_accepted_but_not_from_another_site(
    client: TestClient,
) -> None:
    # `Referrer-Policy: no-referrer` makes browsers send `Origin: null` with our own forms.
    answer = mint(client)
    page_path, csrf = open_page(client, answer["token"])
    foreign = client.post(page_path, data={"csrf_token": csrf, "secret_text": "sk-live-x1"},
                          headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert "CSRF_FAILED" in foreign.text
    own = client.post(page_path, data={"csrf_token": csrf, "secret_text": "sk-live-x1",
                                       "opener": "1"}, headers={"Origin": "null"})
    assert own.status_code == 200
    assert "Connected" in own.text


class BrokenStore:
    """A store with a bug in it: every call raises something unexpected."""

    description = "broken"

    async def create(self, session: Any, *, ttl: int) -> None:
        raise RuntimeError("bug")

    async def get(self, session_id: str) -> None:
        raise RuntimeError("bug")

    async def transition(self, session_id: str, to: Any, **changes: str) -> None:
        raise RuntimeError("bug")

    async def ping(self) -> None:
        raise RuntimeError("bug")

    @property
    def outbox(self) -> BrokenStore:
        return self  # its worker's every call raises too

    async def due(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug")

    async def depth(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug")


def test_unexpected_errors_carry_the_headers_too(settings: Settings, make_app: Any) -> None:
    app = make_app(settings, store=BrokenStore())
    token = Signer(settings.secret_keys).issue_connect_token(str(uuid.uuid4()), 2**40)
    with TestClient(app, base_url=PORTAL_URL, raise_server_exceptions=False) as client:
        page = client.get("/connect", params={"token": token})
        api = client.post("/api/v1/connect/token", json=token_body(), headers=AUTH)
        for response in (page, api):
            assert response.status_code == 500
            assert policy(response)["default-src"] == "'none'"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"
        assert "INTERNAL_ERROR" in page.text
        assert api.json()["code"] == "INTERNAL_ERROR"
