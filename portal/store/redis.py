"""Sessions in Redis: one JSON string per session, a TTL on every key, transitions in Lua.

A session is read on every lookup and poll, and changed a handful of times in its life,
so it is kept as one value that a single GET returns, and transitions decode, check and
re-encode it inside Redis. The client is the process's one Redis client, shared with the
OAuth state store and closed by its owner (portal/store/stores.py).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from portal.sessions import CLAIM_FIELD, TRANSITIONS, ConnectSession, SessionStatus
from portal.store import (
    Job,
    Moved,
    NewJob,
    SessionNotFound,
    StoreUnavailable,
    TransitionRefused,
)
from portal.store.client import REDIS_ERRORS, RedisClient
from portal.store.keys import KeyLayout
from portal.store.outbox import GROUP, RedisOutbox

logger = logging.getLogger("portal.store")

# KEYS[1] the session, KEYS[2] the outbox stream of its shard, KEYS[3] its due hash,
# KEYS[4] its index of CONNECTING sessions (one hash slot: portal/store/keys.py).
# ARGV[1] a JSON list of the statuses it may move from, ARGV[2] a JSON object of the
# fields to write (status included; "" removes one), ARGV[3] the new time to live in
# seconds (0: keep it), ARGV[4] the id of the job this settles (or ""), ARGV[5] the
# consumer new jobs are leased to, ARGV[6] a JSON list of new jobs [kind, sealed], ARGV[7]
# now (seconds), ARGV[8] the group, ARGV[9] this write's id. Returns {0} when missing,
# {1, current} when refused, {2, new record, new job ids...} when applied, and
# {3, record, job ids...} when this very write was applied before (a re-sent script whose
# first answer was lost: the record keeps the id and the job ids of its last write).
_MOVE = """
local raw = redis.call('GET', KEYS[1])
if not raw then return {0} end
local record = cjson.decode(raw)
if record['last_write'] == ARGV[9] then
  local out = {3, raw}
  for _, id in ipairs(record['last_write_jobs'] or {}) do table.insert(out, id) end
  return out
end
local allowed = false
for _, status in ipairs(cjson.decode(ARGV[1])) do
  if status == record['status'] then allowed = true break end
end
if not allowed then return {1, record['status']} end
for name, value in pairs(cjson.decode(ARGV[2])) do
  if value == '' then record[name] = nil else record[name] = value end
end
local jobs = cjson.decode(ARGV[6])
local ids = {}
if #jobs > 0 then
  pcall(redis.call, 'XGROUP', 'CREATE', KEYS[2], ARGV[8], '0', 'MKSTREAM')
end
for _, job in ipairs(jobs) do
  local fields = {'kind', job[1], 'sealed', job[2], 'session', record['id'], 'at', ARGV[7]}
  if job[1] == 'webhook' then
    fields[9] = 'record'
    fields[10] = cjson.encode(record)
  end
  local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
  redis.call('XCLAIM', KEYS[2], ARGV[8], ARGV[5], 0, id, 'FORCE', 'JUSTID')
  if job[1] == 'connection' then record['outbox_job'] = id end
  table.insert(ids, id)
end
record['last_write'] = ARGV[9]
if #ids > 0 then record['last_write_jobs'] = ids else record['last_write_jobs'] = nil end
local encoded = cjson.encode(record)
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], encoded, 'EX', ARGV[3])
else
  redis.call('SET', KEYS[1], encoded, 'KEEPTTL')
end
local status = record['status']
if status == 'CONNECTING' then
  redis.call('ZADD', KEYS[4], 'NX', ARGV[7], record['id'])
else
  redis.call('ZREM', KEYS[4], record['id'])
end
if ARGV[4] ~= '' then
  pcall(redis.call, 'XACK', KEYS[2], ARGV[8], ARGV[4])
  redis.call('XDEL', KEYS[2], ARGV[4])
  redis.call('HDEL', KEYS[3], ARGV[4])
end
local out = {2, encoded}
for _, id in ipairs(ids) do table.insert(out, id) end
return out
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
    def __init__(self, client: RedisClient, *, keys: KeyLayout,
                 description: str = "Redis") -> None:
        self._redis = client
        self._keys = keys
        self._move = client.register_script(_MOVE)
        self._claim = client.register_script(_CLAIM)
        self.outbox = RedisOutbox(client, keys=keys)
        self.description = description

    def key(self, session_id: str) -> str:
        return self._keys.session(session_id)

    async def create(self, session: ConnectSession, *, ttl: int) -> None:
        try:
            await self._redis.set(self.key(session.id), _encode(session.to_record()), ex=ttl)
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None

    async def get(self, session_id: str) -> ConnectSession | None:
        try:
            raw = await self._redis.get(self.key(session_id))
        except REDIS_ERRORS as exc:
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
        moved = await self.move(session_id, to, changes=changes, only_from=only_from, now=0)
        return moved.session

    async def move(
        self,
        session_id: str,
        to: SessionStatus,
        *,
        changes: Mapping[str, str],
        only_from: frozenset[SessionStatus] | None = None,
        jobs: Sequence[NewJob] = (),
        settles: Job | None = None,
        keep_for: int | None = None,
        consumer: str = "",
        now: float,
    ) -> Moved:
        allowed = [status.value for status in TRANSITIONS[to]
                   if only_from is None or status in only_from]
        try:
            result: list[Any] = await self._move(
                keys=[self.key(session_id),
                      *self._keys.shard_keys(self._keys.shard_of(session_id))],
                args=[_encode(allowed), _encode({**changes, "status": to.value}),
                      keep_for or 0, settles.id if settles else "", consumer,
                      _encode([[job.kind.value, job.sealed] for job in jobs]), now, GROUP,
                      # The client re-sends a script once after a lost connection or a
                      # timeout (portal/store/stores.py); this id makes the second run
                      # answer what the first did instead of "refused".
                      secrets.token_hex(12)],
            )
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        if result[0] == 0:
            raise SessionNotFound(session_id)
        if result[0] == 1:
            raise TransitionRefused(SessionStatus(result[1]))
        if result[0] == 3:
            logger.warning("session %s: a transition's answer was lost and its re-sent "
                           "script found it applied", session_id)
        record = json.loads(result[1])
        session = ConnectSession.from_record(record)
        queued = tuple(
            Job(id=job_id, kind=job.kind, sealed=job.sealed, session_id=session_id,
                queued_at=now, attempts=0,
                record=record if job.kind.value == "webhook" else None)
            for job_id, job in zip(result[2:], jobs, strict=True))
        return Moved(session=session, jobs=queued)

    async def claim(self, session_id: str, holder: str) -> bool:
        try:
            result = await self._claim(keys=[self.key(session_id)], args=[CLAIM_FIELD, holder])
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        if result == 0:
            raise SessionNotFound(session_id)
        return bool(result == 1)

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except REDIS_ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from None


def _encode(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))
