"""Application wiring: the embedded store warning, and no traceback ever reaching a user."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from portal.app import create_app
from portal.sessions import ConnectSession, SessionStatus
from portal.settings import Settings
from portal.store.memory import MemorySessionStore
from tests.conftest import AUTH, PORTAL_URL, token_body


class ExplodingStore(MemorySessionStore):
    """A store with a bug in it: every read raises something nobody planned for."""

    async def get(self, session_id: str) -> ConnectSession | None:
        raise RuntimeError("internal detail: /srv/secret/path line 42")

    async def transition(self, session_id: str, to: SessionStatus, **changes: str
                         ) -> ConnectSession:
        raise RuntimeError("internal detail: /srv/secret/path line 42")


def test_without_redis_url_the_portal_says_sessions_stay_in_process(
    settings: Settings, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(replace(settings, redis_url=None),
                     core_transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    with TestClient(app, base_url=PORTAL_URL) as client:
        assert client.get("/readyz").json()["store"].startswith("in-process memory")
        minted = client.post("/api/v1/connect/token", json=token_body(), headers=AUTH)
        assert minted.status_code == 200
    assert any("REDIS_URL is not set" in record.getMessage() and "single process" in
               record.getMessage() for record in caplog.records)


def test_an_unexpected_error_shows_no_traceback(settings: Settings) -> None:
    app = create_app(settings, store=ExplodingStore(),
                     core_transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    with TestClient(app, base_url=PORTAL_URL, raise_server_exceptions=False) as client:
        minted: dict[str, Any] = client.post(
            "/api/v1/connect/token", json=token_body(), headers=AUTH).json()
        api = client.get(f"/api/v1/connect/session/{minted['sessionId']}", headers=AUTH)
        page = client.get("/connect", params={"token": minted["token"]})
    assert api.status_code == 500
    assert api.json() == {"error": "Something went wrong on our side.",
                          "code": "INTERNAL_ERROR", "details": {}}
    assert page.status_code == 500
    assert "Something went wrong" in page.text
    for response in (api, page):
        assert "Traceback" not in response.text
        assert "/srv/secret/path" not in response.text
