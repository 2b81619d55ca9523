"""The portal on a Redis Cluster (REDIS_URL=redis+cluster://...).

Real processes on loopback: three Redis masters made one cluster by `redis-cli --cluster
create`, the core API stand-in (tests/core_standin.py) and two portal processes behind
one public address. Users mint a link on one process, open it there, submit the form on
the other and poll both; the core API refuses every connection for a few seconds partway.
Every session ends COMPLETED with exactly one connection at the core, the keys of one
session sit in one hash slot (the outbox shard's), and sessions spread over the nodes.

The store contract (tests/test_store_contract.py) runs again against the cluster store,
as do the outbox across shards, the revoked-link check and the rate-limit counters.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from portal.sessions import ConnectSession, SessionStatus
from portal.settings import (
    DEFAULT_CLUSTER_SHARDS,
    ClusterUrl,
    SettingsError,
    parse_cluster_url,
)
from portal.store import JobKind, NewJob, SessionStore
from portal.store.keys import KeyLayout
from portal.store.redis import RedisSessionStore
from portal.store.stores import Stores, open_stores
from tests import test_redis_sentinel as sentinel_case
from tests.conftest import API_KEY, AUTH, CORE_API_KEY, SECRET_KEY, csrf_of, token_body
from tests.core_standin import READY_PATH, set_mode, stats
from tests.live_servers import (
    ServerProcess,
    bound_socket,
    free_port,
    limit_hits,
    url_of,
    uvicorn_process,
    wait_until,
)

# The store contract, collected here again: its `store` fixture is this module's (below),
# a session store on the cluster.
from tests.test_store_contract import (  # noqa: F401
    test_a_claim_survives_transitions_and_changes_nothing_else,
    test_claiming_a_missing_session_raises_not_found,
    test_created_session_reads_back_equal,
    test_final_statuses_are_final,
    test_first_claim_wins_and_its_holder_may_claim_again,
    test_happy_path_writes_fields_with_each_transition,
    test_missing_session_reads_as_none,
    test_only_from_narrows_a_transition_and_changes_nothing_when_refused,
    test_only_one_of_many_racing_browsers_claims_the_session,
    test_only_one_of_many_racing_submits_wins,
    test_pending_may_fail_directly_but_not_complete,
)

PREFIX = "test:cluster:"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"cluster-scale-out-webhook-secret").decode()
FLOWS = 12
OUTAGE_FLOWS = 8
OUTAGE_SECONDS = 8


# -- the cluster ---------------------------------------------------------------------------

@dataclass
class Cluster:
    ports: list[int]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def client(self) -> redis.RedisCluster:
        """A client of the test's own, to look at where keys are."""
        return redis.RedisCluster(host="127.0.0.1", port=self.ports[0], decode_responses=True)

    def node(self, port: int) -> redis.Redis:
        """One node alone: it answers only for the keys it holds."""
        return redis.Redis(port=port, decode_responses=True, socket_timeout=2)


def cluster_info(port: int) -> dict[str, str]:
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1,
                         decode_responses=True)
    try:
        raw = client.execute_command("CLUSTER INFO")
    except redis.RedisError:
        return {}
    finally:
        client.close()
    if isinstance(raw, dict):
        return {str(key): str(value) for key, value in raw.items()}
    return dict(line.split(":", 1) for line in str(raw).splitlines() if ":" in line)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three masters on loopback ports, every slot assigned, every node agreeing."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server and redis-cli are installed by ./dev test")
    directory = tmp_path_factory.mktemp("cluster")
    ports = [free_port() for _ in range(3)]
    with ExitStack() as nodes:
        for port in ports:
            home = directory / str(port)
            home.mkdir()
            nodes.enter_context(ServerProcess(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                 "--save", "", "--appendonly", "no", "--dir", str(home)],
                sockets=[], ready_urls=[], env={}, log_path=home / "redis.log"))
        for port in ports:
            wait_until(lambda port=port: cluster_info(port) != {}, timeout=10,  # type: ignore[misc]
                       what=f"the node on {port} to answer")
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{port}" for port in ports), "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        wait_until(lambda: all(cluster_info(port).get("cluster_state") == "ok"
                               and cluster_info(port).get("cluster_known_nodes") == "3"
                               for port in ports),
                   timeout=30, what="cluster_state:ok on every node")
        yield Cluster(ports)


# -- the store on the cluster: the contract, the outbox, revocations, limits ----------------

@pytest.fixture
async def cluster_stores(cluster: Cluster) -> AsyncIterator[Stores]:
    stores = open_stores(cluster.url, prefix=f"test:{uuid.uuid4().hex}:")
    yield stores
    await stores.close()


@pytest.fixture
def store(cluster_stores: Stores) -> SessionStore:
    """The session store the contract tests above run against."""
    return cluster_stores.sessions


def new_session(session_id: str) -> ConnectSession:
    now = int(time.time())
    return ConnectSession(
        id=session_id, workspace_id="ws", connection_name="Name", external_id="ext",
        integration_name="openai", allowed_origins=["https://a.example"],
        expires_at=now + 600, created_at=now)


def placement(cluster: Cluster, key: str) -> tuple[int, int]:
    """(slot, port of the master holding it) as the cluster itself says."""
    client = cluster.client()
    try:
        slot = int(client.cluster_keyslot(key))
        node = client.get_node_from_key(key)
        return slot, int(node.port)
    finally:
        client.close()


async def test_a_cluster_store_shards_the_outbox_and_keeps_each_session_in_its_slot(
    cluster: Cluster, cluster_stores: Stores,
) -> None:
    sessions = cluster_stores.sessions
    assert isinstance(sessions, RedisSessionStore)
    assert sessions.description == f"Redis Cluster ({DEFAULT_CLUSTER_SHARDS} outbox shards)"
    outbox = sessions.outbox
    ids = [str(uuid.uuid4()) for _ in range(24)]
    now = time.time()
    for number, session_id in enumerate(ids):
        await sessions.create(new_session(session_id), ttl=600)
        await sessions.move(session_id, SessionStatus.CONNECTING, changes={},
                            jobs=[NewJob(JobKind.CONNECTION, f"sealed-{session_id}")],
                            consumer="first", now=now + number)

    depth = await outbox.depth(now=now + 100)
    assert (depth.jobs, round(depth.oldest_age)) == (24, 100)
    assert await outbox.connecting_since(now + 100, count=100) == ids  # oldest first
    assert await outbox.connecting_since(now + 100, count=5) == ids[:5]

    # The first consumer's lease runs out: another takes every job, from every shard.
    taken = await outbox.due("second", lease=0, now=now + 200, count=100)
    assert sorted(job.session_id for job in taken) == sorted(ids)
    for job in taken:
        assert await outbox.has_job(job.session_id, job.id)
        record = await sessions.get(job.session_id)
        assert record is not None and record.outbox_job == job.id

    nodes = set()
    layout = KeyLayout(sessions.key(ids[0]).split("{")[0], shards=DEFAULT_CLUSTER_SHARDS,
                       tagged=True)
    for session_id in ids:
        shard = layout.shard_of(session_id)
        slot, port = placement(cluster, sessions.key(session_id))
        assert {placement(cluster, key) for key in layout.shard_keys(shard)} == {(slot, port)}
        assert cluster.node(port).exists(sessions.key(session_id)) == 1  # really on it
        nodes.add(port)
    assert len(nodes) >= 2, "every session on one node: the cluster would not spread them"

    for job in taken[:10]:
        await outbox.done(job)
        assert not await outbox.has_job(job.session_id, job.id)
    assert (await outbox.depth(now=now + 300)).jobs == 14
    for session_id in ids:
        await sessions.move(session_id, SessionStatus.FAILED, changes={"error": "x"},
                            now=now + 400)
    assert await outbox.connecting_since(now + 500, count=100) == []


async def test_revoked_links_are_checked_across_slots(cluster_stores: Stores) -> None:
    revocations = cluster_stores.revocations
    issued = int(time.time() * 1000)
    await revocations.revoke_link("jti-1", expires_at=int(time.time()) + 60)
    assert await revocations.is_revoked("jti-1", "end-user-1", issued_at_ms=issued)
    assert not await revocations.is_revoked("jti-2", "end-user-1", issued_at_ms=issued)
    await revocations.revoke_end_user("end-user-1", before_ms=issued, ttl=60)
    assert await revocations.is_revoked("jti-2", "end-user-1", issued_at_ms=issued)
    assert not await revocations.is_revoked("jti-2", "end-user-1", issued_at_ms=issued + 1)


async def test_oauth_states_are_taken_once_on_the_cluster(cluster_stores: Stores) -> None:
    states = cluster_stores.oauth_states
    await states.put("state-key", "sealed", ttl=60)
    assert await asyncio.gather(states.take("state-key"), states.take("state-key")) in (
        ["sealed", None], [None, "sealed"])


def test_limits_counts_on_the_cluster_through_the_portals_client(cluster: Cluster) -> None:
    assert limit_hits(cluster.url, key_prefix="test:lim") == [True, True, False]
    client = cluster.client()
    try:
        assert list(client.scan_iter(match="test:lim*", target_nodes=client.ALL_NODES))
    finally:
        client.close()


def test_an_unreachable_cluster_is_a_store_error_not_a_crash() -> None:
    from portal.store import StoreUnavailable

    async def ping() -> None:
        stores = open_stores(f"redis+cluster://127.0.0.1:{free_port()}", prefix="test:")
        try:
            await stores.sessions.ping()
        finally:
            await stores.close()

    with pytest.raises(StoreUnavailable):
        asyncio.run(ping())


# -- REDIS_URL and PORTAL_OUTBOX_SHARDS -----------------------------------------------------

def test_cluster_url_and_shards_are_checked_naming_their_variable() -> None:
    assert parse_cluster_url("redis+cluster://:p%40ss@h1:7000,h2") == ClusterUrl(
        nodes=(("h1", 7000), ("h2", 6379)), password="p@ss")
    assert parse_cluster_url("redis+cluster://u:p@h1:1/") == ClusterUrl(
        nodes=(("h1", 1),), username="u", password="p")
    unsharded = sentinel_case.settings_from({"REDIS_URL": "redis+cluster://h1:7000"})
    assert unsharded.outbox_shards is None
    assert sentinel_case.settings_from({"PORTAL_OUTBOX_SHARDS": "64"}).outbox_shards == 64
    for bad in ["redis+cluster://h1:x", "redis+cluster://h1/1", "redis+cluster://h1?ssl=1",
                "redis+cluster://", "redis+cluster://h1:70000"]:
        with pytest.raises(SettingsError, match="REDIS_URL"):
            sentinel_case.settings_from({"REDIS_URL": bad})
    for bad in ["0", "many", "5000"]:
        with pytest.raises(SettingsError, match="PORTAL_OUTBOX_SHARDS"):
            sentinel_case.settings_from({"PORTAL_OUTBOX_SHARDS": bad})


async def test_several_shards_on_one_redis_queue_and_hand_out_every_job(
    redis_url: str, redis_prefix: str, redis_client: redis.Redis,
) -> None:
    stores = open_stores(redis_url, prefix=redis_prefix, outbox_shards=4)
    try:
        sessions = stores.sessions
        ids = [str(uuid.uuid4()) for _ in range(12)]
        now = time.time()
        for session_id in ids:
            await sessions.create(new_session(session_id), ttl=600)
            await sessions.move(session_id, SessionStatus.CONNECTING, changes={},
                                jobs=[NewJob(JobKind.CONNECTION, "sealed")], consumer="a",
                                now=now)
        assert (await sessions.outbox.depth(now=now)).jobs == 12
        assert len(await sessions.outbox.due("b", lease=0, now=now + 1, count=5)) == 5
        # A shard's scan goes on where the last one stopped: what one round skipped,
        # the next one hands out.
        seen: set[str] = set()
        for _ in range(2):
            seen |= {job.session_id
                     for job in await sessions.outbox.due("c", lease=0, now=now + 1, count=50)}
        assert seen == set(ids)  # from every shard
    finally:
        await stores.close()
    streams = {key for key in redis_client.scan_iter(match=f"{redis_prefix}*")
               if redis_client.type(key) == "stream"}
    assert len(streams) >= 2 and all("{outbox-" in key for key in streams)


def test_one_redis_keeps_the_key_names_of_before_shards() -> None:
    layout = KeyLayout("portal:")
    assert (layout.session("abc"), *layout.shard_keys(layout.shard_of("abc"))) == (
        "portal:session:abc", "portal:outbox", "portal:outbox:due", "portal:connecting")


# -- two portal processes on the cluster ----------------------------------------------------

@dataclass
class Deployment:
    a: str
    b: str
    core: str
    public_url: str


@pytest.fixture(scope="module")
def deployment(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[Deployment]:
    logs = tmp_path_factory.mktemp("cluster-portals")
    sockets = [bound_socket(), bound_socket()]
    public_url = url_of(sockets[0])  # the load balancer's address; both are behind it
    with ExitStack() as processes:
        core = processes.enter_context(uvicorn_process(
            "tests.core_standin:app_from_env", sock=bound_socket(), ready_path=READY_PATH,
            log_path=logs / "core.log", env={"CORE_STANDIN_API_KEY": CORE_API_KEY,
                                             "CORE_STANDIN_WEBHOOK_SECRET": WEBHOOK_SECRET}))
        env = {
            "PORTAL_PUBLIC_URL": public_url, "PORTAL_SECRET_KEYS": SECRET_KEY,
            "PORTAL_API_KEYS": API_KEY, "REDIS_URL": cluster.url,
            "PORTAL_REDIS_PREFIX": PREFIX, "CORE_API_URL": core.url,
            "CORE_API_KEY": CORE_API_KEY, "PORTAL_WEBHOOK_URL": f"{core.url}/_webhooks",
            "PORTAL_WEBHOOK_SECRET": WEBHOOK_SECRET, "PORTAL_VERIFY_CREDENTIALS": "false",
            "CORE_API_TIMEOUT": "1", "PORTAL_DELIVERY_RETRY_CAP": "1",
            "PORTAL_DELIVERY_INLINE_BUDGET": "1",
        }
        for index, sock in enumerate(sockets):
            processes.enter_context(uvicorn_process(
                "portal.asgi:app_from_env", sock=sock, ready_path="/readyz", env=env,
                log_path=logs / f"portal-{index}.log"))
        yield Deployment(a=url_of(sockets[0]), b=url_of(sockets[1]), core=core.url,
                         public_url=public_url)


@dataclass
class Flow:
    session_id: str
    token: str
    submitted: int


def start_flow(deployment: Deployment, number: int) -> Flow:
    """Mint and open on A, submit the form on B (as a load balancer may send them)."""
    a, b = deployment.a, deployment.b
    with httpx.Client(timeout=30, follow_redirects=False) as browser:
        minted = browser.post(f"{a}/api/v1/connect/token", headers=AUTH, json=token_body(
            externalId=f"cluster-user-{number:02d}", connectionName=f"Key {number}"))
        assert minted.status_code == 200, minted.text
        opened = browser.get(f"{a}/connect", params={"token": minted.json()["token"]})
        assert opened.status_code == 303, opened.text
        page_path = opened.headers["location"]
        page = browser.get(f"{a}{page_path}")
        assert page.status_code == 200, page.text
        submitted = browser.post(f"{b}{page_path}", headers={"Origin": deployment.public_url},
                                 data={"csrf_token": csrf_of(page.text),
                                       "secret_text": f"sk-{secrets.token_hex(16)}"})
        assert submitted.status_code < 500, submitted.text
    return Flow(minted.json()["sessionId"], minted.json()["token"], submitted.status_code)


def status_everywhere(deployment: Deployment, flow: Flow) -> set[str]:
    """The session's status as the backend looks it up on A and as the partner page
    polls it on B (the token is the credential)."""
    looked_up = httpx.get(f"{deployment.a}/api/v1/connect/session/{flow.session_id}",
                          headers=AUTH, timeout=10)
    polled = httpx.post(f"{deployment.b}/api/v1/connect/session/poll",
                        json={"token": flow.token}, timeout=10)
    assert looked_up.status_code == 200, looked_up.text
    assert polled.status_code == 200, polled.text
    assert polled.json()["id"] == flow.session_id
    return {looked_up.json()["session"]["status"], polled.json()["status"]}


def wait_completed(deployment: Deployment, flows: list[Flow], *, timeout: float) -> None:
    pending = list(flows)

    def settled() -> bool:
        pending[:] = [flow for flow in pending
                      if status_everywhere(deployment, flow) != {"COMPLETED"}]
        return not pending

    wait_until(settled, timeout=timeout, what="every session COMPLETED on both processes")


def readiness(url: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/readyz", timeout=10)
    assert answer.status_code == 200, answer.text
    ready: dict[str, Any] = answer.json()
    return ready


def test_flows_across_two_portals_land_on_several_nodes_each_in_one_slot(
    cluster: Cluster, deployment: Deployment,
) -> None:
    flows = [start_flow(deployment, number) for number in range(FLOWS)]
    wait_completed(deployment, flows, timeout=30)

    core = stats(deployment.core)
    for flow in flows:
        assert core["by_key"][flow.session_id] == 1  # delivered exactly once
    assert core["duplicate_accounts"] == 0

    layout = KeyLayout(PREFIX, shards=DEFAULT_CLUSTER_SHARDS, tagged=True)
    nodes = set()
    for flow in flows:
        key = layout.session(flow.session_id)
        slot, port = placement(cluster, key)
        stream = layout.stream(layout.shard_of(flow.session_id))
        assert placement(cluster, stream) == (slot, port)  # its outbox shard: one slot
        assert cluster.node(port).ttl(key) > 0  # the session is on that node, with a TTL
        nodes.add(port)
    assert len(nodes) >= 2, "every session on one node: the cluster would not spread them"
    for url in (deployment.a, deployment.b):
        wait_until(lambda url=url: readiness(url)["outbox"]["depth"] == 0,  # type: ignore[misc]
                   timeout=30, what="an empty outbox (webhooks sent)")


def test_the_outbox_holds_jobs_over_every_shard_while_the_core_is_down(
    cluster: Cluster, deployment: Deployment,
) -> None:
    set_mode(deployment.core, mode="status", status=503, for_seconds=OUTAGE_SECONDS)
    outage_ends = time.monotonic() + OUTAGE_SECONDS
    with ThreadPoolExecutor(max_workers=OUTAGE_FLOWS) as users:
        flows = list(users.map(lambda number: start_flow(deployment, 100 + number),
                               range(OUTAGE_FLOWS)))
    assert time.monotonic() < outage_ends, "the flows outlasted the outage: make it longer"
    for flow in flows:
        assert status_everywhere(deployment, flow) == {"CONNECTING"}

    # Both processes see every queued job, summed over the shards they sit in.
    layout = KeyLayout(PREFIX, shards=DEFAULT_CLUSTER_SHARDS, tagged=True)
    shards = {layout.shard_of(flow.session_id) for flow in flows}
    client = cluster.client()
    try:
        queued = sum(client.xlen(layout.stream(shard)) for shard in shards)
    finally:
        client.close()
    assert len(shards) >= 2
    assert queued >= OUTAGE_FLOWS
    for url in (deployment.a, deployment.b):
        outbox = readiness(url)["outbox"]
        assert outbox["depth"] >= OUTAGE_FLOWS and outbox["oldestAgeSeconds"] >= 0

    wait_completed(deployment, flows, timeout=OUTAGE_SECONDS + 30)
    core = stats(deployment.core)
    for flow in flows:
        assert core["by_key"][flow.session_id] == 1
    assert core["duplicate_accounts"] == 0
    assert core["posts_by_key"][flows[0].session_id] >= 2  # refused at least once first
    for url in (deployment.a, deployment.b):
        wait_until(lambda url=url: readiness(url)["outbox"]["depth"] == 0,  # type: ignore[misc]
                   timeout=30, what="an empty outbox after the outage")


# -- a master lost under load --------------------------------------------------------------

def replication_of(port: int) -> dict[str, Any]:
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1,
                         decode_responses=True)
    try:
        return dict(client.info("replication"))
    except redis.RedisError:
        return {}
    finally:
        client.close()


def role_of(port: int) -> str | None:
    role = replication_of(port).get("role")
    return None if role is None else str(role)


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[tuple[Cluster, dict[int, ServerProcess]]]:
    """Three masters, each with a replica, on loopback ports; a node that does not answer
    for a second is judged failed and its replica takes over."""
    ports = [free_port() for _ in range(6)]
    processes: dict[int, ServerProcess] = {}
    with ExitStack() as nodes:
        for port in ports:
            home = tmp_path / str(port)
            home.mkdir()
            processes[port] = nodes.enter_context(ServerProcess(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                 "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                 "--cluster-node-timeout", "1000",
                 # With a 1 s node timeout a replica would judge its data too old to take
                 # over (the default factor of 10 counts from the last write it saw).
                 "--cluster-replica-validity-factor", "0",
                 "--repl-diskless-sync-delay", "0",  # replicas in sync at once, not in 5 s
                 "--save", "", "--appendonly", "yes",
                 "--appendfsync", "always", "--dir", str(home)],
                sockets=[], ready_urls=[], env={}, log_path=home / "redis.log"))
        for port in ports:
            wait_until(lambda port=port: cluster_info(port) != {}, timeout=10,  # type: ignore[misc]
                       what=f"the node on {port} to answer")
        subprocess.run(["redis-cli", "--cluster", "create",
                        *(f"127.0.0.1:{port}" for port in ports), "--cluster-replicas", "1",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        wait_until(lambda: all(cluster_info(port).get("cluster_state") == "ok"
                               and cluster_info(port).get("cluster_known_nodes") == "6"
                               for port in ports)
                   and sorted(role_of(port) or "" for port in ports) == ["master"] * 3
                   + ["slave"] * 3, timeout=30, what="three masters and three replicas, ok")
        # A replica is a replica by role at once; it holds the data once its link is up.
        wait_until(lambda: all(replication_of(port).get("master_link_status") == "up"
                               for port in ports if role_of(port) == "slave"),
                   timeout=30, what="every replica in sync with its master")
        yield Cluster(ports), processes


def test_a_cluster_master_lost_under_load_fails_over_with_nothing_lost(
    replicated_cluster: tuple[Cluster, dict[int, ServerProcess]], tmp_path: Path,
) -> None:
    """A master is killed (kill -9) while flows go on through a portal on the cluster:
    its replica takes over, requests in between get a retryable 503, and every session
    completes, delivered exactly once."""
    cluster, processes = replicated_cluster
    victim = next(port for port in cluster.ports if role_of(port) == "master")
    survivors = [port for port in cluster.ports if port != victim]

    def taken_over() -> bool:
        return (sorted(role_of(port) or "" for port in survivors)
                == ["master"] * 3 + ["slave"] * 2
                and all(cluster_info(port).get("cluster_state") == "ok" for port in survivors))

    sentinel_case.failover_under_load(tmp_path, cluster.url, kill=processes[victim].kill,
                                      taken_over=taken_over,
                                      what="a replica promoted and the cluster ok")
