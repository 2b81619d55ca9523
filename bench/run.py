"""Session lookup and poll throughput against a floor measured in the same run (issue 2).

Starts, each as its own one-worker uvicorn process on loopback with the same settings:
the portal (`portal.asgi:app_from_env`, the `serve` entry point) and the floor
(`bench.floor`: a bare Starlette endpoint doing one Redis GET). Both use the real Redis
under a key prefix of this run's own, removed at the end. A fixed-concurrency async
httpx load generator then measures, after a warm-up, in interleaved rounds:

    ceiling  GET /ceiling on the floor server, no Redis (what the generator can drive)
    floor    GET /floor/{key}: one Redis GET
    lookup   GET /api/v1/connect/session/{sessionId} with the API key
    poll     POST /api/v1/connect/session/poll with the connect token

It reports medians of requests per second and of the server's CPU time per request
(from /proc/<pid>/stat), the ratio of lookup and poll to the floor both ways (target
>= 0.7), and the Redis memory of one pending session (`MEMORY USAGE`, target <= 1 KB).
On a small machine a Python load generator cannot saturate even the floor (compare
`ceiling`), so the CPU ratio is the one that says what the portal costs; see README.md.

`--access-log-compare` measures `lookup-sync` instead of poll: the same lookup on a second
portal process that writes its log lines in the request's task
(`bench.floor:create_portal_with_sync_log`) instead of through the queue handler. "loop
CPU" is the event loop thread's share alone (the queue's writer is another thread).

    .venv/bin/python bench/run.py [--concurrency 32] [--duration 3] [--repeats 3] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import redis

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from tests.live_servers import (  # noqa: E402
    LOOPBACK,
    ServerProcess,
    bound_socket,
    url_of,
    uvicorn_process,
)

RESULTS = REPOSITORY / "bench" / "results"
TARGET_RATIO = 0.7
TARGET_SESSION_BYTES = 1024
PARTNER_ORIGIN = "https://app.example.com"
API_KEY = "bench-" + secrets.token_urlsafe(24)
AUTH = {"Authorization": f"Bearer {API_KEY}"}

Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


@dataclass
class Run:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    server_cpu_seconds: float
    loop_cpu_seconds: float = 0.0  # the server's main (event loop) thread alone

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_seconds / self.requests * 1e6

    @property
    def loop_cpu_us_per_request(self) -> float:
        return self.loop_cpu_seconds / self.requests * 1e6


@dataclass
class Target:
    name: str
    what: str
    send: Send
    server_pid: int
    runs: list[Run] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(run.per_second for run in self.runs)

    def median_cpu_us(self) -> float:
        return statistics.median(run.cpu_us_per_request for run in self.runs)

    def median_loop_cpu_us(self) -> float:
        return statistics.median(run.loop_cpu_us_per_request for run in self.runs)

    def summary(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "median_requests_per_second": round(self.median(), 1),
            "median_server_cpu_us_per_request": round(self.median_cpu_us(), 1),
            "median_loop_cpu_us_per_request": round(self.median_loop_cpu_us(), 1),
            "runs": [{**asdict(run), "requests_per_second": round(run.per_second, 1),
                      "server_cpu_us_per_request": round(run.cpu_us_per_request, 1)}
                     for run in self.runs],
        }


def cpu_seconds(pid: int, *, main_thread_only: bool = False) -> float:
    """User plus system CPU time the process has used so far (all its threads, or only
    its main thread, which runs the event loop)."""
    stat = Path(f"/proc/{pid}/task/{pid}/stat" if main_thread_only
                else f"/proc/{pid}/stat").read_text()
    after_name = stat.rsplit(")", 1)[1].split()
    user, system = int(after_name[11]), int(after_name[12])
    return (user + system) / os.sysconf("SC_CLK_TCK")


async def load(clients: list[httpx.AsyncClient], target: Target, *, seconds: float,
               max_requests: int) -> Run:
    """One worker per client sends back to back until the time or the request budget is spent."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    send = target.send
    cpu_before = cpu_seconds(target.server_pid)
    loop_before = cpu_seconds(target.server_pid, main_thread_only=True)
    started = time.perf_counter()
    deadline = started + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors, issued
        while issued < max_requests and time.perf_counter() < deadline:
            index = issued
            issued += 1
            sent = time.perf_counter()
            response = await send(client, index)
            latencies.append(time.perf_counter() - sent)
            if response.status_code != 200:
                errors += 1

    await asyncio.gather(*(worker(client) for client in clients))
    elapsed = time.perf_counter() - started
    server_cpu = cpu_seconds(target.server_pid) - cpu_before
    loop_cpu = cpu_seconds(target.server_pid, main_thread_only=True) - loop_before
    latencies.sort()
    return Run(
        requests=len(latencies),
        seconds=elapsed,
        errors=errors,
        p50_ms=round(latencies[len(latencies) // 2] * 1000, 2),
        p99_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
        server_cpu_seconds=server_cpu,
        loop_cpu_seconds=loop_cpu,
    )


@dataclass(frozen=True)
class Server:
    url: str
    process: ServerProcess


@contextmanager
def servers(redis_url: str, prefix: str, logs: Path, portal_log_level: str, breakdown: bool,
            sync_log: bool = False) -> Iterator[dict[str, Server]]:
    """The floor and the portal; with `breakdown`, also the floor behind portal middleware;
    with `sync_log`, also the portal writing its log in the request (`portal-sync`)."""
    floors = {"floor": "bench.floor:create_floor_app"}
    if breakdown:
        floors["floor+mw"] = "bench.floor:create_floor_app_with_portal_middleware"
    started: dict[str, Server] = {}
    with ExitStack() as stack:
        for name, factory in floors.items():
            process = stack.enter_context(uvicorn_process(
                factory,
                env={"BENCH_REDIS_URL": redis_url, "BENCH_REDIS_PREFIX": prefix,
                     "PORTAL_LOG_LEVEL": portal_log_level},
                ready_path="/ceiling", log_path=logs / f"{name}.log",
            ))
            started[name] = Server(process.url, process)
        portal_env = {
            "PORTAL_SECRET_KEYS": secrets.token_urlsafe(48),
            "PORTAL_API_KEYS": API_KEY,
            "PORTAL_ALLOWED_ORIGINS": PARTNER_ORIGIN,
            # One load generator is one client address and one API key: the abuse limits would
            # measure themselves, not the portal.
            "PORTAL_RATE_LIMIT_PAGES": "1000000/minute",
            "PORTAL_RATE_LIMIT_POLL": "1000000/minute",
            "PORTAL_RATE_LIMIT_MINT": "1000000/minute",
            "PORTAL_LOG_LEVEL": portal_log_level,
            "REDIS_URL": redis_url,
            "PORTAL_REDIS_PREFIX": prefix,
            # Lookups and polls never call the core API; nothing listens here.
            "CORE_API_URL": f"http://{LOOPBACK}:9",
            "CORE_API_KEY": secrets.token_urlsafe(24),
        }
        portals = {"portal": "portal.asgi:app_from_env"}
        if sync_log:
            portals["portal-sync"] = "bench.floor:create_portal_with_sync_log"
        for name, factory in portals.items():
            portal_socket = bound_socket()
            portal_url = url_of(portal_socket)
            portal = stack.enter_context(uvicorn_process(
                factory, sock=portal_socket,
                env={**portal_env, "PORTAL_PUBLIC_URL": portal_url},
                ready_path="/readyz", log_path=logs / f"{name}.log",
            ))
            started[name] = Server(portal_url, portal)
        yield started


def mint(portal_url: str, count: int, **extra: Any) -> list[dict[str, Any]]:
    issued = []
    with httpx.Client(base_url=portal_url, headers=AUTH, timeout=10) as client:
        for index in range(count):
            body = {"integrationName": "openai", "connectionName": "My OpenAI",
                    "externalId": f"user-{index}", "workspaceId": "ws-1", **extra}
            answer = client.post("/api/v1/connect/token", json=body)
            answer.raise_for_status()
            issued.append(answer.json())
    return issued


def session_memory(store: redis.Redis, prefix: str, session_id: str) -> dict[str, Any]:
    key = f"{prefix}session:{session_id}"
    fields = json.loads(store.get(key) or "{}")
    return {
        "memory_usage_bytes": store.memory_usage(key, samples=0),
        "fields": len(fields),
        "field_and_value_bytes": sum(len(name) + len(value) for name, value in fields.items()),
        "ttl_seconds": store.ttl(key),
    }


def delete_prefix(store: redis.Redis, prefix: str) -> int:
    keys = list(store.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        store.delete(*keys)
    return len(keys)


async def measure(targets: list[Target], args: argparse.Namespace
                  ) -> dict[str, dict[str, Any]]:
    """Warm every target up, then measure them in interleaved rounds; profiles if asked."""
    # One small client per worker: a single httpx pool shared by many concurrent requests
    # slows down sharply as concurrency grows (about 1,800 req/s at 1 and 420 at 32 here),
    # which would measure the generator instead of the servers.
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    profiles: dict[str, dict[str, Any]] = {}
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(httpx.AsyncClient(limits=limits, timeout=10))
                   for _ in range(args.concurrency)]
        for target in targets:
            await load(clients, target, seconds=args.warmup, max_requests=args.max_requests)
        for round_number in range(1, args.repeats + 1):
            for target in targets:
                run = await load(clients, target, seconds=args.duration,
                                 max_requests=args.max_requests)
                if run.errors:
                    raise SystemExit(f"{target.name}: {run.errors} answers were not 200")
                target.runs.append(run)
                print(f"  round {round_number}  {target.name:11} {run.per_second:8.0f} req/s"
                      f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
                      f"  server CPU {run.cpu_us_per_request:6.0f} us/request"
                      f" (loop {run.loop_cpu_us_per_request:4.0f})", flush=True)
        if args.profile:
            for target in targets:
                if target.name in {"floor", "lookup", "poll"}:
                    profiles[target.name] = await profile(clients, target, args)
    return profiles


async def profile(clients: list[httpx.AsyncClient], target: Target, args: argparse.Namespace
                  ) -> dict[str, Any]:
    """Sample the server with py-spy during one extra (uncounted) run of `target`.

    Shares are of the samples py-spy took while the server ran Python code; a share times
    the server CPU per request estimates what that part costs per request. Time spent in
    C (uvloop, httptools, the kernel) shows under the Python frame that called it, or not
    at all when the event loop itself runs."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = RESULTS / f"profile-{target.name}.txt"
    seconds = max(2, int(args.duration))
    spy = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(target.server_pid),
        "--rate", "1000", "--format", "raw", "--function", "--duration", str(seconds + 1),
        "--output", str(output), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    run = await load(clients, target, seconds=seconds + 2, max_requests=args.max_requests)
    if await spy.wait() != 0:
        raise SystemExit("py-spy failed; install it with: .venv/bin/pip install py-spy")
    stacks = read_collapsed(output)
    total = sum(count for _, count in stacks)

    def rows(counts: dict[str, int]) -> list[dict[str, Any]]:
        ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
        return [{"share": round(count / total, 4),
                 "us_per_request": round(count / total * run.cpu_us_per_request, 1),
                 "name": name} for name, count in ranked[:args.profile_top]]

    by_package: dict[str, int] = {}
    app_frames: dict[str, int] = {}
    for frames, count in stacks:
        package = package_of(frames[-1])
        by_package[package] = by_package.get(package, 0) + count
        for frame in set(frames):
            if "portal/" in frame or "floor.py" in frame or "itsdangerous/" in frame:
                app_frames[frame] = app_frames.get(frame, 0) + count
    return {"server_cpu_us_per_request": round(run.cpu_us_per_request, 1),
            "self_by_package": rows(by_package), "inclusive_app_frames": rows(app_frames)}


def read_collapsed(path: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) output: one `frame;frame;frame count` line per stack."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if number.isdigit() and stack:
            stacks.append((stack.split(";"), int(number)))
    return stacks


def package_of(frame: str) -> str:
    """`func (starlette/routing.py:679)` -> `starlette`; `f (<frozen runpy>:88)` -> `runpy`."""
    location = frame.rpartition(" (")[2].rstrip(")").rsplit(":", 1)[0]
    location = location.removeprefix("<frozen ").rstrip(">")
    return location.split("/", 1)[0] if "/" in location else location


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get(
        "TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per target")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-requests", type=int, default=200_000,
                        help="upper bound of requests per measurement")
    parser.add_argument("--sessions", type=int, default=100,
                        help="pending sessions the lookups and polls cycle through")
    parser.add_argument("--profile", action="store_true",
                        help="also sample the portal with py-spy (pip install py-spy)")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--breakdown", action="store_true",
                        help="also measure steps between the floor and the portal: the "
                        "session record read, and the floor behind the portal's middleware")
    parser.add_argument("--access-log-compare", action="store_true",
                        help="also measure lookup on a portal that writes its access log "
                        "synchronously (lookup-sync) instead of through the queue handler")
    parser.add_argument("--portal-log-level", default="INFO",
                        help="PORTAL_LOG_LEVEL for the portal (INFO writes an access log line)")
    args = parser.parse_args(argv)

    prefix = f"bench:{uuid.uuid4().hex}:"
    store = redis.Redis.from_url(args.redis_url, decode_responses=True)
    started_at = datetime.now(tz=UTC)
    load_before = list(os.getloadavg())
    try:
        with tempfile.TemporaryDirectory(prefix="portal-bench-") as logs, \
                servers(args.redis_url, prefix, Path(logs), args.portal_log_level,
                        args.breakdown, args.access_log_compare) as running:
            floor_url, floor = running["floor"].url, running["floor"].process
            portal_url, portal = running["portal"].url, running["portal"].process
            issued = mint(portal_url, args.sessions)
            full = mint(portal_url, 1, endUserId="end-user-0001", scope="WORKSPACE",
                        authMethodKey="api_key", workspaceIntegrationId="wi-0001",
                        allowedOrigins=[PARTNER_ORIGIN],
                        successRedirectUri=f"{PARTNER_ORIGIN}/integrations/connected",
                        errorRedirectUri=f"{PARTNER_ORIGIN}/integrations/failed")[0]
            memory = {
                "typical": session_memory(store, prefix, issued[0]["sessionId"]),
                "all_optional_fields": session_memory(store, prefix, full["sessionId"]),
            }
            sample_session = httpx.get(
                f"{portal_url}/api/v1/connect/session/{issued[0]['sessionId']}", headers=AUTH
            ).content
            for index in range(args.sessions):
                store.set(f"{prefix}floor:{index}", sample_session, ex=3600)

            n = args.sessions
            floor_paths = [f"{floor_url}/floor/{index}" for index in range(n)]
            lookup_paths = [f"{portal_url}/api/v1/connect/session/{item['sessionId']}"
                            for item in issued]
            poll_url = f"{portal_url}/api/v1/connect/session/poll"
            poll_bodies = [json.dumps({"token": item["token"]}).encode() for item in issued]
            json_type = {"Content-Type": "application/json"}

            targets = [
                Target("ceiling", "GET /ceiling (floor server, no Redis)",
                       lambda client, i: client.get(f"{floor_url}/ceiling"), floor.pid),
                Target("floor", "GET /floor/{key}: bare Starlette, one Redis GET",
                       lambda client, i: client.get(floor_paths[i % n]), floor.pid),
            ]
            if args.breakdown:
                mw_url, mw = running["floor+mw"].url, running["floor+mw"].process
                record_paths = [f"{floor_url}/record/{item['sessionId']}" for item in issued]
                mw_paths = [f"{mw_url}/floor/{index}" for index in range(n)]
                targets += [
                    Target("record", "GET /record/{sessionId}: bare Starlette, one GET of "
                           "the session record, parsed, as JSON",
                           lambda client, i: client.get(record_paths[i % n]), floor.pid),
                    Target("floor+mw", "GET /floor/{key} behind the portal's middleware "
                           "and logging", lambda client, i: client.get(mw_paths[i % n]),
                           mw.pid),
                ]
            targets += [
                Target("lookup", "GET /api/v1/connect/session/{sessionId} (API key)",
                       lambda client, i: client.get(lookup_paths[i % n], headers=AUTH),
                       portal.pid),
                Target("poll", "POST /api/v1/connect/session/poll (token)",
                       lambda client, i: client.post(poll_url, content=poll_bodies[i % n],
                                                     headers=json_type), portal.pid),
            ]
            if args.access_log_compare:
                sync_url, sync = running["portal-sync"].url, running["portal-sync"].process
                sync_paths = [path.replace(portal_url, sync_url, 1) for path in lookup_paths]
                # Lookup only: this mode is about the log write, which lookup and poll
                # share; poll's per-client limit would refuse a one-address generator.
                targets[-1] = Target(
                    "lookup-sync", "GET /api/v1/connect/session/{sessionId}, log written "
                    "in the request (no queue)",
                    lambda client, i: client.get(sync_paths[i % n], headers=AUTH), sync.pid)
            print(f"measuring: concurrency {args.concurrency}, {args.duration:g}s per run, "
                  f"{args.repeats} rounds, portal log level {args.portal_log_level}", flush=True)
            profiles = asyncio.run(measure(targets, args))
            portal_log_lines = len(portal.output().splitlines())
    finally:
        removed = delete_prefix(store, prefix)
        store.close()

    by_name = {target.name: target for target in targets}
    baseline = by_name["floor"]
    # Throughput ratio: what the generator measured. Capacity ratio: floor CPU per request
    # over the portal's, i.e. the throughput ratio once the server is the bottleneck.
    ratios = {name: {
        "throughput": by_name[name].median() / baseline.median(),
        "capacity_by_server_cpu": baseline.median_cpu_us() / by_name[name].median_cpu_us(),
        "capacity_by_loop_cpu": (baseline.median_loop_cpu_us()
                                 / by_name[name].median_loop_cpu_us()),
    } for name in ("lookup", "poll", "lookup-sync") if name in by_name}
    report = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "command": " ".join([_shown(Path(sys.executable)), "bench/run.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "commit": _git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "processor": _cpu_model(),
            "python": platform.python_version(),
            "redis_server": store_version(args.redis_url),
            "uvicorn": version("uvicorn"),
            "starlette": version("starlette"),
            "httpx": version("httpx"),
        },
        "settings": {
            "concurrency": args.concurrency, "duration_s": args.duration,
            "warmup_s": args.warmup, "repeats": args.repeats, "sessions": args.sessions,
            "uvicorn": "one worker each, --no-access-log, loopback",
            "portal_log_level": args.portal_log_level,
            "access_log_compare": args.access_log_compare,
        },
        "load_average_1_5_15": {"before": load_before, "after": list(os.getloadavg())},
        "targets": {target.name: target.summary() for target in targets},
        "ratio_to_floor": {name: {kind: round(value, 3) for kind, value in pair.items()}
                           for name, pair in ratios.items()},
        "ratio_target": TARGET_RATIO,
        "session_memory": memory,
        "session_memory_target_bytes": TARGET_SESSION_BYTES,
        "portal_log_lines": portal_log_lines,
        "redis_keys_removed": removed,
        "profiles": profiles,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    for name, found in profiles.items():
        print(f"\nprofile of {name} ({found['server_cpu_us_per_request']:.0f} us of server CPU "
              "per request): share of Python samples, ~us per request")
        for heading, key in (("self time by package", "self_by_package"),
                             ("inclusive, app frames", "inclusive_app_frames")):
            print(f"  {heading}")
            for item in found[key]:
                print(f"    {item['share']:6.1%} {item['us_per_request']:6.1f}  {item['name']}")
    print(f"\nload average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}"
          f" on {os.cpu_count()} CPUs (other work on the machine skews req/s)")
    print(f"medians of {args.repeats} runs   req/s   server CPU us/request   loop CPU")
    for target in targets:
        print(f"  {target.name:11} {target.median():11.0f} {target.median_cpu_us():12.0f}"
              f" {target.median_loop_cpu_us():10.0f}   {target.what}")
    print(f"ratio to the floor (target >= {TARGET_RATIO})")
    for name, pair in ratios.items():
        for kind, ratio in pair.items():
            verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
            print(f"  {name:11} {kind:24} {ratio:5.2f}  {verdict}")
    for kind, figures in memory.items():
        used = figures["memory_usage_bytes"]
        verdict = "meets" if used <= TARGET_SESSION_BYTES else "MISSES"
        print(f"  pending session ({kind}): MEMORY USAGE {used} bytes, "
              f"{figures['fields']} fields ({verdict} the {TARGET_SESSION_BYTES} B target)")
    print(f"\nwritten to {path.relative_to(REPOSITORY)}")
    return 0


def _git_commit() -> str:
    """The commit measured, with `+dirty` when the working tree has changes."""
    def git(*arguments: str) -> str:
        return subprocess.run(["git", *arguments], cwd=REPOSITORY, capture_output=True,
                              text=True, check=False).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--", "portal") else "")


def _shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it (as a README would show it)."""
    try:
        return str(path.relative_to(REPOSITORY))
    except ValueError:
        return str(path)


def store_version(url: str) -> str:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
