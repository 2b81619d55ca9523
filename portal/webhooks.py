"""Signed webhooks: tell outside systems that a connect session finished.

Events are signed the Standard Webhooks way: `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the
bytes of the `whsec_…` secret. Sending runs in the background with a bounded number
of attempts, so a slow receiver never holds up the user's result page. Every attempt
of one event carries the same `webhook-id`, which is how receivers drop duplicates.

Requests go through the guarded outbound client (portal/outbound.py): the host of
PORTAL_WEBHOOK_URL is the operator's own and trusted; a token's own `webhookUrl` is
checked like any other outbound request (public addresses, or PORTAL_OUTBOUND_ALLOW),
and a refused one is given up at once, not retried. Payloads hold the public session
fields only: no credential ever goes into a webhook.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from portal import ssrf
from portal.outbound import OutboundPolicy, OutboundRefused, guarded_client
from portal.sessions import ConnectSession, SessionStatus, iso8601
from portal.settings import WEBHOOK_SECRET_PREFIX, origin_of

logger = logging.getLogger("portal.webhooks")

# Seconds between attempts: five attempts over about two and a half minutes.
RETRY_DELAYS = (1.0, 5.0, 30.0, 120.0)

EVENT_TYPES = {
    SessionStatus.COMPLETED: "connect.session.completed",
    SessionStatus.FAILED: "connect.session.failed",
}


@dataclass(frozen=True)
class SignedEvent:
    webhook_id: str
    body: bytes
    headers: dict[str, str]


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (validated by the settings)."""
    return base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX))


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def session_event(session: ConnectSession, *, key: bytes, now: float) -> SignedEvent:
    event_type = EVENT_TYPES[session.status]
    timestamp = int(now)
    webhook_id = f"msg_{session.id}"
    payload = {"type": event_type, "timestamp": iso8601(timestamp), "data": session.public()}
    body = json.dumps(payload, separators=(",", ":")).encode()
    return SignedEvent(
        webhook_id=webhook_id,
        body=body,
        headers={
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, webhook_id, timestamp, body),
        },
    )


class WebhookSender:
    def __init__(
        self,
        *,
        url: str | None,
        secret: str,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        policy: OutboundPolicy | None = None,
        lookup: ssrf.Lookup = ssrf.system_lookup,
    ) -> None:
        self._url = url
        self._key = secret_key(secret)
        self._retry_delays = retry_delays
        self._clock = clock
        policy = policy or OutboundPolicy()
        configured = httpx.URL(url).host if url else ""

        def client(trusted: OutboundPolicy) -> httpx.AsyncClient:
            return guarded_client(policy=trusted, timeout=timeout, lookup=lookup,
                                  user_agent="connect-portal-webhooks")

        # One client for the operator's own URL, whose host is trusted; one for the URLs
        # tokens bring, which are checked.
        self._configured = client(policy.trusting(configured))
        self._http = client(policy)
        self._tasks: set[asyncio.Task[None]] = set()

    def session_finished(self, session: ConnectSession) -> None:
        """Queue the session's final event to every webhook URL that wants it; never blocks."""
        if session.status not in EVENT_TYPES:
            return
        urls = [url for url in (self._url, session.webhook_url) if url]
        if not urls:
            return
        event = session_event(session, key=self._key, now=self._clock())
        for url in dict.fromkeys(urls):
            task = asyncio.create_task(self._send(url, event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, url: str, event: SignedEvent) -> None:
        attempts = len(self._retry_delays) + 1
        target = origin_of(url)  # the log names the receiver's origin, never a full URL
        client = self._configured if url == self._url else self._http
        for attempt in range(attempts):
            try:
                response = await client.post(url, content=event.body, headers=event.headers)
            except OutboundRefused as exc:
                logger.error("webhook %s to %s refused by the outbound policy (%s); "
                             "not retried", event.webhook_id, target, exc.reason)
                return
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            else:
                if response.is_success:
                    logger.info("webhook %s delivered to %s (attempt %d)",
                                event.webhook_id, target, attempt + 1)
                    return
                outcome = f"HTTP {response.status_code}"
            logger.warning("webhook %s to %s failed (attempt %d/%d): %s",
                           event.webhook_id, target, attempt + 1, attempts, outcome)
            if attempt + 1 < attempts:
                await asyncio.sleep(self._retry_delays[attempt])
        logger.error("webhook %s to %s given up after %d attempts",
                     event.webhook_id, target, attempts)

    async def drain(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for events in flight, then cancel the rest."""
        pending = set(self._tasks)
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=timeout)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)

    async def aclose(self, timeout: float = 5.0) -> None:
        await self.drain(timeout)
        await self._configured.aclose()
        await self._http.aclose()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)
