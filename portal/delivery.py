"""How a connection travels from the form to the core API, and a session's end to webhooks.

    form ─▶ auth family ─▶ Delivery.connect ─┐  one atomic store step (portal/store):
                                             │  PENDING → CONNECTING + a sealed job queued
                                             ▼  in the outbox, leased to this process
                              first attempt, inline, for at most the inline budget (3 s)
                                             │
            ┌────────────────────────────────┼──────────────────────────────┐
         Created                          Rejected                        Unknown
     (2xx with an id)               (a definite 4xx)        (no answer, timeout, 408/409/425/
            │                               │                 429, 5xx, 2xx without an id)
            ▼                               ▼                               │
   COMPLETED + webhook jobs,       FAILED + webhook jobs,        put off with backoff and
   the job removed: one step       the job removed: one step     jitter (Retry-After honoured)
                                                                 until the deadline, then
                                                                 FAILED (DELIVERY_FAILED)

The user's request waits for the first attempt only as long as the inline budget; past it
the page says "Finishing your connection…" and refreshes itself while the attempt goes on.
Every process runs a worker (`start`, from the app's lifespan) that takes up jobs that are
due: put-off ones, and those whose process died holding them (their lease ran out; see
portal/store/outbox.py). Every attempt of a job sends the same body with the same
`Idempotency-Key: <sessionId>`, so a second attempt after an answer that got lost, or two
processes racing on one job, never make a second connection: the core API answers with
the one it holds. "Unknown" is never "failed": the session stays CONNECTING until the
core API gives a definite answer or the deadline passes.

The job's payload (the credentials, the OAuth tokens) is sealed (portal/sealing.py) with
keys from PORTAL_OUTBOX_KEYS, or derived from PORTAL_SECRET_KEYS: nothing secret is in
Redis in the clear. The final write (the session's end, its webhook jobs and the job's
removal) is one atomic step, retried a few times; if it still cannot be written the job
stays leased, comes up again, and the core API's idempotency makes the resend harmless.

A reconciler, in the same worker, looks at sessions CONNECTING for longer than a bound
whose job is gone (which the atomic steps above never leave behind, but an operator's
hand or a partial Redis restore can): it asks the core API for the connection made with
the session's key and ends the session COMPLETED or FAILED by the answer.

Webhook jobs, queued by every final transition, go the same way: at least once, with a
stable `webhook-id`, retried with backoff across restarts until the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from portal import metrics
from portal.core_api import CoreApiClient, Created, Rejected, Unknown
from portal.errors import SessionFailure
from portal.sealing import Sealer, Unsealable
from portal.sessions import ConnectSession, SessionStatus
from portal.store import (
    Job,
    JobKind,
    NewJob,
    SessionNotFound,
    SessionStore,
    StoreUnavailable,
    TransitionRefused,
)
from portal.webhooks import GiveUp, Sent, WebhookSender

logger = logging.getLogger("portal.delivery")

# How long a finished session stays readable by the backend after its token expires.
RESULT_RETENTION = 60 * 60
OUTBOX_PURPOSE = b"portal.outbox.v1"
# How often the submitting request looks at its session while a put-off job may still end
# within the inline budget.
INLINE_LOOK = 0.1
DELIVERY_FAILED_MESSAGE = "The connection could not be saved. Please connect again."


@dataclass(frozen=True)
class DeliveryTiming:
    """The clock of delivery, in seconds (the settings give the first three)."""

    inline_budget: float = 3.0  # the submitting request waits this long for the first try
    deadline: float = 24 * 60 * 60  # a job is retried until this long after it was queued
    retry_cap: float = 60.0  # the longest pause between two tries
    retry_base: float = 1.0  # the first pause; each next one doubles, with full jitter
    # How long a job stays with the process that took it: longer than any one attempt
    # (the core API timeout), so a live process never loses its job to another.
    lease: float = 30.0
    poll_interval: float = 1.0  # how often a worker asks for jobs that came due
    reconcile_every: float = 60.0
    reconcile_after: float = 300.0  # CONNECTING this long without a job: settle it
    settle_pauses: tuple[float, ...] = (0.1, 0.5, 2.0)  # retries of the final write
    batch: int = 32  # jobs taken per ask; also the attempts one process runs at once

    def pause(self, attempts: int, retry_after: float | None) -> float:
        """The pause before the next try after `attempts` put-offs (full jitter, capped);
        a Retry-After is honoured even beyond the cap (the deadline still bounds it)."""
        ceiling = min(self.retry_cap, self.retry_base * 2 ** min(attempts, 32))
        pause = random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)
        return max(pause, retry_after) if retry_after is not None else pause


@dataclass(frozen=True)
class Ending:
    """What the final write of a session needs to know about it."""

    session_id: str
    expires_at: int
    webhook_url: str | None

    @classmethod
    def of(cls, session: ConnectSession) -> Ending:
        return cls(session.id, session.expires_at, session.webhook_url)


def new_consumer_name() -> str:
    """This process's name in the outbox's consumer group (several per host)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Delivery:
    def __init__(
        self,
        *,
        store: SessionStore,
        core: CoreApiClient,
        sealer: Sealer,
        webhooks: WebhookSender | None = None,
        timing: DeliveryTiming = DeliveryTiming(),
        clock: Callable[[], float] = time.time,
        consumer: str | None = None,
    ) -> None:
        self.store = store
        self.outbox = store.outbox
        self.core = core
        self.webhooks = webhooks
        self.timing = timing
        self.clock = clock
        self.consumer = consumer or new_consumer_name()
        self._sealer = sealer
        self._running: dict[tuple[str, str], asyncio.Task[ConnectSession | None]] = {}
        self._worker: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._next_reconcile = 0.0

    # -- the flow's calls ---------------------------------------------------------------
    async def connect(self, session: ConnectSession, body: Mapping[str, Any]) -> ConnectSession:
        """PENDING → CONNECTING with the connection's job, then the first attempt.

        Returns the session as it stands after the inline budget: final, or CONNECTING
        while the attempt goes on (or waits for its next try). Raises TransitionRefused
        when the session is no longer PENDING (nothing queued then)."""
        return await self._queue(session, body, only_from=frozenset({SessionStatus.PENDING}))

    async def begin(self, session: ConnectSession) -> ConnectSession:
        """PENDING → CONNECTING before the connection is known (an OAuth code is redeemed
        once: a second callback finds the session CONNECTING). `attach` follows."""
        now = self.clock()
        moved = await self.store.move(
            session.id, SessionStatus.CONNECTING, changes={},
            only_from=frozenset({SessionStatus.PENDING}),
            keep_for=self._connecting_ttl(session.expires_at, now), now=now)
        return moved.session

    async def attach(
        self, session: ConnectSession, body: Mapping[str, Any], *,
        changes: Mapping[str, str] | None = None,
    ) -> ConnectSession:
        """Queue the connection of a session `begin` made CONNECTING, then try it;
        `changes` (session fields) are written in the same atomic step."""
        return await self._queue(session, body, only_from=frozenset({SessionStatus.CONNECTING}),
                                 changes=changes)

    async def finish(
        self,
        ending: Ending,
        to: SessionStatus,
        *,
        changes: Mapping[str, str],
        only_from: frozenset[SessionStatus] | None = None,
        settles: Job | None = None,
    ) -> ConnectSession:
        """End a session COMPLETED or FAILED, queue its webhook jobs and remove the job it
        `settles`, in one atomic step; then send the webhooks. Raises TransitionRefused
        (or SessionNotFound) with nothing changed. `to` PENDING is a failed attempt the
        user may retry: the job is removed, nothing is final, no webhook."""
        now = self.clock()
        jobs = []
        if to.is_final:
            urls = self.webhooks.urls_for_ending(ending.webhook_url) if self.webhooks else []
            jobs = [NewJob(JobKind.WEBHOOK, self._seal({"url": url})) for url in urls]
            changes = {**changes, "finished_at": str(int(now))}
        moved = await self.store.move(
            ending.session_id, to, changes=changes,
            only_from=only_from, jobs=jobs, settles=settles, consumer=self.consumer,
            keep_for=max(0, ending.expires_at - int(now)) + RESULT_RETENTION, now=now)
        if to.is_final:
            metrics.session_finished(moved.session)
        for job in moved.jobs:
            self._spawn(job)
        return moved.session

    # -- the worker -----------------------------------------------------------------------
    def start(self) -> None:
        """Run this process's worker until `stop`."""
        if self._worker is None:
            self._stopping.clear()
            self._worker = asyncio.create_task(self._work(), name="outbox-worker")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop taking jobs; give attempts in flight `timeout` seconds, then cancel them
        (their jobs stay in the outbox and come up again elsewhere once their lease ends)."""
        if self._worker is not None:
            self._stopping.set()
            # Cancelled again until it ends: a cancellation that lands as a Redis call's
            # own timeout fires can be turned into that timeout (asyncio.timeout on 3.11),
            # and the loop would go on.
            while not self._worker.done():
                self._worker.cancel()
                await asyncio.wait({self._worker}, timeout=0.5)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                self._worker.result()
            self._worker = None
        running = set(self._running.values())
        if running:
            _, left = await asyncio.wait(running, timeout=timeout)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)

    @property
    def in_flight(self) -> int:
        """Attempts running in this process now."""
        return len(self._running)

    async def _work(self) -> None:
        unavailable = False
        while not self._stopping.is_set():
            try:
                room = self.timing.batch - len(self._running)
                if room > 0:
                    jobs = await self.outbox.due(self.consumer, lease=self.timing.lease,
                                                 now=self.clock(), count=room)
                    for job in jobs:
                        self._spawn(job)
                if self.clock() >= self._next_reconcile:
                    self._next_reconcile = self.clock() + self.timing.reconcile_every
                    await self._reconcile()
                if unavailable:
                    logger.info("outbox worker: the store answers again")
                unavailable = False
            except StoreUnavailable as exc:
                metrics.store_unavailable("outbox")
                if not unavailable:
                    logger.warning("outbox worker: the store is unavailable (%s)", exc)
                unavailable = True
            except Exception:
                logger.exception("outbox worker: unexpected error; going on")
            await asyncio.sleep(self.timing.poll_interval * random.uniform(0.8, 1.2))  # noqa: S311

    def _spawn(self, job: Job) -> asyncio.Task[ConnectSession | None]:
        """Run one attempt of `job` in the background (once per process at a time)."""
        running = self._running.get(job.key)
        if running is not None:
            return running
        task = asyncio.create_task(self._attempt(job), name=f"outbox-{job.id}")
        self._running[job.key] = task
        task.add_done_callback(lambda _: self._running.pop(job.key, None))
        return task

    async def _attempt(self, job: Job) -> ConnectSession | None:
        try:
            if job.kind is JobKind.CONNECTION:
                return await self._deliver(job)
            await self._send_webhook(job)
        except StoreUnavailable as exc:
            # The job stays leased here; it comes up again once the lease runs out.
            logger.warning("outbox job %s (session %s): the store is unavailable (%s)",
                           job.id, job.session_id, exc)
        except Exception:
            logger.exception("outbox job %s (session %s): unexpected error", job.id,
                             job.session_id)
        return None

    # -- one attempt of a connection ------------------------------------------------------
    async def _deliver(self, job: Job) -> ConnectSession | None:
        try:
            payload = json.loads(self._sealer.open(job.sealed))
            body, ending = payload["body"], Ending(job.session_id, int(payload["expires_at"]),
                                                   payload.get("webhook_url"))
        except (Unsealable, ValueError, KeyError, TypeError):
            # Sealed under a key that is no longer configured (PORTAL_OUTBOX_KEYS rotated
            # too soon), or damaged: the connection cannot be sent, ever.
            logger.error("outbox job %s (session %s) cannot be opened with the configured "
                         "keys; the session fails", job.id, job.session_id)
            session = await self.store.get(job.session_id)
            if session is None:
                await self.outbox.done(job)
                return None
            return await self._settle(job, Ending.of(session), SessionStatus.FAILED, {
                "error": DELIVERY_FAILED_MESSAGE, "error_code": SessionFailure.DELIVERY_FAILED})
        outcome = await self.core.create_connection(body, session_id=job.session_id,
                                                    replaces=payload.get("replaces"))
        metrics.outbox_attempt(job.kind, outcome)
        if isinstance(outcome, Created):
            logger.info("session %s completed as connection %s (attempt %d)",
                        job.session_id, outcome.connection_id, job.attempts + 1)
            return await self._settle(job, ending, SessionStatus.COMPLETED,
                                      {"connection_id": outcome.connection_id})
        if isinstance(outcome, Rejected):
            if outcome.code.leaves_open(ending.expires_at, self.clock()):
                # Nothing was made: while the link is valid the user may try again
                # (portal/sessions.py); the session goes back to PENDING, no webhook.
                logger.warning("session %s: attempt refused by the core API (%s)",
                               job.session_id, outcome.code)
                return await self._settle(job, ending, SessionStatus.PENDING, {
                    "error": outcome.message, "error_code": outcome.code, "outbox_job": ""})
            logger.warning("session %s failed: %s", job.session_id, outcome.code)
            return await self._settle(job, ending, SessionStatus.FAILED, {
                "error": outcome.message, "error_code": outcome.code})
        assert isinstance(outcome, Unknown)
        if self._past_deadline(job):
            logger.error("session %s failed: no definite answer from the core API within "
                         "the delivery deadline (last: %s)", job.session_id, outcome.reason)
            return await self._settle(job, ending, SessionStatus.FAILED, {
                "error": DELIVERY_FAILED_MESSAGE, "error_code": SessionFailure.DELIVERY_FAILED})
        await self._put_off(job, outcome.reason, outcome.retry_after)
        return None

    async def _settle(self, job: Job, ending: Ending, to: SessionStatus,
                      changes: Mapping[str, str]) -> ConnectSession | None:
        """The final write of a delivered (or given-up) job, retried a few times."""
        for pause in (*self.timing.settle_pauses, None):
            try:
                return await self.finish(ending, to, changes=changes, settles=job,
                                         only_from=frozenset({SessionStatus.CONNECTING}))
            except (TransitionRefused, SessionNotFound):
                # Settled already (another process raced on the job), or the session is
                # gone: the job has nothing left to do.
                await self.outbox.done(job)
                return await self.store.get(job.session_id)
            except StoreUnavailable:
                if pause is None:
                    raise
                await asyncio.sleep(pause)
        return None

    async def _put_off(self, job: Job, reason: str, retry_after: float | None) -> None:
        now = self.clock()
        pause = self.timing.pause(job.attempts, retry_after)
        not_before = min(now + pause, job.queued_at + self.timing.deadline)
        logger.warning("outbox job %s (session %s, %s) attempt %d: %s; next try in %.1f s",
                       job.id, job.session_id, job.kind, job.attempts + 1, reason,
                       not_before - now)
        await self.outbox.later(job, self.consumer, not_before=not_before,
                                lease=self.timing.lease, now=now)

    def _past_deadline(self, job: Job) -> bool:
        return self.clock() >= job.queued_at + self.timing.deadline

    # -- one attempt of a webhook ---------------------------------------------------------
    async def _send_webhook(self, job: Job) -> None:
        try:
            url = json.loads(self._sealer.open(job.sealed))["url"]
            session = ConnectSession.from_record(dict(job.record or {}))
        except (Unsealable, ValueError, KeyError, TypeError):
            logger.error("webhook job %s (session %s) cannot be opened; dropped", job.id,
                         job.session_id)
            await self.outbox.done(job)
            return
        if self.webhooks is None:
            logger.error("webhook job %s (session %s): PORTAL_WEBHOOK_SECRET is no longer "
                         "set; dropped", job.id, job.session_id)
            await self.outbox.done(job)
            return
        result = await self.webhooks.send(url, session, attempt=job.attempts + 1)
        metrics.outbox_attempt(job.kind, result)
        if isinstance(result, Sent | GiveUp):
            await self.outbox.done(job)
        elif self._past_deadline(job):
            logger.error("webhook msg_%s given up after %d attempts", job.session_id,
                         job.attempts + 1)
            await self.outbox.done(job)
        else:
            await self._put_off(job, result.reason, result.retry_after)

    # -- the reconciler -------------------------------------------------------------------
    async def _reconcile(self) -> None:
        """Settle sessions CONNECTING for longer than `reconcile_after` without a job."""
        now = self.clock()
        depth = await self.outbox.depth(now=now)
        if depth.jobs:
            logger.info("outbox: %d jobs queued, the oldest %.0f s ago", depth.jobs,
                        depth.oldest_age)
        stale = await self.outbox.connecting_since(now - self.timing.reconcile_after,
                                                   count=100)
        for session_id in stale:
            session = await self.store.get(session_id)
            if session is None or session.status is not SessionStatus.CONNECTING:
                await self.outbox.forget_connecting(session_id)
                continue
            if session.outbox_job and await self.outbox.has_job(session_id, session.outbox_job):
                continue  # on its way: retried until the deadline
            outcome = await self.core.find_connection(session_id)
            if isinstance(outcome, Unknown):
                logger.warning("reconciler: session %s has no job and the core API cannot "
                               "say whether it holds its connection (%s); asking again later",
                               session_id, outcome.reason)
                continue
            logger.warning("reconciler: session %s was CONNECTING without a job; the core "
                           "API %s", session_id,
                           "holds its connection" if isinstance(outcome, Created)
                           else "holds no connection for it")
            to, changes = ((SessionStatus.COMPLETED, {"connection_id": outcome.connection_id})
                           if isinstance(outcome, Created) else
                           (SessionStatus.FAILED, {"error": DELIVERY_FAILED_MESSAGE,
                                                   "error_code": SessionFailure.DELIVERY_FAILED}))
            with contextlib.suppress(TransitionRefused, SessionNotFound):
                await self.finish(Ending.of(session), to, changes=changes,
                                  only_from=frozenset({SessionStatus.CONNECTING}))

    # -- helpers --------------------------------------------------------------------------
    async def _queue(self, session: ConnectSession, body: Mapping[str, Any], *,
                     only_from: frozenset[SessionStatus],
                     changes: Mapping[str, str] | None = None) -> ConnectSession:
        now = self.clock()
        sealed = self._seal({"body": dict(body), "expires_at": session.expires_at,
                             "webhook_url": session.webhook_url,
                             "replaces": session.reconnect_connection_id})
        moved = await self.store.move(
            session.id, SessionStatus.CONNECTING, changes=dict(changes or {}),
            only_from=only_from, jobs=[NewJob(JobKind.CONNECTION, sealed)], consumer=self.consumer,
            keep_for=self._connecting_ttl(session.expires_at, now), now=now)
        attempt = self._spawn(moved.jobs[0])
        # The attempt goes on in its own task: neither this budget nor a browser that
        # goes away stops it.
        until = time.monotonic() + self.timing.inline_budget
        done, _ = await asyncio.wait({attempt}, timeout=self.timing.inline_budget)
        ended = attempt.result() if done else None
        if ended is not None:
            return ended
        # Put off: a next try that comes due within the budget (any process's) may still
        # end it while the user waits.
        current = moved.session
        while done and time.monotonic() < until:
            await asyncio.sleep(min(INLINE_LOOK, max(0.0, until - time.monotonic())))
            current = await self.store.get(session.id) or current
            if current.status.is_final:
                break
        return current

    def _connecting_ttl(self, expires_at: int, now: float) -> int:
        """A CONNECTING session is kept until its job's deadline, and readable after."""
        return (max(0, expires_at - int(now)) + int(self.timing.deadline)
                + RESULT_RETENTION)

    def _seal(self, payload: Mapping[str, Any]) -> str:
        return self._sealer.seal(json.dumps(payload, separators=(",", ":")).encode())
