"""The one guarded path for every request that leaves the portal.

Credential checks, OAuth token and refresh requests, the core API and webhooks all get
their httpx client from `guarded_client`. Each request is checked before a byte is sent:
`https` only (plain `http` to loopback only in tests and development, or to a host the
operator configured); no user name or password in the URL; a host written the ordinary
way (`ssrf.check_host`). The host is then resolved once, every address it resolves to
is checked against one `OutboundPolicy`, and the connection is made to that checked
address: a second DNS answer can never move it. TLS still verifies the real name (SNI
and the certificate use the URL's host), and the Host header is the URL's.

This works because the connection pool is httpcore's own, built here with a network
backend (`_GuardedBackend`) whose `connect_tcp` resolves, checks and connects; httpx has
no public way to plug one in, so `_GuardedTransport` maps requests and responses itself.
Connections are pooled per scheme, host and port, so a connection opened and checked
for one name only ever carries requests for that name.

No redirect is followed, proxies from the environment are ignored (they would bypass
the check), and every client has explicit timeouts, connecting included.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpcore
import httpx

from portal import ssrf
from portal.ssrf import IPAddress, Refusal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

CONNECT_TIMEOUT = 3.0  # the most any client waits to connect, resolving included
RESOLVE_TIMEOUT = 5.0
MAX_ADDRESSES = 3  # addresses of one name tried in turn before giving up


class OutboundRefused(httpx.TransportError):
    """The policy refused a request; nothing was sent. `reason` is one of the SSRF
    guard's refusals (`scheme`, `userinfo`, `host`, `port`, `private_address`).

    A subclass of httpx.TransportError, so code that handles "could not reach it" still
    handles it; code that needs to tell "refused by policy" apart catches this first."""

    def __init__(self, reason: Refusal, *, request: httpx.Request | None = None) -> None:
        super().__init__(f"outbound request refused by policy: {reason}", request=request)
        self.reason = reason


@dataclass(frozen=True)
class OutboundPolicy:
    """Which addresses the portal may connect to.

    Public unicast addresses, by the SSRF guard's explicit tables, always; addresses in
    `allow_networks` too (an identity provider on the operator's private network);
    any address of a host in `allow_hosts` (exact, lower-case names the operator
    configured, such as CORE_API_URL's host). `allow_http_loopback` is for tests and
    development: plain http to a loopback address, and loopback addresses, allowed.
    """

    allow_networks: tuple[Network, ...] = ()
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    allow_http_loopback: bool = False

    @classmethod
    def from_setting(cls, text: str, *, allow_http_loopback: bool = False) -> OutboundPolicy:
        """Read PORTAL_OUTBOUND_ALLOW: a comma list of CIDR networks, addresses and host
        names. A ValueError names the entry that is none of these."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            try:
                network = ipaddress.ip_network(item.strip("[]"), strict=True)
            except ValueError:
                pass
            else:
                if network.prefixlen == 0:
                    raise ValueError(f"{item!r} would allow every address; name the networks "
                                     "of your internal services instead")
                networks.append(network)
                continue
            name = item.lower().rstrip(".")
            labels = name.split(".")
            if "/" in item or not all(ssrf.LABEL.fullmatch(label) for label in labels) or (
                    labels[-1].isdigit()):
                raise ValueError(f"{item!r} is not a network (10.1.0.0/16), an address "
                                 "(10.1.2.3) or a host name (sso.corp.example)")
            hosts.add(name)
        return cls(allow_networks=tuple(networks), allow_hosts=frozenset(hosts),
                   allow_http_loopback=allow_http_loopback)

    def trusting(self, *hosts: str) -> OutboundPolicy:
        """A copy that also trusts these hosts (the operator's own CORE_API_URL and
        PORTAL_WEBHOOK_URL hosts) whatever they resolve to."""
        names = {_canonical(host) for host in hosts if host}
        return replace(self, allow_hosts=self.allow_hosts | names)

    def trusts(self, host: str) -> bool:
        return _canonical(host) in self.allow_hosts

    def address_allowed(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            embedded = ssrf.embedded_ipv4(ip)
            if embedded is not None:
                candidates.append(embedded)
        if any(candidate in network for candidate in candidates
               for network in self.allow_networks):
            return True
        return ssrf.is_public_address(ip, allow_loopback=self.allow_http_loopback)

    async def resolve(
        self, host: str, port: int, *, lookup: ssrf.Lookup = ssrf.system_lookup,
        timeout: float | None = RESOLVE_TIMEOUT,
    ) -> list[IPAddress]:
        """Every address `host` resolves to, once. Raises ssrf.UnsafeUrl: `private_address`
        unless every one is allowed (a trusted host's are not checked), `unresolvable`
        when there is no answer in time (`timeout=None`: the caller bounds the wait)."""
        trusted = self.trusts(host)
        literal = _literal(host)
        if literal is not None:
            if trusted or self.address_allowed(literal):
                return [literal]
            raise ssrf.UnsafeUrl(Refusal.PRIVATE_ADDRESS)
        try:
            answers = await (lookup(host, port) if timeout is None
                             else asyncio.wait_for(lookup(host, port), timeout))
        except (OSError, UnicodeError, TimeoutError):
            raise ssrf.UnsafeUrl(Refusal.UNRESOLVABLE) from None
        addresses: list[IPAddress] = []
        for answer in answers:
            try:
                address = ipaddress.ip_address(answer.split("%")[0])
            except ValueError:
                raise ssrf.UnsafeUrl(Refusal.UNRESOLVABLE) from None
            if not trusted and not self.address_allowed(address):
                raise ssrf.UnsafeUrl(Refusal.PRIVATE_ADDRESS)
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise ssrf.UnsafeUrl(Refusal.UNRESOLVABLE)
        return addresses

    def check_url(self, url: httpx.URL) -> None:
        """Everything that can be checked before DNS; raises OutboundRefused."""
        host = url.host
        if url.userinfo:
            raise OutboundRefused(Refusal.USERINFO)
        if not host:
            raise OutboundRefused(Refusal.HOST)
        if url.port == 0:
            raise OutboundRefused(Refusal.PORT)
        trusted = self.trusts(host)
        literal = _literal(host)
        plain_ok = trusted or (self.allow_http_loopback and literal is not None
                               and _is_loopback(literal))
        if url.scheme != "https" and not (url.scheme == "http" and plain_ok):
            raise OutboundRefused(Refusal.SCHEME)
        if trusted:
            return
        if literal is not None:
            if not self.address_allowed(literal):
                raise OutboundRefused(Refusal.PRIVATE_ADDRESS)
            return
        try:
            ssrf.check_host(host)
        except ssrf.UnsafeUrl as exc:
            raise OutboundRefused(exc.reason) from None


def guarded_client(
    *,
    policy: OutboundPolicy,
    timeout: float,
    user_agent: str,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    lookup: ssrf.Lookup = ssrf.system_lookup,
    verify: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """An httpx client whose every request goes through `policy` (see the module doc).

    `transport` (tests only) replaces the network: the URL and address checks, with
    `lookup`, still run before it is called. `verify` (tests only) replaces the system's
    certificate authorities.
    """
    guarded = _GuardedTransport(policy=policy, lookup=lookup, inner=transport,
                                ssl_context=verify)
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"User-Agent": user_agent, **(headers or {})},
        timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
        follow_redirects=False,
        trust_env=False,  # a proxy from the environment would bypass the address check
        transport=guarded,
    )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy allows, resolving each host once."""

    def __init__(self, policy: OutboundPolicy, lookup: ssrf.Lookup) -> None:
        self._policy = policy
        self._lookup = lookup
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        budget = CONNECT_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + budget
        try:
            addresses = await asyncio.wait_for(
                self._policy.resolve(host, port, lookup=self._lookup, timeout=None),
                min(budget, RESOLVE_TIMEOUT),
            )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except ssrf.UnsafeUrl as exc:
            if exc.reason is Refusal.UNRESOLVABLE:
                raise httpcore.ConnectError(f"{host} did not resolve") from None
            raise OutboundRefused(exc.reason) from None
        failure: Exception = httpcore.ConnectTimeout(f"connecting to {host} timed out")
        for address in addresses[:MAX_ADDRESSES]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                return await self._network.connect_tcp(
                    str(address), port, timeout=remaining, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused(Refusal.SCHEME)

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class _GuardedTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        policy: OutboundPolicy,
        lookup: ssrf.Lookup,
        inner: httpx.AsyncBaseTransport | None,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self._policy = policy
        self._lookup = lookup
        self._inner = inner
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(policy, lookup),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            self._policy.check_url(request.url)
            if self._inner is not None:
                await self._check_addresses(request)
                return await self._inner.handle_async_request(request)
            return await self._send(request)
        except OutboundRefused as exc:
            exc.request = request
            raise

    async def _check_addresses(self, request: httpx.Request) -> None:
        """For a test transport: the same resolution and check as `_GuardedBackend`."""
        url = request.url
        if self._policy.trusts(url.host):
            return
        port = url.port or (443 if url.scheme == "https" else 80)
        timeout = request.extensions.get("timeout", {}).get("connect") or CONNECT_TIMEOUT
        try:
            await asyncio.wait_for(
                self._policy.resolve(url.host, port, lookup=self._lookup, timeout=None),
                min(timeout, RESOLVE_TIMEOUT),
            )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"resolving {url.host} timed out",
                                       request=request) from None
        except ssrf.UnsafeUrl as exc:
            if exc.reason is Refusal.UNRESOLVABLE:
                raise httpx.ConnectError(f"{url.host} did not resolve", request=request) from None
            raise OutboundRefused(exc.reason) from None

    async def _send(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                             port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors(request):
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream, request),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
        if self._inner is not None:
            await self._inner.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(self._request):
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            with _httpx_errors(self._request):
                await close()


# httpcore's errors as the httpx errors every caller handles; subclasses first.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except OutboundRefused as exc:
        exc.request = request
        raise
    except Exception as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc), request=request) from exc
        raise


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_loopback(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ssrf.embedded_ipv4(ip)
        if embedded is not None:
            return embedded.is_loopback
    return ip.is_loopback


def _canonical(host: str) -> str:
    literal = _literal(host)
    return str(literal) if literal is not None else host.lower().rstrip(".")


class HostCheck:
    """A host name the user typed for the core API to connect to later (an SMTP or a
    database server): resolved through the same policy before anything is delivered,
    so a name such as `127.0.0.1.nip.io` is refused on its field. The core API resolves
    the name again when it connects, and must apply its own policy then
    (docs/outbound.md)."""

    def __init__(
        self, policy: OutboundPolicy, *, lookup: ssrf.Lookup = ssrf.system_lookup,
        timeout: float = RESOLVE_TIMEOUT,
    ) -> None:
        self._policy = policy
        self._lookup = lookup
        self._timeout = timeout

    async def refusal(self, host: str) -> Refusal | None:
        """None when every address of `host` is allowed; else `private_address` or
        `unresolvable`."""
        try:
            await self._policy.resolve(host, 0, lookup=self._lookup, timeout=self._timeout)
        except ssrf.UnsafeUrl as exc:
            return exc.reason
        return None
