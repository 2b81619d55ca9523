"""The demo's sandbox OAuth provider in a real Chromium: from the demo partner page, the
user connects Sandbox ID through the popup (allow, then deny), as `connect-portal demo`
wires it: portal, partner page, demo core API and sandbox provider under uvicorn."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from playwright.sync_api import Page, expect
from starlette.applications import Starlette

from portal.app import create_app
from portal.catalog import Catalog, load_catalog
from portal.demo.partner import create_partner_app
from portal.demo.provider import SANDBOX_INTEGRATION, sandbox_for_demo
from portal.settings import Settings
from tests.conftest import API_KEY, CORE_API_KEY, received
from tests.live_servers import bound_socket, server_thread

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(settings: Settings, core_app: Starlette) -> Iterator[str]:
    portal_socket, partner_socket, provider_socket = bound_socket(), bound_socket(), bound_socket()
    portal_url = f"http://127.0.0.1:{portal_socket.getsockname()[1]}"
    partner_url = f"http://127.0.0.1:{partner_socket.getsockname()[1]}"
    sandbox = sandbox_for_demo(host="127.0.0.1", port=provider_socket.getsockname()[1],
                               portal_url=portal_url)
    assert sandbox is not None
    with server_thread(core_app) as core_url:
        portal = create_app(
            replace(settings, public_url=portal_url, core_api_url=core_url,
                    core_api_key=CORE_API_KEY, allowed_origins=(partner_url,),
                    allow_http_loopback=True),
            catalog=Catalog([*load_catalog(), sandbox.integration]),
            oauth_apps={SANDBOX_INTEGRATION: sandbox.client},
        )
        partner = create_partner_app(portal_url=portal_url, portal_api_key=API_KEY,
                                     integrations=[SANDBOX_INTEGRATION], partner_url=partner_url)
        with server_thread(portal, portal_socket), server_thread(partner, partner_socket), \
                server_thread(sandbox.app, provider_socket):
            yield partner_url


def test_the_demo_connects_sandbox_id_by_oauth(demo: str, page: Page,
                                               core_app: Starlette) -> None:
    page.goto(f"{demo}/")
    page.select_option("#integration", SANDBOX_INTEGRATION)
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    popup.get_by_role("button", name="Sign in with Sandbox ID").click()
    expect(popup.get_by_role("heading", name="Sandbox ID")).to_be_visible()
    popup.get_by_role("button", name="Allow").click()
    expect(page.locator("#status")).to_have_text("success")
    [delivered] = received(core_app)
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
    assert len(received(core_app)) == 1
