"""The demo's sandbox OAuth provider in a real Chromium: from the demo partner page, the
user connects Sandbox ID through the popup (allow, then deny), against `connect-portal
demo` itself: portal, partner page, demo core API and sandbox provider (the `demo` fixture)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from portal.demo.provider import SANDBOX_INTEGRATION
from tests.conftest import Demo

pytestmark = pytest.mark.browser


def test_the_demo_connects_sandbox_id_by_oauth(demo: Demo, page: Page) -> None:
    page.goto(f"{demo.partner_url}/")
    page.select_option("#integration", SANDBOX_INTEGRATION)
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    popup.get_by_role("button", name="Sign in with Sandbox ID").click()
    expect(popup.get_by_role("heading", name="Sandbox ID")).to_be_visible()
    popup.get_by_role("button", name="Allow").click()
    expect(page.locator("#status")).to_have_text("success")
    [delivered] = demo.connections()
    body = delivered["body"]
    assert body["type"] == "PLATFORM_OAUTH2"
    assert body["accessToken"].startswith("sba_") and body["refreshToken"].startswith("sbr_")
    assert body["data"] == {"account": {"id": "sandbox-user-1", "name": "Sandbox user"}}
    expect(page.locator("#connection-id")).to_have_text(delivered["id"])

    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    popup.get_by_role("button", name="Sign in with Sandbox ID").click()
    popup.get_by_role("button", name="Deny").click()
    expect(page.locator("#status")).to_contain_text("error: Sandbox ID did not complete the "
                                                    "sign-in (access_denied)")
    assert len(demo.connections()) == 1
