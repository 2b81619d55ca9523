"""Issue 11's "done when", in a real Chromium against `connect-portal demo` itself (the
portal, the partner page, the demo core API and the sandbox OAuth provider, the `demo`
fixture): a newcomer opens the demo, picks the wrong app, goes back, fails a sign-in,
tries again and succeeds without ever closing the window — in English in a popup of the
usual size, and in Arabic, right to left, on a phone-sized window in dark mode.

The steps find the buttons by what they do (`data-back`, `data-try-again`), so one test
walks both languages; the Arabic run checks the words are Arabic and the page runs right
to left, and both check the page never scrolls sideways."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from portal.demo.provider import SANDBOX_INTEGRATION
from tests.conftest import Demo

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Run:
    locale: str
    theme: str
    size: tuple[int, int]


RUNS = [Run("en", "light", (500, 600)), Run("ar", "dark", (360, 640))]


def no_sideways_scroll(page: Page) -> bool:
    wide: bool = page.evaluate(
        "document.scrollingElement.scrollWidth <= document.documentElement.clientWidth")
    return wide


@pytest.mark.parametrize("run", RUNS, ids=lambda run: f"{run.locale}-{run.theme}")
def test_pick_wrong_go_back_fail_a_sign_in_retry_and_succeed_in_one_window(
    demo: Demo, page: Page, run: Run,
) -> None:
    page.goto(f"{demo.partner_url}/")
    page.select_option("#integration", "")  # let the user choose
    page.select_option("#locale", run.locale)
    page.select_option("#theme", run.theme)
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    popup.set_viewport_size({"width": run.size[0], "height": run.size[1]})
    html = popup.locator("html")
    expect(html).to_have_attribute("lang", run.locale)
    expect(html).to_have_attribute("dir", "rtl" if run.locale == "ar" else "ltr")
    expect(html).to_have_attribute("data-theme", run.theme)
    if run.theme == "dark":  # the page really is dark, not only marked so
        background = popup.evaluate("getComputedStyle(document.body).backgroundColor")
        assert sum(map(int, re.findall(r"\d+", background)[:3])) < 3 * 80, background
    heading = popup.locator("h1").first
    expect(heading).to_contain_text("Demo partner app")  # who asks
    if run.locale == "ar":
        assert re.search(r"[\u0600-\u06ff]", heading.inner_text()), heading.inner_text()

    # The wrong app first, then back to the list.
    popup.locator("#picker-q").fill("openai")
    popup.locator('button[name="integration"][value="openai"]').click()
    expect(popup.locator("#secret_text")).to_be_visible()
    assert no_sideways_scroll(popup)
    popup.locator("[data-back]").click()
    search = popup.locator("#picker-q")
    expect(search).to_be_visible()
    search.fill("sandbox")
    popup.locator(f'button[name="integration"][value="{SANDBOX_INTEGRATION}"]').click()

    # A sign-in the user refuses: a failed attempt, tried again in the same window.
    popup.locator("form.connect-form button[type=submit]").click()
    expect(popup.get_by_role("heading", name="Sandbox ID")).to_be_visible()
    popup.get_by_role("button", name="Deny").click()
    try_again = popup.locator("[data-try-again]")
    expect(try_again).to_be_visible()
    assert no_sideways_scroll(popup)
    expect(page.locator("#status")).to_have_text("waiting for the user…")  # not told yet
    try_again.click()
    popup.locator("form.connect-form button[type=submit]").click()
    popup.get_by_role("button", name="Allow").click()

    expect(page.locator("#status")).to_have_text("success")
    [delivered] = demo.connections()
    body = delivered["body"]
    assert (body["type"], body["integrationName"]) == ("PLATFORM_OAUTH2", SANDBOX_INTEGRATION)
    assert body["accessToken"].startswith("sba_") and body["refreshToken"].startswith("sbr_")
    expect(page.locator("#connection-id")).to_have_text(delivered["id"])


def test_stopping_after_a_refused_sign_in_tells_the_partner_page(
    demo: Demo, page: Page,
) -> None:
    page.goto(f"{demo.partner_url}/")
    page.select_option("#integration", SANDBOX_INTEGRATION)
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    popup.get_by_role("button", name="Sign in with Sandbox ID").click()
    popup.get_by_role("button", name="Deny").click()
    popup.locator("[data-give-up]").click()
    expect(page.locator("#status")).to_contain_text("error: Sandbox ID did not complete the "
                                                    "sign-in (access_denied)")
    assert demo.connections() == []
