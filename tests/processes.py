"""Start real server processes for end-to-end tests: free loopback ports, a controlled
environment, a readiness check with a deadline, the output captured to a file, and a
clean stop (terminate, then kill).

    with run_process(["connect-portal", "demo", "--port", str(port)], env=env,
                     ready_urls=[f"http://127.0.0.1:{port}/healthz"], log_path=log) as process:
        ...
        assert "sk-" not in process.output()
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import httpx
from starlette.applications import Starlette

from portal.demo.core import create_core_app

REPOSITORY = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
# Below Linux's ephemeral range (32768-60999), so outgoing connections do not take them.
PORT_RANGE = (20000, 32000)
# Variables that would change what the portal does; a test says explicitly what it wants.
INHERITED_PREFIXES_DROPPED = ("PORTAL_", "CORE_API_", "REDIS_URL")


class ProcessFailed(RuntimeError):
    """The process exited early or never became ready; the message ends with its output."""


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int = 1, host: str = LOOPBACK) -> int:
    """The first of `count` consecutive ports that are free on `host` right now."""
    rng = random.Random()
    for _ in range(500):
        first = rng.randrange(PORT_RANGE[0], PORT_RANGE[1] - count)
        if all(port_is_free(first + offset, host) for offset in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports found on {host}")


def process_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This environment without the portal's own variables, plus `overrides`."""
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith(INHERITED_PREFIXES_DROPPED)
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


class RunningProcess:
    def __init__(self, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        """Everything it wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_until_ready(self, url: str, *, timeout: float = 20.0) -> None:
        """Poll `url` until it answers with a non-5xx status, or fail with the output."""
        deadline = time.monotonic() + timeout
        last_problem = "no answer yet"
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self.popen.poll() is not None:
                    raise ProcessFailed(
                        f"process exited with {self.popen.returncode} before {url} answered"
                        f"\n--- output ---\n{self.output()}"
                    )
                try:
                    status = client.get(url).status_code
                except httpx.TransportError as exc:
                    last_problem = type(exc).__name__
                else:
                    if status < 500:
                        return
                    last_problem = f"HTTP {status}"
                if time.monotonic() >= deadline:
                    raise ProcessFailed(
                        f"{url} not ready after {timeout:g}s ({last_problem})"
                        f"\n--- output ---\n{self.output()}"
                    )
                # Between polls, wait on the process itself: an early exit ends the wait.
                with suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=0.05)

    def stop(self, *, timeout: float = 10.0) -> int:
        """SIGTERM (graceful shutdown), then SIGKILL after `timeout`; returns the exit code."""
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait(timeout=timeout)
        return self.popen.returncode

    def _signal(self, sig: signal.Signals) -> None:
        # The process leads its own group (start_new_session), so this reaches its
        # workers too and nothing else.
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


@contextmanager
def run_process(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    ready_urls: Sequence[str],
    log_path: Path,
    ready_timeout: float = 20.0,
    stop_timeout: float = 10.0,
) -> Iterator[RunningProcess]:
    """Run `command` with `env` (see `process_env`) until the block ends.

    The block starts once every URL in `ready_urls` answers."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        log = stack.enter_context(log_path.open("wb"))
        popen = subprocess.Popen(
            list(command), env=process_env(env), cwd=REPOSITORY,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process = RunningProcess(popen, log_path)
        stack.callback(process.stop, timeout=stop_timeout)
        deadline = time.monotonic() + ready_timeout
        for url in ready_urls:
            process.wait_until_ready(url, timeout=max(0.1, deadline - time.monotonic()))
        yield process


def uvicorn_command(app: str, *, port: int, factory: bool = True) -> list[str]:
    """One uvicorn worker on loopback, without uvicorn's own access log, with the portal's
    own HTTP protocol (its head limits read from PORTAL_* variables), as `serve` runs."""
    command = [sys.executable, "-m", "uvicorn", app, "--host", LOOPBACK, "--port", str(port),
               "--workers", "1", "--no-access-log", "--http", "portal.server:PortalHttpProtocol"]
    if factory:
        command.append("--factory")
    return command


def demo_command(port: int) -> list[str]:
    """`connect-portal demo`: the portal on `port`; the partner page, the core API and the
    sandbox OAuth provider on the next three ports (reserve four with `free_ports(4)`)."""
    return [str(Path(sys.executable).with_name("connect-portal")), "demo",
            "--host", LOOPBACK, "--port", str(port)]


def core_app_from_env() -> Starlette:
    """The demo core API as a uvicorn factory: `tests.processes:core_app_from_env`."""
    return create_core_app(os.environ["CORE_API_KEY"])
