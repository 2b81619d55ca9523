"""Response compression: gzip for the clients that ask for it, nothing in the way of the
ones that do not.

Starlette's GZipMiddleware compresses; this wrapper decides whether it is needed at all.
A request without `gzip` in Accept-Encoding (most backends' lookups and polls, load
balancers' probes) goes straight to the app: Starlette would still hold every answer back
in a responder of its own to decide on a `Vary` header, about a tenth of a lookup's CPU
(bench/README.md, "wrk"). Such an answer still says `Vary: Accept-Encoding` when a gzip
client would have been answered differently (a compressible type at or over the minimum
size), so a shared cache keeps the two apart.
"""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.middleware import header

_VARY = (b"vary", b"Accept-Encoding")


class Compression:
    def __init__(self, app: ASGIApp, *, minimum_size: int,
                 exclude_content_types: tuple[str, ...]) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.excluded = frozenset(exclude_content_types)
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size,
                                   exclude_content_types=exclude_content_types)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "gzip" in (header(scope, b"accept-encoding") or "").lower():
            await self.gzip(scope, receive, _weak_etag_when_compressed(send))
            return

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start" and self._would_compress(message):
                message["headers"] = [*message.get("headers", ()), _VARY]
            await send(message)

        await self.app(scope, receive, send_with_vary)

    def _would_compress(self, start: Message) -> bool:
        """Whether a gzip client would have got this answer compressed: a type that is not
        excluded, with a body at or over the minimum (or of a length not known yet)."""
        media_type = ""
        length = None
        for name, value in start.get("headers", ()):
            if name == b"content-type":
                media_type = value.decode("latin-1").partition(";")[0].strip().lower()
            elif name == b"content-length":
                length = int(value) if value.isdigit() else None
            elif name == b"content-encoding":
                return False
        if start["status"] == 206 or (length is not None and length < self.minimum_size):
            return False
        return not ({media_type, media_type.partition("/")[0] + "/*"} & self.excluded)


def _weak_etag_when_compressed(send: Send) -> Send:
    """A compressed answer is another representation than the file's: its ETag becomes
    weak (W/…), as the same strong tag may not name two different bodies (RFC 9110,
    8.8.1). Conditional requests still match: they compare weakly."""

    async def send_with_weak_etag(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            if (b"content-encoding", b"gzip") in headers:
                message["headers"] = [
                    (name, b"W/" + value if name == b"etag" and not value.startswith(b"W/")
                     else value)
                    for name, value in headers]
        await send(message)

    return send_with_weak_etag
