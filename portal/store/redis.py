"""Sessions in Redis: one JSON string per session, a TTL on every key, transitions in Lua.

A session is read on every lookup and poll, and changed a handful of times in its life,
so it is kept as one value that a single GET returns, and transitions decode, check and
re-encode it inside Redis. The client is the process's one Redis client, shared with the
OAuth state store and closed by its owner (portal/store/stores.py).
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from portal.sessions import CLAIM_FIELD, TRANSITIONS, ConnectSession, SessionStatus
from portal.store import SessionNotFound, StoreUnavailable, TransitionRefused

# KEYS[1] the session. ARGV[1] a JSON list of the statuses it may move from, ARGV[2] a JSON
# object of the fields to write (status included). The TTL is kept.
# Returns {0} when missing, {1, current} when refused, {2, new record} when applied.
_TRANSITION = """
local raw = redis.call('GET', KEYS[1])
if not raw then return {0} end
local record = cjson.decode(raw)
for _, allowed in ipairs(cjson.decode(ARGV[1])) do
  if allowed == record['status'] then
    for name, value in pairs(cjson.decode(ARGV[2])) do record[name] = value end
    local encoded = cjson.encode(record)
    redis.call('SET', KEYS[1], encoded, 'KEEPTTL')
    return {2, encoded}
  end
end
return {1, record['status']}
"""

# KEYS[1] the session. ARGV[1] the claim's field name, ARGV[2] the holder. The TTL is kept.
# Returns 0 when missing, 1 when ARGV[2] holds the session (now or before), 2 when another
# holder does. Lua runs alone in Redis: of two browsers racing, exactly one writes.
_CLAIM = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local record = cjson.decode(raw)
local holder = record[ARGV[1]]
if holder == nil then
  record[ARGV[1]] = ARGV[2]
  redis.call('SET', KEYS[1], cjson.encode(record), 'KEEPTTL')
  return 1
end
if holder == ARGV[2] then return 1 end
return 2
"""


class RedisSessionStore:
    def __init__(self, client: aioredis.Redis, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._transition = client.register_script(_TRANSITION)
        self._claim = client.register_script(_CLAIM)
        self.description = "Redis"

    def key(self, session_id: str) -> str:
        return f"{self._prefix}session:{session_id}"

    async def create(self, session: ConnectSession, *, ttl: int) -> None:
        try:
            await self._redis.set(self.key(session.id), _encode(session.to_record()), ex=ttl)
        except RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def get(self, session_id: str) -> ConnectSession | None:
        try:
            raw = await self._redis.get(self.key(session_id))
        except RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        return None if raw is None else ConnectSession.from_record(json.loads(raw))

    async def transition(
        self,
        session_id: str,
        to: SessionStatus,
        *,
        only_from: frozenset[SessionStatus] | None = None,
        **changes: str,
    ) -> ConnectSession:
        allowed = [status.value for status in TRANSITIONS[to]
                   if only_from is None or status in only_from]
        try:
            result: list[Any] = await self._transition(
                keys=[self.key(session_id)],
                args=[_encode(allowed), _encode({**changes, "status": to.value})],
            )
        except RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        if result[0] == 0:
            raise SessionNotFound(session_id)
        if result[0] == 1:
            raise TransitionRefused(SessionStatus(result[1]))
        return ConnectSession.from_record(json.loads(result[1]))

    async def claim(self, session_id: str, holder: str) -> bool:
        try:
            result = await self._claim(keys=[self.key(session_id)], args=[CLAIM_FIELD, holder])
        except RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        if result == 0:
            raise SessionNotFound(session_id)
        return bool(result == 1)

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise StoreUnavailable(type(exc).__name__) from None


def _encode(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
