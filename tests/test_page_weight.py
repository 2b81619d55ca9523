"""The page-weight budget, in a real Chromium against the portal under uvicorn: every hosted
page state loads at most 25 KB (HTML, CSS, scripts and logos, as they come over the wire,
with the browser's cache off so each page is counted whole) and sends no request to any
host but the portal's own. `pytest -s` prints what each page weighs."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, ViewportSize, expect
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from portal.end_users.links import EndUserLinks
from portal.settings import Settings
from portal.store.revocations import MemoryRevocationStore
from tests.conftest import AUTH, CORE_API_KEY, SECRET_KEY, token_body
from tests.live_servers import loopback_socket, server_thread, url_of, wait_until

pytestmark = pytest.mark.browser

BUDGET = 25 * 1024
# The size of the connect popup partner pages open (DESIGN.md), so that the picker's
# logos further down the list, loaded lazily, count only when a user scrolls to them.
POPUP: ViewportSize = {"width": 500, "height": 600}


class SteeredCore:
    """The demo core API, except that a create for an `externalId` starting with "held"
    waits until the test releases it, and one starting with "rejected" is refused (422)."""

    def __init__(self, core: Starlette) -> None:
        self.core = core
        self.arrived = threading.Event()
        self.release = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST"
                or scope["path"] != "/api/v1/connections"):
            await self.core(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        external_id = str(json.loads(body or b"{}").get("externalId", ""))
        if external_id.startswith("rejected"):
            refused = JSONResponse({"error": "externalId is already connected"}, 422)
            await refused(scope, receive, send)
            return
        if external_id.startswith("held"):
            self.arrived.set()
            await asyncio.to_thread(self.release.wait, 30)
        replayed = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay() -> Message:
            return replayed.pop() if replayed else {"type": "http.disconnect"}

        await self.core(scope, replay, send)


@dataclass(frozen=True)
class Portal:
    url: str
    core_url: str
    core: SteeredCore

    def connect_url(self, **overrides: Any) -> str:
        minted = httpx.post(f"{self.url}/api/v1/connect/token", headers=AUTH,
                            json=token_body(**overrides), timeout=10)
        assert minted.status_code == 200, minted.text
        url: str = minted.json()["connectUrl"]
        return url


@pytest.fixture
def portal(settings: Settings, core_app: Starlette, tmp_path: Path, make_app: Any
           ) -> Iterator[Portal]:
    """The portal on the built-in catalog (with its logos) and a platform OAuth app for
    GitHub, in front of the steered demo core API; both under uvicorn on loopback."""
    apps = tmp_path / "oauth-apps.json"
    apps.write_text(json.dumps({"apps": {"github": {"clientId": "weight-client",
                                                    "clientSecret": "weight-secret"}}}))
    core = SteeredCore(core_app)
    sock = loopback_socket()
    try:
        with server_thread(core) as core_url:
            live = replace(settings, core_api_url=core_url, public_url=url_of(sock),
                           oauth_apps_file=str(apps))
            with server_thread(make_app(live), sock) as url:
                yield Portal(url, core_url, core)
    finally:
        core.release.set()


@dataclass
class Meter:
    """What one browser context loads: each finished response's size on the wire, and
    every request to an origin other than the portal's."""

    origin: str
    loaded: list[tuple[str, int]] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    weights: dict[str, int] = field(default_factory=dict)

    def watch(self, context: BrowserContext) -> None:
        context.on("request", self._requested)
        context.on("requestfinished", self._finished)

    def _requested(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme != "data" and f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)

    def _finished(self, request: Request) -> None:
        if not request.url.startswith("data:"):
            self.loaded.append((request.url, request.sizes()["responseBodySize"]))

    def weigh(self, state: str, page: Page, action: Callable[[], Any]) -> int:
        """Run `action` (a navigation), wait until the page is loaded and the network is
        quiet, and return the bytes of every response since."""
        page.wait_for_load_state("networkidle")  # what the page before loaded is not counted
        self.loaded.clear()
        action()
        page.wait_for_load_state("load")
        page.wait_for_load_state("networkidle")
        total = sum(size for _, size in self.loaded)
        self.weights[state] = total
        listing = ", ".join(f"{urlsplit(url).path} {size}" for url, size in self.loaded)
        print(f"\npage weight {state}: {total} bytes ({len(self.loaded)} responses: {listing})")
        return total


def uncached(page: Page) -> None:
    """No HTTP or memory cache for this page: every load fetches every file again."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})


@pytest.fixture
def cold(browser: Browser, portal: Portal) -> Iterator[Callable[[], tuple[Page, Meter]]]:
    """New browser contexts of popup size with the HTTP cache off, each metered."""
    contexts: list[BrowserContext] = []

    def open_context() -> tuple[Page, Meter]:
        context = browser.new_context(viewport=POPUP)
        contexts.append(context)
        meter = Meter(origin=portal.url)
        meter.watch(context)
        page = context.new_page()
        uncached(page)
        return page, meter

    yield open_context
    for context in contexts:
        context.close()


def submit_secret(page: Page) -> None:
    page.locator("#secret_text").fill("sk_test_weight0123456789abcdef")
    page.get_by_role("button", name="Connect", exact=True).click()


def picker(portal: Portal, page: Page, meter: Meter) -> None:
    meter.weigh("picker", page, lambda: page.goto(portal.connect_url(integrationName=None)))
    expect(page.get_by_label("Search apps")).to_be_visible()
    expect(page.locator("img.logo").first).to_be_visible()  # real logos are counted


def auth_method_chooser(portal: Portal, page: Page, meter: Meter) -> None:
    meter.weigh("auth-method chooser", page,
                lambda: page.goto(portal.connect_url(integrationName="github")))
    expect(page.locator("button[name=auth_method]")).to_have_count(2)
    expect(page.locator("img.logo")).to_be_visible()


def credential_form(portal: Portal, page: Page, meter: Meter) -> None:
    meter.weigh("credential form", page,
                lambda: page.goto(portal.connect_url(integrationName="mailgun")))
    expect(page.get_by_role("heading", name=re.compile("Mailgun"))).to_be_visible()
    expect(page.locator("img.logo")).to_be_visible()


def oauth_start_form(portal: Portal, page: Page, meter: Meter) -> None:
    meter.weigh("OAuth start form", page, lambda: page.goto(
        portal.connect_url(integrationName="github", authMethodKey="oauth2")))
    expect(page.get_by_role("button", name="Sign in with GitHub")).to_be_visible()


def result_success(portal: Portal, page: Page, meter: Meter) -> None:
    page.goto(portal.connect_url(integrationName="stripe", externalId="user-ok"))
    meter.weigh("result success", page, lambda: submit_secret(page))
    expect(page.get_by_role("heading", name="Connected")).to_be_visible()


def result_error(portal: Portal, page: Page, meter: Meter) -> None:
    page.goto(portal.connect_url(integrationName="stripe", externalId="rejected-1"))
    meter.weigh("result error", page, lambda: submit_secret(page))
    expect(page.get_by_role("heading", name=re.compile("could not"))).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Connected")


def error_page(portal: Portal, page: Page, meter: Meter) -> None:
    meter.weigh("error page", page,
                lambda: page.goto(f"{portal.url}/connect?token=cst_not-a-real-token"))
    expect(page.get_by_role("heading")).to_be_visible()


def connecting_page(portal: Portal, page: Page, meter: Meter) -> None:
    page.goto(portal.connect_url(integrationName="stripe", externalId="held-1"))
    page.locator("#secret_text").fill("sk_test_weight0123456789abcdef")
    page.get_by_role("button", name="Connect", exact=True).click(no_wait_after=True)
    wait_until(portal.core.arrived.is_set, timeout=10, what="the create at the core API")
    # Another tab of the same browser, while the core API holds the create.
    watching = page.context.new_page()
    uncached(watching)
    session_path = urlsplit(page.url).path
    meter.weigh("connecting page", watching,
                lambda: watching.goto(f"{portal.url}{session_path}"))
    expect(watching.get_by_role("status")).to_be_visible()
    portal.core.release.set()
    expect(page.locator("main")).to_contain_text("Connected", timeout=15_000)


def end_user_portal(portal: Portal, page: Page, meter: Meter) -> None:
    made = httpx.post(f"{portal.core_url}/api/v1/end-users",
                      headers={"Authorization": f"Bearer {CORE_API_KEY}"},
                      json={"workspaceId": "ws-1", "externalId": "user-weight",
                            "displayName": "Wendy Weight"})
    assert made.status_code == 201, made.text
    person = made.json()["endUser"]
    token, _ = EndUserLinks((SECRET_KEY,), MemoryRevocationStore()).issue(
        end_user_id=person["id"], workspace_id=person["workspaceId"], expires_in=3600)
    meter.weigh("end-user portal", page,
                lambda: page.goto(f"{portal.url}/connect/portal?token={token}"))
    expect(page.get_by_role("heading", name="Your connections")).to_be_visible()


STATES: dict[str, Callable[[Portal, Page, Meter], None]] = {
    "picker": picker, "auth-method chooser": auth_method_chooser,
    "credential form": credential_form, "OAuth start form": oauth_start_form,
    "result success": result_success, "result error": result_error,
    "error page": error_page, "connecting page": connecting_page,
    "end-user portal": end_user_portal,
}


@pytest.mark.parametrize("state", list(STATES))
def test_a_hosted_page_loads_at_most_25_kb_all_from_the_portal(
    state: str, cold: Callable[[], tuple[Page, Meter]], portal: Portal,
) -> None:
    page, meter = cold()
    STATES[state](portal, page, meter)
    assert meter.weights[state] <= BUDGET, f"{state} weighs {meter.weights[state]} bytes"
    assert meter.foreign == [], f"requests to other hosts: {meter.foreign}"
