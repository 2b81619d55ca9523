"""Where connect sessions live: Redis in production, this process for the embedded default."""

from __future__ import annotations

from typing import Protocol

from portal.sessions import ConnectSession, SessionStatus


class StoreUnavailable(Exception):
    """The store did not answer (Redis down or too slow); nothing was changed."""


class SessionNotFound(Exception):
    """No session with that id (never created, or its record has expired)."""


class TransitionRefused(Exception):
    """The session is not in a status the requested transition may start from."""

    def __init__(self, current: SessionStatus) -> None:
        super().__init__(f"session is {current.value}")
        self.current = current


class SessionStore(Protocol):
    description: str

    async def create(self, session: ConnectSession, *, ttl: int) -> None: ...

    async def get(self, session_id: str) -> ConnectSession | None: ...

    async def transition(
        self,
        session_id: str,
        to: SessionStatus,
        *,
        only_from: frozenset[SessionStatus] | None = None,
        **changes: str,
    ) -> ConnectSession:
        """Move to `to` if the current status allows it, writing `changes` in the same step.

        `only_from` narrows the statuses `to` may be reached from (TRANSITIONS) for this
        one call. Raises SessionNotFound or TransitionRefused; changes nothing in either case.
        """
        ...

    async def claim(self, session_id: str, holder: str) -> bool:
        """Tie the session to `holder` if nothing holds it yet, in one atomic step.

        True when `holder` holds the session (it claimed it now or before); False when
        another holder did first. The claim lives in the session record, so it expires
        with it and survives every transition. Raises SessionNotFound.
        """
        ...

    async def ping(self) -> None: ...


__all__ = [
    "SessionNotFound",
    "SessionStore",
    "StoreUnavailable",
    "TransitionRefused",
]
