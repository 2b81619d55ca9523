"""The whole demo story in a real Chromium against `connect-portal demo` run as a process:
partner page → popup → API key form → core API → result message → poll."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import csrf_of
from tests.processes import LOOPBACK, RunningProcess, demo_command, free_ports, run_process

pytestmark = pytest.mark.browser

API_KEY = "e2e-demo-api-key-0123456789abcdef"
CORE_API_KEY = "e2e-demo-core-key-0123456789abcdef"
SECRET_KEY = "e2e-demo-secret-key-0123456789abcdef0123456789"
OPENAI_KEY = "sk-proj-e2eDemo7f3kQ9zLx2VbN8mR4tY6uW1pA5sD0gH"

@dataclass(frozen=True)
class Demo:
    portal_url: str
    partner_url: str
    core_url: str
    process: RunningProcess


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    port = free_ports(4)  # portal, partner page, core API, sandbox OAuth provider
    portal_url, partner_url, core_url = (f"http://{LOOPBACK}:{port + n}" for n in range(3))
    with run_process(
        demo_command(port),
        env={"PORTAL_API_KEYS": API_KEY, "PORTAL_SECRET_KEYS": SECRET_KEY,
             "CORE_API_KEY": CORE_API_KEY},
        ready_urls=[f"{portal_url}/healthz", f"{partner_url}/", f"{core_url}/"],
        log_path=tmp_path / "demo.log",
    ) as process:
        yield Demo(portal_url, partner_url, core_url, process)


@pytest.fixture
def partner_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_demo_connects_an_openai_key_from_the_partner_page_popup(
    demo: Demo, partner_page: Page, tmp_path: Path
) -> None:
    page = partner_page
    requests: list[Request] = []
    page.context.on("request", lambda request: requests.append(request))
    page.goto(f"{demo.partner_url}/")
    expect(page.locator("#integration")).to_have_value("openai")

    with page.expect_response(f"{demo.partner_url}/mint") as minted, \
            page.expect_popup() as opened:
        page.click("#connect")
    issued = minted.value.json()
    token = issued["token"]
    popup = opened.value
    popup_urls: list[str] = []
    popup.on("framenavigated",
             lambda frame: popup_urls.append(frame.url) if frame == popup.main_frame else None)

    secret_input = popup.locator("#secret_text")
    expect(secret_input).to_be_visible()
    assert popup.url == f"{demo.portal_url}/connect/s/{issued['sessionId']}"
    secret_input.fill(OPENAI_KEY)
    popup.screenshot(path=str(tmp_path / "connect-form.png"))
    try:
        with popup.expect_event("close", timeout=10_000):
            popup.click("button[type=submit]")
    except PlaywrightTimeoutError:
        pytest.fail(f"the popup stayed open on {popup.url}: {popup.locator('main').inner_text()}")

    expect(page.locator("#status")).to_have_text("success")
    expect(page.locator("#connection-id")).to_have_text(re.compile(r"^conn_\w+$"))
    expect(page.locator("#session-id")).to_have_text(issued["sessionId"])
    connection_id = page.locator("#connection-id").inner_text()
    page.screenshot(path=str(tmp_path / "partner-page.png"), full_page=True)

    listed = httpx.get(f"{demo.core_url}/api/v1/connections",
                       headers={"Authorization": f"Bearer {CORE_API_KEY}"})
    assert listed.status_code == 200
    [connection] = listed.json()["connections"]
    assert connection["id"] == connection_id
    assert connection["body"]["type"] == "SECRET_TEXT"
    assert connection["body"]["secretText"] == OPENAI_KEY
    assert connection["body"]["integrationName"] == "openai"

    polled = httpx.post(f"{demo.portal_url}/api/v1/connect/session/poll", json={"token": token})
    assert polled.status_code == 200
    assert polled.json()["status"] == "COMPLETED"
    assert polled.json()["connectionId"] == connection_id
    assert polled.json()["id"] == issued["sessionId"]

    # The token travels once, in the link; after the first redirect no URL and no
    # header (Referer included) carries it, and the popup never showed it.
    carrying = [request.url for request in requests
                if token in request.url or token in " ".join(request.headers.values())]
    assert carrying == [issued["connectUrl"]]
    assert popup_urls and all(token not in url for url in popup_urls)

    demo.process.stop()
    log = demo.process.output()
    assert "POST /connect/s/" in log  # the log is the portal's, and it was captured
    for secret in (OPENAI_KEY, token, API_KEY, CORE_API_KEY, SECRET_KEY):
        assert secret not in log


def test_demo_core_page_masks_the_secret_prop_of_a_zendesk_connection(demo: Demo) -> None:
    """Issue 8, finding 8: `connect-portal demo` lists Zendesk's `api_token` masked."""
    api_token = "zdE2eTok4fQ2xLmP4vR7sK1nB8cJ3hW6y"
    minted = httpx.post(f"{demo.portal_url}/api/v1/connect/token",
                        headers={"Authorization": f"Bearer {API_KEY}"},
                        json={"integrationName": "zendesk", "authMethodKey": "api_token",
                              "connectionName": "Support", "externalId": "user-9",
                              "workspaceId": "ws-1"})
    assert minted.status_code == 200, minted.text
    with httpx.Client(base_url=demo.portal_url, follow_redirects=True) as browser:
        form = browser.get(minted.json()["connectUrl"])
        assert form.status_code == 200, form.text
        done = browser.post(str(form.url), headers={"Origin": demo.portal_url}, data={
            "csrf_token": csrf_of(form.text), "subdomain": "acme",
            "email": "agent@acme.example", "api_token": api_token})
        assert done.status_code == 200 and "Connected" in done.text, done.text

    page = httpx.get(f"{demo.core_url}/").text
    assert "agent@acme.example" in page  # the demo passes its catalog: plain props show
    assert api_token not in page and api_token[:6] not in page
    assert f"hidden, {len(api_token)} characters" in page
