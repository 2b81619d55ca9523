"""In a real Chromium: an end user opens their portal link, connects two apps from the
page and comes back to it each time, reconnects one (the core API gets a PATCH of that
connection) and disconnects the other (confirm, then DELETE); another end user's
connection is never shown (issue 12)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from starlette.applications import Starlette

from portal.end_users.links import EndUserLinks
from portal.end_users.portal_page import PORTAL_COOKIE
from portal.settings import Settings
from portal.store.revocations import MemoryRevocationStore
from tests.conftest import CORE_API_KEY, SECRET_KEY, received
from tests.live_servers import loopback_socket, server_thread, url_of

pytestmark = pytest.mark.browser


@pytest.fixture
def served(settings: Settings, core_app: Starlette, make_app: Any
           ) -> Iterator[tuple[str, str]]:
    """The portal and the demo core API, each served on a loopback socket."""
    sock = loopback_socket()
    with server_thread(core_app) as core_url:
        live = replace(settings, core_api_url=core_url, public_url=url_of(sock))
        with server_thread(make_app(live), sock) as url:
            yield url, core_url


def end_user(core_url: str, external_id: str, display_name: str) -> dict[str, Any]:
    made = httpx.post(f"{core_url}/api/v1/end-users",
                      headers={"Authorization": f"Bearer {CORE_API_KEY}"},
                      json={"workspaceId": "ws-1", "externalId": external_id,
                            "displayName": display_name})
    assert made.status_code == 201, made.text
    found: dict[str, Any] = made.json()["endUser"]
    return found


def portal_link(portal: str, person: dict[str, Any]) -> str:
    token, _ = EndUserLinks((SECRET_KEY,), MemoryRevocationStore()).issue(
        end_user_id=person["id"], workspace_id=person["workspaceId"], expires_in=3600)
    return f"{portal}/connect/portal?token={token}"


def find_app(page: Page, integration: str) -> None:
    """Type the app's name in the search box: the list shows one page of apps, and the
    page's script swaps in the matches without a reload."""
    page.get_by_label("Search apps").fill(integration)
    expect(page.locator("#picker-list > li")).to_have_count(1)


def connect(page: Page, integration: str, secret: str) -> None:
    find_app(page, integration)
    page.get_by_role("button", name=f"Connect {integration}", exact=True).click()
    page.locator("#secret_text").fill(secret)
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.get_by_role("heading", name="Connected")).to_be_visible()
    page.get_by_role("link", name="Back to your connections").click()
    expect(page.get_by_role("heading", name="Your connections")).to_be_visible()


def test_connect_two_reconnect_one_disconnect_the_other(
    page: Page, served: tuple[str, str], core_app: Starlette,
) -> None:
    portal, core_url = served
    alice = end_user(core_url, "user-alice", "Alice Example")
    bob = end_user(core_url, "user-bob", "Bob Example")
    bobs = httpx.post(f"{core_url}/api/v1/connections",
                      headers={"Authorization": f"Bearer {CORE_API_KEY}"},
                      json={"type": "SECRET_TEXT", "integrationName": "openai",
                            "workspaceId": "ws-1", "endUserId": bob["id"],
                            "externalId": "user-bob", "displayName": "Bob's own key",
                            "secretText": "sk-bob"}).json()["connection"]["id"]
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" else None)

    page.goto(portal_link(portal, alice))
    assert page.url == f"{portal}/connect/portal"  # the token left the address bar
    expect(page.locator("[data-end-user]")).to_have_text("Alice Example")
    [cookie] = [item for item in page.context.cookies() if item["name"] == PORTAL_COOKIE]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert cookie["path"] == "/connect/portal"
    expect(page.locator("main")).not_to_contain_text("Bob's own key")

    connect(page, "OpenAI", "sk-openai-first")
    connect(page, "Anthropic", "sk-ant-first")
    made = {item["body"]["integrationName"]: item for item in received(core_app)
            if item["id"] != bobs}
    assert set(made) == {"openai", "anthropic"}
    assert all(item["body"]["endUserId"] == alice["id"] for item in made.values())
    openai_name = "Alice Example \u2013 OpenAI"
    anthropic_name = "Alice Example \u2013 Anthropic"
    openai_row = page.locator(f'[data-connection="{made["openai"]["id"]}"]')
    expect(openai_row).to_contain_text(openai_name)
    expect(openai_row).to_contain_text("Active")
    expect(page.locator(f'[data-connection="{made["anthropic"]["id"]}"]')).to_contain_text(
        anthropic_name)

    # Reconnect OpenAI: the same connection is updated in place.
    page.get_by_role("button", name=f"Reconnect {openai_name}").click()
    page.locator("#secret_text").fill("sk-openai-second")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.get_by_role("heading", name="Connected")).to_be_visible()
    page.get_by_role("link", name="Back to your connections").click()
    assert ("PATCH", f"/api/v1/connections/{made['openai']['id']}") in core_app.state.requests
    assert made["openai"]["body"]["secretText"] == "sk-openai-second"
    assert len(received(core_app)) == 3  # Bob's and Alice's two: nothing new

    # Disconnect Anthropic: confirm first.
    page.get_by_role("link", name=f"Disconnect {anthropic_name}").click()
    expect(page.get_by_role("heading")).to_have_text(f"Disconnect {anthropic_name}?")
    assert ("DELETE", f"/api/v1/connections/{made['anthropic']['id']}") not in (
        core_app.state.requests)
    page.get_by_role("button", name="Disconnect").click()
    expect(page.locator("#portal-notice")).to_have_text("The connection was removed.")
    assert ("DELETE", f"/api/v1/connections/{made['anthropic']['id']}") in (
        core_app.state.requests)
    expect(page.locator(f'[data-connection="{made["anthropic"]["id"]}"]')).to_have_count(0)
    expect(openai_row).to_be_visible()
    assert page.url == f"{portal}/connect/portal?notice=disconnected"

    # A connected app offers a second account, through the page's one connect form.
    page.get_by_role("button", name="Connect another OpenAI account").click()
    expect(page.locator("#secret_text")).to_be_visible()
    assert problems == []  # no CSP violation, no script error


def test_without_javascript_the_apps_page_with_links_and_search_with_a_form(
    browser: Browser, served: tuple[str, str],
) -> None:
    portal, core_url = served
    nora = end_user(core_url, "user-nora", "Nora NoScript")
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(portal_link(portal, nora))
        expect(page.get_by_text("You have not connected any app yet.")).to_be_visible()
        apps = page.locator("#picker-list > li")
        expect(apps).to_have_count(12)
        first = apps.first.get_attribute("data-integration")
        expect(page.get_by_text(re.compile(r"Page 1 of \d+"))).to_be_visible()
        page.get_by_role("link", name="More apps").click()
        expect(page.get_by_text(re.compile(r"Page 2 of \d+"))).to_be_visible()
        expect(page.locator(f'#picker-list > li[data-integration="{first}"]')).to_have_count(0)
        page.get_by_role("link", name="Previous apps").click()
        expect(apps.first).to_have_attribute("data-integration", str(first))
        page.get_by_label("Search apps").fill("Anthropic")
        page.get_by_role("button", name="Search", exact=True).click()
        expect(page).to_have_url(re.compile(r"/connect/portal\?q=Anthropic"))
        expect(apps).to_have_count(1)
        page.get_by_role("button", name="Connect Anthropic", exact=True).click()
        expect(page.locator("#secret_text")).to_be_visible()
    finally:
        context.close()
