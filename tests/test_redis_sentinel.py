"""The portal on Redis Sentinel (REDIS_URL=redis+sentinel://...), through a failover.

Real processes on loopback: a Redis primary and its replica (append-only, fsync always),
three sentinels watching them (quorum 2, down after 1 s), the core API stand-in
(tests/core_standin.py) and a portal process. Users go through SECRET_TEXT connect flows
(mint, open, submit, poll until final) while the primary is killed with SIGKILL partway:
the sentinels promote the replica and the portal follows it. Every session created ends
COMPLETED with exactly one connection at the core, and every answer during the failover
is a success or a retryable 503 SERVICE_UNAVAILABLE, never another 5xx.

The figures (flows, seconds until the sentinels named the new primary, 503s seen) are
printed (`-s`).
"""

from __future__ import annotations

import base64
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from portal.app import create_app
from portal.settings import SentinelUrl, Settings, SettingsError, parse_sentinel_url
from tests.conftest import API_KEY, AUTH, CORE_API_KEY, SECRET_KEY, csrf_of, token_body
from tests.core_standin import READY_PATH, stats
from tests.live_servers import (
    ServerProcess,
    bound_socket,
    free_port,
    limit_hits,
    url_of,
    uvicorn_process,
    wait_until,
)

SERVICE = "svc"
FLOWS = 24
WORKERS = 6
KILL_AFTER = 8  # flows finished before the primary is killed
STEP_DEADLINE = 30.0  # seconds one step of a flow may keep getting 503s
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"sentinel-failover-webhook-secret").decode()


# -- the Redis servers ---------------------------------------------------------------------

def redis_node(directory: Path, name: str, port: int, *extra: str) -> ServerProcess:
    """redis-server on `port`, append-only with fsync on every write (not started)."""
    home = directory / name
    home.mkdir()
    return ServerProcess(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "yes", "--appendfsync", "always", "--dir", str(home), *extra],
        sockets=[], ready_urls=[], env={}, log_path=home / "redis.log")


def sentinel_node(directory: Path, name: str, port: int, primary_port: int,
                  password: str | None = None) -> ServerProcess:
    """A sentinel on `port` watching the primary at `primary_port` as SERVICE (quorum 2),
    asking its clients for `password` when one is given."""
    home = directory / name
    home.mkdir()
    config = home / "sentinel.conf"  # a sentinel rewrites its config file: one of its own
    config.write_text(
        (f"requirepass {password}\n" if password else "")
        + f"port {port}\nbind 127.0.0.1\ndir {home}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n"
        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
        f"sentinel failover-timeout {SERVICE} 10000\n"
        f"sentinel parallel-syncs {SERVICE} 1\n", encoding="utf-8")
    return ServerProcess(["redis-server", str(config), "--sentinel"], sockets=[],
                         ready_urls=[], env={}, log_path=home / "sentinel.log")


def answer_of(port: int, *command: str) -> Any:
    """`command` sent to the server on `port`; None when it does not answer."""
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1,
                         decode_responses=True)
    try:
        return client.execute_command(*command)
    except redis.RedisError:
        return None
    finally:
        client.close()


def named_primary(sentinel_ports: list[int]) -> set[int | None]:
    """The primary's port as each sentinel names it now."""
    ports: set[int | None] = set()
    for port in sentinel_ports:
        address = answer_of(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        ports.add(int(address[1]) if address else None)
    return ports


@dataclass
class Cluster:
    primary_port: int
    replica_port: int
    sentinel_ports: list[int]
    primary: ServerProcess
    replica: ServerProcess

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{nodes}/{SERVICE}/0"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A primary, its replica and three sentinels that all see each other."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is installed by ./dev test")
    primary_port, replica_port = free_port(), free_port()
    sentinel_ports = [free_port() for _ in range(3)]
    processes = [redis_node(tmp_path, "primary", primary_port),
                 redis_node(tmp_path, "replica", replica_port,
                            "--replicaof", "127.0.0.1", str(primary_port))]
    processes += [sentinel_node(tmp_path, f"sentinel-{index}", port, primary_port)
                  for index, port in enumerate(sentinel_ports)]
    try:
        for process in processes:
            process.start()
        wait_until(lambda: (answer_of(replica_port, "INFO", "replication") or {})
                   .get("master_link_status") == "up",
                   timeout=20, what="the replica to sync with the primary")

        def sentinels_ready() -> bool:
            for port in sentinel_ports:
                state = answer_of(port, "SENTINEL", "MASTER", SERVICE)
                if not state:
                    return False
                # redis-py parses the answer into a dict of numbers.
                if (int(state["num-slaves"]), int(state["num-other-sentinels"])) != (1, 2):
                    return False
            return True

        wait_until(sentinels_ready, timeout=30,
                   what="every sentinel to see the replica and the other two sentinels")
        yield Cluster(primary_port, replica_port, sentinel_ports,
                      primary=processes[0], replica=processes[1])
    finally:
        for process in reversed(processes):
            process.close()


# -- the portal and the core ----------------------------------------------------------------

def standin(log_dir: Path) -> ServerProcess:
    return uvicorn_process(
        "tests.core_standin:app_from_env", sock=bound_socket(), ready_path=READY_PATH,
        log_path=log_dir / "core.log",
        env={"CORE_STANDIN_API_KEY": CORE_API_KEY, "CORE_STANDIN_WEBHOOK_SECRET": WEBHOOK_SECRET})


def portal(log_dir: Path, *, core_url: str, redis_url: str) -> ServerProcess:
    sock = bound_socket()
    url = url_of(sock)
    return uvicorn_process("portal.asgi:app_from_env", sock=sock, ready_path="/readyz",
                           log_path=log_dir / "portal.log", env={
        "PORTAL_PUBLIC_URL": url, "PORTAL_SECRET_KEYS": SECRET_KEY, "PORTAL_API_KEYS": API_KEY,
        "REDIS_URL": redis_url, "PORTAL_REDIS_PREFIX": "test:sentinel:",
        "CORE_API_URL": core_url, "CORE_API_KEY": CORE_API_KEY,
        "PORTAL_WEBHOOK_URL": f"{core_url}/_webhooks", "PORTAL_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PORTAL_VERIFY_CREDENTIALS": "false",
        "CORE_API_TIMEOUT": "1", "PORTAL_DELIVERY_RETRY_CAP": "1",
        "PORTAL_DELIVERY_INLINE_BUDGET": "1",
    })


# -- the flows ----------------------------------------------------------------------------------

@dataclass
class Load:
    """Every answer the users got, by status code, and the sessions they created."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    codes: Counter[int] = field(default_factory=Counter)
    sessions: list[str] = field(default_factory=list)
    done: int = 0
    enough_done: threading.Event = field(default_factory=threading.Event)

    def send(self, client: httpx.Client, method: str, path: str, **options: Any) -> httpx.Response:
        """`method path`, sent again while the answer is a 503 (retryable), up to
        STEP_DEADLINE; every answer is counted."""
        deadline = time.monotonic() + STEP_DEADLINE
        while True:
            answer = client.request(method, path, **options)
            with self.lock:
                self.codes[answer.status_code] += 1
            if answer.status_code != 503 or time.monotonic() > deadline:
                return answer
            # JSON for the API, the error page for a browser: both name the code.
            assert "SERVICE_UNAVAILABLE" in answer.text, answer.text
            threading.Event().wait(0.1)  # paces the retries: never set

    def flow(self, portal_url: str, number: int) -> None:
        """Mint, open the link, submit the form, poll until final (a browser and a
        partner backend, each step retried on a 503)."""
        with httpx.Client(base_url=portal_url, timeout=30, follow_redirects=False) as client:
            minted = self.send(client, "POST", "/api/v1/connect/token", headers=AUTH,
                               json=token_body(externalId=f"sentinel-user-{number:02d}",
                                               connectionName=f"Key {number}"))
            assert minted.status_code == 200, minted.text
            session_id = minted.json()["sessionId"]
            with self.lock:
                self.sessions.append(session_id)
            opened = self.send(client, "GET", "/connect",
                               params={"token": minted.json()["token"]})
            assert opened.status_code == 303, opened.text
            page_path = opened.headers["location"]
            page = self.send(client, "GET", page_path)
            assert page.status_code == 200, page.text
            origin = f"{client.base_url.scheme}://{client.base_url.netloc.decode()}"
            submitted = self.send(client, "POST", page_path, headers={"Origin": origin},
                                  data={"csrf_token": csrf_of(page.text),
                                        "secret_text": f"sk-{secrets.token_hex(16)}"})
            assert submitted.status_code < 500, submitted.text
            deadline = time.monotonic() + 60
            while True:
                polled = self.send(client, "GET", f"/api/v1/connect/session/{session_id}",
                                   headers=AUTH)
                assert polled.status_code == 200, polled.text
                if polled.json()["session"]["status"] in {"COMPLETED", "FAILED"}:
                    break
                assert time.monotonic() < deadline, f"session {session_id} never ended"
                threading.Event().wait(0.1)
        with self.lock:
            self.done += 1
            if self.done >= KILL_AFTER:
                self.enough_done.set()


def failover_under_load(tmp_path: Path, redis_url: str, *, kill: Callable[[], None],
                        taken_over: Callable[[], bool], what: str) -> None:
    """FLOWS flows through a portal on `redis_url`; once KILL_AFTER have finished, `kill`
    a Redis node (flows still going on) and wait until `taken_over`. Then nothing may be
    lost: every session COMPLETED, delivered exactly once, and no answer but a retryable
    503 worse than a 4xx."""
    core = standin(tmp_path)
    app = portal(tmp_path, core_url=core.url, redis_url=redis_url)
    with core, app:
        load = Load()
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = [pool.submit(load.flow, app.url, number) for number in range(FLOWS)]
            assert load.enough_done.wait(60), "the first flows never finished"
            kill()
            killed_at = time.monotonic()
            with load.lock:
                done_at_kill = load.done
            wait_until(taken_over, timeout=30, what=what)
            failover_seconds = time.monotonic() - killed_at
            for future in futures:
                future.result()  # raises what a flow's assertion found
        finals = {}
        with httpx.Client(base_url=app.url, timeout=10) as client:
            for session_id in load.sessions:
                answer = client.get(f"/api/v1/connect/session/{session_id}", headers=AUTH)
                assert answer.status_code == 200, answer.text
                finals[session_id] = answer.json()["session"]["status"]
        core_stats = stats(core.url)
    print(f"\nfailover: {len(load.sessions)} sessions, {what} after {failover_seconds:.1f} s, "
          f"answers {dict(sorted(load.codes.items()))}, flows done at the kill: {done_at_kill}")
    assert done_at_kill < FLOWS  # the node died with flows under way
    assert len(load.sessions) == FLOWS
    assert finals == {session_id: "COMPLETED" for session_id in load.sessions}
    assert core_stats["by_key"] == {session_id: 1 for session_id in load.sessions}
    assert core_stats["duplicate_accounts"] == 0
    assert not [code for code in load.codes if code >= 500 and code != 503], load.codes


def test_sentinel_failover_under_load(cluster: Cluster, tmp_path: Path) -> None:
    failover_under_load(
        tmp_path, cluster.url, kill=cluster.primary.kill,  # kill -9
        taken_over=lambda: named_primary(cluster.sentinel_ports) == {cluster.replica_port},
        what="the sentinels naming the replica")


def settings_from(extra: dict[str, str]) -> Settings:
    return Settings.from_env({"PORTAL_SECRET_KEYS": SECRET_KEY, "PORTAL_API_KEYS": API_KEY,
                              **extra})


def test_sentinel_url_is_checked_naming_redis_url() -> None:
    assert settings_from({"REDIS_URL": "redis+sentinel://:p%40ss@h1:1,h2/svc/3"}).redis_url
    assert parse_sentinel_url("redis+sentinel://:p%40ss@h1:1,h2/svc/3") == SentinelUrl(
        sentinels=(("h1", 1), ("h2", 26379)), service="svc", db=3, password="p@ss")
    for bad in ["redis+sentinel://h1:1", "redis+sentinel://h1:x/svc", "redis+sentinel://h1/svc/x",
                "redis+sentinel://h1/svc?db=1", "redis+sentinel:///svc", "memcached://h1/0"]:
        with pytest.raises(SettingsError, match="REDIS_URL"):
            settings_from({"REDIS_URL": bad})


def test_limits_counts_through_the_sentinel_pool(cluster: Cluster) -> None:
    """The `limits` storage shares the portal's sentinel pool (connection_pool=)."""
    assert limit_hits(cluster.url, key_prefix="test:lim") == [True, True, False]
    assert answer_of(cluster.primary_port, "KEYS", "test:lim*")  # counted on the primary


def test_sentinels_that_require_a_password_get_portal_redis_sentinel_password(
        tmp_path: Path, redis_prefix: str) -> None:
    """Sentinels with `requirepass` (as managed set-ups often run them) are asked with
    PORTAL_REDIS_SENTINEL_PASSWORD; without it the portal does not reach Redis, and says
    so on /readyz rather than failing later."""
    primary_port, sentinel_port = free_port(), free_port()
    primary = redis_node(tmp_path, "primary", primary_port)
    sentinel = sentinel_node(tmp_path, "sentinel", sentinel_port, primary_port,
                             password="sentinel-secret-0123")
    url = f"redis+sentinel://127.0.0.1:{sentinel_port}/{SERVICE}/0"
    with primary, sentinel:
        wait_until(lambda: demands_a_password(sentinel_port), timeout=20,
                   what="the sentinel to answer, asking for its password")
        for password, ready in (("sentinel-secret-0123", 200), (None, 503)):
            env = {"REDIS_URL": url, "PORTAL_REDIS_PREFIX": redis_prefix,
                   **({"PORTAL_REDIS_SENTINEL_PASSWORD": password} if password else {})}
            settings = replace(Settings.from_env(env), secret_keys=(SECRET_KEY,),
                               api_keys=(API_KEY,),
                               core_api_url="http://core.test", core_api_key=CORE_API_KEY)
            with TestClient(create_app(settings)) as client:
                answer = client.get("/readyz")
                assert answer.status_code == ready, (password, answer.text)
                if ready == 200:
                    minted = client.post("/api/v1/connect/token", json=token_body(),
                                         headers=AUTH)
                    assert minted.status_code == 200, minted.text
    with pytest.raises(SettingsError, match="PORTAL_REDIS_SENTINEL_PASSWORD"):
        Settings.from_env({"REDIS_URL": "redis://127.0.0.1:6379/0",
                           "PORTAL_REDIS_SENTINEL_PASSWORD": "x"})


def demands_a_password(port: int) -> bool:
    """Whether the server on `port` answers, and refuses a PING without a password."""
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.AuthenticationError:
        return True
    except redis.RedisError:
        return False
    finally:
        client.close()
    return False
