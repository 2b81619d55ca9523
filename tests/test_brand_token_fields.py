"""The brand and picker fields of `POST /api/v1/connect/token`: what a partner may send,
what each wrong value reads as, and that the session keeps what was sent."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from starlette.testclient import TestClient

from portal.sessions import ConnectSession
from tests.conftest import AUTH, mint, token_body

PNG_DATA_URL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlE"
                "QVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def field_errors(client: TestClient, **fields: Any) -> dict[str, str]:
    response = client.post("/api/v1/connect/token", json=token_body(**fields), headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"
    errors: dict[str, str] = response.json()["details"]["fields"]
    return errors


def stored(client: TestClient, session_id: str) -> ConnectSession:
    """The session record as the portal's store keeps it."""
    assert client.portal is not None
    flow = client.app.state.flow  # type: ignore[attr-defined]
    session: ConnectSession = client.portal.call(flow.session_by_id, session_id)
    return session


def test_brand_fields_are_kept_on_the_session(client: TestClient) -> None:
    answer = mint(client, integrationName=None, partnerName="Acme Books",
                  partnerLogoUrl=PNG_DATA_URL, accentColor="#1A73E8",
                  theme="dark", locale="de-CH",
                  preferredIntegrations=["slack", "github", "slack"],
                  allowedIntegrations=["slack", "github", "openai"])
    session = stored(client, answer["sessionId"])
    assert session.partner_name == "Acme Books"
    # A data URL is kept once, in the logo cache; the session names it by its hash.
    assert session.partner_logo_url == "sha256:" + hashlib.sha256(PNG_DATA_URL.encode()).hexdigest()
    assert session.accent_color == "#1a73e8"
    assert session.theme == "dark"
    assert session.locale == "de"
    assert session.preferred_integrations == ["slack", "github"]
    assert session.allowed_integrations == ["slack", "github", "openai"]


def test_a_token_without_brand_fields_keeps_the_defaults(client: TestClient) -> None:
    answer = mint(client)
    session = stored(client, answer["sessionId"])
    assert session.partner_name is None and session.partner_logo_url is None
    assert session.theme == "auto" and session.locale is None
    assert session.preferred_integrations == [] and session.allowed_integrations == []


def test_an_unreachable_logo_never_stops_the_mint(client: TestClient) -> None:
    answer = mint(client, partnerName="Acme", partnerLogoUrl="https://cdn.acme.example/a.png")
    assert stored(client, answer["sessionId"]).partner_logo_url is None


@pytest.mark.parametrize(("fields", "name", "says"), [
    ({"partnerName": "x" * 81}, "partnerName", "at most 80"),
    ({"partnerName": "Acme\nBooks"}, "partnerName", "control characters"),
    ({"partnerLogoUrl": "http://cdn.acme.example/logo.png"}, "partnerLogoUrl", "https"),
    ({"partnerLogoUrl": "javascript:alert(1)"}, "partnerLogoUrl", "https"),
    ({"partnerLogoUrl": "data:image/svg+xml;base64,PHN2Zz4="}, "partnerLogoUrl", "data URL"),
    ({"partnerLogoUrl": "data:image/png;base64,PHN2Zz4="}, "partnerLogoUrl", "PNG, JPEG"),
    ({"partnerLogoUrl": "https://a.example/" + "x" * 2000}, "partnerLogoUrl", "2000"),
    ({"partnerLogoUrl": "data:image/png;base64," + "A" * 90_000}, "partnerLogoUrl", "data URL"),
    ({"accentColor": "red"}, "accentColor", "#1a73e8"),
    ({"accentColor": "#12345"}, "accentColor", "#1a73e8"),
    ({"theme": "sepia"}, "theme", "light, dark, auto"),
    ({"locale": "pt-BR"}, "locale", "en, de, fr, es, ja, ar"),
    ({"preferredIntegrations": ["slack"] * 21}, "preferredIntegrations", "at most 20"),
    ({"preferredIntegrations": ["no-such-app"]}, "preferredIntegrations", "'no-such-app'"),
    ({"allowedIntegrations": ["slack", "nope"]}, "allowedIntegrations", "'nope'"),
    ({"allowedIntegrations": "slack"}, "allowedIntegrations", "list"),
])
def test_each_bad_brand_field_gets_its_own_answer(
    client: TestClient, fields: dict[str, Any], name: str, says: str
) -> None:
    errors = field_errors(client, **fields)
    assert list(errors) == [name]
    assert says in errors[name]


def test_a_fixed_integration_outside_the_allowed_list_is_refused(client: TestClient) -> None:
    errors = field_errors(client, integrationName="openai", allowedIntegrations=["slack"])
    assert "integrationName" in errors
