"""In a real Chromium, honest progress on the credential form: pressing Connect disables
the button and says "Checking your details with <App>…" while the provider checks the
key, then "Saving…" while the core API saves it; pressing again (or Enter) sends nothing
more; the page then shows the real outcome. The provider's check and the core API are
real HTTP servers on loopback that hold their answer until the test lets them go."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from portal.settings import Settings
from tests.conftest import AUTH, FAST_DELIVERY
from tests.live_servers import loopback_socket, server_thread, url_of, wait_until

pytestmark = pytest.mark.browser


class Held:
    """One endpoint that counts its calls and holds each until released."""

    def __init__(self, answer: JSONResponse) -> None:
        self.answer = answer
        self.calls = 0
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def handle(self, request: Request) -> JSONResponse:
        await request.body()
        self.calls += 1
        self.arrived.set()
        await asyncio.to_thread(self.release.wait, 30)
        return self.answer


@pytest.fixture
def held() -> Iterator[tuple[Held, Held, str]]:
    check = Held(JSONResponse({"id": "me"}))
    create = Held(JSONResponse({"connection": {"id": "conn-held"}}, status_code=201))
    app = Starlette(routes=[Route("/v1/me", check.handle, methods=["GET"]),
                            Route("/api/v1/connections", create.handle, methods=["POST"])])
    try:
        with server_thread(app) as url:
            yield check, create, url
    finally:
        check.release.set()
        create.release.set()


@pytest.fixture
def portal(settings: Settings, held: tuple[Held, Held, str], make_app: Any,
           tmp_path: Path) -> Iterator[str]:
    _, _, url = held
    catalog = tmp_path / "checked.json"
    catalog.write_text(json.dumps({"integrations": [{
        "name": "acme-checked", "displayName": "Acme", "category": "Testing",
        "description": "A key checked before it is saved.", "website": "https://acme.example",
        "authOptions": [{"key": "token", "type": "SECRET_TEXT", "displayName": "API token",
                         "helpUrl": "https://acme.example/tokens",
                         "verification": {"url": f"{url}/v1/me", "headers": {
                             "Authorization": "Bearer {secret_text}"}}}]}]}))
    sock = loopback_socket()
    live = replace(settings, core_api_url=url, public_url=url_of(sock),
                   catalog_paths=(str(catalog),), verify_credentials=True,
                   allow_http_loopback=True)
    # The core API's answer is waited for in the request (no "Finishing…" page meanwhile).
    timing = replace(FAST_DELIVERY, inline_budget=20)
    with server_thread(make_app(live, delivery_timing=timing), sock) as portal_url:
        yield portal_url


class PopupReader:
    """Reads the connect popup's DOM from its opener, a page of the portal's own origin:
    while the popup's form navigation is pending Playwright will not evaluate in the popup
    itself, which is exactly when its button must be read."""

    def __init__(self, opener: Page) -> None:
        self.opener = opener

    def __call__(self, expression: str) -> Any:
        return self.opener.evaluate(f"(() => {{ const document = window.popup.document; "
                                    f"return {expression}; }})()")


def button_text(read: PopupReader) -> str:
    text: str = read("document.querySelector('button.primary').textContent.trim()")
    return text


def test_the_button_says_checking_then_saving_and_a_second_press_sends_nothing(
    browser: Browser, portal: str, held: tuple[Held, Held, str],
) -> None:
    check, create, _ = held
    minted = httpx.post(f"{portal}/api/v1/connect/token", headers=AUTH, json={
        "integrationName": "acme-checked", "connectionName": "Held", "externalId": "held-1",
        "workspaceId": "ws-1"}).json()
    opener = browser.new_page()
    try:
        opener.goto(f"{portal}/healthz")  # any page of the portal's origin
        with opener.expect_popup() as opened:
            opener.evaluate("url => { window.popup = window.open(url, 'connect', "
                            "'width=500,height=600'); }", minted["connectUrl"])
        popup = opened.value
        popup.locator("#secret_text").fill("acme-key-0123456789")
        read = PopupReader(opener)
        popup.get_by_role("button", name="Connect").click(no_wait_after=True)
        wait_until(check.arrived.is_set, timeout=10, what="the check at the provider")
        assert button_text(read) == "Checking your details with Acme…"
        assert read("document.querySelector('button.primary').getAttribute('aria-busy')") \
            == "true"
        # A second press and Enter: the form is not sent again.
        read("document.querySelector('button.primary').click()")
        read("document.querySelector('form.connect-form').requestSubmit()")

        check.release.set()
        wait_until(create.arrived.is_set, timeout=10, what="the create at the core API")
        wait_until(lambda: button_text(read) == "Saving…", timeout=10,
                   what="the button to say Saving…")
        create.release.set()
        # The result page tells the opener and closes the popup.
        wait_until(lambda: opener.evaluate("window.popup.closed"), timeout=10,
                   what="the popup to close with the result")
        session = httpx.get(f"{portal}/api/v1/connect/session/{minted['sessionId']}",
                            headers=AUTH).json()["session"]
        assert (session["status"], session["connectionId"]) == ("COMPLETED", "conn-held")
        assert (check.calls, create.calls) == (1, 1)
    finally:
        opener.close()
