"""A credential check with a JSON body (`verification.body`): what the user types fills
placeholders inside JSON strings, and no value, however it is built (quotes,
backslashes, line breaks, a `{placeholder}` of its own), can end its string, add a key or
pull another field's value in. The provider here is a real HTTP server on loopback that
records the bytes it received; the values go in through the connect form."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.conftest import mint, open_page, received, session_of, submit
from tests.live_servers import server_thread

BODY_TEMPLATE = '{"account": "{account}", "apiKey": "{api_key}", "note": "{note}"}'
GOOD_KEY = 'k\\"ey-0123'  # a backslash and a quote, and still the right key

HOSTILE_VALUES = {
    "account": 'acme", "admin": true, "x": "{api_key}\\',
    "api_key": GOOD_KEY,
    "note": 'line one\r\nline "two" \\ and \\u0022 and \u2028 the end\\',
}


def recording_provider() -> Starlette:
    """Accepts the check only when the body is one JSON object with exactly the three keys
    and the right key; records every body as it arrived."""
    async def check(request: Request) -> Response:
        raw = await request.body()
        request.app.state.bodies.append(
            {"raw": raw, "content_type": request.headers.get("content-type")})
        try:
            sent = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": "not JSON"}, status_code=400)
        if not isinstance(sent, dict) or set(sent) != {"account", "apiKey", "note"}:
            return JSONResponse({"error": "unexpected keys"}, status_code=400)
        if sent["apiKey"] != GOOD_KEY:
            return JSONResponse({"error": "invalid key"}, status_code=401)
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/check", check, methods=["POST"])])
    app.state.bodies = []
    return app


@pytest.fixture
def provider() -> Iterator[tuple[str, Starlette]]:
    app = recording_provider()
    with server_thread(app) as url:
        yield url, app


@pytest.fixture
def portal(make_client: Any, provider: tuple[str, Starlette], tmp_path: Path) -> TestClient:
    entry = {
        "name": "acme-json", "displayName": "Acme JSON", "category": "Testing",
        "description": "Checks credentials with a JSON body.", "website": "https://acme.example",
        "authOptions": [{
            "key": "custom", "type": "CUSTOM_AUTH", "displayName": "Account and key",
            "props": {
                "account": {"type": "SHORT_TEXT", "displayName": "Account", "required": True},
                "api_key": {"type": "SECRET_TEXT", "displayName": "API key", "required": True},
                "note": {"type": "LONG_TEXT", "displayName": "Note"},
            },
            "verification": {"method": "POST", "url": f"{provider[0]}/check",
                             "body": BODY_TEMPLATE},
        }],
    }
    path = tmp_path / "acme-json.json"
    path.write_text(json.dumps({"integrations": [entry]}))
    client: TestClient = make_client(catalog_paths=(str(path),), verify_credentials=True,
                                     allow_http_loopback=True)
    return client


def connect(portal: TestClient, **values: str) -> tuple[str, Any]:
    answer = mint(portal, integrationName="acme-json", authMethodKey="custom")
    page_path, csrf = open_page(portal, answer["token"])
    return answer["sessionId"], submit(portal, page_path, csrf, **values)


def test_quotes_backslashes_and_line_breaks_stay_inside_their_json_strings(
    portal: TestClient, provider: tuple[str, Starlette], core_app: Starlette,
) -> None:
    _, app = provider
    session_id, result = connect(portal, **HOSTILE_VALUES)
    assert result.status_code == 200, result.text
    assert "Connected" in result.text
    [request] = app.state.bodies
    assert request["content_type"] == "application/json"
    sent = json.loads(request["raw"])
    # Each value arrives whole, as the portal read it from the form and delivered it.
    delivered = received(core_app)[0]["body"]["props"]
    assert sent == {"account": delivered["account"], "apiKey": delivered["api_key"],
                    "note": delivered["note"]}
    assert sent["apiKey"] == GOOD_KEY
    assert sent["account"] == HOSTILE_VALUES["account"]  # "{api_key}" stayed text
    assert "line one" in sent["note"] and '"two" \\ and \\u0022' in sent["note"]
    assert "admin" not in sent
    assert session_of(portal, session_id)["status"] == "COMPLETED"


def test_a_value_that_ends_its_string_cannot_set_the_key_that_is_checked(
    portal: TestClient, provider: tuple[str, Starlette], core_app: Starlette,
) -> None:
    """Unescaped, this note would close its string and add a second "apiKey", the good one,
    which a JSON parser takes over the first: a wrong key would pass the check."""
    _, app = provider
    forged_note = 'n", "apiKey": ' + json.dumps(GOOD_KEY)[:-1]
    session_id, result = connect(portal, account="acme", api_key="wrong-key", note=forged_note)
    assert result.status_code == 400
    assert "did not accept" in result.text
    [request] = app.state.bodies
    sent = json.loads(request["raw"])
    assert (sent["apiKey"], sent["note"]) == ("wrong-key", forged_note)
    assert received(core_app) == []
    assert session_of(portal, session_id)["status"] == "PENDING"
