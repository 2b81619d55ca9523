"""In a real Chromium: two browsers (two contexts, each its own cookies) open one connect
link; the first gets the form, the second a plain page saying the link is in use, and
the first can still finish (issue 8, finding 10)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect
from starlette.applications import Starlette

from portal.settings import Settings
from tests.conftest import AUTH, received
from tests.live_servers import loopback_socket, server_thread, url_of

pytestmark = pytest.mark.browser

TYPED_KEY = "sk-first-browser-0123456789"


@pytest.fixture
def portal(settings: Settings, core_app: Starlette, make_app: Any) -> Iterator[str]:
    sock = loopback_socket()
    with server_thread(core_app) as core_url:
        live = replace(settings, core_api_url=core_url, public_url=url_of(sock))
        with server_thread(make_app(live), sock) as url:
            yield url


def mint(portal: str) -> dict[str, Any]:
    response = httpx.post(f"{portal}/api/v1/connect/token", headers=AUTH, json={
        "integrationName": "openai", "connectionName": "Two browsers",
        "externalId": "sender-7", "workspaceId": "ws-1"})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_second_browser_sees_the_link_is_in_use_and_the_first_finishes(
    browser: Browser, portal: str, core_app: Starlette,
) -> None:
    issued = mint(portal)
    first = browser.new_context()
    second = browser.new_context()
    try:
        page_a = first.new_page()
        page_a.goto(issued["connectUrl"])
        expect(page_a.locator("#secret_text")).to_be_visible()
        assert page_a.url == f"{portal}/connect/s/{issued['sessionId']}"

        page_b = second.new_page()
        answer = page_b.goto(issued["connectUrl"])
        assert answer is not None and answer.status == 403
        expect(page_b.get_by_role("heading")).to_have_text(
            "This link was already opened in another browser")
        expect(page_b.locator("main")).to_contain_text("Ask the app you came from for a new link")
        expect(page_b.locator("form")).to_have_count(0)
        expect(page_b.locator("input")).to_have_count(0)
        # Going straight to the session page from the second browser is refused too.
        direct = page_b.goto(f"{portal}/connect/s/{issued['sessionId']}")
        assert direct is not None and direct.status == 403
        expect(page_b.locator("form")).to_have_count(0)

        # The first browser reloads (the same browser may re-open its link) and finishes.
        page_a.goto(issued["connectUrl"])
        page_a.locator("#secret_text").fill(TYPED_KEY)
        page_a.get_by_role("button", name="Connect").click()
        expect(page_a.locator("main")).to_contain_text("Connected")
    finally:
        first.close()
        second.close()

    [connection] = received(core_app)
    assert connection["body"]["secretText"] == TYPED_KEY
    assert connection["body"]["externalId"] == "sender-7"
    session = httpx.get(f"{portal}/api/v1/connect/session/{issued['sessionId']}",
                        headers=AUTH).json()["session"]
    assert session["status"] == "COMPLETED"
