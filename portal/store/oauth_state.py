"""OAuth `state` records: written when a flow starts, taken exactly once at the callback.

The store keeps opaque values under opaque keys: the OAuth flow hashes the state into
the key and encrypts the record, so nothing here can be replayed or read. In Redis a
record is taken with `GETDEL`, so of two callbacks racing with one state only one gets it,
whichever portal process each lands on.
"""

from __future__ import annotations

import time
from typing import Protocol

from portal.store import StoreUnavailable
from portal.store.client import REDIS_ERRORS, RedisClient


class OAuthStateStore(Protocol):
    async def put(self, key: str, value: str, *, ttl: int) -> None: ...

    async def take(self, key: str) -> str | None:
        """The value, removed in the same step; None when missing or expired."""
        ...


class RedisOAuthStateStore:
    """On the process's one Redis client, shared with the session store
    (portal/store/stores.py)."""

    def __init__(self, client: RedisClient, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def key(self, key: str) -> str:
        return f"{self._prefix}oauth-state:{key}"

    async def put(self, key: str, value: str, *, ttl: int) -> None:
        try:
            await self._redis.set(self.key(key), value, ex=ttl, nx=True)
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def take(self, key: str) -> str | None:
        try:
            value = await self._redis.getdel(self.key(key))
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        return value if isinstance(value, str) else None


class MemoryOAuthStateStore:
    """The embedded default, for one process only (like MemorySessionStore)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, str]] = {}

    async def put(self, key: str, value: str, *, ttl: int) -> None:
        now = time.monotonic()
        self._values = {k: v for k, v in self._values.items() if v[0] > now}
        self._values.setdefault(key, (now + ttl, value))

    async def take(self, key: str) -> str | None:
        entry = self._values.pop(key, None)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]
