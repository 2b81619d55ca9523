"""The whole demo story in a real Chromium against `connect-portal demo` run as a process:
partner page → popup → API key form → core API → result message → poll."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Request, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import API_KEY, CORE_API_KEY, SECRET_KEY, Demo, csrf_of
from tests.live_servers import CONNECT_PORTAL, process_env

pytestmark = pytest.mark.browser

OPENAI_KEY = "sk-proj-e2eDemo7f3kQ9zLx2VbN8mR4tY6uW1pA5sD0gH"


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

    [connection] = demo.connections()
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


def test_demo_serves_on_the_four_sockets_it_is_given_and_prints_their_urls(demo: Demo) -> None:
    log = demo.process.output()
    assert f"open the partner page:  {demo.partner_url}/" in log
    assert f"portal:                 {demo.portal_url}" in log
    assert f"demo core API:          {demo.core_url}/" in log
    assert f"sandbox OAuth provider: {demo.provider_url}/" in log
    page = httpx.get(f"{demo.partner_url}/").text
    assert f'src="{demo.portal_url}/static/connect.js"' in page


def test_a_demo_killed_with_sigkill_comes_back_on_the_same_sockets(demo: Demo) -> None:
    """What the fault tests rely on: the port stays the test's while the process is down,
    and a request made meanwhile waits in the backlog for the restarted process."""
    demo.process.kill()
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(httpx.get, f"{demo.portal_url}/healthz", timeout=30)
        demo.process.start()
        assert waiting.result(timeout=30).status_code == 200
    assert demo.process.output().count("Connect portal demo") == 2  # two lives, one log


@pytest.mark.parametrize("fds", ["3,4,5", "3,4,5,x", "3,4,5,-1"])
def test_demo_refuses_fds_that_are_not_four_descriptors(fds: str) -> None:
    result = subprocess.run([CONNECT_PORTAL, "demo", "--fds", fds], env=process_env({}),
                            capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "expected four file descriptors" in result.stderr
