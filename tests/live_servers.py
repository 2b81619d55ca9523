"""Real servers for end-to-end tests: uvicorn in a thread of this process, or in a
process of its own, each on a socket bound to a free loopback port.

The socket is bound here first and handed over (to the thread, or as an inherited file
descriptor to the child process), so no port is ever guessed and nothing races for it.
Readiness is awaited by polling with a deadline, never by sleeping a fixed time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from portal.server import PortalHttpProtocol

REPO = Path(__file__).resolve().parent.parent
START_DEADLINE = 30.0


def bound_socket() -> socket.socket:
    """A socket bound to a free loopback port, not yet listening: connections to it are
    refused until a server takes it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def loopback_socket() -> socket.socket:
    sock = bound_socket()
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        pause.wait(0.02)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False


@contextmanager
def server_thread(app: Any, sock: socket.socket | None = None) -> Iterator[str]:
    """Run an ASGI app under uvicorn in a thread of this process; yield its base URL."""
    sock = sock or loopback_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=2,
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
        thread.join(timeout=10)
        sock.close()


class ServerProcess:
    """uvicorn in a child process, serving `factory` ("module:function") on an inherited fd."""

    def __init__(self, factory: str, *, env: dict[str, str], log_path: Path,
                 sock: socket.socket | None = None, ready_path: str = "/") -> None:
        self.sock = sock or loopback_socket()
        self.url = url_of(self.sock)
        self.factory = factory
        self.env = env
        self.log_path = log_path
        self.ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        fd = self.sock.fileno()
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO)}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", self.factory, "--fd", str(fd),
                 "--no-access-log", "--log-level", "warning",
                 "--http", "portal.server:PortalHttpProtocol"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, pass_fds=(fd,),
            )
        process = self.process
        wait_until(lambda: process.poll() is not None or answers(self.url + self.ready_path),
                   timeout=START_DEADLINE, what=f"{self.factory} to answer at {self.url}")
        if process.poll() is not None:
            raise RuntimeError(f"{self.factory} exited during start-up:\n{self.log()}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.sock.close()
