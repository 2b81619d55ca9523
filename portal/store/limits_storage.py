"""Where the `limits` library keeps its counters: in Redis on the stores' own client
(portal/store/stores.py), so every portal process counts the same hits, or in this
process without Redis (the embedded default, for a single process)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from limits.aio.storage import MemoryStorage, RedisStorage, Storage


def limits_storage(redis: aioredis.Redis | None, *, key_prefix: str) -> Storage:
    """Counters under `key_prefix` in Redis on `redis`'s pool, or in this process when
    `redis` is None. Redis errors surface as `limits.errors.StorageError`."""
    if redis is None:
        return MemoryStorage()
    # The stores' pool itself: limits' own client over it opens no connection more.
    shared: dict[str, Any] = {"connection_pool": redis.connection_pool}
    return RedisStorage("async+redis://", implementation="redispy", key_prefix=key_prefix,
                        wrap_exceptions=True, **shared)
