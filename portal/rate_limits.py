"""Abuse limits: how often one client may load the hosted pages or poll, one API key mint
links, and one session submit its forms (and so have its credentials checked).

| limit                          | counted per                  | setting                     |
|--------------------------------|------------------------------|-----------------------------|
| hosted pages (`/connect…`)     | client IP                    | PORTAL_RATE_LIMIT_PAGES     |
| the token-less poll            | client IP                    | PORTAL_RATE_LIMIT_POLL      |
| minting (connect token, end-   | API key (an HMAC of it, never| PORTAL_RATE_LIMIT_MINT      |
| user link, invite)             | the key itself)              |                             |
| form submits on a session page | session                      | PORTAL_RATE_LIMIT_SUBMITS   |

Pages and polls are counted first thing, bad requests too (a flood of bad tokens is what
they are for). A mint is counted once its API key and body are accepted: a refused one
makes nothing, and a wrong key is not counted at all.

The per-session limit is what keeps a credential check from becoming a password-guessing
oracle against a provider: a refused submit is answered before the form reaches its
family, so nothing is sent to the provider. It is counted after the browser binding and
the CSRF check, so only the browser that holds the session can use up its submits.

Counters are kept by the `limits` library, fixed windows (one INCR per request; at most
twice the limit can pass across a window boundary, which is fine for abuse limits), in
Redis on the stores' own pool (portal/store/limits_storage.py), so every worker and every
portal process counts the same hits; without REDIS_URL, in this process.

The client IP is the peer address, unless the peer is one of PORTAL_TRUSTED_PROXIES: then
it is the right-most X-Forwarded-For entry that is not itself a trusted proxy. An
X-Forwarded-For from any other peer is ignored. An IPv6 client is counted by its /64 (one
subscriber's usual allocation, which it can otherwise walk through at will).

A Redis that does not answer fails *open*: the request goes on, and a warning is logged
(at most once a minute per process). These limits blunt abuse; they protect nothing by
themselves (the API key, the browser binding, CSRF and the session's own expiry do), and
the rest of the flow needs the same Redis anyway: refusing every page while Redis is down
would turn a store outage into a full outage for no gain. Nor does it open the oracle:
a form post reads its session from that same Redis before it is counted, so while
Redis is down no credential is checked at all. Invites (portal/end_users/
invites.py) fail closed instead: an invite sends email, and a 503 there costs nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem
from limits import parse as parse_limit
from limits.aio.storage import Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from portal.errors import RateLimited
from portal.settings import Settings
from portal.store.client import RedisClient
from portal.store.limits_storage import limits_storage
from portal.views.render import render_error

logger = logging.getLogger("portal.rate_limits")

# A failing Redis is logged at most this often (seconds) by one process.
WARNING_INTERVAL = 60.0
IPV6_PREFIX = 64
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Limit:
    name: str  # in the counter's key, and in the answer's details
    item: RateLimitItem
    message: str


class RateLimits:
    """The portal's abuse limits, on one `limits` storage."""

    def __init__(self, *, pages: str, poll: str, mint: str, submits: str,
                 storage: Storage, trusted_proxies: Sequence[str], key_secret: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.pages = Limit("page", parse_limit(pages),
                           "Too many requests from this address; try again later.")
        self.poll = Limit("poll", parse_limit(poll),
                          "Too many polls from this address; try again later.")
        self.mint = Limit("mint", parse_limit(mint),
                          "Too many links minted with this API key; try again later.")
        self.submits = Limit("submit", parse_limit(submits),
                             "Too many attempts on this session; try again later.")
        self._limiter = FixedWindowRateLimiter(storage)
        self._trusted: tuple[IpNetwork, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in trusted_proxies)
        self._key_secret = key_secret.encode()
        self._clock = clock
        self._warned_at = -math.inf

    @classmethod
    def from_settings(cls, settings: Settings, *, redis: RedisClient | None) -> RateLimits:
        """PORTAL_RATE_LIMIT_* and PORTAL_TRUSTED_PROXIES; the counters in Redis on
        `redis` (the stores' client) or, without it, in this process."""
        return cls(pages=settings.rate_limit_pages, poll=settings.rate_limit_poll,
                   mint=settings.rate_limit_mint, submits=settings.rate_limit_submits,
                   storage=limits_storage(redis, key_prefix=f"{settings.redis_prefix}rate-limit"),
                   trusted_proxies=settings.trusted_proxies,
                   key_secret=settings.secret_keys[0] if settings.secret_keys else "")

    async def check(self, limit: Limit, identifier: str) -> None:
        """Count one request of `identifier` against `limit`; RateLimited (with the seconds
        until the window resets) once it is over. A Redis that does not answer lets the
        request through (the module's docstring says why)."""
        try:
            if await self._limiter.hit(limit.item, limit.name, identifier):
                return
            stats = await self._limiter.get_window_stats(limit.item, limit.name, identifier)
        except StorageError as exc:
            self._warn(exc)
            return
        retry_after = max(1, math.ceil(stats.reset_time - self._clock()))
        raise RateLimited(limit.message, retry_after=retry_after,
                          details={"limit": limit.name, "retryAfter": retry_after})

    def _warn(self, exc: StorageError) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARNING_INTERVAL:
            self._warned_at = now
            logger.warning("rate limits not enforced: their store does not answer (%s)",
                           type(exc.storage_error).__name__)

    # -- who is asking ------------------------------------------------------------------
    def client_of(self, scope: Scope) -> str:
        """The client's address as counted: see the module's docstring."""
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        address = _address(peer)
        if address is None or not self._is_trusted(address):
            return _counted(address, peer)
        forwarded = ",".join(value.decode("latin-1") for name, value in scope["headers"]
                             if name == b"x-forwarded-for")
        for entry in reversed([part.strip() for part in forwarded.split(",")]):
            hop = _address(entry)
            if hop is None:
                break  # not what a trusted proxy writes: stop at the last hop it did
            address = hop
            if not self._is_trusted(hop):
                break
        return _counted(address, peer)

    def _is_trusted(self, address: IpAddress) -> bool:
        return any(address in network for network in self._trusted)

    def key_id(self, api_key: str) -> str:
        """What an API key is counted as: an HMAC of it, so the key is in no counter."""
        return hmac.new(self._key_secret, b"rate-limit\x00" + api_key.encode(),
                        hashlib.sha256).hexdigest()[:32]

    # -- the limits, as the views use them ----------------------------------------------
    async def check_page(self, scope: Scope) -> None:
        await self.check(self.pages, self.client_of(scope))

    async def check_poll(self, scope: Scope) -> None:
        await self.check(self.poll, self.client_of(scope))

    async def check_mint(self, api_key: str) -> None:
        await self.check(self.mint, self.key_id(api_key))

    async def check_submit(self, session_id: str) -> None:
        await self.check(self.submits, session_id)


def rate_limits_of(request: Request) -> RateLimits:
    limits: RateLimits = request.app.state.rate_limits
    return limits


def _address(text: str) -> IpAddress | None:
    """An IP address, also as proxies may write it with a port (`1.2.3.4:5`, `[::1]:5`)."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _counted(address: IpAddress | None, peer: str) -> str:
    if address is None:
        return peer[:64]  # not an IP (a test client, a Unix socket): as it is
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)


class PageRateLimit:
    """The per-IP limit of every hosted page (`/connect`, `/connect/…`, any method): a
    client over it gets the "Too many attempts" page with Retry-After."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (path == "/connect" or path.startswith("/connect/")):
            request = Request(scope, receive)
            try:
                await rate_limits_of(request).check_page(scope)
            except RateLimited as exc:
                response: Any = render_error(request, exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
