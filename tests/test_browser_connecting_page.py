"""In a real Chromium: while a connection is being saved, the session's page says so and
updates by itself, without JavaScript, until it shows the result."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from portal.settings import Settings
from tests.conftest import AUTH
from tests.live_servers import loopback_socket, server_thread, url_of, wait_until

pytestmark = pytest.mark.browser


class HeldCore:
    """A core API stand-in that holds each create until the test releases it."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.app = Starlette(routes=[Route("/api/v1/connections", self.create,
                                           methods=["POST"])])

    async def create(self, request: Request) -> JSONResponse:
        await request.body()
        self.arrived.set()
        await asyncio.to_thread(self.release.wait, 30)
        return JSONResponse({"connection": {"id": "conn-held-1"}}, status_code=201)


@pytest.fixture
def held() -> Iterator[tuple[HeldCore, str]]:
    core = HeldCore()
    try:
        with server_thread(core.app) as url:
            yield core, url
    finally:
        core.release.set()


@pytest.fixture
def portal(settings: Settings, held: tuple[HeldCore, str], make_app: Any) -> Iterator[str]:
    sock = loopback_socket()
    live = replace(settings, core_api_url=held[1], public_url=url_of(sock))
    with server_thread(make_app(live), sock) as url:
        yield url


def test_the_finishing_page_updates_by_itself_without_javascript(
    browser: Browser, portal: str, held: tuple[HeldCore, str],
) -> None:
    core, _ = held
    minted = httpx.post(f"{portal}/api/v1/connect/token", headers=AUTH, json={
        "integrationName": "openai", "connectionName": "Held", "externalId": "held-1",
        "workspaceId": "ws-1"}).json()
    # Scripts off for the whole browser context: the update must not depend on them.
    context = browser.new_context(java_script_enabled=False)
    try:
        typing_page = context.new_page()
        typing_page.goto(minted["connectUrl"])
        typing_page.locator("#secret_text").fill("sk-held-0123456789abcdef")
        typing_page.get_by_role("button", name="Connect").click(no_wait_after=True)
        wait_until(core.arrived.is_set, timeout=10, what="the create at the core API")

        # Another tab of the same browser, while the core API holds the create.
        watching = context.new_page()
        shown = watching.goto(f"{portal}/connect/s/{minted['sessionId']}")
        assert shown is not None and shown.status == 409
        expect(watching.get_by_role("heading", name="Finishing your connection…")).to_be_visible()
        expect(watching.get_by_role("heading", level=1)).to_have_text(
            "Connect your OpenAI account")  # who asks for what stays on the page
        expect(watching.get_by_role("status")).to_contain_text("updates by itself")

        core.release.set()
        # No reload by the test: the page looks again by itself and shows the result.
        expect(watching.locator("main")).to_contain_text("Connected", timeout=15_000)
        expect(typing_page.locator("main")).to_contain_text("Connected", timeout=15_000)
    finally:
        context.close()
    session = httpx.get(f"{portal}/api/v1/connect/session/{minted['sessionId']}",
                        headers=AUTH).json()["session"]
    assert (session["status"], session["connectionId"]) == ("COMPLETED", "conn-held-1")
