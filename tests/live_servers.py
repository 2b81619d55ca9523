"""Real servers for tests, one way: uvicorn in a thread of this process (`server_thread`), or
a server in a process of its own (`ServerProcess`), each on a socket bound here first.

The test binds every socket (`bound_socket`: loopback, port 0, the kernel picks a free
port) and hands it over: to the thread as a socket object, to a child process as an
inherited file descriptor (`uvicorn --fd`, `connect-portal serve --fd`, `connect-portal
demo --fds`). No port is ever guessed or probed, so nothing can take it in between, and
the port stays this test's after the process is killed: a restart serves on the same
socket, and connections made while it was down wait in the socket's backlog for it (as
with systemd socket activation) instead of being refused.

Readiness is a condition (the server answers, or a thread says it started), polled with a
deadline; a process's output goes to a log file the test can read; a stop is SIGTERM,
then SIGKILL after a bounded wait. Redis for fault tests (`RedisServer`) listens on a
Unix socket in a directory of its own, so it needs no port either.

    with uvicorn_process("tests.live_apps:core_app", env={...}, log_path=log) as core:
        httpx.get(core.url)
        core.kill()      # kill -9
        core.start()     # the same socket, the same URL
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import redis
import uvicorn
from limits import parse as parse_limit
from limits.aio.strategies import FixedWindowRateLimiter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from portal.server import PortalHttpProtocol
from portal.store.limits_storage import limits_storage
from portal.store.stores import redis_client

REPOSITORY = Path(__file__).resolve().parent.parent
CONNECT_PORTAL = str(Path(sys.executable).with_name("connect-portal"))
LOOPBACK = "127.0.0.1"
START_DEADLINE = 30.0
STOP_DEADLINE = 10.0
# Variables that would change what a portal process does; a test says what it wants.
DROPPED_VARIABLES = ("PORTAL_", "CORE_API_", "REDIS_URL")


class ProcessFailed(RuntimeError):
    """A process exited early or never became ready; the message ends with its output."""


# -- sockets and conditions -----------------------------------------------------------------

def bound_socket() -> socket.socket:
    """A socket bound to a free loopback port, not yet listening: connections to it are
    refused until a server takes it (or forever, for a test that wants a closed port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    return sock


def loopback_socket() -> socket.socket:
    """A bound socket that already listens: connections wait until a server accepts."""
    sock = bound_socket()
    sock.listen(128)
    return sock


def free_port() -> int:
    """A loopback port free now, for a server that cannot take a bound socket (Redis)."""
    with bound_socket() as sock:
        port: int = sock.getsockname()[1]
        return port


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: only its timeout paces the polling
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        pause.wait(0.02)


def answers(url: str) -> bool:
    """Whether `url` answers HTTP with anything but a 5xx."""
    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False


def process_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This environment without the portal's own variables, plus `overrides`."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(DROPPED_VARIABLES)}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY),
                                                     os.environ.get("PYTHONPATH")]))
    env.update(overrides)
    return env


# -- uvicorn in a thread of this process ----------------------------------------------------

@contextmanager
def server_thread(app: Any, sock: socket.socket | None = None) -> Iterator[str]:
    """Run an ASGI app under uvicorn in a thread of this process; yield its base URL.

    For apps whose state the test reads directly (a recording provider, the demo core)."""
    sock = sock or bound_socket()
    # A handler a test left hanging (a provider that never answers) is cancelled after
    # a second at shutdown rather than waited for.
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=1,
                                           http=PortalHttpProtocol))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout=START_DEADLINE,
                   what="the server thread to start")
        if not server.started:
            raise RuntimeError("the server thread stopped during start-up")
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_DEADLINE)
        sock.close()


# -- a server in a process of its own ------------------------------------------------------

class ServerProcess:
    """`command` in a process of its own, serving on `sockets` it inherits.

    `command` names the sockets by their file descriptors (`sock.fileno()`), which the
    child keeps. The process leads its own process group, so a signal reaches its workers
    too and nothing else. `start` may be called again after `stop` or `kill`: the sockets
    stay open here, so the server comes back at the same URLs. Used as a context manager
    it starts, and at the end stops and closes its sockets."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        sockets: Sequence[socket.socket],
        ready_urls: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        start_timeout: float = START_DEADLINE,
        stop_timeout: float = STOP_DEADLINE,
    ) -> None:
        self.command = list(command)
        self.sockets = list(sockets)
        self.ready_urls = list(ready_urls)
        self.env = dict(env)
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def urls(self) -> list[str]:
        return [url_of(sock) for sock in self.sockets]

    @property
    def url(self) -> str:
        return self.urls[0]

    @property
    def port(self) -> int:
        port: int = self.sockets[0].getsockname()[1]
        return port

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not started"
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> ServerProcess:
        """Start the process and return once every ready URL answers (or raise)."""
        if self.running:
            raise RuntimeError(f"{self.command[0]} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # appended: a restart keeps the earlier life
            self.popen = subprocess.Popen(
                self.command, env=process_env(self.env), cwd=REPOSITORY,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=[sock.fileno() for sock in self.sockets], start_new_session=True,
            )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self.popen is not None
        deadline = time.monotonic() + self.start_timeout
        waiting = list(self.ready_urls)
        while True:
            if self.popen.poll() is not None:
                raise ProcessFailed(f"{self.command[0]} exited with {self.popen.returncode} "
                                    f"during start-up\n--- output ---\n{self.output()}")
            waiting = [url for url in waiting if not answers(url)]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{waiting[0]} did not answer within {self.start_timeout:g}s"
                                    f"\n--- output ---\n{self.output()}")
            # Between polls, wait on the process itself: an early exit ends the wait.
            with suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=0.05)

    def stop(self) -> int | None:
        """SIGTERM (a graceful shutdown), then SIGKILL after `stop_timeout`; the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait(timeout=self.stop_timeout)
        return self.popen.returncode

    def kill(self) -> int | None:
        """kill -9: no shutdown at all, as a crash or an OOM kill leaves things."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self._signal(signal.SIGKILL)
            self.popen.wait(timeout=self.stop_timeout)
        return self.popen.returncode

    def close(self) -> None:
        """Stop the process and close the sockets: the ports are given back."""
        try:
            self.stop()
        finally:
            for sock in self.sockets:
                sock.close()

    def output(self) -> str:
        """Everything the process (every life of it) wrote to stdout and stderr so far."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_lines(self) -> list[str]:
        return self.output().splitlines()

    def _signal(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def __enter__(self) -> ServerProcess:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def uvicorn_command(factory: str, sock: socket.socket) -> list[str]:
    """One uvicorn worker for the app factory `factory` ("module:function") on `sock`,
    with the portal's HTTP protocol (its head limits from PORTAL_* variables) and without
    uvicorn's access log, as `serve` runs the portal."""
    return [sys.executable, "-m", "uvicorn", "--factory", factory, "--fd", str(sock.fileno()),
            "--no-access-log", "--http", "portal.server:PortalHttpProtocol"]


def uvicorn_process(factory: str, *, env: Mapping[str, str], log_path: Path,
                    sock: socket.socket | None = None, ready_path: str = "/") -> ServerProcess:
    """`uvicorn_command` as a `ServerProcess`; ready once `ready_path` answers."""
    sock = sock or bound_socket()
    return ServerProcess(uvicorn_command(factory, sock), sockets=[sock],
                         ready_urls=[url_of(sock) + ready_path], env=env, log_path=log_path)


def serve_command(sock: socket.socket, *flags: str) -> list[str]:
    """`connect-portal serve` with one worker on `sock` (so its pid is the worker's)."""
    return [CONNECT_PORTAL, "serve", "--fd", str(sock.fileno()), "--workers", "1", *flags]


def serve_process(*flags: str, env: Mapping[str, str], log_path: Path,
                  sock: socket.socket | None = None) -> ServerProcess:
    sock = sock or bound_socket()
    return ServerProcess(serve_command(sock, *flags), sockets=[sock],
                         ready_urls=[url_of(sock) + "/healthz"], env=env, log_path=log_path)


def demo_process(*, env: Mapping[str, str], log_path: Path) -> ServerProcess:
    """`connect-portal demo` on four sockets: the portal, the partner page, the demo core
    API and the sandbox OAuth provider, in that order (`urls`)."""
    sockets = [bound_socket() for _ in range(4)]
    fds = ",".join(str(sock.fileno()) for sock in sockets)
    portal, partner, core, provider = (url_of(sock) for sock in sockets)
    return ServerProcess(
        [CONNECT_PORTAL, "demo", "--fds", fds], sockets=sockets, env=env, log_path=log_path,
        ready_urls=[f"{portal}/healthz", f"{partner}/", f"{core}/",
                    f"{provider}/"],
    )


# -- the portal as `serve` runs it -----------------------------------------------------------

@dataclass(frozen=True)
class LivePortal:
    url: str
    redis_prefix: str
    process: ServerProcess

    def log_lines(self) -> list[str]:
        return self.process.log_lines()

    def lines_since(self, start: int, *, until: str) -> list[str]:
        """The log lines from line `start` on, once one of them contains `until`. The
        portal writes a request's access line last, after the answer has gone out: wait
        for it (`"portal.access GET /path "`) before judging what the request logged."""
        wait_until(lambda: any(until in line for line in self.log_lines()[start:]),
                   timeout=10, what=f"a log line with {until!r}")
        return self.log_lines()[start:]

    def client(self, **options: Any) -> httpx.Client:
        """An HTTP client for this portal, as a browser or backend would use it."""
        return httpx.Client(base_url=self.url, timeout=30, **options)


@contextmanager
def portal_process(redis_url: str, log_path: Path, *, api_key: str, secret_key: str,
                   **env: str) -> Iterator[LivePortal]:
    """`portal.asgi:app_from_env` (the `serve` entry point) in a process of its own, under a
    Redis key prefix of its own that is removed at the end; `env` adds PORTAL_* settings."""
    prefix = f"test:live:{uuid.uuid4().hex}:"
    sock = bound_socket()
    url = url_of(sock)
    process = uvicorn_process("portal.asgi:app_from_env", sock=sock, ready_path="/readyz",
                              log_path=log_path, env={
        "PORTAL_PUBLIC_URL": url, "PORTAL_SECRET_KEYS": secret_key, "PORTAL_API_KEYS": api_key,
        "REDIS_URL": redis_url, "PORTAL_REDIS_PREFIX": prefix,
        # Nothing is delivered: a connection to the discard port is refused.
        "CORE_API_URL": f"http://{LOOPBACK}:9", "CORE_API_KEY": "unused-core-key-0123456789",
        **env,
    })
    try:
        with process:
            yield LivePortal(url=url, redis_prefix=prefix, process=process)
    finally:
        delete_keys(redis_url, prefix)


def delete_keys(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# -- a Redis of a test's own, to stop and start ---------------------------------------------

class RedisServer:
    """redis-server on a Unix socket in a directory of its own (no port to find), no
    persistence unless asked (`appendonly`): `stop` (kill -9) loses everything, `start`
    brings back an empty Redis at the same URL."""

    def __init__(self, *, tcp: bool = False, appendonly: bool = False) -> None:
        """`tcp`: clients use a free loopback port as well (the URL is of that port), as
        in production, where a connection to a restarted Redis fails as it does not on a
        Unix socket. It stays the same port across `stop` and `start`. `appendonly`: an
        append-only file in the directory, fsynced on every write (`appendfsync always`),
        so a kill -9 loses nothing and `start` brings back everything written before."""
        self.appendonly = appendonly
        # A short path: a Unix socket's path is limited to about a hundred bytes.
        self.directory = Path(tempfile.mkdtemp(prefix="redis-"))
        self.path = self.directory / "redis.sock"
        self.port = free_port() if tcp else 0
        self.url = (f"redis://127.0.0.1:{self.port}/0" if tcp
                    else f"unix://{self.path}?db=0")
        self.process: ServerProcess | None = None

    def start(self) -> RedisServer:
        if self.process is None:
            self.process = ServerProcess(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                 "--unixsocket", str(self.path),
                 "--unixsocketperm", "700", "--save", "",
                 "--appendonly", "yes" if self.appendonly else "no",
                 # Every write reaches the disk before Redis answers: SIGKILL loses nothing.
                 *(["--appendfsync", "always"] if self.appendonly else []),
                 "--dir", str(self.directory)],
                sockets=[], ready_urls=[], env={}, log_path=self.directory / "redis.log")
        self.process.start()
        wait_until(self._answers, timeout=START_DEADLINE, what="redis-server to answer")
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if not self.process.running:
            raise ProcessFailed(f"redis-server exited:\n{self.process.output()}")
        client = redis.Redis(unix_socket_path=str(self.path), socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def trickling_server(path: str, *, methods: Sequence[str] = ("GET",), head: bytes = b"",
                     tail: bytes = b"", media_type: str = "text/plain") -> Iterator[str]:
    """A server on loopback (its base URL) whose `path` answers 200 with `head`, then one
    byte every 0.2 s for 8 s, then `tail`: never slow enough at any one read to trip a
    per-read timeout, only as a whole."""
    async def drip(request: Request) -> StreamingResponse:
        async def slowly() -> AsyncIterator[bytes]:
            yield head
            for _ in range(40):
                await asyncio.sleep(0.2)
                yield b"a"
            yield tail
        return StreamingResponse(slowly(), media_type=media_type)

    with server_thread(Starlette(routes=[Route(path, drip, methods=list(methods))])) as url:
        yield url


def limit_hits(redis_url: str, *, key_prefix: str, tries: int = 3) -> list[bool]:
    """`tries` hits of one client against a 2-a-minute limit, counted by the `limits`
    storage on the portal's own Redis client for `redis_url` (one Redis, Sentinel or a
    cluster): whether each was let through."""
    async def hits() -> list[bool]:
        client = redis_client(redis_url)
        try:
            limiter = FixedWindowRateLimiter(limits_storage(client, key_prefix=key_prefix))
            limit = parse_limit("2/minute")
            return [await limiter.hit(limit, "someone") for _ in range(tries)]
        finally:
            await client.aclose()

    return asyncio.run(hits())
