"""The stores of one portal process, opened together: sessions and OAuth states.

With REDIS_URL both use one Redis client, so a process holds one connection pool, and
closing the stores closes it once. Without it both keep their records in this process
(the embedded default, for a single process).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from portal.settings import (
    CLUSTER_SCHEME,
    DEFAULT_CLUSTER_SHARDS,
    SENTINEL_SCHEME,
    ClusterUrl,
    SentinelUrl,
    parse_cluster_url,
    parse_sentinel_url,
)
from portal.store import SessionStore
from portal.store.client import RedisClient
from portal.store.keys import KeyLayout
from portal.store.memory import MemorySessionStore
from portal.store.oauth_state import (
    MemoryOAuthStateStore,
    OAuthStateStore,
    RedisOAuthStateStore,
)
from portal.store.redis import RedisSessionStore
from portal.store.revocations import (
    MemoryRevocationStore,
    RedisRevocationStore,
    RevocationStore,
)

# Redis connections one process may hold at once, both stores together (on a cluster:
# to each node).
MAX_CONNECTIONS = 96
# Seconds a request waits for a pooled connection while all are busy, before the store
# answers unavailable (503): a burst beyond the pool queues instead of failing.
POOL_WAIT = 5


@dataclass(frozen=True)
class Stores:
    sessions: SessionStore
    oauth_states: OAuthStateStore
    redis: RedisClient | None = None  # the client both stores use, when in Redis
    # Revoked end-user links (portal/end_users/links.py), on the same client.
    revocations: RevocationStore = field(default_factory=MemoryRevocationStore)

    async def close(self) -> None:
        """Close the Redis client, and with it every pooled connection; after this the
        stores cannot be used."""
        if self.redis is not None:
            await self.redis.aclose()


def open_stores(redis_url: str | None, *, prefix: str,
                outbox_shards: int | None = None,
                sentinel_password: str | None = None) -> Stores:
    """Both stores, under `prefix` in Redis at `redis_url`, or in this process without it.

    The outbox has `outbox_shards` shards (portal/store/keys.py): by default one on one
    Redis or Sentinel (the key names of before shards), DEFAULT_CLUSTER_SHARDS on a
    cluster. Nothing connects yet: the pool opens a connection when a store first needs
    one."""
    if not redis_url:
        return Stores(sessions=MemorySessionStore(), oauth_states=MemoryOAuthStateStore())
    client = redis_client(redis_url, sentinel_password=sentinel_password)
    cluster = isinstance(client, RedisCluster)
    shards = outbox_shards or (DEFAULT_CLUSTER_SHARDS if cluster else 1)
    keys = KeyLayout(prefix, shards=shards, tagged=cluster or shards > 1)
    description = f"Redis Cluster ({shards} outbox shards)" if cluster else "Redis"
    return Stores(sessions=RedisSessionStore(client, keys=keys, description=description),
                  oauth_states=RedisOAuthStateStore(client, prefix=prefix), redis=client,
                  revocations=RedisRevocationStore(client, prefix=prefix))


def redis_client(redis_url: str, *, sentinel_password: str | None = None) -> RedisClient:
    """The portal's Redis client (bench/floor.py measures against the same one): at
    `redis_url`, at the primary Redis Sentinel names for a redis+sentinel:// URL (the
    sentinels asked with `sentinel_password` when they require one), or a cluster client
    from the seed nodes of a redis+cluster:// URL."""
    options: dict[str, Any] = {
        "max_connections": MAX_CONNECTIONS,
        "decode_responses": True,
        "socket_connect_timeout": 2,
        "socket_timeout": 2,
        # The pool checks a connection as it hands it out (a socket closed by a restarted
        # Redis is reopened then); one idle longer than this is also PINGed first.
        "health_check_interval": 30,
        "retry": _one_retry(),
    }
    scheme = urlsplit(redis_url).scheme
    if scheme == CLUSTER_SCHEME:
        return _cluster_client(parse_cluster_url(redis_url), options)
    options |= {"timeout": POOL_WAIT,
                "retry_on_error": [RedisConnectionError, RedisTimeoutError]}
    if scheme == SENTINEL_SCHEME:
        return _sentinel_client(parse_sentinel_url(redis_url), options, sentinel_password)
    pool = aioredis.BlockingConnectionPool.from_url(redis_url, **options)
    return aioredis.Redis.from_pool(pool)  # closing the client closes the pool


def _cluster_client(target: ClusterUrl, options: dict[str, Any]) -> RedisCluster:
    """redis-py's cluster client: it asks a seed node for the slots and the nodes at the
    first command, sends each command to the node of its key's slot, follows MOVED and ASK
    redirections, and learns the slots again after a failover. A node's pool does not
    wait for a free connection: past `max_connections` busy ones a command fails
    (MaxConnectionsError), and the store answers unavailable."""
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        username=target.username, password=target.password, **options)


class _BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """redis-py's pool of connections to the primary Sentinel names, waiting up to
    POOL_WAIT for a free connection as BlockingConnectionPool does (redis-py has no
    blocking Sentinel pool of its own). A connection asks the sentinels for the
    primary's address each time it connects, so after a failover the retry's fresh
    connection goes to the promoted replica; idle connections to the old primary are
    dropped once the sentinels name a new one."""

    async def aclose(self) -> None:
        await super().aclose()
        await self.sentinel_manager.aclose()  # its own clients of the sentinels


def _sentinel_client(target: SentinelUrl, options: dict[str, Any],
                     sentinel_password: str | None) -> aioredis.Redis:
    # The sentinels are asked with the same socket timeouts, and with their own password
    # (PORTAL_REDIS_SENTINEL_PASSWORD) when they require one; the URL's is the primary's.
    asked: dict[str, Any] = {"socket_connect_timeout": options["socket_connect_timeout"],
                             "socket_timeout": options["socket_timeout"]}
    if sentinel_password is not None:
        asked["password"] = sentinel_password
    sentinel = Sentinel(list(target.sentinels),  # type: ignore[no-untyped-call]
                        sentinel_kwargs=asked)
    client: aioredis.Redis = sentinel.master_for(
        target.service, connection_pool_class=_BlockingSentinelPool, db=target.db,
        password=target.password, **options)
    return client  # closing the client closes the pool, and the pool the sentinels


def _one_retry() -> Retry:
    """One more try, on a fresh connection, after a connection error or a timeout.

    It covers a connection that broke between its check and its command (Redis restarted,
    a network blip), so a caller never sees a failure the next attempt would not have.
    The command may have run before the error (a timeout after it was sent), so every
    command the stores send must be safe to send twice, and is:
    - reads (GET, PING) change nothing;
    - a session's SET is of a new key with the same value and TTL;
    - a transition (Lua) carries a write id of its own, kept in the session by the run
      that applies it: a re-sent one that had landed finds its id there and answers what
      the first run did (the new record and its job ids), so it is never applied twice
      nor reported refused (tests/test_redis_faults.py loses such an answer on purpose);
      a claim by the same holder answers the same again;
    - an OAuth state's SET NX does not overwrite, and its GETDEL gives a state out at most
      once: a re-sent GETDEL that had landed reads "already used", never a second use.
    - a link revocation's SET writes the same value again; a revoke-all's Lua max
      leaves a moment already reached as it is.
    """
    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1)
