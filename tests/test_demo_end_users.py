"""The demo's "End user" part, as a newcomer clicks it (here over HTTP, in the demo's own
processes): the partner backend registers Ada at the demo core API and mints her an
end-user link, her connect portal lists what she connects there, and an invite goes
through the portal's SMTP path to the demo's mailbox with a link that opens her portal."""

from __future__ import annotations

import html
import re

import httpx

from tests.conftest import Demo, csrf_of


def test_the_partner_page_offers_the_end_user_part(demo: Demo) -> None:
    page = httpx.get(f"{demo.partner_url}/")
    assert "Open Ada Lovelace's connect portal" in page.text
    assert 'href="/mail"' in page.text


def test_ada_opens_her_portal_connects_an_app_and_gets_an_invite(demo: Demo) -> None:
    minted = httpx.post(f"{demo.partner_url}/end-user/link", timeout=30)
    assert minted.status_code == 200, minted.text
    connect_url = minted.json()["connectUrl"]
    assert connect_url.startswith(f"{demo.portal_url}/connect/portal?token=eut_")

    with httpx.Client(base_url=demo.portal_url, timeout=30) as ada:
        opened = ada.get(connect_url)
        assert opened.status_code == 303 and opened.headers["location"] == "/connect/portal"
        portal = ada.get("/connect/portal")
        assert portal.status_code == 200
        assert "Ada Lovelace" in portal.text
        started = ada.post("/connect/portal/connect",
                           data={"integration": "openai", "csrf_token": csrf_of(portal.text)},
                           headers={"Origin": demo.portal_url})
        assert started.status_code == 303, started.text
        form = ada.get(started.headers["location"])
        submitted = ada.post(started.headers["location"], data={
            "csrf_token": csrf_of(form.text), "secret_text": "sk-demo-ada-0123456789",
            "opener": "1"}, headers={"Origin": demo.portal_url})
        assert "Connected" in submitted.text
        assert "Back to your connections" in submitted.text
    [connection] = [item for item in demo.connections()
                    if item["body"].get("endUserId")]
    assert connection["body"]["externalId"] == "demo-user-1"

    invited = httpx.post(f"{demo.partner_url}/end-user/invite", timeout=30)
    assert invited.status_code == 200, invited.text
    assert invited.json()["invite"]["email"] == "ada@example.com"
    mailbox = httpx.get(f"{demo.partner_url}/mail").text
    [link] = re.findall(r"http://[^\s<]+/connect/portal\?token=eut_[^\s<]+",
                        html.unescape(mailbox))
    with httpx.Client(timeout=30) as other_browser:
        assert other_browser.get(link).status_code == 303
