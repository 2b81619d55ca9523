"""The demo core API's page lists what it received with every secret masked (issue 8,
finding 8): top-level secrets and CUSTOM_AUTH props the catalog marks SECRET_TEXT."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from portal.catalog import load_catalog
from portal.demo.core import create_core_app
from tests.conftest import CORE_API_KEY, mint, open_page, received, submit

ZENDESK_TOKEN = "zdTok9fQ2xLmP4vR7sK1nB8cJ3hW6yE0aZ"
ZENDESK_EMAIL = "agent@acme-support.example"


def connect_zendesk(make_client: Any, core: Starlette) -> TestClient:
    """A Zendesk email + API token connection, typed into the portal's form."""
    client: TestClient = make_client(core_transport=httpx.ASGITransport(app=core))
    answer = mint(client, integrationName="zendesk", authMethodKey="api_token")
    page_path, csrf = open_page(client, answer["token"])
    result = submit(client, page_path, csrf, subdomain="acme", email=ZENDESK_EMAIL,
                    api_token=ZENDESK_TOKEN)
    assert result.status_code == 200, result.text
    [record] = received(core)
    assert record["body"]["props"]["api_token"] == ZENDESK_TOKEN  # the core API got it
    return client


def core_page(core: Starlette) -> str:
    with TestClient(core) as browser:
        page = browser.get("/")
    assert page.status_code == 200
    return page.text


def assert_hidden(secret: str, page: str) -> None:
    assert secret not in page
    assert secret[:6] not in page  # not even a recognisable prefix
    assert secret[-6:] not in page


def test_a_secret_prop_never_shows_on_the_demo_core_page(make_client: Any) -> None:
    core = create_core_app(CORE_API_KEY, catalog=load_catalog())
    connect_zendesk(make_client, core)
    page = core_page(core)
    assert_hidden(ZENDESK_TOKEN, page)
    assert "api_token" in page and f"hidden, {len(ZENDESK_TOKEN)} characters" in page
    # Props the catalog knows to be plain text stay readable: that is the demo's point.
    assert ZENDESK_EMAIL in page
    assert "acme" in page


def test_without_a_catalog_every_prop_is_masked(make_client: Any) -> None:
    core = create_core_app(CORE_API_KEY)
    connect_zendesk(make_client, core)
    page = core_page(core)
    assert_hidden(ZENDESK_TOKEN, page)
    assert ZENDESK_EMAIL not in page


@pytest.mark.parametrize("body", [
    {"type": "SECRET_TEXT", "secretText": "sk-proj-topLevelSecret0001"},
    {"type": "BASIC_AUTH", "username": "jane", "password": "hunter2-basicPass0002"},
    {"type": "OAUTH2", "accessToken": "ya29.accessTok0003xyz",
     "refreshToken": "1//refreshTok0004xyz", "tokenType": "Bearer"},
    {"type": "OAUTH2", "accessToken": "at-0005-abcdef",
     "data": {"id_token": "eyJidToken0006abcdef"}},
    {"type": "OAUTH2", "accessToken": "at-0007-abcdef", "clientSecret": "cs-unknownField0008"},
    {"type": "CUSTOM_AUTH", "integrationName": "zendesk", "authMethodKey": "api_token",
     "props": {"email": "a@b.example", "unlisted": "prop-notInCatalog0009"}},
])
def test_every_top_level_secret_and_unknown_field_is_masked(body: dict[str, Any]) -> None:
    core = create_core_app(CORE_API_KEY, catalog=load_catalog())
    with TestClient(core) as client:
        sent = client.post("/api/v1/connections", json={"integrationName": "openai", **body},
                           headers={"Authorization": f"Bearer {CORE_API_KEY}",
                                    "Idempotency-Key": "k-1"})
        assert sent.status_code == 201
        page = client.get("/").text
    secrets = [value for key, value in _leaves(body)
               if key not in {"type", "integrationName", "authMethodKey", "tokenType",
                              "username", "email"}]
    assert secrets
    for secret in secrets:
        assert_hidden(secret, page)
    if "username" in body:
        assert body["username"] in page


def _leaves(value: Any, key: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [leaf for name, item in value.items() for leaf in _leaves(item, name)]
    return [(key, value)] if isinstance(value, str) else []
