"""In a real Chromium against the portal under uvicorn (real Redis, real HTTP): a
keyboard-only CUSTOM_AUTH form, the picker's search with and without JavaScript, and a
validation error that keeps typed values but not the secret."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from starlette.applications import Starlette

from portal.settings import Settings
from tests.catalog_server import provider_app
from tests.conftest import connect_url, received
from tests.live_servers import bound_socket, server_thread

pytestmark = pytest.mark.browser

WAREHOUSE = {
    "name": "warehouse", "displayName": "Warehouse", "category": "Testing",
    "description": "A store of boxes, for testing.", "website": "https://warehouse.example",
    "authOptions": [{
        "key": "access_key", "type": "CUSTOM_AUTH", "displayName": "Access key",
        "helpUrl": "https://warehouse.example/keys",
        "props": {
            "key_id": {"type": "SHORT_TEXT", "displayName": "Key ID", "required": True,
                       "pattern": "WH[0-9]{4}", "description": "WH and four digits."},
            "secret": {"type": "SECRET_TEXT", "displayName": "Secret key", "required": True},
            "region": {"type": "STATIC_DROPDOWN", "displayName": "Region", "required": True,
                       "options": [{"label": "Europe", "value": "eu-1"},
                                   {"label": "United States", "value": "us-1"},
                                   {"label": "Asia", "value": "ap-1"}]},
            "bucket": {"type": "SHORT_TEXT", "displayName": "Bucket", "required": True},
            "path_style": {"type": "CHECKBOX", "displayName": "Path-style addresses"},
        },
    }],
}


@pytest.fixture
def portal(settings: Settings, core_app: Starlette, tmp_path: Path, make_app: Any
           ) -> Iterator[str]:
    catalog = tmp_path / "warehouse.json"
    catalog.write_text(json.dumps({"integrations": [WAREHOUSE]}))
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = make_app(
        replace(settings, public_url=url, catalog_paths=(str(catalog),)),
        core_transport=httpx.ASGITransport(app=core_app),
    )
    with server_thread(app, sock) as served:
        yield served


def tab_to(page: Page, element_id: str, *, limit: int = 25) -> None:
    """Press Tab until the element has focus, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}")


def test_keyboard_only_custom_auth_with_a_dropdown_and_a_checkbox(
    page: Page, portal: str, core_app: Starlette
) -> None:
    page.goto(connect_url(portal, integrationName="warehouse"))
    expect(page.get_by_role("heading", name="Connect your Warehouse account")).to_be_visible()
    tab_to(page, "key_id")
    page.keyboard.type("WH1234")
    tab_to(page, "secret")
    page.keyboard.type("s3cr3t-value")
    page.keyboard.press("Tab")  # the Show button follows the secret
    expect(page.locator("[data-toggle-secret='secret']")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#secret")).to_have_attribute("type", "text")
    expect(page.locator("[data-toggle-secret='secret']")).to_have_attribute(
        "aria-pressed", "true")
    page.keyboard.press("Space")
    expect(page.locator("#secret")).to_have_attribute("type", "password")
    tab_to(page, "region")
    page.keyboard.type("United")
    expect(page.locator("#region")).to_have_value("us-1")
    tab_to(page, "bucket")
    page.keyboard.type("boxes")
    tab_to(page, "path_style")
    page.keyboard.press("Space")
    expect(page.locator("#path_style")).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Connect")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Connected")).to_be_visible()
    body = received(core_app)[0]["body"]
    assert body["type"] == "CUSTOM_AUTH"
    assert body["props"] == {"key_id": "WH1234", "secret": "s3cr3t-value", "region": "us-1",
                             "bucket": "boxes", "path_style": True}


def test_a_validation_error_keeps_typed_values_but_not_the_secret(
    page: Page, portal: str, core_app: Starlette
) -> None:
    page.goto(connect_url(portal, integrationName="warehouse"))
    page.get_by_label("Key ID").fill("XX99")
    page.get_by_label("Secret key", exact=True).fill("do-not-echo-me")
    page.get_by_label("Region").select_option("ap-1")
    page.get_by_label("Bucket").fill("crates")
    page.get_by_label("Path-style addresses").check()
    page.get_by_role("button", name="Connect").click()
    error = page.locator("#key_id-error")
    expect(error).to_have_text(
        "This does not look like a valid Key ID. Check that you copied all of it.")
    key_id = page.get_by_label("Key ID")
    expect(key_id).to_be_focused()  # the first field in error, for keyboard users
    expect(key_id).to_have_value("XX99")
    expect(key_id).to_have_attribute("aria-invalid", "true")
    expect(key_id).to_have_attribute("aria-describedby",
                                     "key_id-help key_id-error")
    expect(page.get_by_label("Region")).to_have_value("ap-1")
    expect(page.get_by_label("Bucket")).to_have_value("crates")
    expect(page.get_by_label("Path-style addresses")).to_be_checked()
    expect(page.get_by_label("Secret key", exact=True)).to_have_value("")
    assert "do-not-echo-me" not in page.content()
    assert received(core_app) == []


def test_picker_filters_instantly_pages_and_is_usable_by_keyboard(
    page: Page, portal: str,
) -> None:
    page.goto(connect_url(portal, integrationName=None))
    search = page.get_by_label("Search apps")
    expect(search).to_be_visible()
    items = page.locator("#picker-list li")
    count = page.locator("#picker-count")
    first_page = items.count()
    assert first_page == 12  # one page of the catalog, the rest a link away
    total = int(re.search(r"\d+", count.inner_text()).group(0))  # type: ignore[union-attr]
    assert total >= 40
    page.get_by_role("link", name="More apps").click()
    expect(page.get_by_text("Page 2 of")).to_be_visible()
    assert "page=" not in page.url  # paged in place, no reload
    search.focus()
    page.keyboard.type("sendg")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("SendGrid")
    expect(count).to_have_text("1 app")
    assert "q=" not in page.url  # filtered in place, no reload
    page.keyboard.press("Escape")
    expect(count).to_have_text(f"{total} apps")
    page.get_by_role("link", name="Email", exact=True).click()
    expect(page.get_by_role("link", name="Email", exact=True)).to_have_attribute(
        "aria-current", "true")
    expect(count).not_to_have_text(f"{total} apps")
    for text in items.all_inner_texts():
        assert "Email" in text
    search.focus()
    page.keyboard.type("mailgun")
    expect(items).to_have_count(1)
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("button", name="Mailgun Email")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Connect your Mailgun account")).to_be_visible()
    expect(page.get_by_label("Region")).to_have_value("api.mailgun.net")


def test_picker_search_works_without_javascript(browser: Browser, portal: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(connect_url(portal, integrationName=None))
        page.get_by_label("Search apps").fill("warehouse")
        page.get_by_role("button", name="Search").click()
        expect(page).to_have_url(re.compile(r"[?&]q=warehouse"))
        items = page.locator("#picker-list li")
        expect(items).to_have_count(1)
        page.get_by_role("button", name="Warehouse Testing").click()
        expect(page.get_by_role("heading", name="Connect your Warehouse account")).to_be_visible()
    finally:
        context.close()


@pytest.fixture
def checked_portal(settings: Settings, core_app: Starlette, tmp_path: Path, make_app: Any
                   ) -> Iterator[tuple[str, Starlette]]:
    """The portal with credential checks on, against a provider served on loopback."""
    provider = provider_app()
    with server_thread(provider) as provider_url:
        entry = {
            "name": "checked", "displayName": "Checked", "category": "Testing",
            "description": "Keys are checked before saving.", "website": "https://x.example",
            "authOptions": [{
                "key": "api_key", "type": "SECRET_TEXT", "displayName": "API key",
                "helpUrl": "https://x.example/keys",
                "verification": {"url": f"{provider_url}/v1/me",
                                 "headers": {"Authorization": "Bearer {secret_text}"}},
            }],
        }
        catalog = tmp_path / "checked.json"
        catalog.write_text(json.dumps({"integrations": [entry]}))
        sock = bound_socket()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        app = make_app(
            replace(settings, public_url=url, catalog_paths=(str(catalog),),
                    verify_credentials=True, allow_http_loopback=True),
            core_transport=httpx.ASGITransport(app=core_app),
        )
        with server_thread(app, sock) as served:
            yield served, provider


def test_a_wrong_key_and_a_provider_outage_are_explained_and_retried(
    page: Page, checked_portal: tuple[str, Starlette], core_app: Starlette
) -> None:
    portal, provider = checked_portal
    page.goto(connect_url(portal, integrationName="checked"))
    key = page.get_by_label("API key", exact=True)
    key.fill("wrong-key")
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#secret_text-error")).to_have_text(
        "Checked did not accept this API key. Check it and enter it again.")
    expect(key).to_have_value("")
    expect(key).to_be_focused()
    provider.state.down = True
    key.fill("good-key")
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "Checked could not be reached to check your details.")
    assert received(core_app) == []
    provider.state.down = False
    page.get_by_label("API key", exact=True).fill("good-key")
    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("heading", name="Connected")).to_be_visible()
    assert received(core_app)[0]["body"]["secretText"] == "good-key"
