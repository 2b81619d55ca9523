"""Abuse limits (portal/rate_limits.py): per client IP on the hosted pages and the poll, per
API key on minting, per session on form submits; counted in the real Redis, 429
RATE_LIMITED with Retry-After, the friendly page for browsers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.testclient import TestClient

from portal.settings import Settings, SettingsError
from tests.catalog_server import provider_app
from tests.conftest import (
    API_KEY,
    AUTH,
    SECRET_KEY,
    mint,
    open_page,
    received,
    session_of,
    submit,
    token_body,
)
from tests.live_servers import bound_socket, portal_process, server_thread, wait_until
from tests.test_verification import verified_entry

OTHER_KEY = "other-api-key-0123456789abcdef"
PROXY = "10.0.0.7"


@pytest.fixture
def portal(make_client: Any) -> Any:
    """A TestClient factory: a portal with `overrides`, whose requests come from the peer
    address `peer` (a trusted proxy by default)."""
    def make(peer: str = PROXY, **overrides: Any) -> TestClient:
        overrides.setdefault("trusted_proxies", (f"{PROXY}/32",))
        overrides.setdefault("api_keys", (API_KEY, OTHER_KEY))
        client: TestClient = make_client(peer=peer, **overrides)
        return client

    return make


def from_ip(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


def assert_limited_page(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= 3600
    assert "Too many attempts" in response.text
    assert "Wait a little, then try again." in response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in response.headers


def assert_limited_api(response: httpx.Response, limit: str) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= 3600
    body = response.json()
    assert body["code"] == "RATE_LIMITED"
    assert body["details"]["limit"] == limit
    assert body["details"]["retryAfter"] == int(response.headers["retry-after"])


# -- per client IP: the hosted pages ----------------------------------------------------------
def test_pages_trip_at_their_number_per_ip_and_other_ips_go_on(portal: Any) -> None:
    client = portal(rate_limit_pages="3/hour")
    ada, bob = from_ip("203.0.113.5"), from_ip("203.0.113.6")
    # every hosted page counts: the link, a session page, the end-user portal
    for path in ("/connect?token=nope", "/connect/s/cs_missing", "/connect/portal"):
        assert client.get(path, headers=ada).status_code != 429
    assert_limited_page(client.get("/connect?token=nope", headers=ada))
    assert_limited_page(client.get("/connect/portal", headers=ada))
    # a spoofed entry in front of the address the proxy saw changes nothing
    assert_limited_page(client.get("/connect", headers=from_ip("198.51.100.1, 203.0.113.5")))
    # another client behind the same proxy is not limited by ada's flood
    assert client.get("/connect?token=nope", headers=bob).status_code == 401
    # nor is the API
    assert client.get("/api/v1/integrations", headers=from_ip("203.0.113.5")).status_code == 200


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(portal: Any) -> None:
    client = portal(peer="198.51.100.20", rate_limit_pages="3/hour")
    for n in range(3):
        response = client.get("/connect?token=nope", headers=from_ip(f"203.0.113.{n}"))
        assert response.status_code == 401
    # a fresh X-Forwarded-For every time: still the peer's own count
    assert_limited_page(client.get("/connect?token=nope", headers=from_ip("203.0.113.99")))
    assert_limited_page(client.get("/connect?token=nope"))


def test_the_client_is_the_right_most_hop_that_is_not_a_trusted_proxy(portal: Any) -> None:
    client = portal(rate_limit_pages="2/hour",
                    trusted_proxies=(f"{PROXY}/32", "172.16.0.0/12"))
    # two proxies of ours: the client is the hop before them
    via_both = from_ip("198.51.100.1, 203.0.113.5, 172.16.3.4")
    assert client.get("/connect?token=nope", headers=via_both).status_code == 401
    assert client.get("/connect?token=nope", headers=from_ip("203.0.113.5")).status_code == 401
    assert_limited_page(client.get("/connect?token=nope", headers=via_both))
    # IPv6: counted by its /64
    assert client.get("/connect", headers=from_ip("2001:db8:1:2::1")).status_code == 401
    assert client.get("/connect", headers=from_ip("2001:db8:1:2::ffff")).status_code == 401
    assert_limited_page(client.get("/connect", headers=from_ip("2001:db8:1:2:abcd::9")))
    assert client.get("/connect", headers=from_ip("2001:db8:1:3::1")).status_code == 401


def test_a_limit_resets_when_its_window_is_over(portal: Any) -> None:
    client = portal(rate_limit_pages="3/2 seconds")
    ada = from_ip("203.0.113.5")
    # a window may end in the middle of the burst on a loaded machine: keep going until
    # the limit trips, then wait for the window to pass
    wait_until(lambda: client.get("/connect?token=nope", headers=ada).status_code == 429,
               timeout=20, what="the page limit to trip")
    limited = client.get("/connect?token=nope", headers=ada)
    if limited.status_code == 429:
        assert 1 <= int(limited.headers["retry-after"]) <= 2
    wait_until(lambda: client.get("/connect?token=nope", headers=ada).status_code == 401,
               timeout=20, what="the page limit to reset")


# -- per client IP: the poll ------------------------------------------------------------------
def test_the_poll_trips_per_ip_with_the_json_envelope_and_cors(portal: Any) -> None:
    client = portal(rate_limit_poll="3/hour", rate_limit_pages="1/hour")
    minted = mint(client)
    ada = {**from_ip("203.0.113.5"), "Origin": "https://partner.example"}
    for _ in range(3):
        response = client.post("/api/v1/connect/session/poll",
                               json={"token": minted["token"]}, headers=ada)
        assert response.status_code == 200
    limited = client.post("/api/v1/connect/session/poll", json={"token": minted["token"]},
                          headers=ada)
    assert_limited_api(limited, "poll")
    # the partner page's script may read the refusal
    assert limited.headers["access-control-allow-origin"] == "https://partner.example"
    # the poll's count is its own: this address may still open one page
    assert client.get("/connect?token=nope", headers=ada).status_code == 401
    other = client.post("/api/v1/connect/session/poll", json={"token": minted["token"]},
                        headers=from_ip("203.0.113.6"))
    assert other.status_code == 200


def test_a_backend_polling_with_its_api_key_is_not_limited_per_ip(portal: Any) -> None:
    """The Weavz SDK's wait() polls once a second per waiting session, every one from the
    backend's address: with its API key it is the platform's customer, not a flood."""
    client = portal(rate_limit_poll="3/hour")
    minted = mint(client)
    backend = {**from_ip("198.51.100.7"), **AUTH}
    for _ in range(10):
        response = client.post("/api/v1/connect/session/poll",
                               json={"token": minted["token"]}, headers=backend)
        assert response.status_code == 200
    # a wrong key is no key: that caller is counted per address like any other
    wrong = {**from_ip("198.51.100.8"), "Authorization": "Bearer not-a-key-0123456789"}
    for _ in range(3):
        assert client.post("/api/v1/connect/session/poll", json={"token": minted["token"]},
                           headers=wrong).status_code == 200
    assert_limited_api(client.post("/api/v1/connect/session/poll",
                                   json={"token": minted["token"]}, headers=wrong), "poll")


# -- per API key: minting ---------------------------------------------------------------------
def test_minting_trips_per_api_key_and_no_key_is_kept_in_redis(
    portal: Any, redis_client: redis.Redis, settings: Settings,
) -> None:
    client = portal(rate_limit_mint="3/hour")
    mint(client)
    mint(client)
    # an end-user link counts with the connect tokens of the same key
    link = client.post("/api/v1/end-users/eu_nobody/connect-token", json={}, headers=AUTH)
    assert link.status_code != 429
    assert_limited_api(client.post("/api/v1/connect/token", json=token_body(), headers=AUTH),
                       "mint")
    assert_limited_api(client.post("/api/v1/end-users/eu_nobody/invite",
                                   json={"email": "a@example.com"}, headers=AUTH), "mint")
    # whichever address it comes from
    assert_limited_api(client.post("/api/v1/connect/token", json=token_body(),
                                   headers={**AUTH, **from_ip("203.0.113.77")}), "mint")
    # another key has its own count
    other = client.post("/api/v1/connect/token", json=token_body(),
                        headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert other.status_code == 200
    # a wrong key is refused before it is counted
    wrong = client.post("/api/v1/connect/token", json=token_body(),
                        headers={"Authorization": "Bearer not-a-key-0123456789"})
    assert wrong.status_code == 401
    keys = list(redis_client.scan_iter(match=f"{settings.redis_prefix}rate-limit*"))
    assert any("/mint/" in key for key in keys), keys
    dump = json.dumps({key: redis_client.get(key) for key in keys})
    for secret in (API_KEY, OTHER_KEY, "not-a-key-0123456789"):
        assert secret not in dump


# -- per session: form submits and credential checks -----------------------------------------
@pytest.fixture
def provider() -> Iterator[tuple[str, Starlette]]:
    app = provider_app()
    with server_thread(app) as url:
        yield url, app


def test_the_eleventh_credential_check_of_a_session_never_reaches_the_provider(
    portal: Any, provider: tuple[str, Starlette], core_app: Starlette, tmp_path: Path,
) -> None:
    url, provider_state = provider
    path = tmp_path / "verified.json"
    path.write_text(json.dumps({"integrations": [verified_entry(url)]}))
    client = portal(catalog_paths=(str(path),), verify_credentials=True,
                    allow_http_loopback=True, rate_limit_submits="10/hour")
    answer = mint(client, integrationName="acme-verified", authMethodKey="token")
    page_path, csrf = open_page(client, answer["token"])
    for n in range(10):
        guess = submit(client, page_path, csrf, secret_text=f"guess-{n:02d}")
        assert guess.status_code == 400, guess.text
    assert len(provider_state.state.requests) == 10
    # the 11th, even with the right key: refused before the check
    eleventh = submit(client, page_path, csrf, secret_text="good-key")
    assert_limited_page(eleventh)
    assert len(provider_state.state.requests) == 10
    assert received(core_app) == []
    assert session_of(client, answer["sessionId"])["status"] == "PENDING"
    # another session of the same browser is not limited by this one
    other = mint(client, integrationName="acme-verified", authMethodKey="token")
    other_path, other_csrf = open_page(client, other["token"])
    assert "Connected" in submit(client, other_path, other_csrf, secret_text="good-key").text
    assert len(provider_state.state.requests) == 11


def test_a_form_post_from_another_browser_uses_up_nothing(portal: Any) -> None:
    client = portal(rate_limit_submits="1/hour")
    answer = mint(client)
    page_path, csrf = open_page(client, answer["token"])
    cookies, client.cookies = client.cookies, httpx.Cookies()  # a browser without them
    for _ in range(3):
        assert submit(client, page_path, csrf, secret_text="sk-x").status_code == 403
    client.cookies = cookies
    # the bound browser still has its one submit
    assert submit(client, page_path, csrf, secret_text="sk-one").status_code != 429
    assert_limited_page(submit(client, page_path, csrf, secret_text="sk-two"))


# -- without Redis, and when Redis does not answer --------------------------------------------
def test_in_the_embedded_mode_the_limits_are_kept_in_the_process(portal: Any) -> None:
    client = portal(redis_url=None, rate_limit_pages="2/hour")
    for _ in range(2):
        assert client.get("/connect?token=nope").status_code == 401
    assert_limited_page(client.get("/connect?token=nope"))


def test_a_redis_that_does_not_answer_fails_open_with_a_warning(
    portal: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    closed = bound_socket()  # bound, never listening: every connection is refused
    host, port = closed.getsockname()
    try:
        client = portal(redis_url=f"redis://{host}:{port}/0", rate_limit_pages="1/hour")
        with caplog.at_level(logging.WARNING, logger="portal.rate_limits"):
            for _ in range(3):
                assert client.get("/connect?token=nope").status_code == 401
    finally:
        closed.close()
    warnings = [r for r in caplog.records if r.name == "portal.rate_limits"]
    assert len(warnings) == 1, warnings  # once a minute, not once a request
    assert "not enforced" in warnings[0].getMessage()


# -- settings ---------------------------------------------------------------------------------
def test_settings_come_from_the_environment_and_bad_ones_name_their_variable() -> None:
    default = Settings.from_env({})
    assert (default.rate_limit_pages, default.rate_limit_poll, default.rate_limit_mint,
            default.rate_limit_submits, default.trusted_proxies) == (
        "300/minute", "600/minute", "600/minute", "10/10 minutes", ())
    custom = Settings.from_env({"PORTAL_RATE_LIMIT_SUBMITS": "5 per 10 minutes",
                                "PORTAL_TRUSTED_PROXIES": "10.0.0.7, 172.16.0.0/12, ::1"})
    assert custom.rate_limit_submits == "5 per 10 minutes"
    assert custom.trusted_proxies == ("10.0.0.7/32", "172.16.0.0/12", "::1/128")
    for name, value in [("PORTAL_RATE_LIMIT_PAGES", "lots"),
                        ("PORTAL_RATE_LIMIT_MINT", "0/minute"),
                        ("PORTAL_TRUSTED_PROXIES", "10.0.0.7, proxy.internal")]:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})


# -- a real process ---------------------------------------------------------------------------
def test_a_served_portal_limits_from_its_environment(redis_url: str, tmp_path: Path) -> None:
    with portal_process(redis_url, tmp_path / "portal.log", api_key=API_KEY,
                        secret_key=SECRET_KEY, PORTAL_RATE_LIMIT_PAGES="2/hour",
                        PORTAL_TRUSTED_PROXIES="127.0.0.1") as live, live.client() as http:
        ada = from_ip("203.0.113.5")
        for _ in range(2):
            assert http.get("/connect?token=nope", headers=ada).status_code == 401
        limited = http.get("/connect?token=nope", headers=ada)
        assert_limited_page(limited)
        assert http.get("/connect?token=nope", headers=from_ip("203.0.113.6")).status_code == 401
        with redis.Redis.from_url(redis_url, decode_responses=True) as store:
            keys = store.keys(f"{live.redis_prefix}rate-limit*")
        assert any("203.0.113.5" in key for key in keys), keys
