"""The SSRF guard: every URL the portal builds from user input goes through here.

Rules: `https` only (plain `http` only to a loopback address, and only when a test or
development setting allows it); no user name or password in a URL; a host is a DNS
name or a public IP address written the ordinary way (no `0x7f.1`, no `2130706433`);
a placeholder in a host is one or more DNS labels; and a host must resolve only to
public addresses (`is_public_address`, by explicit special-purpose tables). These are
the checks a form can make before anything is sent; the request itself goes through
`portal/outbound.py`, which applies the same address policy to the address it connects to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_HOST_LENGTH = 253
MAX_URL_LENGTH = 2048
# Names that only mean something inside a network; never a provider's public host
# (`kubernetes.default.svc`, `db.service.consul`, `x.cluster.local`, `metadata.google.internal`).
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".intranet", ".lan", ".home.arpa",
                      ".arpa", ".corp", ".localdomain", ".svc", ".consul")
_INTERNAL_NAMES = {"localhost", "localhost.localdomain", "metadata", "instance-data"}

# Special-purpose ranges from the IANA IPv4 and IPv6 Special-Purpose Address Registries
# (and RFC 9637, RFC 9602), spelled out rather than left to the interpreter's tables,
# which differ between Python releases (3.11 calls 192.0.0.8, fec0::1 and 3fff::1 global).
# No request may go to any of them; PORTAL_OUTBOUND_ALLOW is the only way round.
SPECIAL_IPV4: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), name) for net, name in (
        ("0.0.0.0/8", "this network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments (192.0.0.8 dummy, NAT64 discovery)"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)"),
        ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved, and the limited broadcast 255.255.255.255"),
    )
)
SPECIAL_IPV6: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), name) for net, name in (
        ("::/96", "unspecified, loopback and IPv4-compatible (deprecated)"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments (Teredo 2001::/32, benchmarking, ORCHID)"),
        ("2001:db8::/32", "documentation"),
        ("2002::/16", "6to4"),
        ("3fff::/20", "documentation (RFC 9637)"),
        ("5f00::/16", "segment routing SIDs (RFC 9602)"),
        ("fc00::/7", "unique local (ULA)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)
# Only 2000::/3 holds global unicast today; everything outside it is refused too.
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
# IPv6 forms that carry an IPv4 address in their last 32 bits: judged by that address.
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")

class Refusal(StrEnum):
    """Why a URL or a host was refused: every reason this module and portal/outbound.py
    give, for logs, API details and the form's field problems (portal/field_problems.py)."""

    URL = "url"  # not a URL: too long, control characters, a backslash, a query in a base
    SCHEME = "scheme"  # not https (plain http only to an allowed loopback address)
    USERINFO = "userinfo"  # a user name or password before an @
    HOST = "host"  # not a DNS name or a literal address written the ordinary way
    PORT = "port"
    SUBDOMAIN = "subdomain"  # not one DNS label (a host placeholder's value)
    PRIVATE_ADDRESS = "private_address"  # a private, local or internal address or name
    UNRESOLVABLE = "unresolvable"  # the name did not resolve in time


class UnsafeUrl(ValueError):
    """A URL or host built from user input is refused, for `reason`."""

    def __init__(self, reason: Refusal, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class CheckedUrl:
    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress | None  # the literal address in the URL, if it had one


def is_public_address(ip: IPAddress, *, allow_loopback: bool = False) -> bool:
    """Global unicast only, by the explicit tables above: refuses loopback, private,
    link-local (cloud metadata included), CGNAT, benchmarking, documentation, ULA and
    site-local, multicast, reserved and unspecified, 6to4, Teredo and local NAT64, and
    the same addresses inside IPv4-mapped or well-known NAT64 IPv6 addresses."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded, allow_loopback=allow_loopback)
        if ip == ipaddress.IPv6Address("::1"):
            return allow_loopback
        if ip not in _GLOBAL_UNICAST or any(ip in net for net, _ in SPECIAL_IPV6):
            return False
    else:
        if ip in _LOOPBACK_V4:
            return allow_loopback
        if any(ip in net for net, _ in SPECIAL_IPV4):
            return False
    # The interpreter's own table may only ever refuse more.
    return ip.is_global


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped (::ffff:a.b.c.d) or well-known NAT64
    (64:ff9b::a.b.c.d) address stands for; such an address is exactly as reachable."""
    if ip in _IPV4_MAPPED or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def check_subdomain(value: str) -> str:
    """One DNS label, such as a shop or account name: `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`."""
    if not LABEL.fullmatch(value):
        raise UnsafeUrl(Refusal.SUBDOMAIN)
    return value


def check_host(host: str, *, allow_loopback: bool = False) -> IPAddress | None:
    """A DNS name or a literal public address; returns the address when it is literal."""
    if not host or len(host) > MAX_HOST_LENGTH or host != host.strip():
        raise UnsafeUrl(Refusal.HOST)
    if host.startswith("[") or ":" in host:
        text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ip6 = ipaddress.IPv6Address(text)
        except ValueError:
            raise UnsafeUrl(Refusal.HOST) from None
        if ip6.scope_id:
            raise UnsafeUrl(Refusal.HOST)
        if not is_public_address(ip6, allow_loopback=allow_loopback):
            raise UnsafeUrl(Refusal.PRIVATE_ADDRESS)
        return ip6
    name = host.lower()
    try:
        ip = ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        if not is_public_address(ip, allow_loopback=allow_loopback):
            raise UnsafeUrl(Refusal.PRIVATE_ADDRESS)
        return ip
    labels = name.split(".")
    # A name needs a dot and a top-level label with a letter in it: this refuses the
    # numeric forms resolvers also accept (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`).
    if len(labels) < 2 or not all(LABEL.fullmatch(label) for label in labels):
        raise UnsafeUrl(Refusal.HOST)
    if labels[-1].isdigit() or labels[-1].startswith("0x"):
        raise UnsafeUrl(Refusal.HOST)
    if name in _INTERNAL_NAMES or name.endswith(_INTERNAL_SUFFIXES):
        raise UnsafeUrl(Refusal.PRIVATE_ADDRESS)
    return None


def check_url(url: str, *, allow_http_loopback: bool = False) -> CheckedUrl:
    """An absolute URL safe to request, before DNS: scheme, user info, host, port."""
    if len(url) > MAX_URL_LENGTH or any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise UnsafeUrl(Refusal.URL)
    if "\\" in url:
        raise UnsafeUrl(Refusal.URL)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl(Refusal.URL) from None
    scheme = parts.scheme.lower()
    if scheme not in {"https", "http"}:
        raise UnsafeUrl(Refusal.SCHEME)
    if "@" in parts.netloc:
        raise UnsafeUrl(Refusal.USERINFO)
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if not parts.hostname or not host:
        raise UnsafeUrl(Refusal.HOST)
    ip = check_host(host, allow_loopback=allow_http_loopback)
    if scheme == "http" and not (allow_http_loopback and ip is not None and ip.is_loopback):
        raise UnsafeUrl(Refusal.SCHEME)
    if port == 0:
        raise UnsafeUrl(Refusal.PORT)
    return CheckedUrl(
        url=url,
        scheme=scheme,
        host=parts.hostname,
        port=port or (443 if scheme == "https" else 80),
        ip=ip,
    )


def check_base_url(value: str, *, allow_http_loopback: bool = False) -> str:
    """A base URL typed by a user (a self-hosted instance): origin and optional path."""
    checked = check_url(value, allow_http_loopback=allow_http_loopback)
    parts = urlsplit(checked.url)
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise UnsafeUrl(Refusal.URL)
    return value.rstrip("/")


@dataclass(frozen=True)
class UrlTemplate:
    """Where a URL template's placeholders sit: the whole base, in the host, or after it."""

    template: str
    base: str | None
    host_keys: frozenset[str]
    other_keys: frozenset[str]

    @property
    def keys(self) -> frozenset[str]:
        return self.host_keys | self.other_keys | ({self.base} if self.base else set())


def parse_template(template: str) -> UrlTemplate:
    """Raises ValueError with a reason when the template itself is malformed."""
    base = None
    rest = template
    lead = re.match(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}", template)
    if lead:
        base = lead.group(1)
        rest = template[lead.end():]
        if rest and not rest.startswith("/"):
            raise ValueError("a base-URL placeholder must be followed by a path starting with /")
        authority = ""
        after = rest
    else:
        match = re.match(r"^(https?)://([^/?#]*)(.*)$", template)
        if not match:
            raise ValueError("must start with https:// or a base-URL placeholder like {baseUrl}")
        authority, after = match.group(2), match.group(3)
        if "@" in authority:
            raise ValueError("must not contain a user name or password")
    host_keys = frozenset(PLACEHOLDER.findall(authority))
    other_keys = frozenset(PLACEHOLDER.findall(after))
    return UrlTemplate(template=template, base=base, host_keys=host_keys, other_keys=other_keys)


def expand_url(
    template: str,
    values: Mapping[str, str],
    *,
    allow_http_loopback: bool = False,
) -> CheckedUrl:
    """Fill a URL template from validated values, then check the result.

    A base-URL placeholder must hold a safe base URL, a host placeholder one or more
    DNS labels; anything after the host is percent-encoded. UnsafeUrl names the field.
    """
    shape = parse_template(template)

    def host_value(key: str) -> str:
        value = values.get(key, "").lower()
        if not value or not all(LABEL.fullmatch(label) for label in value.split(".")):
            raise UnsafeUrl(Refusal.SUBDOMAIN, key)
        return value

    def fill(text: str, convert: Callable[[str], str]) -> str:
        return PLACEHOLDER.sub(lambda match: convert(match.group(1)), text)

    if shape.base is not None:
        key = shape.base
        try:
            base = check_base_url(values.get(key, ""), allow_http_loopback=allow_http_loopback)
        except UnsafeUrl as exc:
            raise UnsafeUrl(exc.reason, key) from None
        url = base + fill(template[len(key) + 2:], lambda k: quote(values.get(k, ""), safe=""))
    else:
        scheme, _, remainder = template.partition("://")
        split = re.search(r"[/?#]", remainder)
        authority = remainder[:split.start()] if split else remainder
        after = remainder[split.start():] if split else ""
        url = (scheme + "://" + fill(authority, host_value)
               + fill(after, lambda k: quote(values.get(k, ""), safe="")))
    try:
        return check_url(url, allow_http_loopback=allow_http_loopback)
    except UnsafeUrl as exc:
        blamed = shape.base or next(iter(sorted(shape.host_keys)), None)
        raise UnsafeUrl(exc.reason, blamed) from None


Lookup = Callable[[str, int], Awaitable[list[str]]]


async def system_lookup(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]
