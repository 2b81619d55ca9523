"""Shared fixtures and helpers: a real Redis under a per-test key prefix (and a Redis of a
test's own to stop and start), the portal in process with the demo core API behind a
swapped httpx transport, `connect-portal demo` as a process, a real Chromium; and what a
partner backend and a browser do against a portal (`mint`, `open_page`, `submit`,
`session_of`), for the in-process client and a live one alike.

Servers run through tests/live_servers.py, the one way to start them."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from starlette.applications import Starlette
from starlette.testclient import TestClient

from portal.app import create_app
from portal.delivery import DeliveryTiming
from portal.demo.core import create_core_app
from portal.settings import Settings
from portal.store.stores import Stores, open_stores
from tests.live_servers import RedisServer, ServerProcess, demo_process

API_KEY = "test-api-key-0123456789abcdef"
CORE_API_KEY = "test-core-key-0123456789abcdef"
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"
PARTNER_ORIGIN = "https://partner.example"
PORTAL_URL = "http://portal.test"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Retry pauses for the core API client (two) and webhooks (three): the same number of
# attempts as in production, without the wait.
# The outbox's clock for in-process portals: pauses of milliseconds (tests count tries,
# they need not wait them out), a worker that looks for due jobs often, a short lease.
FAST_DELIVERY = DeliveryTiming(retry_base=0.01, retry_cap=0.05, poll_interval=0.02,
                               lease=2.0, settle_pauses=(0.01, 0.02))


class Clock:
    """A wall clock a test moves by hand (`clock.now += 3600`), for expiry."""

    def __init__(self) -> None:
        self.now = 2_000_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; every key under it is removed afterwards."""
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
async def stores(redis_url: str, redis_prefix: str) -> AsyncIterator[Stores]:
    """The session and OAuth state stores as the portal opens them, in the test Redis
    under this test's prefix."""
    stores = open_stores(redis_url, prefix=redis_prefix)
    yield stores
    await stores.close()


@pytest.fixture
def settings(redis_url: str, redis_prefix: str) -> Settings:
    return Settings(
        public_url=PORTAL_URL,
        secret_keys=(SECRET_KEY,),
        api_keys=(API_KEY,),
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        core_api_url="http://core.test",
        core_api_key=CORE_API_KEY,
        allowed_origins=(PARTNER_ORIGIN,),
        # Built-in entries check credentials against real providers, out of reach here;
        # tests that exercise the check turn it on against a local server.
        verify_credentials=False,
    )


@pytest.fixture
def make_app() -> Any:
    """`create_app` as every in-process portal of the suite is built: the outbox on
    FAST_DELIVERY; the rest of its keyword arguments as given."""

    def make(settings: Settings, **wiring: Any) -> Starlette:
        wiring.setdefault("delivery_timing", FAST_DELIVERY)
        return create_app(settings, **wiring)

    return make


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own (not the shared one), to stop and start."""
    yield from _own_redis(tcp=False)


@pytest.fixture
def own_tcp_redis() -> Iterator[RedisServer]:
    """The same, its URL a loopback port: what a restart does to a pool of TCP connections."""
    yield from _own_redis(tcp=True)


def _own_redis(*, tcp: bool) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is installed by ./dev test")
    server = RedisServer(tcp=tcp).start()
    yield server
    server.close()


@pytest.fixture
def core_app() -> Starlette:
    """The demo core API, which honours Idempotency-Key like the real one must."""
    return create_core_app(CORE_API_KEY)


def received(core_app: Starlette) -> list[dict[str, Any]]:
    """What the core API received, in order."""
    connections: list[dict[str, Any]] = core_app.state.connections
    return connections


@pytest.fixture
def make_client(settings: Settings, core_app: Starlette, make_app: Any) -> Iterator[Any]:
    clients: list[TestClient] = []

    def make(
        core_transport: httpx.AsyncBaseTransport | None = None,
        outbound_lookup: Any = None,
        delivery_timing: DeliveryTiming = FAST_DELIVERY,
        start_delivery_worker: bool = True,
        peer: str = "testclient",
        **overrides: Any,
    ) -> TestClient:
        """A portal on `settings` with `overrides`, through a TestClient. `outbound_lookup`
        maps made-up host names to addresses for outbound requests; `peer` is the client
        address the portal sees."""
        app = make_app(
            replace(settings, **overrides),
            core_transport=core_transport or httpx.ASGITransport(app=core_app),
            outbound_lookup=outbound_lookup,
            delivery_timing=delivery_timing,
            start_delivery_worker=start_delivery_worker,
        )
        client = TestClient(app, base_url=PORTAL_URL, follow_redirects=False,
                            client=(peer, 50000))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Any) -> TestClient:
    client: TestClient = make_client()
    return client


def token_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "integrationName": "openai",
        "connectionName": "My OpenAI",
        "externalId": "user-42",
        "workspaceId": "ws-1",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def mint(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/connect/token", json=token_body(**overrides), headers=AUTH)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def connect_url(portal_url: str, **overrides: Any) -> str:
    """Mint over real HTTP against a running portal; the link to open in a browser."""
    response = httpx.post(f"{portal_url}/api/v1/connect/token", headers=AUTH,
                          json=token_body(**overrides), timeout=10)
    assert response.status_code == 200, response.text
    url: str = response.json()["connectUrl"]
    return url


def open_page(client: httpx.Client, token: str) -> tuple[str, str]:
    """Open the connect link as a browser would; return the page path and its CSRF token."""
    opened = client.get("/connect", params={"token": token})
    assert opened.status_code == 303, opened.text
    page_path = opened.headers["location"]
    page = client.get(page_path)
    assert page.status_code == 200, page.text
    return page_path, csrf_of(page.text)


def csrf_of(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


def submit(
    client: httpx.Client, page_path: str, csrf: str, **fields: str
) -> httpx.Response:
    """Post the connect form as the browser does, from the portal's own origin."""
    origin = f"{client.base_url.scheme}://{client.base_url.netloc.decode()}"
    return client.post(page_path, data={"csrf_token": csrf, **fields},
                       headers={"Origin": origin})


def session_of(client: httpx.Client, session_id: str) -> dict[str, Any]:
    """The session as the partner's backend reads it: GET /api/v1/connect/session/{id}."""
    response = client.get(f"/api/v1/connect/session/{session_id}", headers=AUTH)
    assert response.status_code == 200, response.text
    session: dict[str, Any] = response.json()["session"]
    return session


# -- `connect-portal demo`, as a user runs it ----------------------------------------------
@dataclass(frozen=True)
class Demo:
    portal_url: str
    partner_url: str
    core_url: str
    provider_url: str
    process: ServerProcess

    def connections(self) -> list[dict[str, Any]]:
        return core_connections(self.core_url, CORE_API_KEY)


def core_connections(core_url: str, core_key: str) -> list[dict[str, Any]]:
    """What a demo or stand-in core API received, from its own JSON listing."""
    listed = httpx.get(f"{core_url}/api/v1/connections",
                       headers={"Authorization": f"Bearer {core_key}"})
    assert listed.status_code == 200, listed.text
    connections: list[dict[str, Any]] = listed.json()["connections"]
    return connections


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """`connect-portal demo` in a process of its own, on four sockets bound here, with this
    suite's keys (so tests can call its API and look for them in its log)."""
    env = {"PORTAL_API_KEYS": API_KEY, "PORTAL_SECRET_KEYS": SECRET_KEY,
           "CORE_API_KEY": CORE_API_KEY}
    with demo_process(env=env, log_path=tmp_path / "demo.log") as process:
        portal, partner, core, provider = process.urls
        yield Demo(portal, partner, core, provider, process)


# -- a real Chromium, driven by Playwright (see the README for why these flags) -----------
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    return os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (its own cookies) and one page in it."""
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def redis_values(client: redis.Redis, prefix: str) -> dict[str, str]:
    """Every key under `prefix` and its whole value as text, whatever its type (strings,
    hashes, sorted sets, the outbox Stream's entries): what a secret scan reads."""
    values: dict[str, str] = {}
    for key in client.scan_iter(match=f"{prefix}*"):
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = client.xrange(key)
        else:
            raise AssertionError(f"a secret scan does not know how to read a {kind} ({key})")
        values[key if isinstance(key, str) else key.decode()] = repr(value)
    return values
