"""Where the `limits` library keeps its counters: in Redis on the stores' own client
(portal/store/stores.py), so every portal process counts the same hits, or in this
process without Redis (the embedded default, for a single process).

Every counter is one key (fixed and moving windows), so a Redis Cluster needs no hash tag
for them: each lands in its own slot."""

from __future__ import annotations

from typing import Any

from limits.aio.storage import MemoryStorage, RedisClusterStorage, RedisStorage, Storage
from redis.asyncio.cluster import RedisCluster

from portal.store.client import REDIS_ERRORS, RedisClient


def limits_storage(redis: RedisClient | None, *, key_prefix: str) -> Storage:
    """Counters under `key_prefix` in Redis on `redis`'s pool (or cluster client), or in
    this process when `redis` is None. Redis errors surface as
    `limits.errors.StorageError`."""
    if redis is None:
        return MemoryStorage()
    if isinstance(redis, RedisCluster):
        return _SharedClusterStorage(redis, key_prefix=key_prefix)
    # The stores' pool itself: limits' own client over it opens no connection more.
    shared: dict[str, Any] = {"connection_pool": redis.connection_pool}
    return RedisStorage("async+redis://", implementation="redispy", key_prefix=key_prefix,
                        wrap_exceptions=True, **shared)


class _SharedClusterStorage(RedisClusterStorage):
    """limits' Redis Cluster storage on the stores' own cluster client. limits can only
    open a cluster client of its own from a URL (there is no cluster pool to hand over);
    its bridge is given ours instead, so a process keeps one set of connections per node
    and one view of the slots. A cluster that cannot be reached at all raises
    RedisClusterException, which is a storage error too."""

    def __init__(self, client: RedisCluster, *, key_prefix: str) -> None:
        self._client = client
        super().__init__("async+redis+cluster://", implementation="redispy",
                         key_prefix=key_prefix, wrap_exceptions=True)

    def configure_bridge(self) -> None:
        bridge: Any = self.bridge  # limits' redis-py bridge: what its use_cluster sets
        bridge.storage = self._client
        bridge.connection_getter = lambda _readonly: self._client

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return REDIS_ERRORS
