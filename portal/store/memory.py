"""Sessions and the outbox kept in this process: the embedded default when no REDIS_URL is
set.

Only correct for a single process; the portal says so at start. Jobs are lost with the
process, as the sessions are.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from portal.sessions import CLAIM_FIELD, TRANSITIONS, ConnectSession, SessionStatus
from portal.store import (
    Job,
    JobKind,
    Moved,
    NewJob,
    OutboxDepth,
    SessionNotFound,
    TransitionRefused,
)


@dataclass
class _Lease:
    job: Job
    claimed_at: float  # as XAUTOCLAIM reads idle time: a job is free once claimed_at + lease
    not_before: float = 0.0


class MemoryOutbox:
    def __init__(self, store: MemorySessionStore) -> None:
        self._store = store
        self.jobs: dict[str, _Lease] = {}
        self.connecting: dict[str, float] = {}
        self._ids = itertools.count(1)

    def queue(self, new: NewJob, session_id: str, record: dict[str, str] | None,
              *, now: float) -> Job:
        job = Job(id=f"{int(now * 1000)}-{next(self._ids)}", kind=new.kind,
                  sealed=new.sealed, session_id=session_id, queued_at=now, attempts=0,
                  record=dict(record) if record is not None else None)
        self.jobs[job.id] = _Lease(job, claimed_at=now)
        return job

    async def due(self, consumer: str, *, lease: float, now: float, count: int) -> list[Job]:
        out: list[Job] = []
        for entry in self.jobs.values():
            if len(out) == count:
                break
            if entry.claimed_at + lease <= now and entry.not_before <= now:
                entry.claimed_at = now
                out.append(entry.job)
        return out

    async def later(self, job: Job, consumer: str, *, not_before: float, lease: float,
                    now: float) -> None:
        entry = self.jobs.get(job.id)
        if entry is not None:
            entry.job = replace(entry.job, attempts=entry.job.attempts + 1)
            entry.not_before = not_before
            entry.claimed_at = min(now, not_before - lease)

    async def done(self, job: Job) -> None:
        self.jobs.pop(job.id, None)

    async def depth(self, *, now: float) -> OutboxDepth:
        oldest = min((entry.job.queued_at for entry in self.jobs.values()), default=now)
        return OutboxDepth(jobs=len(self.jobs), oldest_age=max(0.0, now - oldest))

    async def connecting_since(self, before: float, *, count: int) -> list[str]:
        return [sid for sid, since in self.connecting.items() if since < before][:count]

    async def forget_connecting(self, session_id: str) -> None:
        self.connecting.pop(session_id, None)

    async def has_job(self, session_id: str, job_id: str) -> bool:
        return job_id in self.jobs


class MemorySessionStore:
    description = "in-process memory (one process only: sessions are lost on restart)"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._records: dict[str, tuple[float, dict[str, str]]] = {}
        self._clock = clock
        self.outbox = MemoryOutbox(self)

    async def create(self, session: ConnectSession, *, ttl: int) -> None:
        self._sweep()
        self._records[session.id] = (self._clock() + ttl, session.to_record())

    async def get(self, session_id: str) -> ConnectSession | None:
        record = self._live(session_id)
        return None if record is None else ConnectSession.from_record(record)

    async def transition(
        self,
        session_id: str,
        to: SessionStatus,
        *,
        only_from: frozenset[SessionStatus] | None = None,
        **changes: str,
    ) -> ConnectSession:
        return (await self.move(session_id, to, changes=changes, only_from=only_from,
                                now=time.time())).session

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
        # No await between the check and the write: atomic on the event loop.
        record = self._live(session_id)
        if record is None:
            raise SessionNotFound(session_id)
        current = SessionStatus(record["status"])
        if current not in TRANSITIONS[to] or (only_from is not None and current not in only_from):
            raise TransitionRefused(current)
        for name, value in changes.items():
            if value == "":
                record.pop(name, None)
            else:
                record[name] = value
        record["status"] = to.value
        queued = []
        for new in jobs:
            job = self.outbox.queue(new, session_id,
                                    record if new.kind is JobKind.WEBHOOK else None,
                                    now=now)
            if new.kind is JobKind.CONNECTION:
                record["outbox_job"] = job.id
            queued.append(job)
        if keep_for:
            self._records[session_id] = (self._clock() + keep_for, record)
        if to is SessionStatus.CONNECTING:
            self.outbox.connecting.setdefault(session_id, now)
        else:
            self.outbox.connecting.pop(session_id, None)
        if settles is not None:
            self.outbox.jobs.pop(settles.id, None)
        return Moved(session=ConnectSession.from_record(record), jobs=tuple(queued))

    async def claim(self, session_id: str, holder: str) -> bool:
        # No await between the read and the write, as in `transition`.
        record = self._live(session_id)
        if record is None:
            raise SessionNotFound(session_id)
        return record.setdefault(CLAIM_FIELD, holder) == holder

    async def ping(self) -> None:
        return None

    def _live(self, session_id: str) -> dict[str, str] | None:
        entry = self._records.get(session_id)
        if entry is None:
            return None
        deadline, record = entry
        if deadline <= self._clock():
            del self._records[session_id]
            return None
        return record

    def _sweep(self) -> None:
        now = self._clock()
        for session_id in [key for key, (deadline, _) in self._records.items() if deadline <= now]:
            del self._records[session_id]
