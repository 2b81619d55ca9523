"""The outbox in Redis: Streams of jobs with one consumer group, read by every process.

The outbox is one shard on one Redis, or several (a Redis Cluster; portal/store/keys.py
names the keys). Each shard is:

    a Stream                   one entry per job (kind, sealed payload, session id, when
                               it was queued; a webhook job also the session's final record)
    its due hash               job id → "<not before, ms> <attempts>" once put off
    a CONNECTING index         sorted set: CONNECTING session id → when it became so

A job goes to the shard of its session. It enters the group's pending-entries list at
once, leased to the process that queued it (`XCLAIM … FORCE` in the same script that moved
the session, portal/store/redis.py), so that process tries it first without waiting.
Nothing ever reads the group with `>`: every later hand-out is `XAUTOCLAIM` of entries
idle for longer than the lease. Putting a job off sets its idle time so that it passes the
lease exactly when the next try is due (`XCLAIM … IDLE`); a pause longer than the lease is
kept in the `due` hash and the job is put back each time it comes up early. A process that
dies holding jobs simply stops touching them, and they come up for any other process once
the lease has run out. Workers go over every shard, starting each round at the next one.
"""

from __future__ import annotations

import json
from typing import Any

from redis.exceptions import ResponseError

from portal.store import Job, JobKind, OutboxDepth, StoreUnavailable
from portal.store.client import REDIS_ERRORS, RedisClient
from portal.store.keys import KeyLayout

GROUP = "delivery"

# KEYS[1] the stream, KEYS[2] the due hash. ARGV: group, consumer, lease (ms), count,
# now (ms), cursor. Returns {next cursor, {id, fields, attempts}...}.
_DUE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'0-0'} end
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0')
local lease = tonumber(ARGV[3])
local now = tonumber(ARGV[5])
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], lease, ARGV[6],
                           'COUNT', ARGV[4], 'JUSTID')
local out = {claimed[1]}
for _, id in ipairs(claimed[2]) do
  local meta = redis.call('HGET', KEYS[2], id)
  local not_before, attempts = 0, 0
  if meta then
    local space = string.find(meta, ' ')
    not_before = tonumber(string.sub(meta, 1, space - 1))
    attempts = tonumber(string.sub(meta, space + 1))
  end
  if not_before > now then
    local idle = lease - (not_before - now)
    if idle < 0 then idle = 0 end
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'IDLE', idle, 'JUSTID')
  else
    local entry = redis.call('XRANGE', KEYS[1], id, id)
    if #entry > 0 then table.insert(out, {id, entry[1][2], attempts}) end
  end
end
return out
"""

# KEYS[1] the stream, KEYS[2] the due hash. ARGV: group, consumer, id, not before (ms),
# idle (ms). Puts the job off; a job settled meanwhile (gone from the stream) is left alone.
_LATER = """
if #redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3]) == 0 then return 0 end
local meta = redis.call('HGET', KEYS[2], ARGV[3])
local attempts = 0
if meta then attempts = tonumber(string.sub(meta, string.find(meta, ' ') + 1)) end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4] .. ' ' .. (attempts + 1))
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[5], 'JUSTID')
return 1
"""


class RedisOutbox:
    def __init__(self, client: RedisClient, *, keys: KeyLayout) -> None:
        self._redis = client
        self._keys = keys
        self._due = client.register_script(_DUE)
        self._later = client.register_script(_LATER)
        self._cursors = ["0-0"] * keys.shards
        self._first = 0  # the shard the next `due` asks first

    async def due(self, consumer: str, *, lease: float, now: float, count: int) -> list[Job]:
        jobs: list[Job] = []
        shards = self._keys.shards
        first, self._first = self._first, (self._first + 1) % shards
        for shard in [(first + step) % shards for step in range(shards)]:
            if len(jobs) >= count:
                break
            try:
                result: list[Any] = await self._due(
                    keys=[self._keys.stream(shard), self._keys.due(shard)],
                    args=[GROUP, consumer, int(lease * 1000), count - len(jobs),
                          int(now * 1000), self._cursors[shard]])
            except REDIS_ERRORS as exc:
                raise StoreUnavailable(type(exc).__name__) from None
            self._cursors[shard] = result[0]
            jobs += [job_of(entry_id, fields, attempts)
                     for entry_id, fields, attempts in result[1:]]
        return jobs

    async def later(self, job: Job, consumer: str, *, not_before: float, lease: float,
                    now: float) -> None:
        idle = max(0.0, lease - max(0.0, not_before - now))
        shard = self._keys.shard_of(job.session_id)
        try:
            await self._later(keys=[self._keys.stream(shard), self._keys.due(shard)],
                              args=[GROUP, consumer, job.id, int(not_before * 1000),
                                    int(idle * 1000)])
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def done(self, job: Job) -> None:
        shard = self._keys.shard_of(job.session_id)
        stream, due = self._keys.stream(shard), self._keys.due(shard)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(stream, GROUP, job.id)
                pipe.xdel(stream, job.id)
                pipe.hdel(due, job.id)
                await pipe.execute()
        except ResponseError:
            pass  # no group: the stream is gone, and the job with it
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def depth(self, *, now: float) -> OutboxDepth:
        """Jobs in every shard, and the age of the oldest of them (one round trip per
        Redis node)."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for shard in range(self._keys.shards):
                    pipe.xlen(self._keys.stream(shard))
                    pipe.xrange(self._keys.stream(shard), count=1)
                answers = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        lengths, firsts = answers[::2], answers[1::2]
        queued = [float(first[0][1]["at"]) for first in firsts if first]
        oldest = max(0.0, now - min(queued)) if queued else 0.0
        return OutboxDepth(jobs=sum(int(length) for length in lengths), oldest_age=oldest)

    async def connecting_since(self, before: float, *, count: int) -> list[str]:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for shard in range(self._keys.shards):
                    pipe.zrangebyscore(self._keys.connecting(shard), "-inf", before,
                                       start=0, num=count, withscores=True)
                answers = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        oldest = sorted((since, str(item)) for answer in answers for item, since in answer)
        return [session_id for _, session_id in oldest[:count]]

    async def forget_connecting(self, session_id: str) -> None:
        try:
            await self._redis.zrem(
                self._keys.connecting(self._keys.shard_of(session_id)), session_id)
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def has_job(self, session_id: str, job_id: str) -> bool:
        stream = self._keys.stream(self._keys.shard_of(session_id))
        try:
            return bool(await self._redis.xrange(stream, job_id, job_id))
        except ResponseError:
            return False  # not a stream entry id
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None


def job_of(entry_id: str, fields: list[str] | dict[str, str], attempts: int) -> Job:
    """A Job from a stream entry (its fields as Lua returns them: a flat list)."""
    if isinstance(fields, list):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    record = fields.get("record")
    return Job(
        id=entry_id,
        kind=JobKind(fields["kind"]),
        sealed=fields["sealed"],
        session_id=fields["session"],
        queued_at=float(fields["at"]),  # the portal's clock, as deadlines are read
        attempts=int(attempts),
        record=json.loads(record) if record else None,
    )
