"""Scale-out: two portal processes (uvicorn, separate ports) share one Redis prefix and the
same keys. A flow started on one finishes on the other, against the real provider; a
replay of the callback on either process is refused; neither process logs a secret."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from tests.conftest import API_KEY, AUTH, CORE_API_KEY, SECRET_KEY, csrf_of, received
from tests.live_servers import bound_socket, server_thread, url_of, uvicorn_process, wait_until
from tests.oauth_provider import BASIC, run_provider, sign_in, write_config


@pytest.fixture
def two_portals(redis_url: str, redis_prefix: str, core_app: Starlette, tmp_path: Path
                ) -> Iterator[dict[str, str]]:
    sockets = [bound_socket(), bound_socket()]
    urls = [url_of(sock) for sock in sockets]
    public_url = urls[0]  # the load balancer's address; both processes are behind it
    with run_provider([f"{public_url}/oauth/callback"]) as provider, \
            server_thread(core_app) as core_url, ExitStack() as portals:
        catalog, apps = write_config(tmp_path, provider.issuer)
        env = {
            "PORTAL_PUBLIC_URL": public_url, "PORTAL_SECRET_KEYS": SECRET_KEY,
            "PORTAL_API_KEYS": API_KEY, "REDIS_URL": redis_url,
            "PORTAL_REDIS_PREFIX": redis_prefix, "CORE_API_URL": core_url,
            "CORE_API_KEY": CORE_API_KEY, "PORTAL_CATALOG": str(catalog),
            "PORTAL_OAUTH_APPS": str(apps), "PORTAL_ALLOW_HTTP_LOOPBACK": "true",
            "PORTAL_VERIFY_CREDENTIALS": "false", "PORTAL_LOG_LEVEL": "DEBUG",
        }
        for index, sock in enumerate(sockets):
            portals.enter_context(uvicorn_process(
                "tests.oauth_portal_app:app", sock=sock, ready_path="/readyz", env=env,
                log_path=tmp_path / f"portal-{index}.log"))
        yield {"a": urls[0], "b": urls[1], "logs": str(tmp_path), "issuer": provider.issuer}


def test_a_flow_started_on_one_process_finishes_on_the_other(
    two_portals: dict[str, str], core_app: Starlette
) -> None:
    a, b = two_portals["a"], two_portals["b"]
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        answer = browser.post(f"{a}/api/v1/connect/token", headers=AUTH, json={
            "integrationName": "testid-basic", "connectionName": "c", "externalId": "e",
            "workspaceId": "w"}).json()
        opened = browser.get(answer["connectUrl"])
        page_path = opened.headers["location"]
        page = browser.get(f"{a}{page_path}").text
        csrf = csrf_of(page)
        pressed = browser.post(f"{a}{page_path}/oauth", data={"csrf_token": csrf},
                               headers={"Origin": a})
        assert pressed.status_code == 303
        authorize = pressed.headers["location"]
        assert parse_qs(urlsplit(authorize).query)["client_id"] == [BASIC.client_id]

        back = sign_in(browser, authorize, stop_at=f"{a}/oauth/callback")
        on_b = back.replace(a, b, 1)  # the load balancer sends the callback to process B
        finished = browser.get(on_b)
        assert finished.status_code == 303, finished.text
        assert finished.headers["location"] == page_path
        result = browser.get(f"{b}{page_path}")
        assert "Connected" in result.text

        for replay in (back, on_b):  # neither process redeems the code again
            assert browser.get(replay).status_code == 400

    session = httpx.get(f"{a}/api/v1/connect/session/{answer['sessionId']}",
                        headers=AUTH).json()["session"]
    assert session["status"] == "COMPLETED"
    [delivered] = received(core_app)
    body = delivered["body"]
    assert body["accessToken"] and body["refreshToken"]

    code = parse_qs(urlsplit(back).query)["code"][0]

    def read_logs() -> str:
        return "".join(path.read_text()
                       for path in Path(two_portals["logs"]).glob("portal-*.log"))

    # Log lines are written off the request path (a queue): wait for the access lines of
    # the last requests, the two refused replays, so every earlier line is written too.
    wait_until(lambda: read_logs().count("GET /oauth/callback 400") >= 2, timeout=10,
               what="the portals' access lines")
    logs = read_logs()
    assert "GET /oauth/callback 303" in logs
    for secret in (code, body["accessToken"], body["refreshToken"], BASIC.client_secret):
        assert secret not in logs


def test_the_same_callback_on_both_processes_at_once_redeems_one_code(
    two_portals: dict[str, str], core_app: Starlette
) -> None:
    a, b = two_portals["a"], two_portals["b"]
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        answer = browser.post(f"{a}/api/v1/connect/token", headers=AUTH, json={
            "integrationName": "testid-post", "connectionName": "c", "externalId": "e",
            "workspaceId": "w"}).json()
        page_path = browser.get(answer["connectUrl"]).headers["location"]
        page = browser.get(f"{a}{page_path}").text
        csrf = csrf_of(page)
        pressed = browser.post(f"{a}{page_path}/oauth", data={"csrf_token": csrf},
                               headers={"Origin": a})
        back = sign_in(browser, pressed.headers["location"], stop_at=f"{a}/oauth/callback")
        cookies = {c.name: c.value or "" for c in browser.cookies.jar if c.name == "portal_oauth"}

    statuses: list[int] = []
    start_together = threading.Barrier(2)

    def call(url: str) -> None:
        with httpx.Client(follow_redirects=False, timeout=10, cookies=cookies) as client:
            start_together.wait()
            statuses.append(client.get(url).status_code)

    threads = [threading.Thread(target=call, args=(url,))
               for url in (back, back.replace(a, b, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [303, 400]
    assert len(received(core_app)) == 1
