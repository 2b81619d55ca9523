"""In Chromium, as a newcomer tries the demo's "End user" part: the partner page emails
Ada an invite (through the portal's SMTP path, to the demo's aiosmtpd mail catcher), the
mailbox shows it, and the link in it opens her connect portal, where she connects an app."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import Demo

pytestmark = pytest.mark.browser


def test_an_invite_arrives_and_its_link_connects_an_app(demo: Demo, browser: Browser) -> None:
    partner = browser.new_page()
    partner.goto(demo.partner_url + "/")
    partner.get_by_role("button", name="Email Ada Lovelace an invite").click()
    expect(partner.locator("#end-user-status")).to_contain_text("invite sent to ada@example.com")
    partner.goto(demo.partner_url + "/mail")
    mail = partner.locator("article.mail").first
    expect(mail).to_contain_text("ada@example.com")
    [link] = re.findall(r"http://\S+/connect/portal\?token=eut_\S+", mail.inner_text())

    # Ada reads her mail in a browser of her own.
    ada = browser.new_context().new_page()
    ada.goto(link)
    assert ada.url == f"{demo.portal_url}/connect/portal"  # the token left the address bar
    expect(ada.get_by_text("Ada Lovelace").first).to_be_visible()
    ada.get_by_label("Search apps").fill("OpenAI")  # one page of apps at a time
    ada.get_by_role("button", name="Connect OpenAI").click()
    ada.get_by_label("API key", exact=True).fill("sk-demo-ada-0123456789")
    ada.get_by_role("button", name="Connect").click()
    expect(ada.get_by_role("heading", name="Connected")).to_be_visible()
    ada.get_by_role("link", name="Back to your connections").click()
    expect(ada.get_by_role("button", name=re.compile("Reconnect"))).to_have_count(1)
    [connection] = demo.connections()
    assert connection["body"]["externalId"] == "demo-user-1"
    assert connection["body"]["endUserId"]
