"""Revoked end-user links (`eut_` tokens, portal/end_users/links.py).

Two kinds of record, each kept only as long as it can matter:

- one link, by its `jti`: kept until that link's own expiry, after which the link is
  refused as expired anyway;
- every link of an end user issued up to a moment ("revoked before"): kept for the
  longest lifetime a link can have, after which every link it covers has expired. A later
  revoke-all only ever moves the moment forward (a Lua max in Redis), so two revoke-alls
  racing cannot undo each other.

A link is checked with one round trip (a pipeline of two GETs; two on a cluster when
the keys are on two nodes). Times are milliseconds since
the epoch, as links carry their issue time.
"""

from __future__ import annotations

import time
from typing import Protocol

from portal.store import StoreUnavailable
from portal.store.client import REDIS_ERRORS, RedisClient

# Set the end user's "revoked before" to the later of the stored and the given moment,
# and its TTL to the given one. KEYS[1]: the key; ARGV: moment (ms), TTL (s).
_MOVE_FORWARD = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local moment = tonumber(ARGV[1])
if moment > current then current = moment end
redis.call('SET', KEYS[1], tostring(current), 'EX', tonumber(ARGV[2]))
return current
"""


class RevocationStore(Protocol):
    async def revoke_link(self, jti: str, *, expires_at: int) -> None:
        """Revoke the one link `jti` until `expires_at` (seconds since the epoch)."""
        ...

    async def revoke_end_user(self, end_user_id: str, *, before_ms: int, ttl: int) -> None:
        """Revoke every link of the end user issued at or before `before_ms`; the record
        lives `ttl` seconds (the longest a link lives)."""
        ...

    async def is_revoked(self, jti: str, end_user_id: str, *, issued_at_ms: int) -> bool: ...


class RedisRevocationStore:
    """On the process's one Redis client, shared with the other stores
    (portal/store/stores.py). Every command is safe to send twice (the client retries
    once): a SET of the same value, a max that is already reached, reads."""

    def __init__(self, client: RedisClient, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._move_forward = client.register_script(_MOVE_FORWARD)

    def link_key(self, jti: str) -> str:
        return f"{self._prefix}eut-revoked:{jti}"

    def end_user_key(self, end_user_id: str) -> str:
        return f"{self._prefix}eut-revoked-before:{end_user_id}"

    async def revoke_link(self, jti: str, *, expires_at: int) -> None:
        ttl = expires_at - int(time.time())
        if ttl <= 0:
            return  # already expired: refused as such, nothing to keep
        try:
            await self._redis.set(self.link_key(jti), "1", ex=ttl)
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def revoke_end_user(self, end_user_id: str, *, before_ms: int, ttl: int) -> None:
        try:
            await self._move_forward(keys=[self.end_user_key(end_user_id)],
                                     args=[before_ms, ttl])
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def is_revoked(self, jti: str, end_user_id: str, *, issued_at_ms: int) -> bool:
        try:
            # Two keys in two slots on a cluster: a pipeline, not MGET (one round trip
            # on one Redis, one per node on a cluster).
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self.link_key(jti))
                pipe.get(self.end_user_key(end_user_id))
                one, before = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        if one is not None:
            return True
        return _covered(before, issued_at_ms)


class MemoryRevocationStore:
    """The embedded default, for one process only (like MemorySessionStore)."""

    def __init__(self) -> None:
        self._links: dict[str, float] = {}  # jti -> expiry (epoch seconds)
        self._end_users: dict[str, tuple[float, int]] = {}  # id -> (expiry, before_ms)

    async def revoke_link(self, jti: str, *, expires_at: int) -> None:
        self._prune()
        if expires_at > time.time():
            self._links[jti] = float(expires_at)

    async def revoke_end_user(self, end_user_id: str, *, before_ms: int, ttl: int) -> None:
        self._prune()
        _, current = self._end_users.get(end_user_id, (0.0, 0))
        self._end_users[end_user_id] = (time.time() + ttl, max(current, before_ms))

    async def is_revoked(self, jti: str, end_user_id: str, *, issued_at_ms: int) -> bool:
        now = time.time()
        expiry = self._links.get(jti)
        if expiry is not None and expiry > now:
            return True
        entry = self._end_users.get(end_user_id)
        return entry is not None and entry[0] > now and issued_at_ms <= entry[1]

    def _prune(self) -> None:
        now = time.time()
        self._links = {k: v for k, v in self._links.items() if v > now}
        self._end_users = {k: v for k, v in self._end_users.items() if v[0] > now}


def _covered(before: object, issued_at_ms: int) -> bool:
    if not isinstance(before, str):
        return False
    try:
        return issued_at_ms <= int(before)
    except ValueError:
        return False
