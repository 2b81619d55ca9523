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
        self, session_id: str, to: SessionStatus, **changes: str
    ) -> ConnectSession:
        """Move to `to` if the current status allows it, writing `changes` in the same step.

        Raises SessionNotFound or TransitionRefused; changes nothing in either case.
        """
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def open_store(redis_url: str | None, *, prefix: str) -> SessionStore:
    if redis_url:
        from portal.store.redis import RedisSessionStore

        return RedisSessionStore.from_url(redis_url, prefix=prefix)
    from portal.store.memory import MemorySessionStore

    return MemorySessionStore()


__all__ = [
    "SessionNotFound",
    "SessionStore",
    "StoreUnavailable",
    "TransitionRefused",
    "open_store",
]
