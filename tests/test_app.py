"""Application wiring: what `create_app` takes instead of making it, one Redis pool per
process, the embedded store warning, and no traceback ever reaching a user."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from portal.auth.oauth.provider import ClientApp
from portal.sessions import ConnectSession, SessionStatus
from portal.settings import Settings
from portal.store.memory import MemorySessionStore
from portal.store.oauth_state import MemoryOAuthStateStore
from portal.store.stores import open_stores
from tests.conftest import AUTH, PORTAL_URL, mint, open_page, session_of, token_body
from tests.live_servers import RedisServer, wait_until


class ExplodingStore(MemorySessionStore):
    """A store with a bug in it: every read raises something nobody planned for."""

    async def get(self, session_id: str) -> ConnectSession | None:
        raise RuntimeError("internal detail: /srv/secret/path line 42")

    async def transition(self, session_id: str, to: SessionStatus, **changes: str
                         ) -> ConnectSession:
        raise RuntimeError("internal detail: /srv/secret/path line 42")


def test_without_redis_url_the_portal_says_sessions_stay_in_process(
    settings: Settings, caplog: pytest.LogCaptureFixture, make_app: Any,
) -> None:
    caplog.set_level(logging.INFO)
    app = make_app(replace(settings, redis_url=None),
                     core_transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    with TestClient(app, base_url=PORTAL_URL) as client:
        assert client.get("/readyz").json()["store"].startswith("in-process memory")
        minted = client.post("/api/v1/connect/token", json=token_body(), headers=AUTH)
        assert minted.status_code == 200
    assert any("REDIS_URL is not set" in record.getMessage() and "single process" in
               record.getMessage() for record in caplog.records)


def test_an_unexpected_error_shows_no_traceback(settings: Settings, make_app: Any) -> None:
    app = make_app(settings, store=ExplodingStore(),
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


# -- what create_app takes instead of making it ---------------------------------------------
class RecordingStates(MemoryOAuthStateStore):
    """The in-process OAuth state store, counting what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.puts = 0

    async def put(self, key: str, value: str, *, ttl: int) -> None:
        self.puts += 1
        await super().put(key, value, ttl=ttl)


def press_oauth(client: TestClient, integration: str) -> httpx.Response:
    """Mint, open the link, press the sign-in button; the portal's answer to the button."""
    answer = mint(client, integrationName=integration, authMethodKey="oauth2")
    page_path, csrf = open_page(client, answer["token"])
    return client.post(f"{page_path}/oauth", data={"csrf_token": csrf},
                       headers={"Origin": PORTAL_URL})


def test_the_oauth_state_store_can_be_passed_in(settings: Settings, make_app: Any) -> None:
    states = RecordingStates()
    app = make_app(settings, oauth_states=states,
                   oauth_apps={"github": ClientApp("client-1", "secret-1")})
    with TestClient(app, base_url=PORTAL_URL, follow_redirects=False) as client:
        pressed = press_oauth(client, "github")
    assert pressed.status_code == 303, pressed.text
    assert states.puts == 1


def test_the_clock_sets_session_and_token_expiry(settings: Settings, make_app: Any) -> None:
    now = 2_000_000_000.0  # 2033-05-18T03:33:20Z
    app = make_app(replace(settings, token_ttl=600), clock=lambda: now)
    with TestClient(app, base_url=PORTAL_URL, follow_redirects=False) as client:
        answer = mint(client)
        assert answer["expiresAt"] == "2033-05-18T03:43:20Z"
        assert session_of(client, answer["sessionId"])["createdAt"] == "2033-05-18T03:33:20Z"
        open_page(client, answer["token"])  # valid by the portal's clock, not the machine's
        now += 601
        assert client.get("/connect", params={"token": answer["token"]}).status_code == 401


# -- one Redis pool per process --------------------------------------------------------------
def connections_besides(watcher: redis.Redis) -> int:
    """Clients connected to the Redis `watcher` talks to, not counting `watcher` itself."""
    own = watcher.client_id()
    return sum(1 for client in watcher.client_list() if int(client["id"]) != own)


async def test_sessions_and_oauth_states_share_one_redis_connection(
    own_redis: RedisServer,
) -> None:
    watcher = redis.Redis.from_url(own_redis.url)
    stores = open_stores(own_redis.url, prefix="portal:")
    try:
        # One after the other, as a quiet worker does: a pool of its own for each store
        # would hold two connections here.
        await stores.sessions.ping()
        await stores.oauth_states.put("k", "sealed", ttl=60)
        assert await stores.sessions.get("no-such-session") is None
        assert await stores.oauth_states.take("k") == "sealed"
        assert connections_besides(watcher) == 1
    finally:
        await stores.close()
    wait_until(lambda: connections_besides(watcher) == 0, timeout=5,
               what="the stores' connection to close")
    watcher.close()


def test_a_portal_holds_one_redis_pool_and_closes_it_at_shutdown(
    settings: Settings, make_app: Any, own_redis: RedisServer,
) -> None:
    watcher = redis.Redis.from_url(own_redis.url)
    # Without the outbox worker, whose polls would open a second pooled connection
    # whenever they overlap a request: the count below is of one caller at a time.
    app = make_app(replace(settings, redis_url=own_redis.url),
                   oauth_apps={"github": ClientApp("client-1", "secret-1")},
                   start_delivery_worker=False)
    with TestClient(app, base_url=PORTAL_URL, follow_redirects=False) as client:
        assert client.get("/readyz").json()["store"] == "Redis"
        assert press_oauth(client, "github").status_code == 303  # a session and a state
        assert watcher.keys("*oauth-state:*") and watcher.keys("*session:*")
        assert connections_besides(watcher) == 1
    wait_until(lambda: connections_besides(watcher) == 0, timeout=5,
               what="the portal's Redis connection to close")
    watcher.close()
