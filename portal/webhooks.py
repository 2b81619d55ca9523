"""Signed webhooks: tell outside systems that a connect session finished.

Events are signed the Standard Webhooks way: `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the
bytes of the `whsec_…` secret. Each event is an outbox job (portal/delivery.py), queued
in the same atomic step that made the session final, so it survives restarts and is
delivered at least once: every attempt carries the same `webhook-id` and the same body
(its `timestamp` is when the session finished), which is how receivers drop duplicates;
`webhook-timestamp` is the time of the attempt.

Requests go through the guarded outbound client (portal/outbound.py): the host of
PORTAL_WEBHOOK_URL is the operator's own and trusted; a token's own `webhookUrl` is
checked like any other outbound request (public addresses, or PORTAL_OUTBOUND_ALLOW),
and a refused one is given up at once, not retried. Payloads hold the public session
fields only: no credential ever goes into a webhook.
"""

from __future__ import annotations

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
from portal.core_api import retry_after
from portal.outbound import OutboundPolicy, OutboundRefused, guarded_client
from portal.sessions import ConnectSession, SessionStatus, iso8601
from portal.settings import WEBHOOK_SECRET_PREFIX, origin_of

logger = logging.getLogger("portal.webhooks")

EVENT_TYPES = {
    SessionStatus.COMPLETED: "connect.session.completed",
    SessionStatus.FAILED: "connect.session.failed",
}


@dataclass(frozen=True)
class SignedEvent:
    webhook_id: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Sent:
    pass


@dataclass(frozen=True)
class GiveUp:
    reason: str


@dataclass(frozen=True)
class TryLater:
    reason: str
    retry_after: float | None = None


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (validated by the settings)."""
    return base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX))


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def session_event(session: ConnectSession, *, key: bytes, now: float) -> SignedEvent:
    """The signed event of a final session; the same body every time it is built."""
    event_type = EVENT_TYPES[session.status]
    webhook_id = f"msg_{session.id}"
    happened = session.finished_at or session.created_at
    payload = {"type": event_type, "timestamp": iso8601(happened), "data": session.public()}
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = int(now)
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
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        policy: OutboundPolicy | None = None,
        lookup: ssrf.Lookup = ssrf.system_lookup,
    ) -> None:
        self._url = url
        self._key = secret_key(secret)
        self._clock = clock
        self.timeout = timeout
        policy = policy or OutboundPolicy()
        configured = httpx.URL(url).host if url else ""

        def client(trusted: OutboundPolicy) -> httpx.AsyncClient:
            return guarded_client(policy=trusted, timeout=timeout, lookup=lookup,
                                  user_agent="connect-portal-webhooks")

        # One client for the operator's own URL, whose host is trusted; one for the URLs
        # tokens bring, which are checked.
        self._configured = client(policy.trusting(configured))
        self._http = client(policy)

    def urls_for_ending(self, webhook_url: str | None) -> list[str]:
        """Where a session's final event goes: PORTAL_WEBHOOK_URL and the token's own
        `webhookUrl` (`webhook_url`), each once."""
        return list(dict.fromkeys(url for url in (self._url, webhook_url) if url))

    async def send(
        self, url: str, session: ConnectSession, *, attempt: int
    ) -> Sent | GiveUp | TryLater:
        """One attempt to deliver the final event of `session` to `url`."""
        event = session_event(session, key=self._key, now=self._clock())
        target = origin_of(url)  # the log names the receiver's origin, never a full URL
        client = self._configured if url == self._url else self._http
        try:
            response = await client.post(url, content=event.body, headers=event.headers)
        except OutboundRefused as exc:
            logger.error("webhook %s to %s refused by the outbound policy (%s); "
                         "not retried", event.webhook_id, target, exc.reason)
            return GiveUp(f"refused by the outbound policy ({exc.reason})")
        except httpx.HTTPError as exc:
            outcome = TryLater(type(exc).__name__)
        else:
            if response.is_success:
                logger.info("webhook %s delivered to %s (attempt %d)",
                            event.webhook_id, target, attempt)
                return Sent()
            outcome = TryLater(f"HTTP {response.status_code}", retry_after(response))
        logger.warning("webhook %s to %s failed (attempt %d): %s",
                       event.webhook_id, target, attempt, outcome.reason)
        return outcome

    async def aclose(self) -> None:
        await self._configured.aclose()
        await self._http.aclose()
