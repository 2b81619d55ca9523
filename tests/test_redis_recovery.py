"""The portal's one Redis client under pressure and across a Redis restart: callers wait
for a pooled connection rather than fail, and a restarted Redis is used again at once
(stale pooled connections are replaced, not handed out one failure at a time).

Each test runs a Redis of its own on a loopback port (`own_tcp_redis`: on a Unix socket a
restart does not leave pooled connections stale the same way), and a portal with a pool far
smaller than the number of requests in flight."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from starlette.testclient import TestClient

from portal.store import stores
from tests.conftest import AUTH, mint, open_page
from tests.live_servers import RedisServer

POOL = 8
CONCURRENT = 100


@pytest.fixture
def small_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stores, "MAX_CONNECTIONS", POOL)


def all_at_once(client: TestClient, path: str, count: int) -> list[int]:
    """GET `path` from `count` threads at once; the status codes, in order."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: client.get(path, headers=AUTH).status_code,
                             range(count)))


def test_requests_beyond_the_pool_wait_for_a_connection(
    own_tcp_redis: RedisServer, make_client: Any, small_pool: None,
) -> None:
    client = make_client(redis_url=own_tcp_redis.url)
    session_id = mint(client)["sessionId"]
    codes = all_at_once(client, f"/api/v1/connect/session/{session_id}", CONCURRENT)
    assert codes == [200] * CONCURRENT


def test_a_restarted_redis_serves_the_very_first_requests(
    own_tcp_redis: RedisServer, make_client: Any, small_pool: None,
) -> None:
    client = make_client(redis_url=own_tcp_redis.url)
    session_id = mint(client)["sessionId"]
    # Open connections in the pool: every one goes stale when Redis restarts.
    assert all_at_once(client, f"/api/v1/connect/session/{session_id}", POOL) == [200] * POOL

    own_tcp_redis.stop()
    own_tcp_redis.start()  # returns once the new server answers PING

    assert client.get("/readyz").status_code == 200
    open_page(client, mint(client)["token"])
