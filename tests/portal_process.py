"""The portal as `serve` runs it (`portal.asgi:app_from_env` under uvicorn with the portal's
HTTP protocol), in a process of its own, with its log in a file the test reads.

    with portal_process(redis_url, tmp_path / "portal.log", PORTAL_LOG_LEVEL="DEBUG") as portal:
        token = portal.mint()["token"]
        page_path, csrf = portal.open_link(client, token)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.conftest import csrf_of, token_body
from tests.processes import LOOPBACK, RunningProcess, free_ports, run_process, uvicorn_command

API_KEY = "live-portal-api-key-0123456789abcdef"
SECRET_KEY = "live-portal-secret-key-0123456789abcdef0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass(frozen=True)
class LivePortal:
    url: str
    redis_prefix: str
    process: RunningProcess

    def log_lines(self) -> list[str]:
        return self.process.output().splitlines()

    def mint(self, **overrides: Any) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/api/v1/connect/token",
                              json=token_body(**overrides), headers=AUTH)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def open_link(self, client: httpx.Client, token: str) -> tuple[str, str]:
        """Open the connect link in `client` as a browser would: the page path, its CSRF."""
        opened = client.get(f"{self.url}/connect", params={"token": token})
        assert opened.status_code == 303, opened.text
        page_path: str = opened.headers["location"]
        page = client.get(f"{self.url}{page_path}")
        assert page.status_code == 200, page.text
        return page_path, csrf_of(page.text)

    def status_of(self, token: str) -> str:
        answer = httpx.post(f"{self.url}/api/v1/connect/session/poll", json={"token": token})
        assert answer.status_code == 200, answer.text
        status: str = answer.json()["status"]
        return status


@contextmanager
def portal_process(redis_url: str, log_path: Path, **env: str) -> Iterator[LivePortal]:
    port = free_ports()
    url = f"http://{LOOPBACK}:{port}"
    prefix = f"test:live:{uuid.uuid4().hex}:"
    with run_process(
        uvicorn_command("portal.asgi:app_from_env", port=port),
        env={
            "PORTAL_PUBLIC_URL": url, "PORTAL_SECRET_KEYS": SECRET_KEY,
            "PORTAL_API_KEYS": API_KEY, "REDIS_URL": redis_url, "PORTAL_REDIS_PREFIX": prefix,
            # Nothing here is delivered: the core API is never reached.
            "CORE_API_URL": "http://127.0.0.1:9", "CORE_API_KEY": "unused-core-key-0123456789",
            **env,
        },
        ready_urls=[f"{url}/readyz"],
        log_path=log_path,
    ) as process:
        try:
            yield LivePortal(url=url, redis_prefix=prefix, process=process)
        finally:
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=500))
            if keys:
                client.delete(*keys)
            client.close()
