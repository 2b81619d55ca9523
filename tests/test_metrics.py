"""GET /metrics (portal/metrics.py): behind its own bearer key, 404 without one; the counts
after real flows, in one process and added up across `connect-portal serve --workers 2`,
read with prometheus-client's own parser."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from portal.demo.core import create_core_app
from tests.catalog_server import provider_app
from tests.conftest import (
    API_KEY,
    AUTH,
    CORE_API_KEY,
    PORTAL_URL,
    SECRET_KEY,
    csrf_of,
    mint,
    open_page,
    session_of,
    submit,
)
from tests.live_servers import (
    CONNECT_PORTAL,
    ServerProcess,
    bound_socket,
    delete_keys,
    server_thread,
    url_of,
    wait_until,
)
from tests.oauth_provider import run_provider, sign_in, write_config
from tests.test_end_user_portal import core_connection, issue, new_end_user, open_portal, post

METRICS_KEY = "metrics-key-0123456789abcdef"
SCRAPE = {"Authorization": f"Bearer {METRICS_KEY}"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(found for (sample, sample_labels), found in samples.items()
               if sample == name and wanted <= sample_labels)


def complete_flow(client: httpx.Client, secret: str) -> str:
    answer = mint(client)
    page_path, csrf = open_page(client, answer["token"])
    result = submit(client, page_path, csrf, secret_text=secret)
    assert result.status_code in {200, 303}, result.text
    session_id: str = answer["sessionId"]
    return session_id


# -- access ---------------------------------------------------------------------------------

def test_metrics_answer_404_while_no_key_is_set(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers=SCRAPE).status_code == 404


def test_metrics_need_the_metrics_key(make_client: Any) -> None:
    client = make_client(metrics_key=METRICS_KEY)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-key-0123456789abcd"}
                      ).status_code == 401
    # The backend API key is not the metrics key.
    assert client.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"}
                      ).status_code == 401
    assert client.get("/metrics", headers=SCRAPE).status_code == 200


# -- counts in one process ------------------------------------------------------------------

def rejecting_core(request: httpx.Request) -> httpx.Response:
    return httpx.Response(422, json={"error": "The platform refused this connection."})


def test_counts_after_real_flows_in_process(make_client: Any) -> None:
    client = make_client(metrics_key=METRICS_KEY)
    before = scrape(client)

    completed = [complete_flow(client, f"sk-metrics-{n}") for n in range(3)]
    mint(client, integrationName=None)  # a picker session, never finished
    for session_id in completed:
        assert session_of(client, session_id)["status"] == "COMPLETED"

    # A core API that refuses (a rejected 4xx outcome), and the user stops: FAILED.
    refusing = make_client(metrics_key=METRICS_KEY, core_transport=httpx.MockTransport(
        rejecting_core))
    failed = complete_flow(refusing, "sk-metrics-refused")
    page_path = f"/connect/s/{failed}"
    submit(refusing, page_path, csrf_of(refusing.get(page_path).text), action="give_up")
    assert session_of(refusing, failed)["status"] == "FAILED"

    after = scrape(client)  # one registry in this process: both portals count in it

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("portal_sessions_created_total", integration="openai") == 4
    assert grew("portal_sessions_created_total", integration="picker") == 1
    assert grew("portal_sessions_finished_total", status="COMPLETED",
                auth_type="SECRET_TEXT", integration="openai") == 3
    assert grew("portal_sessions_finished_total", status="FAILED",
                auth_type="SECRET_TEXT", integration="openai") == 1
    assert grew("portal_flow_duration_seconds_count", status="COMPLETED") == 3
    assert grew("portal_flow_duration_seconds_count", status="FAILED") == 1
    assert grew("portal_core_api_requests_total", operation="create", outcome="created",
                code="2xx") == 3
    assert grew("portal_core_api_requests_total", operation="create", outcome="rejected",
                code="4xx") == 1
    assert grew("portal_core_api_request_duration_seconds_count", operation="create") == 4
    assert grew("portal_outbox_attempts_total", kind="connection", result="created") == 3
    assert grew("portal_outbox_attempts_total", kind="connection", result="rejected") == 1
    # Set by the scrape itself: nothing is left queued.
    assert ("portal_outbox_depth", frozenset()) in after
    assert value(after, "portal_outbox_depth") == 0
    # No secret, id or URL is in any label.
    text = client.get("/metrics", headers=SCRAPE).text
    for secret in ("sk-metrics-", API_KEY, METRICS_KEY, CORE_API_KEY, *completed, failed):
        assert secret not in text


def test_the_end_user_portal_s_core_api_calls_are_timed_and_counted(
        make_client: Any, core_app: Any) -> None:
    """The end-user portal's calls to the core API (the end user, their connections, a
    disconnect) are in the same histogram and counter as deliveries, by operation."""
    client = make_client(metrics_key=METRICS_KEY)
    before = scrape(client)
    alice = new_end_user(core_app, "ws-1", "user-metrics", "Metrics Example")
    kept = core_connection(core_app, integrationName="openai", workspaceId="ws-1",
                           endUserId=alice["id"], externalId="user-metrics")
    token, _ = issue(alice)
    assert kept in open_portal(client, token)
    confirm = client.get(f"/connect/portal/connections/{kept}/disconnect")
    assert confirm.status_code == 200, confirm.text
    done = post(client, f"/connect/portal/connections/{kept}/disconnect", csrf_of(confirm.text))
    assert done.headers["location"] == "/connect/portal?notice=disconnected"

    # A core API that cannot answer: the page says so, the counter says 5xx.
    down = make_client(metrics_key=METRICS_KEY, core_transport=httpx.MockTransport(
        lambda request: httpx.Response(503)))
    assert down.get("/connect/portal", params={"token": token}).status_code == 303
    page = down.get("/connect/portal")
    assert page.status_code == 503, page.text
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("portal_core_api_requests_total", operation="end_user", outcome="ok",
                code="2xx") >= 1
    assert grew("portal_core_api_requests_total", operation="list_connections", outcome="ok",
                code="2xx") >= 1
    assert grew("portal_core_api_requests_total", operation="delete_connection",
                outcome="ok", code="2xx") == 1
    assert grew("portal_core_api_requests_total", operation="end_user", outcome="failed",
                code="5xx") >= 1
    assert grew("portal_core_api_request_duration_seconds_count",
                operation="delete_connection") == 1


def test_credential_checks_are_counted_by_outcome(make_client: Any, tmp_path: Path) -> None:
    with server_thread(provider_app()) as provider_url:
        path = tmp_path / "verified.json"
        path.write_text(json.dumps({"integrations": [{
            "name": "acme-metrics", "displayName": "Acme Metrics", "category": "Testing",
            "description": "Checked before saving.", "website": "https://acme.example",
            "authOptions": [{
                "key": "token", "type": "SECRET_TEXT", "displayName": "API token",
                "helpUrl": "https://acme.example/tokens",
                "verification": {"url": f"{provider_url}/v1/me",
                                 "headers": {"Authorization": "Bearer {secret_text}"}}}],
        }]}))
        client = make_client(metrics_key=METRICS_KEY, catalog_paths=(str(path),),
                             verify_credentials=True, allow_http_loopback=True)
        before = scrape(client)
        answer = mint(client, integrationName="acme-metrics")
        page_path, csrf = open_page(client, answer["token"])
        assert submit(client, page_path, csrf, secret_text="wrong-key-123").status_code == 400
        assert "Connected" in submit(client, page_path, csrf, secret_text="good-key").text
        after = scrape(client)
    for outcome in ("REJECTED", "VALID"):
        assert (value(after, "portal_credential_checks_total", outcome=outcome)
                - value(before, "portal_credential_checks_total", outcome=outcome)) == 1
    assert (value(after, "portal_sessions_finished_total", status="COMPLETED",
                  auth_type="SECRET_TEXT", integration="acme-metrics")
            - value(before, "portal_sessions_finished_total", status="COMPLETED",
                    auth_type="SECRET_TEXT", integration="acme-metrics")) == 1


def test_provider_token_requests_are_timed_and_their_errors_counted(
        make_client: Any, tmp_path: Path) -> None:
    callback = f"{PORTAL_URL}/oauth/callback"
    with run_provider([callback]) as provider, \
            httpx.Client(follow_redirects=False, timeout=10) as user:
        catalog, apps = write_config(tmp_path, provider.issuer)
        portal = make_client(metrics_key=METRICS_KEY, catalog_paths=(str(catalog),),
                             oauth_apps_file=str(apps), allow_http_loopback=True)
        before = scrape(portal)
        answer = mint(portal, integrationName="testid-basic")
        page_path, csrf = open_page(portal, answer["token"])
        pressed = portal.post(f"{page_path}/oauth", data={"csrf_token": csrf},
                              headers={"Origin": PORTAL_URL})
        assert pressed.status_code == 303
        assert portal.get(sign_in(user, pressed.headers["location"], stop_at=callback)
                          ).status_code == 303
        assert session_of(portal, answer["sessionId"])["status"] == "COMPLETED"
        refused = portal.post("/api/v1/oauth/refresh", headers=AUTH, json={
            "integrationName": "testid-basic", "refreshToken": "not-a-refresh-token"})
        assert refused.status_code == 400
        after = scrape(portal)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("portal_provider_request_duration_seconds_count", grant="exchange") == 1
    assert grew("portal_provider_request_duration_seconds_count", grant="refresh") == 1
    assert grew("portal_provider_request_errors_total", grant="exchange",
                error="oauth_error") == 0
    # The provider's own error code (invalid_grant) is its text: one bounded class.
    assert grew("portal_provider_request_errors_total", grant="refresh",
                error="oauth_error") == 1
    assert grew("portal_sessions_finished_total", status="COMPLETED", auth_type="OAUTH2",
                integration="testid-basic") == 1


def test_store_errors_are_counted(make_client: Any, own_redis: Any) -> None:
    client = make_client(metrics_key=METRICS_KEY, redis_url=own_redis.url)
    answer = mint(client)
    before = scrape(client)
    own_redis.stop()
    lookup = client.get(f"/api/v1/connect/session/{answer['sessionId']}",
                        headers={"Authorization": f"Bearer {API_KEY}"})
    assert lookup.status_code == 503
    after = scrape(client)
    grown = (value(after, "portal_store_errors_total", store="session store")
             - value(before, "portal_store_errors_total", store="session store"))
    assert grown >= 1


# -- across `connect-portal serve --workers 2` -----------------------------------------------

@pytest.fixture
def core_url() -> Iterator[str]:
    with server_thread(create_core_app(CORE_API_KEY)) as url:
        yield url


def serve_two_workers(sock: socket.socket, *, redis_url: str, prefix: str, core_url: str,
                      log_path: Path, **extra: str) -> ServerProcess:
    command = [CONNECT_PORTAL, "serve", "--fd", str(sock.fileno()), "--workers", "2"]
    env = {
        "PORTAL_PUBLIC_URL": url_of(sock), "PORTAL_SECRET_KEYS": SECRET_KEY,
        "PORTAL_API_KEYS": API_KEY, "REDIS_URL": redis_url, "PORTAL_REDIS_PREFIX": prefix,
        "CORE_API_URL": core_url, "CORE_API_KEY": CORE_API_KEY,
        "PORTAL_VERIFY_CREDENTIALS": "false", "PORTAL_METRICS_KEY": METRICS_KEY, **extra,
    }
    return ServerProcess(command, sockets=[sock], ready_urls=[url_of(sock) + "/healthz"],
                         env=env, log_path=log_path)


def fresh_client(url: str) -> httpx.Client:
    """Every request on a new connection, so the kernel hands them to either worker."""
    return httpx.Client(base_url=url, timeout=30, headers={"Connection": "close"})


def pids_counting(directory: Path) -> set[str]:
    """The worker pids that wrote counters to the multiprocess directory."""
    return {match.group(1) for path in directory.glob("counter_*.db")
            if (match := re.fullmatch(r"counter_(\d+)\.db", path.name))}


def test_counts_add_up_across_two_workers(redis_url: str, core_url: str,
                                          tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    prefix = f"test:metrics:{uuid.uuid4().hex}:"
    sock = bound_socket()
    flows: list[str] = []
    try:
        with serve_two_workers(sock, redis_url=redis_url, prefix=prefix, core_url=core_url,
                               log_path=tmp_path / "serve.log",
                               PROMETHEUS_MULTIPROC_DIR=str(directory)) as portal, \
                fresh_client(portal.url) as client:
            def both_workers_served() -> bool:
                flows.append(complete_flow(client, f"sk-workers-{len(flows)}"))
                return len(flows) >= 4 and len(pids_counting(directory)) >= 2

            wait_until(both_workers_served, timeout=45, what="flows to reach both workers")
            for session_id in flows:
                assert session_of(client, session_id)["status"] == "COMPLETED"
            # Several scrapes: whichever worker answers, it reports every worker's counts.
            for _ in range(4):
                samples = scrape(client)
                assert value(samples, "portal_sessions_created_total",
                             integration="openai") == len(flows)
                assert value(samples, "portal_sessions_finished_total", status="COMPLETED",
                             auth_type="SECRET_TEXT", integration="openai") == len(flows)
                assert total(samples, "portal_flow_duration_seconds_count") == len(flows)
                assert value(samples, "portal_core_api_requests_total", operation="create",
                             outcome="created", code="2xx") == len(flows)
                assert value(samples, "portal_outbox_attempts_total", kind="connection",
                             result="created") == len(flows)
                assert value(samples, "portal_outbox_depth") == 0
            assert client.get("/readyz").status_code == 200
    finally:
        delete_keys(redis_url, prefix)


def test_serve_makes_and_removes_its_own_metrics_directory(redis_url: str, core_url: str,
                                                          tmp_path: Path) -> None:
    """Without PROMETHEUS_MULTIPROC_DIR, `serve` uses a fresh directory of its own (so the
    counts start at zero) and removes it when it stops."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    prefix = f"test:metrics:{uuid.uuid4().hex}:"
    sock = bound_socket()
    try:
        with serve_two_workers(sock, redis_url=redis_url, prefix=prefix, core_url=core_url,
                               log_path=tmp_path / "serve.log", TMPDIR=str(temp)) as portal:
            made = list(temp.glob("connect-portal-metrics-*"))
            assert len(made) == 1
            with fresh_client(portal.url) as client:
                for _ in range(3):
                    mint(client)
                samples = scrape(client)
            assert value(samples, "portal_sessions_created_total", integration="openai") == 3
            assert list(made[0].glob("*.db"))
            assert portal.stop() == 0
            assert not made[0].exists()
    finally:
        delete_keys(redis_url, prefix)
