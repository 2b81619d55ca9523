"""Who asks, as the hosted pages show it: the partner's name, logo and accent colour.

A token may carry them (`partnerName`, `partnerLogoUrl`, `accentColor`); the operator's
PORTAL_BRAND_* settings are the defaults. Two rules hold whatever a partner sends:

- Contrast stays AA. An accent colour is darkened (light theme) or lightened (dark
  theme) in small steps, keeping its hue, until text on it reads at 4.5:1 and it reads
  at 4.5:1 as link text on the page (more than the 3:1 WCAG 1.4.11 asks of a button).
  The adjusted colours are a stylesheet of the portal's own origin
  (`/connect/brand/{rrggbb}.css`), so the CSP keeps `style-src 'self'`.
- The user's browser never loads a logo from a partner's host. The portal fetches an
  https logo once through the guarded outbound path, keeps only a PNG, JPEG, WebP or GIF
  of at most 64 KB recognised by its first bytes (never SVG, which can carry script and
  cannot be sanitised cheaply), caches it by the URL's hash and serves it from its own
  origin to the browser bound to the session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Protocol

import httpx

from portal import ssrf
from portal.outbound import OutboundPolicy, guarded_client
from portal.sessions import ConnectSession
from portal.settings import Settings

logger = logging.getLogger("portal.brand")

MAX_LOGO_BYTES = 64 * 1024
LOGO_TIMEOUT = 3.0
# How long a fetched logo is kept: longer than any session that shows it.
LOGO_TTL = 24 * 60 * 60
REFERENCE_PREFIX = "sha256:"
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")
_DATA_URL = re.compile(r"data:image/(?:png|jpeg|webp|gif);base64,([A-Za-z0-9+/]+={0,2})")

# The page colours of static/portal.css that an accent must stand out from, per theme.
LIGHT_PAGES = ("#ffffff", "#f6f7f9")  # --surface, --bg
DARK_PAGES = ("#1b1f25", "#101317")
LIGHT_ON_ACCENT = "#ffffff"
DARK_ON_ACCENT = "#0b0d10"
TEXT_CONTRAST = 4.5


# -- contrast (WCAG 2.x) ------------------------------------------------------------------
RGB = tuple[int, int, int]


def parse_hex(color: str) -> RGB:
    match = _HEX.fullmatch(color.strip())
    if match is None:
        raise ValueError(f"not a #rrggbb colour: {color!r}")
    digits = match.group(1)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def to_hex(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def relative_luminance(color: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(value) for value in parse_hex(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)),
                             reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def mix(color: str, toward: str, amount: float) -> str:
    """`color` moved `amount` (0..1) of the way to `toward`, channel by channel."""
    a, b = parse_hex(color), parse_hex(toward)
    r, g, bl = (round(x + (y - x) * amount) for x, y in zip(a, b, strict=True))
    return to_hex((r, g, bl))


def readable_accent(color: str, *, pages: tuple[str, ...], on_accent: str) -> str:
    """`color`, or the nearest step of it toward black (for a dark `on_accent`: toward
    white) with `on_accent` text at 4.5:1 on it and itself at 4.5:1 on every page colour.
    The end of the walk (black or white) always qualifies."""
    toward = "#000000" if relative_luminance(on_accent) > 0.5 else "#ffffff"
    for step in range(21):
        candidate = mix(color, toward, step / 20)
        if contrast_ratio(candidate, on_accent) >= TEXT_CONTRAST and all(
                contrast_ratio(candidate, page) >= TEXT_CONTRAST for page in pages):
            return candidate
    return toward


@dataclass(frozen=True)
class AccentColors:
    """One partner colour made readable in both themes."""

    light: str
    on_light: str
    dark: str
    on_dark: str

    @classmethod
    def of(cls, color: str) -> AccentColors:
        return cls(light=readable_accent(color, pages=LIGHT_PAGES, on_accent=LIGHT_ON_ACCENT),
                   on_light=LIGHT_ON_ACCENT,
                   dark=readable_accent(color, pages=DARK_PAGES, on_accent=DARK_ON_ACCENT),
                   on_dark=DARK_ON_ACCENT)

    def stylesheet(self) -> str:
        """Custom properties overriding static/portal.css's accent, in its three theme
        blocks (loaded after it, so the same selectors win)."""
        light = (f"--accent: {self.light}; --on-accent: {self.on_light}; "
                 f"--focus: {self.light};")
        dark = f"--accent: {self.dark}; --on-accent: {self.on_dark}; --focus: {self.dark};"
        return (f":root {{ {light} }}\n"
                f"@media (prefers-color-scheme: dark) {{\n"
                f"  :root:not([data-theme=\"light\"]) {{ {dark} }}\n}}\n"
                f":root[data-theme=\"dark\"] {{ {dark} }}\n")


# -- what a page shows --------------------------------------------------------------------
@dataclass(frozen=True)
class Brand:
    """Who asks (None: the pages speak neutrally), the path of their logo on this portal,
    and the stylesheet of their accent colour (None: the portal's own colours)."""

    name: str | None
    logo_path: str | None = None
    accent: str | None = None

    @property
    def stylesheet_path(self) -> str | None:
        return None if self.accent is None else f"/connect/brand/{self.accent[1:]}.css"


def brand_for(session: ConnectSession | None, settings: Settings) -> Brand:
    """The brand of a session's pages: the token's fields, else the PORTAL_BRAND_* ones.
    The logo is the session's own (set at minting only when it could be fetched)."""
    default_name = settings.brand_name if settings.brand_name != Settings.brand_name else None
    if session is None:
        return Brand(name=default_name, accent=settings.brand_accent)
    logo = f"/connect/s/{session.id}/brand-logo" if session.partner_logo_url else None
    return Brand(name=session.partner_name or default_name, logo_path=logo,
                 accent=session.accent_color or settings.brand_accent)


# -- logos --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Logo:
    content_type: str
    data: bytes


def sniff_image(data: bytes) -> str | None:
    """The content type of a PNG, JPEG, WebP or GIF by its first bytes; None otherwise
    (SVG, HTML, anything else)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def logo_of_bytes(data: bytes) -> Logo | None:
    if not data or len(data) > MAX_LOGO_BYTES:
        return None
    content_type = sniff_image(data)
    return None if content_type is None else Logo(content_type, data)


def logo_of_data_url(url: str) -> Logo | None:
    """The image of a `data:image/…;base64,` URL, checked like a fetched one."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        return None
    try:
        data = base64.b64decode(match.group(1), validate=True)
    except (binascii.Error, ValueError):
        return None
    return logo_of_bytes(data)


def logo_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()


class LogoCache(Protocol):
    async def get(self, key: str) -> Logo | None: ...

    async def put(self, key: str, logo: Logo, *, ttl: int) -> None: ...


class BrandLogos:
    """Fetches, checks, caches and hands out logos, by URL (or data URL)."""

    def __init__(
        self,
        *,
        cache: LogoCache,
        policy: OutboundPolicy,
        lookup: ssrf.Lookup = ssrf.system_lookup,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.cache = cache
        self._client = guarded_client(policy=policy, timeout=LOGO_TIMEOUT,
                                      user_agent="connect-portal (logo)", lookup=lookup,
                                      transport=transport)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def remember(self, url: str) -> str | None:
        """Fetch (or decode) the logo at `url` and keep it. Returns what a session keeps to
        find it again: an https URL itself; for a data URL, `sha256:<hash>` (the image is
        not copied into every session record and outbox job). None when there is none to
        show: unreachable, not a small PNG/JPEG/WebP/GIF. Never raises for the logo's sake:
        a broken logo must not break the connect flow."""
        reference = f"{REFERENCE_PREFIX}{logo_key(url)}" if url.startswith("data:") else url
        return reference if await self._kept(url) is not None else None

    async def logo(self, reference: str) -> Logo | None:
        """The kept logo of a session's `reference`; an https one is fetched again if the
        cache let it go (a data URL's outlives its session: LOGO_TTL)."""
        if reference.startswith(REFERENCE_PREFIX):
            return await self.cache.get(reference.removeprefix(REFERENCE_PREFIX))
        return await self._kept(reference)

    async def _kept(self, url: str) -> Logo | None:
        """The logo of `url` from the cache, else fetched (or decoded) and kept: one read
        when it is cached."""
        key = logo_key(url)
        kept = await self.cache.get(key)
        if kept is not None:
            return kept
        logo = logo_of_data_url(url) if url.startswith("data:") else await self._fetch(url)
        if logo is not None:
            await self.cache.put(key, logo, ttl=LOGO_TTL)
        return logo

    async def _fetch(self, url: str) -> Logo | None:
        try:
            async with self._client.stream("GET", url, headers={"Accept": "image/*"}) as answer:
                if answer.status_code != 200:
                    logger.warning("logo not fetched: HTTP %s", answer.status_code)
                    return None
                data = b""
                async for chunk in answer.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_LOGO_BYTES:
                        logger.warning("logo not fetched: larger than %d bytes", MAX_LOGO_BYTES)
                        return None
        except httpx.HTTPError as exc:
            logger.warning("logo not fetched: %s", type(exc).__name__)
            return None
        logo = logo_of_bytes(data)
        if logo is None:
            logger.warning("logo not used: not a PNG, JPEG, WebP or GIF image")
        return logo
