"""Instructions per request, counted by valgrind's callgrind, for the floor and the portal.

wrk's requests per second (bench/wrk.py) move by 4-25 % between rounds on a shared
2-core machine. An instruction count does not: the same code, inputs and environment give
the same count whatever else the machine runs. So this is the measure to compare two
commits with, and to see what each part of a request costs.

Each target runs in a process of its own under callgrind: the floor app
(bench/floor.py) and the portal as `serve` builds it (`portal.asgi:app_from_env`) start
in that process, lifespans included, on the real Redis under a prefix of the run's own,
and then N requests go to one of them through ASGI directly. uvicorn is left out on
purpose: it does the same work for both apps (a POST body apart), and counting it would
only dilute the difference. A run of the same process with no requests counts the
start-up; (count with N requests - count with none) / N is the count per request.

    .venv/bin/python bench/instructions.py                # about 6 minutes on 2 CPUs
    .venv/bin/python bench/instructions.py --requests 200 --targets floor,lookup

| target | what |
|---|---|
| ceiling | `GET /ceiling` on the floor app: constant JSON, no Redis |
| floor | `GET /floor/{key}`: one Redis GET, the lookup's answer as stored bytes |
| lookup | `GET /api/v1/connect/session/{id}` with the API key, access log at INFO |
| lookup-quiet | the same with PORTAL_LOG_LEVEL=WARNING: no access line |
| poll | `POST /api/v1/connect/session/poll` with the token, anonymous (per-IP limit) |
| poll-key | the same poll from a backend with its API key (not limited per IP) |

It needs valgrind (`apt-get install valgrind`); `./dev test` does not. The table goes to
stdout, the figures to .test-run/bench-instructions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from bench.run import _git_commit, _shown, delete_prefix  # noqa: E402

OUTPUT = REPOSITORY / ".test-run" / "bench-instructions.json"
API_KEY = "bench-instructions-key-0123456789"
PARTNER_ORIGIN = "https://partner.example"
COLLECTED = re.compile(r"Collected : (\d+)")
VALGRIND_MISSING = "valgrind is not installed: apt-get install valgrind"


@dataclass(frozen=True)
class Target:
    name: str
    what: str
    log_level: str = "INFO"


TARGETS = {target.name: target for target in [
    Target("ceiling", "GET /ceiling: constant JSON, no Redis"),
    Target("floor", "GET /floor/{key}: one Redis GET"),
    Target("lookup", "GET /api/v1/connect/session/{id} (API key)"),
    Target("lookup-quiet", "lookup, PORTAL_LOG_LEVEL=WARNING", log_level="WARNING"),
    Target("poll", "POST /api/v1/connect/session/poll (token, per-IP limit)"),
    Target("poll-key", "poll with the API key (no per-IP limit)"),
]}


# -- inside the counted process ---------------------------------------------------------------

@dataclass
class Answer:
    status: int = 0
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


async def call(app: Any, method: str, path: str, headers: dict[str, str] | None = None,
               body: bytes = b"") -> Answer:
    """One request through `app` as uvicorn would hand it over, and its answer."""
    raw_headers = [(name.lower().encode(), value.encode())
                   for name, value in (headers or {}).items()]
    if body:
        raw_headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": raw_headers,
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}
    answer = Answer()
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await app(scope, receive, send)
    return answer


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[None]:
    """`app` between its lifespan's start-up and shut-down, as uvicorn runs it."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await to_app.put({"type": "lifespan.startup"})
    task = asyncio.get_running_loop().create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
            to_app.get, from_app.put))
    message = await from_app.get()
    if message["type"] != "lifespan.startup.complete":
        raise SystemExit(f"start-up failed: {message}")
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await from_app.get()
        await task


async def counted_run(target: Target, requests: int, redis_url: str, prefix: str) -> None:
    """The body of one counted process: start both apps, make one session, then send
    `requests` requests of `target`."""
    os.environ.update({
        "BENCH_REDIS_URL": redis_url, "BENCH_REDIS_PREFIX": prefix,
        "PORTAL_SECRET_KEYS": uuid.uuid4().hex * 2, "PORTAL_API_KEYS": API_KEY,
        "PORTAL_ALLOWED_ORIGINS": PARTNER_ORIGIN, "PORTAL_PUBLIC_URL": "http://127.0.0.1:8000",
        # One client address and one API key: the limits would only measure themselves.
        "PORTAL_RATE_LIMIT_PAGES": "1000000/minute", "PORTAL_RATE_LIMIT_POLL": "1000000/minute",
        "PORTAL_RATE_LIMIT_MINT": "1000000/minute", "PORTAL_LOG_LEVEL": target.log_level,
        "REDIS_URL": redis_url, "PORTAL_REDIS_PREFIX": prefix,
        "CORE_API_URL": "http://127.0.0.1:9", "CORE_API_KEY": uuid.uuid4().hex,
    })
    from bench.floor import create_floor_app
    from portal.asgi import app_from_env

    floor, portal = create_floor_app(), app_from_env()
    async with running(floor), running(portal):
        await send_requests(floor, portal, target, requests, redis_url, prefix)


async def send_requests(floor: Any, portal: Any, target: Target, requests: int,
                        redis_url: str, prefix: str) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    minted = await call(portal, "POST", "/api/v1/connect/token",
                        {**auth, "Content-Type": "application/json"},
                        json.dumps({"integrationName": "openai", "connectionName": "Bench",
                                    "externalId": "user-1", "workspaceId": "ws-1"}).encode())
    if minted.status != 200:
        raise SystemExit(f"minting answered {minted.status}: {minted.body[:300]!r}")
    issued = json.loads(minted.body)
    lookup_path = f"/api/v1/connect/session/{issued['sessionId']}"
    looked_up = await call(portal, "GET", lookup_path, auth)
    store = redis.Redis.from_url(redis_url)
    store.set(f"{prefix}floor:1", looked_up.body, ex=3600)
    store.close()
    poll_body = json.dumps({"token": issued["token"]}).encode()
    json_type = {"Content-Type": "application/json"}
    requests_of: dict[str, Callable[[], Awaitable[Answer]]] = {
        "ceiling": lambda: call(floor, "GET", "/ceiling"),
        "floor": lambda: call(floor, "GET", "/floor/1"),
        "lookup": lambda: call(portal, "GET", lookup_path, auth),
        "lookup-quiet": lambda: call(portal, "GET", lookup_path, auth),
        "poll": lambda: call(portal, "POST", "/api/v1/connect/session/poll", json_type,
                             poll_body),
        "poll-key": lambda: call(portal, "POST", "/api/v1/connect/session/poll",
                                 {**json_type, **auth}, poll_body),
    }
    send = requests_of[target.name]
    for number in range(requests):
        answer = await send()
        if number == 0 and answer.status != 200:
            raise SystemExit(f"{target.name} answered {answer.status}: {answer.body[:300]!r}")


def run_counted(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", choices=sorted(TARGETS), required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args(argv)
    import uvloop  # the loop `serve` runs on

    uvloop.run(counted_run(TARGETS[args.run], args.requests, args.redis_url, args.prefix))
    return 0


# -- the driver ----------------------------------------------------------------------------------

def count(target: Target, requests: int, redis_url: str, prefix: str) -> int:
    """Instructions of one process under callgrind running `requests` of `target`."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, str(Path(__file__).resolve()), "--run", target.name,
               "--requests", str(requests), "--redis-url", redis_url, "--prefix", prefix]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                            cwd=REPOSITORY,
                            check=False)
    found = COLLECTED.findall(result.stderr)
    if result.returncode != 0 or not found:
        raise SystemExit(f"{target.name} ({requests} requests) failed:\n"
                         + result.stderr[-3000:])
    return int(found[-1])


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if "--run" in arguments:
        return run_counted(arguments)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get(
        "TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--requests", type=int, default=1000, help="requests per target")
    parser.add_argument("--targets", type=lambda text: text.split(","),
                        default=list(TARGETS), help="comma-separated, of: " + ", ".join(TARGETS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="processes under valgrind at once")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(arguments)
    if shutil.which("valgrind") is None:
        raise SystemExit(VALGRIND_MISSING)
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        raise SystemExit(f"unknown targets: {', '.join(sorted(unknown))}")
    targets = [TARGETS[name] for name in args.targets]
    if "floor" not in args.targets:
        targets.insert(0, TARGETS["floor"])  # every ratio is to the floor

    prefix = f"bench:instructions:{uuid.uuid4().hex}:"
    started_at = datetime.now(tz=UTC)
    # One start-up count per log level: the start-up is the same for every target.
    runs: dict[tuple[str, int], Target] = {}
    for target in targets:
        runs[(target.name, args.requests)] = target
        runs.setdefault((f"start-up {target.log_level}", 0), target)
    print(f"{len(runs)} processes under callgrind, {args.jobs} at a time, "
          f"{args.requests} requests per target", flush=True)
    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {key: pool.submit(count, target, key[1], args.redis_url, prefix)
                       for key, target in runs.items()}
            counts = {key: future.result() for key, future in futures.items()}
    finally:
        store = redis.Redis.from_url(args.redis_url)
        delete_prefix(store, prefix)
        store.close()

    per_request = {
        target.name: (counts[(target.name, args.requests)]
                      - counts[(f"start-up {target.log_level}", 0)]) / args.requests
        for target in targets}
    floor = per_request["floor"]
    print("\n| target | instructions per request | floor / target | what |\n|---|---:|---:|---|")
    for target in targets:
        print(f"| {target.name} | {per_request[target.name] / 1000:,.0f} k | "
              f"{floor / per_request[target.name]:.2f} | {target.what} |")
    report = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "command": " ".join(["bench/instructions.py", *arguments]),
        "commit": _git_commit(),
        "requests_per_target": args.requests,
        "instructions_per_request": {name: round(value) for name, value in per_request.items()},
        "floor_over_target": {name: round(floor / value, 3)
                              for name, value in per_request.items()},
        "raw_counts": {f"{name} x{requests}": value
                       for (name, requests), value in counts.items()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {_shown(args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
