"""Absurd sizes against the real server: a 1 MB token in the body and in the URL."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.conftest import API_KEY, SECRET_KEY
from tests.live_servers import portal_process

ONE_MB_TOKEN = "cst_" + "A" * (1024 * 1024)


@pytest.fixture(scope="module")
def portal(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    log = tmp_path_factory.mktemp("oversize") / "portal.log"
    with portal_process(redis_url, log, api_key=API_KEY, secret_key=SECRET_KEY) as portal:
        yield portal.url, portal.redis_prefix


def keys(redis_url: str, prefix: str) -> list[bytes]:
    """The portal's records; abuse-limit counters (portal/rate_limits.py) aside."""
    return [key for key in redis.Redis.from_url(redis_url).scan_iter(match=f"{prefix}*")
            if not key.startswith(f"{prefix}rate-limit:".encode())]


def test_one_megabyte_token_in_a_poll_body_is_invalid_token(
    portal: tuple[str, str], redis_url: str,
) -> None:
    url, prefix = portal
    response = httpx.post(f"{url}/api/v1/connect/session/poll", json={"token": ONE_MB_TOKEN})
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"
    assert keys(redis_url, prefix) == []


def test_one_megabyte_connect_link_is_refused_before_the_portal_and_harms_nothing(
    portal: tuple[str, str], redis_url: str,
) -> None:
    # The server (portal.server) refuses a request line this long with 414 before any
    # application code runs: the portal never sees it and stays healthy.
    url, prefix = portal
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET /connect?token={ONE_MB_TOKEN} HTTP/1.1\r\nHost: {host}\r\n"
                     "Connection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 414 "), status_line
    assert b"Traceback" not in answer
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert keys(redis_url, prefix) == []
