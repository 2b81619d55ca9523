"""The portal against a Redis that dies and comes back (our own server, not the shared one)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.conftest import AUTH, token_body
from tests.processes import free_ports

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is installed by ./dev test")


class RedisServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)  # polling for the server to accept connections
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(free_ports())
    server.start()
    yield server
    server.stop()


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
