"""Sessions kept in this process: the embedded default when no REDIS_URL is set.

Only correct for a single process; the portal says so at start.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from portal.sessions import CLAIM_FIELD, TRANSITIONS, ConnectSession, SessionStatus
from portal.store import SessionNotFound, TransitionRefused


class MemorySessionStore:
    description = "in-process memory (one process only: sessions are lost on restart)"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._records: dict[str, tuple[float, dict[str, str]]] = {}
        self._clock = clock

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
        # No await between the check and the write: atomic on the event loop.
        record = self._live(session_id)
        if record is None:
            raise SessionNotFound(session_id)
        current = SessionStatus(record["status"])
        if current not in TRANSITIONS[to] or (only_from is not None and current not in only_from):
            raise TransitionRefused(current)
        record.update(changes, status=to.value)
        return ConnectSession.from_record(record)

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
