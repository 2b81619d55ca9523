"""The portal against a Redis that dies (kill -9) and comes back empty (our own server, on
a Unix socket of its own: the `own_redis` fixture, not the shared one)."""

from __future__ import annotations

from typing import Any

from tests.conftest import AUTH, token_body
from tests.live_servers import RedisServer


def test_redis_outage_answers_503_and_recovers(own_redis: RedisServer, make_client: Any) -> None:
    client = make_client(redis_url=own_redis.url)
    assert client.get("/readyz").status_code == 200
    minted = client.post("/api/v1/connect/token", json=token_body(), headers=AUTH).json()

    own_redis.stop()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    refused = client.post("/api/v1/connect/token", json=token_body(), headers=AUTH)
    assert refused.status_code == 503
    assert refused.json()["code"] == "SERVICE_UNAVAILABLE"
    polled = client.post("/api/v1/connect/session/poll", json={"token": minted["token"]})
    assert polled.status_code == 503
    page = client.get("/connect", params={"token": minted["token"]})
    assert page.status_code == 503
    assert "The portal is busy" in page.text
    assert client.get("/healthz").status_code == 200  # the process itself is alive

    own_redis.start()  # an empty Redis: the old session is gone, the portal works again
    assert client.get("/readyz").status_code == 200
    again = client.post("/api/v1/connect/token", json=token_body(), headers=AUTH)
    assert again.status_code == 200
    gone = client.post("/api/v1/connect/session/poll", json={"token": minted["token"]})
    assert gone.status_code == 404
    assert gone.json()["code"] == "SESSION_NOT_FOUND"
