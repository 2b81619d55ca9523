"""The return path, end to end in a real Chromium: the portal, two partner pages on two
other ports and the core API each run under uvicorn in a process of their own (real
HTTP between them, real Redis), and a webhook receiver runs in this process.

The partner pages load static/connect.js from the portal, as partners do.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from tests.conftest import CHROMIUM_ARGS, chromium_path
from tests.live_apps import WebhookReceiver
from tests.live_servers import (
    bound_socket,
    delete_keys,
    server_thread,
    url_of,
    uvicorn_process,
    wait_until,
)

pytestmark = pytest.mark.browser

API_KEY = "browser-api-key-0123456789abcdef"
CORE_KEY = "browser-core-key-0123456789abcdef"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
TYPED_KEY = "sk-live-browser-0123456789"
HOSTILE_CATALOG = Path(__file__).parent / "data" / "hostile_catalog.json"

@dataclass
class Stack:
    portal: str
    partner: str
    other_partner: str
    core: str
    hooks: WebhookReceiver

    def mint(self, **overrides: Any) -> dict[str, Any]:
        body = {"integrationName": "openai", "connectionName": "Browser test",
                "externalId": "user-1", "workspaceId": "ws-1", **overrides}
        response = httpx.post(f"{self.portal}/api/v1/connect/token", json=body,
                              headers={"Authorization": f"Bearer {API_KEY}"})
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def session(self, session_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.portal}/api/v1/connect/session/{session_id}",
                             headers={"Authorization": f"Bearer {API_KEY}"})
        assert response.status_code == 200, response.text
        session: dict[str, Any] = response.json()["session"]
        return session

    def connections(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.core}/api/v1/connections",
                             headers={"Authorization": f"Bearer {CORE_KEY}"})
        connections: list[dict[str, Any]] = response.json()["connections"]
        return connections


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("live")
    prefix = f"test:{uuid.uuid4().hex}:"
    hooks = WebhookReceiver(WEBHOOK_SECRET)
    portal_socket = bound_socket()
    portal_url = url_of(portal_socket)
    with ExitStack() as servers:
        hooks_url = servers.enter_context(server_thread(hooks.app))
        servers.callback(delete_keys, redis_url, prefix)
        core, partner, other = (servers.enter_context(process) for process in (
            uvicorn_process("tests.live_apps:core_app", env={"CORE_API_KEY": CORE_KEY},
                            log_path=logs / "core.log"),
            uvicorn_process("tests.live_apps:partner_app", env={"PORTAL_URL": portal_url},
                            log_path=logs / "a.log"),
            uvicorn_process("tests.live_apps:partner_app", env={"PORTAL_URL": portal_url},
                            log_path=logs / "b.log"),
        ))
        portal = servers.enter_context(uvicorn_process(
            "portal.asgi:app_from_env", sock=portal_socket, ready_path="/healthz",
            log_path=logs / "portal.log", env={
                "PORTAL_PUBLIC_URL": portal_url,
                "PORTAL_SECRET_KEYS": secrets.token_urlsafe(48),
                "PORTAL_API_KEYS": API_KEY,
                "REDIS_URL": redis_url,
                "PORTAL_REDIS_PREFIX": prefix,
                "CORE_API_URL": core.url,
                "CORE_API_KEY": CORE_KEY,
                "PORTAL_ALLOWED_ORIGINS": f"{partner.url},{other.url}",
                "PORTAL_CATALOG": str(HOSTILE_CATALOG),
                "PORTAL_WEBHOOK_URL": f"{hooks_url}/hooks",
                "PORTAL_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "PORTAL_WORKERS": "1",
                # Built-in entries would check keys with the real providers, out of reach here.
                "PORTAL_VERIFY_CREDENTIALS": "false",
            }))
        yield Stack(portal=portal.url, partner=partner.url, other_partner=other.url,
                    core=core.url, hooks=hooks)
        log = portal.output()
        assert TYPED_KEY not in log and "cst_" not in log, "a secret reached the portal log"


@pytest.fixture(scope="module")
def blocking_browser(playwright: Playwright) -> Iterator[Browser]:
    """Chromium with its popup blocker on (Playwright turns it off by default)."""
    browser = playwright.chromium.launch(
        executable_path=chromium_path(), args=CHROMIUM_ARGS,
        ignore_default_args=["--disable-popup-blocking"],
    )
    yield browser
    browser.close()


def open_partner(page: Page, partner_url: str, answer: dict[str, Any], **options: Any) -> None:
    page.goto(partner_url + "/")
    page.evaluate("options => { window.connectOptions = options; }",
                  {"connectUrl": answer["connectUrl"], "token": answer["token"],
                   "pollInterval": 200, **options})


def fill_and_submit(popup: Page, key: str = TYPED_KEY) -> None:
    popup.get_by_label("API key", exact=True).fill(key)
    popup.get_by_role("button", name="Connect").click()


def outcome(page: Page) -> dict[str, Any]:
    expect(page.locator("#outcome")).not_to_have_text("not started", timeout=15_000)
    result: dict[str, Any] = page.evaluate("window.connectOutcome")
    return result


def calls(page: Page) -> list[Any]:
    value: list[Any] = page.evaluate("window.calls")
    return value


def messages(page: Page) -> list[Any]:
    value: list[Any] = page.evaluate("window.messages")
    return value


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


# -- popup ---------------------------------------------------------------------------------
def test_popup_success_reaches_the_partner_once(stack: Stack, page: Page) -> None:
    answer = stack.mint(allowedOrigins=[stack.partner])
    open_partner(page, stack.partner, answer)
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    expect(popup.get_by_role("heading", name="Connect your OpenAI account")).to_be_visible()
    assert "token=" not in popup.url
    with popup.expect_event("close"):
        fill_and_submit(popup)

    result = outcome(page)
    assert result["status"] == "success"
    assert result["type"] == "weavz-connect-result"
    assert result["sessionId"] == answer["sessionId"]
    assert [name for name, _ in calls(page)] == ["onSuccess"]
    [message] = messages(page)
    assert message["origin"] == stack.portal
    assert message["data"] == result
    delivered = [c for c in stack.connections() if c["idempotencyKey"] == answer["sessionId"]]
    assert [c["id"] for c in delivered] == [result["connectionId"]]
    assert stack.session(answer["sessionId"])["status"] == "COMPLETED"


def test_popup_error_reaches_the_partner_as_an_error(stack: Stack, page: Page) -> None:
    answer = stack.mint(externalId="reject-user", allowedOrigins=[stack.partner])
    open_partner(page, stack.partner, answer)
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    fill_and_submit(popup)
    # A failed attempt: the popup stays and offers a retry; the partner hears nothing yet.
    expect(popup.locator("[data-try-again]")).to_be_visible()
    assert messages(page) == []
    with popup.expect_event("close"):
        popup.locator("[data-give-up]").click()

    result = outcome(page)
    assert result["status"] == "error"
    assert result["code"] == "CORE_API_REJECTED"
    assert result["error"] == "The platform refused this key."
    assert result["connectionId"] is None
    assert [name for name, _ in calls(page)] == ["onError"]
    assert len(messages(page)) == 1
    assert stack.session(answer["sessionId"])["status"] == "FAILED"


def test_popup_without_opener_still_resolves_by_polling(stack: Stack, page: Page) -> None:
    answer = stack.mint(allowedOrigins=[stack.partner])
    open_partner(page, stack.partner, answer, noopener=True)
    with page.context.expect_page() as opened:
        page.click("#connect")
    popup = opened.value
    assert popup.evaluate("window.opener") is None
    fill_and_submit(popup)
    # No one to tell: the page says so plainly and stays open.
    expect(popup.get_by_role("heading", name="Connected")).to_be_visible()
    expect(popup.get_by_text("You can close this window")).to_be_visible()

    result = outcome(page)
    assert result["status"] == "success"
    assert result["sessionId"] == answer["sessionId"]
    assert result["connectionId"] == stack.session(answer["sessionId"])["connectionId"]
    assert [name for name, _ in calls(page)] == ["onSuccess"]
    assert messages(page) == []
    assert not popup.is_closed()


def test_popup_that_lost_its_opener_is_never_reported_as_cancelled(
    stack: Stack, page: Page
) -> None:
    """As when a provider page's COOP severs the opener: the user finishes, reads that the
    window can be closed, closes it, and the partner learns success, not a cancel."""
    answer = stack.mint(allowedOrigins=[stack.partner])
    open_partner(page, stack.partner, answer)
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    popup.evaluate("window.opener = null")
    fill_and_submit(popup)
    expect(popup.get_by_text("You can close this window")).to_be_visible()
    assert messages(page) == []
    assert page.evaluate("window.connectOutcome") is None
    popup.close()

    result = outcome(page)
    assert result["status"] == "success"
    assert result["connectionId"] == stack.session(answer["sessionId"])["connectionId"]
    assert [name for name, _ in calls(page)] == ["onSuccess"]


def test_popup_closed_before_finishing_reports_on_close(stack: Stack, page: Page) -> None:
    answer = stack.mint(allowedOrigins=[stack.partner])
    open_partner(page, stack.partner, answer)
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    expect(popup.get_by_label("API key", exact=True)).to_be_visible()
    popup.close()

    result = outcome(page)
    assert result["status"] == "closed"
    assert [name for name, _ in calls(page)] == ["onClose"]
    assert stack.session(answer["sessionId"])["status"] == "PENDING"


def test_second_open_reuses_the_window_and_ends_the_first(stack: Stack, page: Page) -> None:
    first, second = (stack.mint(allowedOrigins=[stack.partner]) for _ in range(2))
    open_partner(page, stack.partner, first)
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    expect(popup.get_by_label("API key", exact=True)).to_be_visible()
    first_page = popup.url
    open_partner_options = {"connectUrl": second["connectUrl"], "token": second["token"],
                            "pollInterval": 200}
    page.evaluate("options => { window.connectOptions = options; }", open_partner_options)
    page.click("#connect")
    popup.wait_for_url(lambda url: "/connect/s/" in url and url != first_page)
    expect(page.locator("#outcome")).to_have_text("closed")
    with popup.expect_event("close"):
        fill_and_submit(popup)
    expect(page.locator("#outcome")).to_have_text("success")
    [(closed_call, closed), (success_call, success)] = calls(page)
    assert (closed_call, success_call) == ("onClose", "onSuccess")
    assert closed["status"] == "closed"
    assert success["sessionId"] == second["sessionId"]
    assert stack.session(first["sessionId"])["status"] == "PENDING"
    assert stack.session(second["sessionId"])["status"] == "COMPLETED"


def test_blocked_popup_falls_back_to_a_full_page_redirect(
    stack: Stack, blocking_browser: Browser
) -> None:
    answer = stack.mint(successRedirectUri=f"{stack.partner}/done",
                        errorRedirectUri=f"{stack.partner}/failed")
    context = blocking_browser.new_context()
    try:
        page = context.new_page()
        options = {"connectUrl": answer["connectUrl"], "token": answer["token"]}
        # The partner page opens the portal on load, with no click: the blocker stops it.
        page.goto(f"{stack.partner}/#" + quote(json.dumps(options)))
        page.wait_for_url(f"{stack.portal}/connect/s/**")
        assert len(context.pages) == 1
        fill_and_submit(page)
        page.wait_for_url(f"{stack.partner}/done?**")
        query = query_of(page.url)
        assert set(query) == {"sessionId", "connectionId", "status"}
        assert query["status"] == "success" and query["sessionId"] == answer["sessionId"]
        assert query["connectionId"] == stack.session(answer["sessionId"])["connectionId"]
    finally:
        context.close()


# -- redirect mode -------------------------------------------------------------------------
def test_redirect_mode_success(stack: Stack, page: Page) -> None:
    answer = stack.mint(successRedirectUri=f"{stack.partner}/done?tab=apps",
                        errorRedirectUri=f"{stack.partner}/failed")
    page.goto(answer["connectUrl"])
    fill_and_submit(page)
    page.wait_for_url(f"{stack.partner}/done?**")
    query = query_of(page.url)
    assert set(query) == {"tab", "sessionId", "connectionId", "status"}
    assert query["status"] == "success"
    assert query["connectionId"] == stack.session(answer["sessionId"])["connectionId"]
    assert TYPED_KEY not in page.url and answer["token"] not in page.url


def test_redirect_mode_error(stack: Stack, page: Page) -> None:
    answer = stack.mint(externalId="reject-redirect",
                        successRedirectUri=f"{stack.partner}/done",
                        errorRedirectUri=f"{stack.partner}/failed")
    page.goto(answer["connectUrl"])
    fill_and_submit(page)
    page.locator("[data-give-up]").click()  # after the failed attempt, the user stops
    page.wait_for_url(f"{stack.partner}/failed?**")
    query = query_of(page.url)
    assert query == {"sessionId": answer["sessionId"], "status": "error",
                     "code": "CORE_API_REJECTED"}


# -- nobody else learns the result ---------------------------------------------------------
def test_page_on_another_origin_receives_nothing(stack: Stack, page: Page) -> None:
    """The token was minted for partner A; partner B (another allowed origin, another port)
    opens it. The result is posted to A's origin only, and B cannot read the poll."""
    answer = stack.mint(allowedOrigins=[stack.partner])
    open_partner(page, stack.other_partner, answer)
    with page.expect_popup() as opened:
        page.click("#connect")
    popup = opened.value
    with popup.expect_event("close"):
        fill_and_submit(popup)

    result = outcome(page)
    assert result["status"] == "closed"
    assert "connectionId" not in result
    assert [name for name, _ in calls(page)] == ["onClose"]
    assert messages(page) == []
    assert stack.session(answer["sessionId"])["status"] == "COMPLETED"


# -- webhooks ------------------------------------------------------------------------------
def test_finished_sessions_are_announced_by_signed_webhook(stack: Stack, page: Page) -> None:
    answer = stack.mint(allowedOrigins=[stack.partner])
    page.goto(answer["connectUrl"])
    fill_and_submit(page)
    expect(page.get_by_role("heading", name="Connected")).to_be_visible()

    def event() -> Any:
        return next((item for item in stack.hooks.verified
                     if item["data"]["id"] == answer["sessionId"]), None)

    wait_until(lambda: event() is not None, timeout=15, what="the signed webhook")
    assert event()["type"] == "connect.session.completed"
    assert all(TYPED_KEY.encode() not in item["body"] for item in stack.hooks.deliveries)


# -- CSP -----------------------------------------------------------------------------------
def test_csp_blocks_injected_inline_script(stack: Stack, page: Page) -> None:
    answer = stack.mint(integrationName="hostile")
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    page.goto(answer["connectUrl"])
    # The catalog's markup is shown as text, and it did not run.
    expect(page.get_by_text("<script>window.pwned = 1</script>", exact=False)).to_be_visible()
    assert page.evaluate("typeof window.pwned") == "undefined"
    # An inline script injected into the live page is refused by the CSP as well…
    ran = page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.pwned = 3";
        document.body.appendChild(script);
        return typeof window.pwned;
    }""")
    assert ran == "undefined"
    assert any("Content Security Policy" in text for text in violations)
    # …while the page's own script, which carries the nonce, runs.
    field = page.get_by_label("API key", exact=True)
    page.get_by_role("button", name="Show").click()
    expect(field).to_have_attribute("type", "text")
