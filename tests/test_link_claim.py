"""A connect link belongs to the first browser that opens it (issue 8, finding 10).

The attack: a user opens their own link (or not) and sends it to someone else, whose
credential would then be saved under the sender's externalId. Each TestClient here is
one browser with its own cookie jar; they share the real Redis store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.testclient import TestClient

from portal.settings import Settings
from tests.conftest import AUTH, PORTAL_URL, mint, open_page, received, session_of, submit
from tests.live_servers import server_thread

IN_USE_TITLE = "This link was already opened in another browser"


def test_a_link_opened_in_a_second_browser_gets_a_clear_page_and_no_form(
    client: TestClient, make_client: Any, core_app: Starlette,
) -> None:
    answer = mint(client, externalId="sender-1")
    page_path, csrf = open_page(client, answer["token"])  # the sender's browser

    victim = make_client()
    opened = victim.get("/connect", params={"token": answer["token"]})
    assert opened.status_code == 403
    assert IN_USE_TITLE in opened.text
    assert "ask the app you came from for a new link" in opened.text.lower()
    assert "SESSION_IN_USE" in opened.text
    assert "<form" not in opened.text and "csrf_token" not in opened.text
    assert "set-cookie" not in opened.headers  # no binding, no browser id handed out
    assert victim.get(page_path).status_code == 403  # and the page itself stays closed
    posted = victim.post(page_path, data={"csrf_token": csrf, "secret_text": "sk-victim"},
                         headers={"Origin": PORTAL_URL})
    assert posted.status_code == 403
    assert received(core_app) == []
    assert session_of(client, answer["sessionId"])["status"] == "PENDING"

    # The first browser is unaffected and can finish.
    done = submit(client, page_path, csrf, secret_text="sk-sender-own")
    assert done.status_code == 200
    assert [c["body"]["secretText"] for c in received(core_app)] == ["sk-sender-own"]
    assert session_of(client, answer["sessionId"])["status"] == "COMPLETED"
    # After the end too, the other browser sees the same page, not the result.
    assert victim.get("/connect", params={"token": answer["token"]}).status_code == 403


def test_the_same_browser_may_reopen_the_link_and_every_tab_keeps_working(
    client: TestClient, core_app: Starlette,
) -> None:
    answer = mint(client)
    page_path, first_tab_csrf = open_page(client, answer["token"])
    again, second_tab_csrf = open_page(client, answer["token"])  # a reload, a second tab
    assert again == page_path
    assert second_tab_csrf
    result = submit(client, page_path, first_tab_csrf, secret_text="sk-from-tab-one")
    assert result.status_code == 200, result.text
    assert len(received(core_app)) == 1
    # The finished session still opens in the same browser: it shows the result.
    reopened = client.get("/connect", params={"token": answer["token"]})
    assert reopened.status_code == 303
    assert client.get(reopened.headers["location"]).status_code == 200


def test_a_browser_that_has_not_opened_the_link_yet_gets_the_form(
    client: TestClient, make_client: Any,
) -> None:
    """A browser that claimed one link may still open other links, and others theirs."""
    first, second = mint(client), mint(client)
    open_page(client, first["token"])
    other = make_client()
    open_page(other, second["token"])
    open_page(client, first["token"])


def test_the_browser_cookie_is_httponly_lax_and_site_wide_on_http(
    client: TestClient,
) -> None:
    opened = client.get("/connect", params={"token": mint(client)["token"]})
    cookies = opened.headers.get_list("set-cookie")
    [browser] = [c for c in cookies if c.startswith("portal_browser=")]
    attributes = [part.strip().lower() for part in browser.split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert "secure" not in attributes  # a plain http development portal
    assert not any(part.startswith("domain=") for part in attributes)


def test_the_browser_cookie_is_host_prefixed_and_secure_on_https(make_client: Any) -> None:
    client = make_client(public_url="https://portal.test")
    client.base_url = httpx.URL("https://portal.test")
    opened = client.get("/connect", params={"token": mint(client)["token"]})
    assert opened.status_code == 303
    cookies = opened.headers.get_list("set-cookie")
    [browser] = [c for c in cookies if c.startswith("__Host-portal_browser=")]
    attributes = [part.strip().lower() for part in browser.split(";")]
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= set(attributes)
    assert not any(part.startswith("domain=") for part in attributes)
    # The https portal only reads its prefixed cookie: a plain one planted over http
    # (or by a sibling subdomain) is not taken as this browser's identity.
    claimed_value = browser.split(";")[0].split("=", 1)[1]
    other = make_client(public_url="https://portal.test")
    other.base_url = httpx.URL("https://portal.test")
    other.cookies.set("portal_browser", claimed_value, domain="portal.test")
    token = mint(other)["token"]
    open_page_answer = client.get("/connect", params={"token": token})
    assert open_page_answer.status_code == 303
    assert other.get("/connect", params={"token": token}).status_code == 403


def test_a_malformed_browser_cookie_is_replaced_not_trusted(make_client: Any) -> None:
    client = make_client()
    client.cookies.set("portal_browser", "x" * 3000, domain="portal.test")
    opened = client.get("/connect", params={"token": mint(client)["token"]})
    assert opened.status_code == 303
    [browser] = [c for c in opened.headers.get_list("set-cookie")
                 if c.startswith("portal_browser=")]
    value = browser.split(";")[0].split("=", 1)[1]
    assert value != "x" * 3000 and 30 <= len(value) <= 64


def test_redis_keeps_a_hash_of_the_browser_id_never_the_id(
    client: TestClient, redis_client: redis.Redis, settings: Settings,
) -> None:
    answer = mint(client)
    open_page(client, answer["token"])
    browser_id = client.cookies.get("portal_browser")
    assert browser_id
    keys = list(redis_client.scan_iter(match=f"{settings.redis_prefix}*"))
    assert keys
    for key in keys:
        assert browser_id not in key
        if redis_client.type(key) == "string":
            value = redis_client.get(key)
            assert value is not None and browser_id not in value


def test_an_invalid_token_claims_nothing(client: TestClient, make_client: Any) -> None:
    answer = mint(client)
    stranger = make_client()
    forged = answer["token"][:-4] + "AAAA"
    assert stranger.get("/connect", params={"token": forged}).status_code == 401
    open_page(client, answer["token"])  # the rightful browser still gets the form


# -- two browsers at the same moment, against real servers and the real Redis ----------------
@pytest.fixture
def two_workers(settings: Settings, core_app: Starlette, make_app: Any
                ) -> Iterator[tuple[str, str]]:
    """Two portal processes' worth of apps (two stores, one Redis), under real uvicorn."""
    with server_thread(core_app) as core_url:
        live = replace(settings, core_api_url=core_url)
        with server_thread(make_app(live)) as one, server_thread(make_app(live)) as two:
            yield one, two


def test_browsers_racing_to_open_one_link_leave_exactly_one_winner(
    two_workers: tuple[str, str],
) -> None:
    one, two = two_workers
    minted = httpx.post(f"{one}/api/v1/connect/token", headers=AUTH, json={
        "integrationName": "openai", "connectionName": "Race", "externalId": "u-1",
        "workspaceId": "ws-1"})
    assert minted.status_code == 200, minted.text
    token = minted.json()["token"]
    browsers = 12
    start = threading.Barrier(browsers)
    statuses: list[int] = []
    lock = threading.Lock()

    def open_in_a_fresh_browser(index: int) -> None:
        with httpx.Client(base_url=(one, two)[index % 2], timeout=10) as browser:
            start.wait()
            status = browser.get("/connect", params={"token": token}).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=open_in_a_fresh_browser, args=(n,))
               for n in range(browsers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [303] + [403] * (browsers - 1)
