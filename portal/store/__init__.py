"""Where connect sessions and the outbox live: Redis in production, this process for the
embedded default.

The outbox holds the jobs that carry a connection to the core API or a session's event to a
webhook (portal/delivery.py runs them). A session moves and its jobs are queued, or a job is
settled, in one atomic step of the store (`SessionStore.move`), so there is never a
CONNECTING session without its job, nor a finished session whose webhook job was not queued.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
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


class JobKind(StrEnum):
    CONNECTION = "connection"  # a connection for the core API (sealed: the create body)
    WEBHOOK = "webhook"  # a session's final event (sealed: the URL; the record rides along)


@dataclass(frozen=True)
class NewJob:
    kind: JobKind
    sealed: str  # encrypted by the caller (portal/sealing.py): the store never sees plain


@dataclass(frozen=True)
class Job:
    """A queued job as a worker gets it: claimed by that worker until it settles, puts it
    off (`Outbox.later`) or its lease runs out."""

    id: str
    kind: JobKind
    sealed: str
    session_id: str
    queued_at: float  # seconds since the epoch
    attempts: int  # attempts that ended in "try later"
    # A webhook job: the session's record as it was written by the final transition.
    record: Mapping[str, str] | None = None

    @property
    def key(self) -> tuple[str, str]:
        """The job's identity over the whole outbox: an id (a Stream entry id) is unique
        within its shard only, and a session's jobs are all in one shard."""
        return (self.session_id, self.id)


@dataclass(frozen=True)
class Moved:
    session: ConnectSession
    jobs: tuple[Job, ...] = field(default=())


@dataclass(frozen=True)
class OutboxDepth:
    jobs: int  # queued and not yet settled (in flight or waiting for their next try)
    oldest_age: float  # seconds since the oldest of them was queued, 0 when empty


class Outbox(Protocol):
    """The queue side of the outbox: what workers ask for, and how they put a job off.

    A job handed out by `due` is leased to the consumer that asked for `lease` seconds; if
    that consumer neither settles nor puts it off in time (its process died), the next
    `due` of any consumer hands it out again."""

    async def due(self, consumer: str, *, lease: float, now: float, count: int) -> list[Job]:
        """Jobs whose lease ran out and whose next try is due, now leased to `consumer`."""
        ...

    async def later(self, job: Job, consumer: str, *, not_before: float, lease: float,
                    now: float) -> None:
        """Put `job` off until `not_before`; its attempts count goes up by one."""
        ...

    async def done(self, job: Job) -> None:
        """Remove a job that needs no more tries (a webhook sent or given up)."""
        ...

    async def depth(self, *, now: float) -> OutboxDepth: ...

    async def connecting_since(self, before: float, *, count: int) -> list[str]:
        """Ids of sessions that became CONNECTING before `before` and are not final yet
        (as far as the index knows: a caller re-reads each session)."""
        ...

    async def forget_connecting(self, session_id: str) -> None:
        """Drop a session from the CONNECTING index (it is final or gone)."""
        ...

    async def has_job(self, session_id: str, job_id: str) -> bool:
        """Whether the job `job_id` of the session is still queued."""
        ...


class SessionStore(Protocol):
    description: str

    @property
    def outbox(self) -> Outbox:
        """The outbox kept beside these sessions (the same Redis and prefix)."""
        ...

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
        """`transition`, and in the same atomic step: queue `jobs` (leased to `consumer`,
        so it tries them first; the first CONNECTION job becomes the session's
        `outbox_job`), remove the job it `settles`, and set the record's time to live to
        `keep_for` seconds when given. Refused or missing: nothing is queued or removed."""
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
    "Job",
    "JobKind",
    "Moved",
    "NewJob",
    "Outbox",
    "OutboxDepth",
    "SessionNotFound",
    "SessionStore",
    "StoreUnavailable",
    "TransitionRefused",
]
