"""Dynamic credential forms: every field type from catalog to form to core API body,
server-side validation that keeps typed values but never a secret, several auth
options, the picker, and every built-in entry rendering."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from portal.catalog import load_catalog
from tests.conftest import AUTH, mint, open_page, received, submit

ALL_FIELDS_ENTRY: dict[str, Any] = {
    "name": "acme-api",
    "displayName": "Acme API",
    "category": "Testing",
    "description": "A test integration with every field type.",
    "website": "https://acme.example",
    "authOptions": [
        {
            "key": "custom",
            "type": "CUSTOM_AUTH",
            "displayName": "Account details",
            "description": "Everything Acme needs.",
            "helpUrl": "https://acme.example/keys",
            "props": {
                "intro": {"type": "MARKDOWN",
                          "markdown": "Find **both** in [settings](https://acme.example/s).\n\n"
                                      "<script>alert(1)</script>"},
                "account": {"type": "SHORT_TEXT", "displayName": "Account name",
                            "description": "Lower-case letters.", "required": True,
                            "pattern": "[a-z]+", "min": 3},
                "notes": {"type": "LONG_TEXT", "displayName": "Notes", "required": False},
                "api_key": {"type": "SECRET_TEXT", "displayName": "API key", "required": True,
                            "description": "From the keys page."},
                "port": {"type": "NUMBER", "displayName": "Port", "required": True,
                         "defaultValue": 443, "min": 1, "max": 65535},
                "timeout": {"type": "NUMBER", "displayName": "Timeout", "required": False},
                "retries": {"type": "NUMBER", "displayName": "Retries", "required": False,
                            "defaultValue": 3},
                "tls": {"type": "CHECKBOX", "displayName": "Use TLS", "defaultValue": True},
                "verbose": {"type": "CHECKBOX", "displayName": "Verbose"},
                "region": {"type": "STATIC_DROPDOWN", "displayName": "Region", "required": True,
                           "options": [{"label": "Europe", "value": "eu"},
                                       {"label": "United States", "value": "us"}]},
                "site": {"type": "SHORT_TEXT", "displayName": "Site", "format": "url",
                         "required": False},
                "shop": {"type": "SHORT_TEXT", "displayName": "Shop", "format": "subdomain",
                         "required": False},
                "mail_host": {"type": "SHORT_TEXT", "displayName": "Mail host",
                              "format": "hostname", "required": False},
            },
        },
        {"key": "token", "type": "SECRET_TEXT", "displayName": "API token",
         "description": "A personal token.", "helpUrl": "https://acme.example/tokens"},
        {"key": "basic", "type": "BASIC_AUTH", "displayName": "User and password",
         "helpUrl": "https://acme.example/users",
         "username": {"displayName": "Login"}, "password": {"displayName": "Password"}},
        {"key": "oauth2", "type": "OAUTH2", "displayName": "Sign in",
         "authUrl": "https://acme.example/oauth/authorize",
         "tokenUrl": "https://acme.example/oauth/token", "scope": "read write", "pkce": True},
    ],
}
OAUTH_ONLY_ENTRY = {
    "name": "acme-oauth", "displayName": "Acme OAuth", "category": "Testing",
    "description": "Only OAuth.", "website": "https://acme.example",
    "authOptions": [ALL_FIELDS_ENTRY["authOptions"][3]],
}
GOOD_CUSTOM = {
    "account": "acme", "notes": "line one\nline two", "api_key": "sk-secret-123",
    "port": "8443", "timeout": "2.5", "tls": "on", "region": "us",
    "site": "https://acme.example/base/", "shop": "My-Shop", "mail_host": "Mail.Example.com",
}


async def public_mail_host(host: str, port: int) -> list[str]:
    if host != "mail.example.com":
        raise OSError(f"{host} does not resolve")
    return ["93.184.215.14"]


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "acme.json"
    path.write_text(json.dumps({"integrations": [ALL_FIELDS_ENTRY, OAUTH_ONLY_ENTRY]}))
    return path


@pytest.fixture
def acme(make_client: Any, catalog_file: Path) -> TestClient:
    # A host-name field is resolved before delivery (docs/outbound.md); no DNS here.
    # The platform has apps for Acme's sign-in options, so they are offered.
    apps = catalog_file.with_name("oauth-apps.json")
    apps.write_text(json.dumps({"apps": {
        name: {"clientId": f"{name}-client", "clientSecret": "s3cret"}
        for name in ("acme-oauth", "acme-api")}}))
    client: TestClient = make_client(catalog_paths=(str(catalog_file),),
                                     outbound_lookup=public_mail_host,
                                     oauth_apps_file=str(apps))
    return client


def open_form(client: TestClient, method: str | None = "custom") -> tuple[str, str, str]:
    answer = mint(client, integrationName="acme-api", authMethodKey=method)
    page_path, csrf = open_page(client, answer["token"])
    return page_path, csrf, answer["token"]


def tag(page: str, tag_name: str, field_id: str) -> str:
    match = re.search(rf'<{tag_name}\b[^>]*\bid="{field_id}"[^>]*>', page, re.S)
    assert match, f"no <{tag_name} id={field_id}> in the page"
    return match.group(0)


def error_of(page: str, key: str) -> str:
    match = re.search(rf'<p id="{key}-error" class="error">(.*?)</p>', page, re.S)
    assert match, f"no error shown for {key}"
    return html.unescape(match.group(1))


def test_custom_auth_round_trips_every_field_type_to_the_core_body(
    acme: TestClient, core_app: Starlette
) -> None:
    page_path, csrf, _ = open_form(acme)
    rendered = acme.get(page_path).text
    names = set(re.findall(r'<(?:input|select|textarea)\b[^>]*\bname="([^"]+)"', rendered))
    assert names == {"csrf_token", "opener", *GOOD_CUSTOM, "retries", "verbose"}
    response = submit(acme, page_path, csrf, **GOOD_CUSTOM)
    assert response.status_code == 200, response.text
    assert "Connected" in response.text
    (delivered,) = received(core_app)
    body = delivered["body"]
    assert body["type"] == "CUSTOM_AUTH"
    assert body["authMethodKey"] == "custom"
    assert body["props"] == {
        "account": "acme",
        "notes": "line one\nline two",
        "api_key": "sk-secret-123",
        "port": 8443,
        "timeout": 2.5,
        "retries": 3,
        "tls": True,
        "verbose": False,
        "region": "us",
        "site": "https://acme.example/base",
        "shop": "my-shop",
        "mail_host": "mail.example.com",
    }
    assert "secretText" not in body and "username" not in body


def test_optional_fields_left_empty_take_their_defaults(
    acme: TestClient, core_app: Starlette
) -> None:
    page_path, csrf, _ = open_form(acme)
    blank_required = submit(acme, page_path, csrf, account="acme", api_key="k", port="",
                            region="eu")
    assert error_of(blank_required.text, "port") == "Enter Port."
    submit(acme, page_path, csrf, account="acme", api_key="k", port="443", retries="",
           region="eu")
    props = received(core_app)[0]["body"]["props"]
    # an empty optional field takes its default or is left out; an unchecked box is false
    assert props == {"account": "acme", "api_key": "k", "port": 443, "retries": 3,
                     "tls": False, "verbose": False, "region": "eu"}


def test_form_renders_each_field_type_accessibly(acme: TestClient) -> None:
    answer = mint(acme, integrationName="acme-api", authMethodKey="custom")
    opened = acme.get("/connect", params={"token": answer["token"]})
    page = acme.get(opened.headers["location"]).text
    assert 'for="account"' in page and ">Account name" in page
    account = tag(page, "input", "account")
    assert 'aria-describedby="account-help"' in account and "required" in account
    secret = tag(page, "input", "api_key")
    assert 'type="password"' in secret and 'autocomplete="off"' in secret
    assert 'data-toggle-secret="api_key"' in page
    assert 'type="number"' in tag(page, "input", "port")
    assert 'value="443"' in tag(page, "input", "port")
    assert 'min="1"' in tag(page, "input", "port")
    assert "checked" in tag(page, "input", "tls")
    assert "checked" not in tag(page, "input", "verbose")
    assert '<option value="us">United States</option>' in page
    assert tag(page, "textarea", "notes")
    assert 'type="url"' in tag(page, "input", "site")
    # MARKDOWN help renders bold and https links, and never raw HTML
    assert "<strong>both</strong>" in page
    assert '<a href="https://acme.example/s" target="_blank" rel="noopener noreferrer">' in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    assert 'href="https://acme.example/keys"' in page


def test_validation_errors_sit_next_to_their_fields_and_keep_values_but_not_secrets(
    acme: TestClient, core_app: Starlette
) -> None:
    page_path, csrf, token = open_form(acme)
    response = submit(acme, page_path, csrf, account="ABC", notes="keep me", api_key="sk-typed-77",
                      port="70000", timeout="soon", region="mars", site="http://acme.example",
                      shop="-bad-", mail_host="10.0.0.5", verbose="on", tls="")
    assert response.status_code == 400
    page = response.text
    assert error_of(page, "account") == "This does not look like a valid Account name. " \
                                        "Check that you copied all of it."
    assert error_of(page, "port") == "Port must be at most 65535."
    assert error_of(page, "timeout") == "Timeout must be a number."
    assert error_of(page, "region") == "Choose one of the listed options."
    assert error_of(page, "site") == "The address must start with https://."
    assert error_of(page, "shop").startswith("Enter only the name before the dot")
    assert error_of(page, "mail_host") == ("This host is on a private or local network, which "
                                           "cannot be used here.")
    account = tag(page, "input", "account")
    assert 'aria-invalid="true"' in account
    assert 'aria-describedby="account-help account-error"' in account
    # non-secret values come back as typed; the secret does not
    assert 'value="ABC"' in account
    assert ">keep me</textarea>" in page
    assert 'value="70000"' in tag(page, "input", "port")
    assert "checked" in tag(page, "input", "verbose")
    assert "checked" not in tag(page, "input", "tls")
    assert "sk-typed-77" not in page
    assert "value=" not in tag(page, "input", "api_key")
    # ... and the page says why the secret is empty, next to it
    assert 'aria-describedby="api_key-help api_key-cleared"' in tag(page, "input", "api_key")
    assert "For your security this field was cleared. Type it again." in page
    assert received(core_app) == []
    polled = acme.post("/api/v1/connect/session/poll", json={"token": token}).json()
    assert polled["status"] == "PENDING"


def test_a_missing_required_secret_is_named_and_too_short_text_explained(
    acme: TestClient,
) -> None:
    page_path, csrf, _ = open_form(acme)
    page = submit(acme, page_path, csrf, account="ab", region="eu").text
    assert error_of(page, "api_key") == "Enter API key."
    assert "this field was cleared" not in page  # nothing was typed there to clear
    assert error_of(page, "account") == "Account name needs at least 3 characters."
    assert "Check the highlighted fields. Nothing was saved." in page


def test_basic_auth_delivers_username_and_password(acme: TestClient, core_app: Starlette
                                                   ) -> None:
    page_path, csrf, _ = open_form(acme, "basic")
    form = acme.get(page_path).text
    # A login's password: the browser's password manager may fill it (unlike an API key).
    assert ">Login" in form
    assert 'autocomplete="current-password"' in tag(form, "input", "password")
    assert "Enter Password." in submit(acme, page_path, csrf, username="alice").text
    submit(acme, page_path, csrf, username="alice", password="pa ss")
    body = received(core_app)[0]["body"]
    assert body["type"] == "BASIC_AUTH"
    assert (body["username"], body["password"]) == ("alice", "pa ss")
    assert "props" not in body and "secretText" not in body


def test_secret_text_delivers_secret_text(acme: TestClient, core_app: Starlette) -> None:
    page_path, csrf, _ = open_form(acme, "token")
    submit(acme, page_path, csrf, secret_text="tok-1")
    body = received(core_app)[0]["body"]
    assert (body["type"], body["secretText"], body["authMethodKey"]) == (
        "SECRET_TEXT", "tok-1", "token")


def test_several_options_let_the_user_choose_and_a_fixed_key_skips_the_choice(
    acme: TestClient, core_app: Starlette
) -> None:
    page_path, csrf, token = open_form(acme, None)
    chooser = acme.get(page_path).text
    assert "How do you want to connect?" in chooser
    for label in ("Account details", "API token", "User and password"):
        assert label in chooser
    assert 'value="oauth2"' in chooser  # signing in is one of the ways
    assert 'class="connect-form"' not in chooser
    wrong = submit(acme, page_path, csrf, action="auth_method", auth_method="no-such-way")
    assert wrong.status_code == 400
    chosen = submit(acme, page_path, csrf, action="auth_method", auth_method="token")
    assert chosen.status_code == 303
    form = acme.get(page_path).text
    assert 'id="secret_text"' in form
    session = acme.post("/api/v1/connect/session/poll", json={"token": token}).json()
    assert session["authMethodKey"] == "token"
    submit(acme, page_path, csrf, secret_text="tok-2")
    assert received(core_app)[0]["body"]["authMethodKey"] == "token"

    fixed_path, _, _ = open_form(acme, "basic")
    assert 'id="username"' in acme.get(fixed_path).text


def test_minting_an_oauth_option_opens_the_sign_in_hand_off(acme: TestClient) -> None:
    only = mint(acme, integrationName="acme-oauth")
    page_path, _ = open_page(acme, only["token"])
    page = acme.get(page_path)
    assert f'action="{page_path}/oauth"' in page.text
    assert "Sign in with Acme OAuth" in page.text
    # The hand-off form leads to the provider's sign-in page, so CSP must allow it.
    assert "form-action 'self' https://acme.example" in page.headers["content-security-policy"]
    chosen = mint(acme, integrationName="acme-api", authMethodKey="oauth2")
    chosen_path, _ = open_page(acme, chosen["token"])
    assert f'action="{chosen_path}/oauth"' in acme.get(chosen_path).text


def test_picker_search_works_without_javascript(acme: TestClient) -> None:
    answer = mint(acme, integrationName=None)
    page_path, csrf = open_page(acme, answer["token"])
    everything = acme.get(page_path).text
    assert 'data-name="acme-api"' in everything
    assert 'data-name="acme-oauth"' in everything  # connected by signing in
    searched = acme.get(page_path, params={"q": "every field"}).text

    def visible(page: str) -> set[str]:
        return set(re.findall(r'<li data-name="([^"]+)"[^>]*?(?<!hidden)>', page))

    assert visible(searched) == {"acme-api"}
    assert 'value="every field"' in searched
    assert "1 app" in searched
    by_category = acme.get(page_path, params={"category": "Email"}).text
    assert "acme-api" not in visible(by_category)
    assert {"sendgrid", "smtp", "mailgun"} <= visible(by_category)
    assert 'aria-current="true">Email</a>' in by_category
    none = acme.get(page_path, params={"q": "zzzz-nothing"}).text
    assert visible(none) == set() and "No app matches your search." in none

    chose = submit(acme, page_path, csrf, action="choose", integration="acme-api")
    assert chose.status_code == 303
    assert "How do you want to connect?" in acme.get(page_path).text


def test_picker_refuses_an_integration_it_cannot_run(acme: TestClient) -> None:
    answer = mint(acme, integrationName=None)
    page_path, csrf = open_page(acme, answer["token"])
    refused = submit(acme, page_path, csrf, action="choose", integration="no-such-app")
    assert refused.status_code == 404
    assert "This app is not available" in refused.text


def test_every_builtin_entry_renders_its_form(make_client: Any, tmp_path: Path) -> None:
    catalog = load_catalog()
    apps = tmp_path / "oauth-apps.json"  # a platform app for every sign-in, so all are offered
    apps.write_text(json.dumps({"apps": {
        item.name: {"clientId": "id", "clientSecret": "secret"} for item in catalog}}))
    client = make_client(oauth_apps_file=str(apps))
    for integration in catalog:
        for option in integration.auth_options:
            response = client.post("/api/v1/connect/token", headers=AUTH, json={
                "integrationName": integration.name, "authMethodKey": option.key,
                "connectionName": "c", "externalId": "e", "workspaceId": "w"})
            assert response.status_code == 200, (integration.name, response.text)
            page_path, _ = open_page(client, response.json()["token"])
            page = client.get(page_path).text
            assert f"Connect {html.escape(integration.display_name)}" in page
            if option.type.is_oauth:
                assert f'action="{page_path}/oauth"' in page, integration.name
                for item in option.inputs:
                    assert f'id="{item.key}"' in page, (integration.name, item.key)
                continue
            for item in option.inputs:
                assert f'id="{item.key}"' in page, (integration.name, item.key)
                assert html.escape(item.display_name) in page, (integration.name, item.key)
            assert option.help_url and html.escape(option.help_url) in page
