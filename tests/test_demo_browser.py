"""The demo partner page uses PortalConnect.open from the portal's connect.js: clicking
Connect, typing a key in the popup, and the page shows the connection, in Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace

import pytest
from playwright.sync_api import expect, sync_playwright

from portal.app import create_app
from portal.catalog import load_catalog
from portal.demo.core import create_core_app
from portal.demo.partner import create_partner_app
from portal.settings import Settings
from tests.conftest import API_KEY, CORE_API_KEY
from tests.live_servers import loopback_socket, server_thread, url_of

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(settings: Settings) -> Iterator[tuple[str, list[dict[str, object]]]]:
    portal_sock, partner_sock = loopback_socket(), loopback_socket()
    portal_url, partner_url = url_of(portal_sock), url_of(partner_sock)
    core = create_core_app(CORE_API_KEY)
    catalog = load_catalog()
    with ExitStack() as stack:
        core_url = stack.enter_context(server_thread(core))
        portal_settings = replace(settings, public_url=portal_url, core_api_url=core_url,
                                  allowed_origins=(partner_url,))
        stack.enter_context(server_thread(create_app(portal_settings, catalog=catalog),
                                          portal_sock))
        partner = create_partner_app(portal_url=portal_url, portal_api_key=API_KEY,
                                     integrations=[item.name for item in catalog],
                                     partner_url=partner_url)
        stack.enter_context(server_thread(partner, partner_sock))
        yield partner_url, core.state.connections


def test_demo_partner_connects_through_connect_js(
    demo: tuple[str, list[dict[str, object]]],
) -> None:
    partner_url, connections = demo
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.goto(partner_url + "/")
            page.select_option("#integration", "openai")
            with page.expect_popup() as opened:
                page.click("#connect")
            popup = opened.value
            popup.get_by_label("API key").fill("sk-demo-0123456789")
            with popup.expect_event("close"):
                popup.get_by_role("button", name="Connect").click()
            expect(page.locator("#status")).to_have_text("success")
            [record] = connections
            expect(page.locator("#connection-id")).to_have_text(str(record["id"]))
        finally:
            browser.close()
