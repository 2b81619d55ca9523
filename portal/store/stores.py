"""The stores of one portal process, opened together: sessions and OAuth states.

With REDIS_URL both use one Redis client, so a process holds one connection pool, and
closing the stores closes it once. Without it both keep their records in this process
(the embedded default, for a single process).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from portal.store import SessionStore
from portal.store.memory import MemorySessionStore
from portal.store.oauth_state import (
    MemoryOAuthStateStore,
    OAuthStateStore,
    RedisOAuthStateStore,
)
from portal.store.redis import RedisSessionStore

# Redis connections one process may hold at once, both stores together.
MAX_CONNECTIONS = 96


@dataclass(frozen=True)
class Stores:
    sessions: SessionStore
    oauth_states: OAuthStateStore
    redis: aioredis.Redis | None = None  # the client both stores use, when in Redis

    async def close(self) -> None:
        """Close the Redis client, and with it every pooled connection; after this the
        stores cannot be used."""
        if self.redis is not None:
            await self.redis.aclose()


def open_stores(redis_url: str | None, *, prefix: str) -> Stores:
    """Both stores, under `prefix` in Redis at `redis_url`, or in this process without it.

    Nothing connects yet: the pool opens a connection when a store first needs one."""
    if not redis_url:
        return Stores(sessions=MemorySessionStore(), oauth_states=MemoryOAuthStateStore())
    client = aioredis.Redis.from_url(
        redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=2,
        health_check_interval=30,
        max_connections=MAX_CONNECTIONS,
    )
    return Stores(sessions=RedisSessionStore(client, prefix=prefix),
                  oauth_states=RedisOAuthStateStore(client, prefix=prefix), redis=client)
