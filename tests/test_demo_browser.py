"""The demo partner page uses PortalConnect.open from the portal's connect.js: clicking
Connect, typing a key in the popup, and the page shows the connection, in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Demo

pytestmark = pytest.mark.browser


def test_demo_partner_connects_through_connect_js(demo: Demo, page: Page) -> None:
    loaded: list[str] = []
    page.on("response", lambda response: loaded.append(response.url))
    page.goto(demo.partner_url + "/")
    assert f"{demo.portal_url}/static/connect.js" in loaded  # the portal's, not a copy
    page.select_option("#integration", "openai")
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    popup.get_by_label("API key", exact=True).fill("sk-demo-0123456789")
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Connect").click()
    expect(page.locator("#status")).to_have_text("success")
    [record] = demo.connections()
    expect(page.locator("#connection-id")).to_have_text(str(record["id"]))
