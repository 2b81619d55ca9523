"""A partner's brand in a real Chromium against the portal under uvicorn: the name and
logo shown, the logo loaded from the portal itself (no request leaves its origin), and a
hostile accent colour still readable on the button and as a link, light and dark."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect
from starlette.applications import Starlette

from portal.brand import contrast_ratio
from portal.settings import Settings
from tests.conftest import connect_url
from tests.live_servers import bound_socket, server_thread
from tests.test_brand import LOGO

pytestmark = pytest.mark.browser

RGB_TO_HEX = """element => {
  const hex = value => '#' + value.match(/\\d+/g).slice(0, 3)
      .map(n => Number(n).toString(16).padStart(2, '0')).join('');
  const style = getComputedStyle(element);
  const card = getComputedStyle(document.querySelector('.card'));
  return {background: hex(style.backgroundColor), color: hex(style.color),
          surface: hex(card.backgroundColor)};
}"""


@pytest.fixture
def portal(settings: Settings, core_app: Starlette, make_app: Any) -> Iterator[str]:
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = make_app(replace(settings, public_url=url),
                   core_transport=httpx.ASGITransport(app=core_app))
    with server_thread(app, sock) as served:
        yield served


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("accent", ["#ffff00", "#777777", "#ffffff", "#000000"])
def test_a_partners_brand_shows_and_stays_readable(
    browser: Browser, portal: str, scheme: str, accent: str,
) -> None:
    url = connect_url(portal, partnerName="Acme Books", accentColor=accent,
                      partnerLogoUrl="data:image/png;base64," + base64.b64encode(LOGO).decode())
    context = browser.new_context(color_scheme=scheme)  # type: ignore[arg-type]
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(url)
        expect(page.get_by_role("heading", name="Acme Books wants to connect to your OpenAI "
                                                "account")).to_be_visible()
        logo = page.locator("img.partner-logo")
        expect(logo).to_have_attribute("alt", "Acme Books")
        assert logo.evaluate("img => img.complete && img.naturalWidth") == 2

        button = page.locator("button.primary")
        colors = button.evaluate(RGB_TO_HEX)
        assert contrast_ratio(colors["background"], colors["color"]) >= 4.5, colors
        assert contrast_ratio(colors["background"], colors["surface"]) >= 3, colors
        link = page.locator(".card a[href]").first
        link_colors = link.evaluate(RGB_TO_HEX)
        assert contrast_ratio(link_colors["color"], colors["surface"]) >= 4.5, link_colors
        assert all(item.startswith(portal) for item in requested), requested
    finally:
        context.close()
