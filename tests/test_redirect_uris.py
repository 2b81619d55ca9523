"""Redirect URIs and per-token webhook URLs must match an allowed origin exactly; every
hostile form is refused when the token is minted, naming the field, and nothing is made."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import AUTH, PARTNER_ORIGIN, mint, open_page, submit, token_body

HOSTILE_URIS = [
    pytest.param("//evil.example/callback", id="scheme-relative"),
    pytest.param("//partner.example/callback", id="scheme-relative-allowed-host"),
    pytest.param("https://user@partner.example/callback", id="userinfo"),
    pytest.param("https://partner.example@evil.example/callback", id="userinfo-allowed-as-user"),
    pytest.param("https://partner.example:pw@evil.example/", id="userinfo-with-password"),
    pytest.param("https://partner.example\\@evil.example/", id="backslash-userinfo"),
    pytest.param("https:\\\\evil.example\\callback", id="backslashes"),
    pytest.param("https://partner.example/\\evil.example", id="backslash-in-path"),
    pytest.param("https://partner.example/cb\r\nLocation: https://evil.example", id="crlf"),
    pytest.param("https://partner.example/cb\nx", id="lf"),
    pytest.param("https://partner.ex\tample/cb", id="tab"),
    pytest.param("javascript:alert(document.domain)//https://partner.example/", id="javascript"),
    pytest.param("JavaScript://partner.example/%0aalert(1)", id="javascript-mixed-case"),
    pytest.param("data:text/html,<script>alert(1)</script>", id="data"),
    pytest.param("https://partner%2Eexample/callback", id="percent-encoded-dot"),
    pytest.param("https://%70artner.example/callback", id="percent-encoded-letter"),
    pytest.param("https://partner.example%2F@evil.example/", id="percent-encoded-slash"),
    pytest.param("https://p\u0430rtner.example/callback", id="cyrillic-look-alike"),
    pytest.param("https://xn--prtner-2we.example/callback", id="punycode-look-alike"),
    pytest.param("https://partner.example.evil.example/callback", id="allowed-as-subdomain"),
    pytest.param("https://evilpartner.example/callback", id="suffix-match"),
    pytest.param("https://partner.example./callback", id="trailing-dot"),
    pytest.param("http://partner.example/callback", id="other-scheme"),
    pytest.param("https://partner.example:8443/callback", id="other-port"),
    pytest.param("https://partner.example/callback#fragment", id="fragment"),
    pytest.param(" https://partner.example/callback", id="leading-space"),
    pytest.param("https:partner.example/callback", id="no-slashes"),
    pytest.param("https:///partner.example/callback", id="empty-host"),
    pytest.param("ftp://partner.example/callback", id="ftp"),
    pytest.param("/callback", id="relative"),
    pytest.param("https://partner.example:99999/callback", id="bad-port"),
]


def refused(client: TestClient, field: str, value: Any) -> dict[str, Any]:
    response = client.post("/api/v1/connect/token", json=token_body(**{field: value}),
                           headers=AUTH)
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()
    assert error["code"] == "VALIDATION_ERROR"
    assert set(error["details"]["fields"]) == {field}
    return error


@pytest.mark.parametrize("uri", HOSTILE_URIS)
@pytest.mark.parametrize("field", ["successRedirectUri", "errorRedirectUri"])
def test_hostile_redirect_uri_is_refused_when_minting(
    client: TestClient, field: str, uri: str
) -> None:
    refused(client, field, uri)


def test_refused_mint_creates_no_session(client: TestClient, redis_client: Any,
                                         redis_prefix: str) -> None:
    refused(client, "successRedirectUri", "https://partner.example.evil.example/cb")
    assert list(redis_client.scan_iter(match=f"{redis_prefix}*")) == []


@pytest.mark.parametrize("uri", [
    "https://partner.example/callback",
    "https://partner.example/callback?from=portal",
    "https://PARTNER.example:443/callback",
    "https://partner.example",
])
def test_redirect_uri_on_an_allowed_origin_is_accepted(client: TestClient, uri: str) -> None:
    answer = mint(client, successRedirectUri=uri, errorRedirectUri=uri)
    assert answer["token"].startswith("cst_")


def test_redirect_mode_success_carries_only_the_contract_fields(client: TestClient) -> None:
    answer = mint(client, successRedirectUri=f"{PARTNER_ORIGIN}/done?tab=apps")
    page_path, csrf = open_page(client, answer["token"])
    response = submit(client, page_path, csrf, secret_text="sk-live-abcdef")
    assert response.status_code == 303
    assert response.headers["cache-control"] == "no-store"
    location = response.headers["location"]
    assert location.startswith(f"{PARTNER_ORIGIN}/done?")
    query = dict(item.split("=", 1) for item in location.split("?", 1)[1].split("&"))
    assert set(query) == {"tab", "sessionId", "connectionId", "status"}
    assert query["status"] == "success" and query["sessionId"] == answer["sessionId"]
    assert query["connectionId"].startswith("conn_")
    assert "sk-live" not in location and answer["token"] not in location


def test_redirect_mode_is_skipped_when_a_popup_opener_waits(client: TestClient) -> None:
    answer = mint(client, successRedirectUri=f"{PARTNER_ORIGIN}/done")
    page_path, csrf = open_page(client, answer["token"])
    response = submit(client, page_path, csrf, secret_text="sk-live-abcdef", opener="1")
    assert response.status_code == 200
    assert "weavz-connect-result" in response.text


def test_webhook_url_needs_webhooks_enabled(client: TestClient) -> None:
    error = refused(client, "webhookUrl", f"{PARTNER_ORIGIN}/hooks")
    assert "PORTAL_WEBHOOK_SECRET" in error["details"]["fields"]["webhookUrl"]


@pytest.mark.parametrize("uri", [
    "https://partner.example.evil.example/hooks",
    "https://user@partner.example/hooks",
    "//partner.example/hooks",
    "http://partner.example/hooks",
])
def test_hostile_webhook_url_is_refused(make_client: Any, uri: str) -> None:
    client = make_client(webhook_secret="whsec_" + "QUJD" * 8)
    refused(client, "webhookUrl", uri)


def test_webhook_url_on_an_allowed_origin_is_accepted(make_client: Any) -> None:
    client = make_client(webhook_secret="whsec_" + "QUJD" * 8)
    assert mint(client, webhookUrl=f"{PARTNER_ORIGIN}/hooks")["sessionId"]
