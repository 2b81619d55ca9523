"""The Redis client the stores share: one Redis (or the primary Sentinel names), or a Redis
Cluster; and what it raises when Redis cannot answer."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

RedisClient = aioredis.Redis | RedisCluster

# A cluster client raises RedisClusterException (not a RedisError) when it cannot reach
# any node or a slot has no node: the store is as unavailable as with a RedisError.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException)
