"""A network of the tests' own on loopback: a name service that answers from a table,
and TCP listeners that record every connection that reached them (used to prove what
the guarded outbound path, portal/outbound.py, resolves and connects to); and a proxy
that loses a reply on the way back."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass, field


class Names:
    """A name service of the test's own: answers from `table` (other names do not
    resolve), and keeps every name it was asked for."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.table:
            raise OSError(f"{host} does not resolve")
        return self.table[host]


@dataclass
class Listener:
    """A TCP socket on loopback that records every connection and its first bytes,
    then answers a fixed HTTP response (or nothing, when `silent`)."""

    host: str = "127.0.0.1"
    port: int = 0
    silent: bool = False
    tls: ssl.SSLContext | None = None
    connections: list[bytes] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind((self.host, self.port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError, ssl.SSLError):
                    self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        if self.tls is not None:
            names: list[str | None] = []
            self.tls.sni_callback = lambda _s, name, _c: names.append(name)  # type: ignore[assignment]
            try:
                stream: socket.socket = self.tls.wrap_socket(conn, server_side=True)
            finally:
                self.server_names.extend(names)
        else:
            stream = conn
        head = stream.recv(4096)
        if self.silent or not head[:1].isalpha():
            # Recorded as soon as anything arrives: a ClientHello to a plain listener too.
            self.connections.append(head)
            if self.silent:
                self._stop.wait(5)
            return
        while b"\r\n\r\n" not in head:
            chunk = stream.recv(4096)
            if not chunk:
                break
            head += chunk
        self.connections.append(head)
        stream.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=5)


class ReplyLosingProxy:
    """A TCP proxy in front of a server (Redis) that, once armed, forwards the next
    request containing `marker` and then closes that client connection instead of
    passing the server's reply on: the request ran, its answer was lost on the way, as
    when a network drops between a command and its reply."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.lost = 0
        self._marker: bytes | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> ReplyLosingProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def lose_the_reply_to_the_next(self, marker: bytes) -> None:
        self._marker = marker

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(self, client_in: asyncio.StreamReader,
                     client_out: asyncio.StreamWriter) -> None:
        server_in, server_out = await asyncio.open_connection(*self.upstream)
        doomed = asyncio.Event()

        async def requests() -> None:
            while data := await client_in.read(65536):
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    doomed.set()
                server_out.write(data)
                await server_out.drain()

        async def replies() -> None:
            while data := await server_in.read(65536):
                if doomed.is_set():
                    self.lost += 1
                    return  # the reply is dropped with the connection
                client_out.write(data)
                await client_out.drain()

        tasks = [asyncio.create_task(requests()), asyncio.create_task(replies())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for writer in (client_out, server_out):
            writer.close()
