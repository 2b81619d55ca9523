"""Sessions in Redis: one hash per session, a TTL on every key, transitions in Lua.

This module is the only place that talks to Redis.
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from portal.sessions import TRANSITIONS, ConnectSession, SessionStatus
from portal.store import SessionNotFound, StoreUnavailable, TransitionRefused

# KEYS[1] the session hash. ARGV: n, the n statuses it may move from, then field/value pairs.
# Returns {0} when missing, {1, current} when refused, {2, field, value, ...} when applied.
_TRANSITION = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {0} end
local n = tonumber(ARGV[1])
for i = 2, n + 1 do
  if ARGV[i] == current then
    redis.call('HSET', KEYS[1], unpack(ARGV, n + 2))
    local result = redis.call('HGETALL', KEYS[1])
    table.insert(result, 1, 2)
    return result
  end
end
return {1, current}
"""


class RedisSessionStore:
    def __init__(self, client: aioredis.Redis, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._transition = client.register_script(_TRANSITION)
        self.description = "Redis"

    @classmethod
    def from_url(cls, url: str, *, prefix: str) -> RedisSessionStore:
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=2,
            health_check_interval=30,
            max_connections=64,
        )
        return cls(client, prefix=prefix)

    def key(self, session_id: str) -> str:
        return f"{self._prefix}session:{session_id}"

    async def create(self, session: ConnectSession, *, ttl: int) -> None:
        key = self.key(session.id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=cast(dict[Any, Any], session.to_record()))
                pipe.expire(key, ttl)
                await pipe.execute()
        except RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def get(self, session_id: str) -> ConnectSession | None:
        try:
            record = cast(dict[str, str], await self._redis.hgetall(self.key(session_id)))
        except RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        return ConnectSession.from_record(record) if record else None

    async def transition(
        self, session_id: str, to: SessionStatus, **changes: str
    ) -> ConnectSession:
        allowed = [status.value for status in TRANSITIONS[to]]
        pairs: list[str] = ["status", to.value]
        for name, value in changes.items():
            pairs += [name, value]
        try:
            result: list[Any] = await self._transition(
                keys=[self.key(session_id)], args=[len(allowed), *allowed, *pairs]
            )
        except RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        if result[0] == 0:
            raise SessionNotFound(session_id)
        if result[0] == 1:
            raise TransitionRefused(SessionStatus(result[1]))
        flat = result[1:]
        return ConnectSession.from_record(dict(zip(flat[::2], flat[1::2], strict=True)))

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def close(self) -> None:
        await self._redis.aclose()
