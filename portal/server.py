"""uvicorn as the portal runs it (`serve`, the demo, the tests): with limits on what one
client can make a worker hold, and for how long.

uvicorn bounds idle keep-alive connections, concurrent connections per worker and the
listen backlog itself; those are passed straight through (`uvicorn_options`). With
httptools it bounds neither the request head (llhttp has no size limit, and httptools
joins the pieces of a header value in memory, so one 256 MB header costs far more than
256 MB) nor the time a client may take to send it (slowloris). `PortalHttpProtocol` adds
those: it counts the bytes of each request head before the parser sees them, counts the
header lines and the request target, answers 431 or 414 and closes, and closes silently
a connection that has not finished its request head within the header timeout.

It depends on these internals of uvicorn's `HttpToolsProtocol` (uvicorn 0.54; the upper
bound in pyproject.toml keeps it there): the parser callbacks `on_message_begin`,
`on_url`, `on_header`, `on_headers_complete`, `on_message_complete` and
`on_response_complete`; `data_received` calling `send_400_response` when the parser fails
(including when one of these callbacks raises); and the attributes `transport`, `loop`,
`url`, `cycle` (`more_body`), `config.timeout_keep_alive` and
`server_state.default_headers`. tests/test_server_limits.py exercises every one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import logging
import os
import socket
from asyncio import TimerHandle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from portal.settings import Settings

logger = logging.getLogger("portal.server")


def disable_nagle(sock: Any) -> None:
    """Send each answer at once (TCP_NODELAY) on a TCP connection.

    uvicorn wraps an inherited listening socket (`--fd`, as `serve --fd` and socket
    activation run it) as AF_UNIX whatever it is, so asyncio never sets TCP_NODELAY on the
    TCP connections it accepts; Nagle's algorithm then holds a small answer until the
    client's delayed ACK, about 40 ms per request on a keep-alive connection. On a real
    Unix socket the option does not exist, and nothing is done."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass(frozen=True, kw_only=True)
class HeadLimits:
    """What one request head (request line and headers) may be, and how long it may take.

    After a refusal the connection is drained (read and dropped) for at most `timeout`
    seconds before it is closed, so the client reads the answer instead of a reset."""

    max_bytes: int
    max_headers: int
    max_url_bytes: int
    timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HeadLimits:
        return cls(max_bytes=settings.max_header_bytes, max_headers=settings.max_headers,
                   max_url_bytes=settings.max_url_bytes, timeout=settings.header_timeout)


HEAD_LIMIT_VARIABLES = ("PORTAL_MAX_HEADER_BYTES", "PORTAL_MAX_HEADERS",
                        "PORTAL_MAX_URL_BYTES", "PORTAL_HEADER_TIMEOUT")


@functools.cache
def limits_from_env() -> HeadLimits:
    """For `uvicorn --http portal.server:PortalHttpProtocol`: the limits of the PORTAL_*
    variables, read (and validated) once per process; other variables play no part."""
    env = {name: os.environ[name] for name in HEAD_LIMIT_VARIABLES if name in os.environ}
    return HeadLimits.from_settings(Settings.from_env(env))


class HeadRefused(Exception):
    """Raised in a parser callback to stop parsing; answered by `send_400_response`."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class PortalHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded request head and a header timeout."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HeadLimits | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits or limits_from_env()
        self._reading_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._refusal: HeadRefused | None = None
        self._refused = False
        self._deadline: TimerHandle | None = None
        self._deadline_kind = ""

    # -- connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        disable_nagle(transport.get_extra_info("socket"))
        # Covers the wait for the first byte too: an idle connection is a slow head.
        self._set_deadline("head", self.limits.timeout, self._close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._clear_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # draining after a refusal: read and drop
        # Feed a request head no more than its limit: the parser never holds more.
        while data and self._reading_head:
            room = self.limits.max_bytes - self._head_bytes
            if room <= 0:
                self._refuse(431)
                return
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self._refused or self.transport.is_closing():
                return
        if data:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        refusal, self._refusal = self._refusal, None
        self._refuse(400 if refusal is None else refusal.status)

    # -- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        if self._deadline_kind != "head":
            self._set_deadline("head", self.limits.timeout, self._close)

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.limits.max_url_bytes:
            self._refusal = HeadRefused(414)
            raise self._refusal
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refusal = HeadRefused(431)
            raise self._refusal
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        self._clear_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True
        if self._deadline_kind == "drain":
            # The body the app did not read has ended: the connection is idle now.
            self._set_deadline("idle", self.config.timeout_keep_alive, self._close)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            # Answered before the body ended (a 413, say): uvicorn drops the rest of the
            # body as it comes, but not forever.
            self._set_deadline("drain", self.limits.timeout, self._close)

    # -- refusals and deadlines ----------------------------------------------------------

    def _refuse(self, status: int) -> None:
        """Answer `status` with `Connection: close`, stop reading requests, drain, close."""
        self._refused = True
        phrase = http.HTTPStatus(status).phrase
        if status != 400:  # uvicorn has logged its own warning for a malformed request
            client = "{}:{}".format(*self.client) if self.client else "?"
            logger.warning("refused a request head from %s: %d %s", client, status, phrase)
        body = phrase.encode("ascii")
        head = [f"HTTP/1.1 {status} {phrase}\r\n".encode("ascii")]
        head += [name + b": " + value + b"\r\n"
                 for name, value in self.server_state.default_headers]
        head += [b"content-type: text/plain; charset=utf-8\r\n",
                 b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n"]
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a pipelined head while an answer is being written
            return
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._set_deadline("drain", self.limits.timeout, self._close)

    def _close(self) -> None:
        self._deadline = None
        self._deadline_kind = ""
        if not self.transport.is_closing():
            self.transport.close()

    def _set_deadline(self, kind: str, seconds: float, callback: Callable[[], None]) -> None:
        self._clear_deadline()
        self._deadline = self.loop.call_later(seconds, callback)
        self._deadline_kind = kind

    def _clear_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._deadline_kind = ""


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The `uvicorn.Config` keyword arguments that carry the server limits of `settings`."""
    protocol = functools.partial(PortalHttpProtocol, limits=HeadLimits.from_settings(settings))
    return {
        # uvicorn calls `http` as a protocol factory; a partial pickles into `serve` workers.
        "http": cast(type[asyncio.Protocol], protocol),
        "ws": "none",  # the portal has no WebSocket route: no upgrade path either
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": settings.keepalive_timeout,
        "backlog": settings.backlog,
        # Only used by uvicorn's h11 protocol, which the portal does not run; set anyway.
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
