"""Where the portal's keys live in Redis, and how the outbox is split into shards.

One Redis (or Sentinel) with one shard keeps the names the portal always had:

    {prefix}session:<id>                  a session (portal/store/redis.py)
    {prefix}outbox                        the outbox Stream (portal/store/outbox.py)
    {prefix}outbox:due                    its due hash
    {prefix}connecting                    the index of CONNECTING sessions

With several shards (PORTAL_OUTBOX_SHARDS, and always on a Redis Cluster) shard `k` has
its own Stream, due hash and index, and a session lives beside the shard its id hashes
to; every key of one shard carries the hash tag `{outbox-<k>}`, so a cluster keeps them
in one slot and a transition's script (session, Stream, due hash, index) never crosses
slots:

    {prefix}{outbox-<k>}:session:<id>
    {prefix}{outbox-<k>}                  the Stream
    {prefix}{outbox-<k>}:due
    {prefix}{outbox-<k>}:connecting

A session's shard is the CRC-32 of its id modulo the number of shards: the same in every
process, so every process must run with the same number (a change strands the sessions
and jobs of the old layout: docs/operations.md says how to change it).

Every other key (OAuth states, revoked links, logos, rate-limit counters) is one key per
command and needs no tag.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class KeyLayout:
    prefix: str
    shards: int = 1
    # Shard keys carry the hash tag even with one shard: needed on a cluster.
    tagged: bool = False

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError("at least one outbox shard")

    @property
    def legacy(self) -> bool:
        """The names of before shards (one shard, no tag)."""
        return self.shards == 1 and not self.tagged

    def shard_of(self, session_id: str) -> int:
        return zlib.crc32(session_id.encode()) % self.shards

    def _shard_prefix(self, shard: int) -> str:
        return f"{self.prefix}{{outbox-{shard}}}"

    def session(self, session_id: str) -> str:
        if self.legacy:
            return f"{self.prefix}session:{session_id}"
        return f"{self._shard_prefix(self.shard_of(session_id))}:session:{session_id}"

    def stream(self, shard: int) -> str:
        return f"{self.prefix}outbox" if self.legacy else self._shard_prefix(shard)

    def due(self, shard: int) -> str:
        return f"{self.stream(shard)}:due"

    def connecting(self, shard: int) -> str:
        if self.legacy:
            return f"{self.prefix}connecting"
        return f"{self._shard_prefix(shard)}:connecting"

    def shard_keys(self, shard: int) -> list[str]:
        """The Stream, its due hash and the CONNECTING index of `shard`."""
        return [self.stream(shard), self.due(shard), self.connecting(shard)]
