"""Partner logos the portal fetched (portal/brand.py), by the hash of their URL.

In Redis when the portal has one (every process serves a logo any of them fetched),
else in this process. A logo is a cache entry: losing one only means fetching it again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Callable

from portal.brand import Logo
from portal.store.client import REDIS_ERRORS, RedisClient

MAX_MEMORY_LOGOS = 256


class RedisLogoCache:
    def __init__(self, client: RedisClient, *, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    async def get(self, key: str) -> Logo | None:
        try:
            raw = await self._redis.get(f"{self._prefix}logo:{key}")
        except REDIS_ERRORS:
            return None
        if raw is None:
            return None
        record = json.loads(raw)
        return Logo(record["type"], base64.b64decode(record["data"]))

    async def put(self, key: str, logo: Logo, *, ttl: int) -> None:
        record = {"type": logo.content_type, "data": base64.b64encode(logo.data).decode()}
        # A logo not kept is fetched again when a page asks for it.
        with contextlib.suppress(*REDIS_ERRORS):
            await self._redis.set(f"{self._prefix}logo:{key}", json.dumps(record), ex=ttl)


class MemoryLogoCache:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._logos: dict[str, tuple[float, Logo]] = {}
        self._clock = clock

    async def get(self, key: str) -> Logo | None:
        kept = self._logos.get(key)
        if kept is None or kept[0] <= self._clock():
            return None
        return kept[1]

    async def put(self, key: str, logo: Logo, *, ttl: int) -> None:
        if len(self._logos) >= MAX_MEMORY_LOGOS:
            self._logos.pop(next(iter(self._logos)))
        self._logos[key] = (self._clock() + ttl, logo)
