"""Every hosted page state, in a real Chromium, checked by axe-core (WCAG 2.0/2.1 A and
AA, and axe's best practices) in the light and the dark theme, the dark one both from the
browser's setting and from the token's `theme`; then laid out on a 360x640 phone, where
nothing may scroll sideways. A screenshot of each goes to test-artifacts/screens/.
And the credential flow, from the picker to the result, done with the keyboard alone.

The states and the variants are tables: a new page state is one entry in STATES, a new
language one line in LOCALES."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from portal.settings import Settings
from tests.axe import assert_accessible
from tests.conftest import AUTH, CORE_API_KEY, token_body
from tests.live_apps import external_id_of, read_body, replayed
from tests.live_servers import bound_socket, server_thread, url_of, wait_until
from tests.test_browser_catalog import WAREHOUSE, tab_to
from tests.test_browser_end_user_portal import end_user, portal_link

pytestmark = pytest.mark.browser

SCREENS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screens"
PHONE = {"width": 360, "height": 640}
REFUSED, HELD = "refuse-", "hold-"


class CoreStandIn:
    """The demo core API, except that it refuses (422) a connection whose externalId starts
    with "refuse-" and holds one starting with "hold-" until the test is over."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        self.holding = threading.Event()
        self.release = threading.Event()
        self.created: list[str] = []  # the externalId of every create or update received

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PATCH"):
            await self.inner(scope, receive, send)
            return
        body = await read_body(receive)
        external_id = external_id_of(body)
        self.created.append(external_id)
        if external_id.startswith(REFUSED):
            refusal = JSONResponse({"error": "The platform refused this key.",
                                    "code": "VALIDATION_ERROR"}, 422)
            await refusal(scope, receive, send)
            return
        if external_id.startswith(HELD):
            self.holding.set()
            await asyncio.to_thread(self.release.wait, 30)
        await self.inner(scope, replayed(body), send)


@dataclass
class Stack:
    portal: str
    core_url: str
    core: CoreStandIn
    browser: Browser
    token_fields: dict[str, Any] = field(default_factory=dict)

    def connect_url(self, **overrides: Any) -> str:
        minted = self.mint(**overrides)
        url: str = minted["connectUrl"]
        return url

    def mint(self, **overrides: Any) -> dict[str, Any]:
        body = token_body(**{**self.token_fields, **overrides})
        response = httpx.post(f"{self.portal}/api/v1/connect/token", headers=AUTH, json=body,
                              timeout=10)
        assert response.status_code == 200, response.text
        minted: dict[str, Any] = response.json()
        return minted


@pytest.fixture
def stack(settings: Settings, core_app: Starlette, browser: Browser, tmp_path: Path,
          make_app: Any) -> Iterator[Stack]:
    """The portal under uvicorn with the built-in catalog plus Warehouse (a form with a
    dropdown and a checkbox), a platform OAuth app for Zendesk (so its chooser offers
    signing in), and the core API stand-in, also under uvicorn."""
    catalog = tmp_path / "warehouse.json"
    catalog.write_text(json.dumps({"integrations": [WAREHOUSE]}))
    apps = tmp_path / "oauth-apps.json"
    apps.write_text(json.dumps({"apps": {"zendesk": {"clientId": "zendesk-client",
                                                     "clientSecret": "zendesk-secret"}}}))
    core = CoreStandIn(core_app)
    sock = bound_socket()
    with server_thread(core) as core_url:
        live = replace(settings, public_url=url_of(sock), core_api_url=core_url,
                       catalog_paths=(str(catalog),), oauth_apps_file=str(apps))
        with server_thread(make_app(live), sock) as url:
            try:
                yield Stack(url, core_url, core, browser)
            finally:
                core.release.set()  # a held create ends before the servers stop


# -- the page states: each takes a fresh page to the state and checks it got there -------

def picker(page: Page, stack: Stack) -> None:
    page.goto(stack.connect_url(integrationName=None))
    expect(page.locator("#picker-list")).to_be_visible()


def picker_with_search(page: Page, stack: Stack) -> None:
    picker(page, stack)
    everything = page.locator("#picker-list li").count()
    page.locator("#picker-q").fill("mail")
    expect(page.locator("#picker-list li:visible")).not_to_have_count(everything)


def auth_method_chooser(page: Page, stack: Stack) -> None:
    page.goto(stack.connect_url(integrationName="zendesk"))
    expect(page.locator("form.auth-methods")).to_be_visible()


def credential_form(page: Page, stack: Stack) -> None:
    page.goto(stack.connect_url(integrationName="warehouse"))
    expect(page.locator("form.connect-form #secret")).to_be_visible()


def form_with_errors(page: Page, stack: Stack) -> None:
    credential_form(page, stack)
    page.locator("#key_id").fill("XX99")
    page.locator("#secret").fill("a-secret-value")
    page.locator("form.connect-form button[type=submit]").click()
    expect(page.locator("#key_id-error")).to_be_visible()


def oauth_start_form(page: Page, stack: Stack) -> None:
    page.goto(stack.connect_url(integrationName="zendesk", authMethodKey="oauth2"))
    expect(page.locator("form.connect-form #subdomain")).to_be_visible()


def fill_api_key_and_connect(page: Page, stack: Stack, external_id: str) -> None:
    page.goto(stack.connect_url(integrationName="openai", externalId=external_id))
    page.locator("#secret_text").fill("sk-accessible-0123456789abcdef")
    page.locator("form.connect-form button[type=submit]").click()


def result_success(page: Page, stack: Stack) -> None:
    fill_api_key_and_connect(page, stack, "user-ok")
    expect(page.locator("#connect-result")).to_be_attached()
    expect(page.locator("h1.ok")).to_be_visible()


def attempt_failed(page: Page, stack: Stack) -> None:
    fill_api_key_and_connect(page, stack, f"{REFUSED}user")
    expect(page.locator("[data-try-again]")).to_be_visible()


def result_failure(page: Page, stack: Stack) -> None:
    attempt_failed(page, stack)
    page.locator("[data-give-up]").click()
    expect(page.locator("#connect-result")).to_be_attached()
    expect(page.locator("h1.fail")).to_be_visible()


# A partner's brand, with an accent colour that has no contrast of its own: the portal adjusts it.
BRAND = {"partnerName": "Acme Books", "accentColor": "#ffee00",
         "preferredIntegrations": ["stripe", "openai"]}


def branded_picker(page: Page, stack: Stack) -> None:
    page.goto(stack.connect_url(integrationName=None, **BRAND))
    expect(page.locator("[data-suggested]").first).to_be_visible()


def branded_form(page: Page, stack: Stack) -> None:
    page.goto(stack.connect_url(integrationName="zendesk", authMethodKey="oauth2", **BRAND))
    expect(page.locator("h1")).to_contain_text("Acme Books")


def error_invalid_link(page: Page, stack: Stack) -> None:
    page.goto(f"{stack.portal}/connect?token=cst_not-a-real-token")
    expect(page.locator("h1.fail")).to_be_visible()


def error_other_browser(page: Page, stack: Stack) -> None:
    minted = stack.mint()
    other = stack.browser.new_context()
    try:
        other.new_page().goto(minted["connectUrl"])  # the link is opened elsewhere first
    finally:
        other.close()
    page.goto(f"{stack.portal}/connect/s/{minted['sessionId']}")
    expect(page.locator("h1.fail")).to_be_visible()


def connecting(page: Page, stack: Stack) -> None:
    minted = stack.mint(integrationName="openai", externalId=f"{HELD}user")
    sender = page.context.new_page()
    sender.goto(minted["connectUrl"])
    sender.locator("#secret_text").fill("sk-held-0123456789abcdef")
    sender.locator("form.connect-form button[type=submit]").click(no_wait_after=True)
    wait_until(stack.core.holding.is_set, timeout=10, what="the create at the core API")
    page.goto(f"{stack.portal}/connect/s/{minted['sessionId']}")
    expect(page.get_by_role("status")).to_be_visible()


def end_user_portal(page: Page, stack: Stack) -> None:
    person = end_user(stack.core_url, "user-ada", "Ada Example")
    created = httpx.post(f"{stack.core_url}/api/v1/connections",
                         headers={"Authorization": f"Bearer {CORE_API_KEY}"},
                         json={"type": "SECRET_TEXT", "integrationName": "openai",
                               "workspaceId": person["workspaceId"], "endUserId": person["id"],
                               "externalId": "user-ada", "displayName": "Ada's OpenAI key",
                               "secretText": "sk-ada"})
    assert created.status_code == 201, created.text
    page.goto(portal_link(stack.portal, person))
    expect(page.locator("[data-end-user]")).to_have_text("Ada Example")


def disconnect_confirm(page: Page, stack: Stack) -> None:
    end_user_portal(page, stack)
    page.locator("[data-connection] a[href$='/disconnect']").click()
    expect(page.locator("form button.primary")).to_be_visible()


State = Callable[[Page, Stack], None]
Scheme = Literal["light", "dark"]
# (name, how to reach it, whether the token's `theme` reaches it: pages with no session do not)
STATES: list[tuple[str, State, bool]] = [
    ("picker", picker, True),
    ("picker-search", picker_with_search, True),
    ("auth-method", auth_method_chooser, True),
    ("credential-form", credential_form, True),
    ("form-errors", form_with_errors, True),
    ("oauth-start", oauth_start_form, True),
    ("result-success", result_success, True),
    ("attempt-failed", attempt_failed, True),
    ("result-failure", result_failure, True),
    ("branded-picker", branded_picker, True),
    ("branded-oauth-start", branded_form, True),
    ("error-invalid-link", error_invalid_link, False),
    ("error-other-browser", error_other_browser, False),
    ("connecting", connecting, True),
    ("end-user-portal", end_user_portal, False),
    ("disconnect-confirm", disconnect_confirm, False),
]
# (name, the browser's prefers-color-scheme, token fields)
THEMES: list[tuple[str, Scheme, dict[str, Any]]] = [
    ("light", "light", {}),
    ("dark", "dark", {}),
    ("token-dark", "light", {"theme": "dark"}),  # the token overrides a light system setting
    ("token-light", "dark", {"theme": "light"}),  # … and a dark one
]
# (name, the browser's Accept-Language, token fields)
LOCALES: list[tuple[str, str, dict[str, Any]]] = [
    ("en", "en-US", {}),
    ("ar", "ar", {"locale": "ar"}),
]

CASES = [
    pytest.param(state, scheme, {**theme_fields, **locale_fields}, language, accept_language,
                 id=f"{name}-{theme}" + ("" if language == "en" else f"-{language}"))
    for name, state, takes_theme in STATES
    for theme, scheme, theme_fields in THEMES
    if takes_theme or not theme_fields
    for language, accept_language, locale_fields in LOCALES
]


@pytest.mark.parametrize(("state", "scheme", "token_fields", "language", "accept_language"),
                         CASES)
def test_page_state_passes_axe_and_fits_a_phone(
    request: pytest.FixtureRequest, stack: Stack, state: State, scheme: Scheme,
    token_fields: dict[str, Any], language: str, accept_language: str,
) -> None:
    screen = request.node.callspec.id
    stack.token_fields = token_fields
    # The portal's CSP admits only its own nonce'd scripts; axe is injected for the audit.
    context = stack.browser.new_context(bypass_csp=True, color_scheme=scheme,
                                        locale=accept_language)
    try:
        page = context.new_page()
        state(page, stack)
        forced = token_fields.get("theme")
        if forced:
            expect(page.locator("html")).to_have_attribute("data-theme", forced)
        expect(page.locator("html")).to_have_attribute("lang", language)
        # The page's own background says which theme it is drawn in.
        background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        assert (background == "rgb(16, 19, 23)") == ((forced or scheme) == "dark"), background
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENS / f"{screen}.png", full_page=True)
        assert_accessible(page, screen)

        page.set_viewport_size(PHONE)
        page.screenshot(path=SCREENS / f"{screen}-phone.png", full_page=True)
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= PHONE["width"], f"{screen} scrolls sideways on a phone: {width}px wide"
    finally:
        context.close()


def test_the_finishing_page_shows_the_result_by_itself_with_javascript(stack: Stack) -> None:
    """The finishing page has no timed refresh while scripts run (axe: meta-refresh); its
    script looks in the background and shows the result once there is one."""
    context = stack.browser.new_context()
    try:
        page = context.new_page()
        connecting(page, stack)
        assert page.locator("meta[http-equiv=refresh]").count() == 0
        stack.core.release.set()
        expect(page.locator("h1.ok")).to_be_visible(timeout=15_000)
    finally:
        context.close()


# Stands in for the wait on the portal's answer: the page's own submit handler (form.js)
# runs first; this one, added after it, counts the posts that would leave and keeps them here.
HOLD_POSTS = """() => {
    window.posts = 0;
    document.querySelector('form.connect-form').addEventListener('submit', (event) => {
        if (!event.defaultPrevented) window.posts += 1;
        event.preventDefault();
    });
}"""
BUTTON_STATE = """() => {
    const button = document.querySelector('form.connect-form button[type=submit]');
    const spinner = getComputedStyle(button, '::before');
    return [button.getAttribute('aria-busy'), spinner.content, spinner.animationName];
}"""


@pytest.mark.parametrize("motion", ["no-preference", "reduce"])
def test_a_sent_form_says_it_is_busy_and_is_not_sent_twice(stack: Stack, motion: str) -> None:
    """While the portal answers (a credential check may take seconds), the Connect button
    shows a spinner, standing still for someone who asked for less motion; pressing it
    again, or Enter in a field, sends nothing more."""
    context = stack.browser.new_context(
        reduced_motion="reduce" if motion == "reduce" else "no-preference")
    try:
        page = context.new_page()
        page.goto(stack.connect_url(integrationName="openai"))
        page.evaluate(HOLD_POSTS)
        button = page.locator("form.connect-form button[type=submit]")
        assert page.evaluate(BUTTON_STATE) == [None, "none", "none"]
        page.locator("#secret_text").fill("sk-busy-0123456789abcdef")
        button.click()
        turning = "none" if motion == "reduce" else "spin"
        assert page.evaluate(BUTTON_STATE) == ["true", '""', turning]
        button.click(force=True)  # aria-disabled: Playwright would wait for it to be enabled
        page.locator("#secret_text").press("Enter")
        assert page.evaluate("window.posts") == 1
    finally:
        context.close()


def test_a_right_to_left_page_mirrors_itself(stack: Stack) -> None:
    """In Arabic the page runs right to left: labels and fields start at the right edge,
    the Show button sits to the left of its secret field, nothing scrolls sideways."""
    context = stack.browser.new_context(locale="ar", viewport=PHONE)
    try:
        page = context.new_page()
        page.goto(stack.connect_url(integrationName="warehouse", locale="ar"))
        expect(page.locator("html")).to_have_attribute("dir", "rtl")

        def box(selector: str) -> dict[str, float]:
            found = page.locator(selector).bounding_box()
            assert found is not None, selector
            return dict(found)

        label, field = box("label[for=key_id]"), box("#key_id")
        assert abs((label["x"] + label["width"]) - (field["x"] + field["width"])) < 1
        secret, show = box("#secret"), box("[data-toggle-secret=secret]")
        assert show["x"] + show["width"] <= secret["x"]
        assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
        SCREENS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENS / "credential-form-rtl-phone.png", full_page=True)
    finally:
        context.close()


@pytest.mark.parametrize(("integration", "expected"), [
    ("twilio", {"username": "username", "password": "current-password"}),  # BASIC_AUTH
    ("openai", {"secret_text": "off"}),  # an API key: no password manager
    ("zendesk", {"subdomain": "", "email": "email", "api_token": "off"}),
])
def test_password_managers_may_fill_sign_ins_but_not_api_keys(
    page: Page, stack: Stack, integration: str, expected: dict[str, str],
) -> None:
    page.goto(stack.connect_url(integrationName=integration, authMethodKey=None))
    if page.locator("form.auth-methods").count():
        page.locator("form.auth-methods button").first.click()
    for key, autocomplete in expected.items():
        expect(page.locator(f"#{key}")).to_be_visible()
        assert page.locator(f"#{key}").evaluate("(field) => field.autocomplete") == autocomplete


def test_the_credential_flow_is_done_with_the_keyboard_alone(stack: Stack) -> None:
    """From the picker through the auth-method chooser and the form to the result: Tab,
    typing, Space and Enter only; every focused control shows a focus ring."""
    context = stack.browser.new_context()
    try:
        page = context.new_page()
        page.goto(stack.connect_url(integrationName=None))

        def focus_ring() -> str:
            style: str = page.evaluate(
                "getComputedStyle(document.activeElement).outlineStyle")
            return style

        tab_to(page, "picker-q")
        assert focus_ring() == "solid"
        page.keyboard.type("zendesk")
        expect(page.locator("#picker-list li:visible")).to_have_count(1)
        page.keyboard.press("Tab")  # the Search button
        page.keyboard.press("Tab")  # the first category
        for _ in range(40):
            if page.evaluate("document.activeElement.value") == "zendesk":
                break
            page.keyboard.press("Tab")
        assert focus_ring() == "solid"
        page.keyboard.press("Enter")

        expect(page.locator("form.auth-methods")).to_be_visible()
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.value") == "api_token":
                break
        assert focus_ring() == "solid"
        page.keyboard.press("Space")

        expect(page.locator("#subdomain")).to_be_visible()
        tab_to(page, "subdomain")
        page.keyboard.type("acme")
        tab_to(page, "email")
        assert page.evaluate("document.activeElement.autocomplete") == "email"
        page.keyboard.type("ada@example.com")
        tab_to(page, "api_token")
        page.keyboard.type("zendesk-token-0123456789")
        page.keyboard.press("Tab")
        show = page.locator("[data-toggle-secret='api_token']")
        expect(show).to_be_focused()
        assert focus_ring() == "solid"
        expect(show).to_have_accessible_name("Show API token")
        page.keyboard.press("Space")
        expect(page.locator("#api_token")).to_have_attribute("type", "text")
        expect(show).to_have_text("Hide")
        expect(show).to_have_accessible_name("Hide API token")
        page.keyboard.press("Tab")
        expect(page.locator("form.connect-form button[type=submit]")).to_be_focused()
        assert focus_ring() == "solid"
        page.keyboard.press("Enter")
        expect(page.locator("h1.ok")).to_be_visible()
    finally:
        context.close()
