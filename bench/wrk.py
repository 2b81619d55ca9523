"""Lookup, poll and the connect page against their floors, and 1 vs 2 workers, driven by wrk
(issue 13, item 8).

wrk is a compiled load generator (`apt-get install wrk`), so on this machine the client is
no longer what limits the figures, as the Python generator of `bench/run.py` is. The servers
are started as `bench/run.py` starts them (its `servers` helper: the floor
`bench.floor:create_floor_app` and the portal `portal.asgi:app_from_env`, one uvicorn worker
each on loopback, real Redis under a key prefix of this run's own, removed at the end, the
portal's rate limits lifted), plus the portal as `connect-portal serve --workers 1` and
`--workers 2` with the same settings. After a warm-up, interleaved rounds measure:

    floor     GET /floor/{key} on the floor: one Redis GET, the portal's lookup body
    lookup    GET /api/v1/connect/session/{sessionId} with the API key
    poll      POST /api/v1/connect/session/poll with the token (a wrk Lua script sends it):
              anonymous, as connect.js polls, so counted against the per-IP limit
    poll-key  the same poll with the API key, as a backend polls (not limited per IP)
    static    GET /page/{size} on the floor: a fixed HTML page the size of the connect page
    page      GET /connect/s/{sessionId} with the browser's cookies: the credential form
    serve-1   lookup on `connect-portal serve --workers 1`
    serve-2   lookup on `connect-portal serve --workers 2`

It reports medians of requests per second, the ratios lookup/floor (target >= 0.9),
poll/floor and poll-key/floor (>= 0.85), page/static and serve-2/serve-1 (>= 1.7), prints
a table and writes everything to .test-run/bench-wrk.json, with the CPU per request of the
server, of wrk and of Redis. The scheduler places the processes; `--pin` puts wrk on CPU 0
and each one-worker server on CPU 1 (`taskset`), which made the figures no steadier here
(bench/README.md); `serve --workers 2` is never pinned, it needs both CPUs (and shares them
with wrk and Redis).

    .venv/bin/python bench/wrk.py [--duration 4] [--warmup 1] [--repeats 3] [--connections 32]
    .venv/bin/python bench/wrk.py --profile    # plus cProfile of floor, lookup, poll, static
                                               # and page: .test-run/bench-wrk-<target>.prof
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import json
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from bench.run import (  # noqa: E402
    AUTH,
    _cpu_model,
    _git_commit,
    cpu_seconds,
    delete_prefix,
    mint,
    servers,
    store_version,
)
from tests.live_servers import (  # noqa: E402
    CONNECT_PORTAL,
    ServerProcess,
    bound_socket,
    url_of,
    uvicorn_command,
)

OUTPUT = REPOSITORY / ".test-run" / "bench-wrk.json"
TARGETS = {"lookup": 0.9, "poll": 0.85, "poll-key": 0.85, "serve-2": 1.7}
WRK_MISSING = ("wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu) or build it "
               "from https://github.com/wg/wrk; only this benchmark needs it.")
WRK_CPU, SERVER_CPU = "0", "1"

# The requests of one target, pre-formatted once per wrk thread and sent in turn; `done`
# prints the figures as one JSON line so nothing depends on wrk's human-readable output.
LUA = """\
local specs = {SPECS}
local prepared = {}
local count = 0
local next_index = 0

function init(args)
  for i, spec in ipairs(specs) do
    prepared[i] = wrk.format(spec[1], spec[2], spec[3], spec[4])
  end
  count = #prepared
end

function request()
  next_index = next_index % count + 1
  return prepared[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: str | None = None


@dataclass
class Round:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu_us_per_request: float
    bytes_per_response: float  # as wrk read them: status line, headers and body
    client_cpu_us_per_request: float  # wrk's own CPU
    redis_cpu_us_per_request: float  # the Redis server's, from INFO cpu (all its clients)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


@dataclass
class Target:
    name: str
    what: str
    base_url: str
    requests: list[Request]
    server_pid: int
    rounds: list[Round] = field(default_factory=list)
    script: Path | None = None

    def median(self) -> float:
        return statistics.median(item.per_second for item in self.rounds)

    def median_cpu_us(self) -> float:
        return statistics.median(item.server_cpu_us_per_request for item in self.rounds)

    def median_client_cpu_us(self) -> float:
        return statistics.median(item.client_cpu_us_per_request for item in self.rounds)

    def median_redis_cpu_us(self) -> float:
        return statistics.median(item.redis_cpu_us_per_request for item in self.rounds)

    def summary(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "median_requests_per_second": round(self.median(), 1),
            "median_server_cpu_us_per_request": round(self.median_cpu_us(), 1),
            "median_client_cpu_us_per_request": round(self.median_client_cpu_us(), 1),
            "median_redis_cpu_us_per_request": round(self.median_redis_cpu_us(), 1),
            "rounds": [{"requests": item.requests, "seconds": round(item.seconds, 3),
                        "requests_per_second": round(item.per_second, 1),
                        "p50_ms": item.p50_ms, "p99_ms": item.p99_ms,
                        "server_cpu_us_per_request": round(item.server_cpu_us_per_request, 1),
                        "bytes_per_response": round(item.bytes_per_response, 1),
                        "client_cpu_us_per_request": round(item.client_cpu_us_per_request, 1),
                        "redis_cpu_us_per_request": round(item.redis_cpu_us_per_request, 1)}
                       for item in self.rounds],
        }


def lua_string(text: str) -> str:
    """A Lua string literal: JSON's quoting, which LuaJIT reads the same way as long as
    there is no \\u escape, i.e. for printable ASCII."""
    if not all(" " <= character <= "~" for character in text):
        raise ValueError(f"not printable ASCII, cannot go into a wrk script: {text!r}")
    return json.dumps(text)


def lua_request(item: Request) -> str:
    headers = ", ".join(f"[{lua_string(name)}] = {lua_string(value)}"
                        for name, value in item.headers.items())
    body = "nil" if item.body is None else lua_string(item.body)
    return f"{{{lua_string(item.method)}, {lua_string(item.path)}, {{{headers}}}, {body}}}"


def write_script(target: Target, directory: Path) -> Path:
    specs = ", ".join(lua_request(item) for item in target.requests)
    path = directory / f"{target.name}.lua"
    path.write_text(LUA.replace("{SPECS}", "{" + specs + "}"), encoding="ascii")
    return path


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and every process under it (uvicorn's workers)."""
    total = cpu_seconds(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        total += sum(process_tree_cpu_seconds(int(child)) for child in children)
    return total


def redis_cpu_seconds(store: redis.Redis | None) -> float:
    if store is None:
        return 0.0
    info = store.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def children_cpu_seconds() -> float:
    """CPU of this process's children that have ended and been waited for: wrk runs (the
    servers are still running, so they are not in it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(target: Target, args: argparse.Namespace, seconds: float,
            store: redis.Redis | None = None) -> Round:
    assert target.script is not None
    command = ["wrk", "--threads", str(args.threads), "--connections", str(args.connections),
               "--duration", f"{max(1, round(seconds))}s", "--timeout", "5s",
               "--script", str(target.script), target.base_url]
    if args.pin:
        command = ["taskset", "--cpu-list", WRK_CPU, *command]
    cpu_before = process_tree_cpu_seconds(target.server_pid)
    client_before, redis_before = children_cpu_seconds(), redis_cpu_seconds(store)
    finished = subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=seconds + 30)
    server_cpu = process_tree_cpu_seconds(target.server_pid) - cpu_before
    client_cpu = children_cpu_seconds() - client_before
    redis_cpu = redis_cpu_seconds(store) - redis_before
    lines = [line for line in finished.stdout.splitlines() if line.startswith("WRK-RESULT ")]
    if finished.returncode != 0 or not lines:
        raise SystemExit(f"{target.name}: wrk failed ({finished.returncode})\n"
                         f"{finished.stdout}\n{finished.stderr}")
    result = json.loads(lines[-1].removeprefix("WRK-RESULT "))
    errors = {kind: result[kind] for kind in ("connect", "read", "write", "status", "timeout")
              if result[kind]}
    if errors or not result["requests"]:
        raise SystemExit(f"{target.name}: wrk saw errors {errors} (status = not 2xx/3xx) "
                         f"in {result['requests']} requests")
    return Round(
        requests=result["requests"], seconds=result["duration_us"] / 1e6,
        p50_ms=round(result["p50_us"] / 1000, 2), p99_ms=round(result["p99_us"] / 1000, 2),
        server_cpu_us_per_request=server_cpu / result["requests"] * 1e6,
        bytes_per_response=result["bytes"] / result["requests"],
        client_cpu_us_per_request=client_cpu / result["requests"] * 1e6,
        redis_cpu_us_per_request=redis_cpu / result["requests"] * 1e6,
    )


def pin(pid: int, cpus: str) -> None:
    """Every thread of `pid` onto `cpus` (the log writer thread included)."""
    subprocess.run(["taskset", "--all-tasks", "--pid", "--cpu-list", cpus, str(pid)],
                   check=True, capture_output=True)


@contextmanager
def serve_process(workers: int, env: dict[str, str], log_path: Path) -> Iterator[ServerProcess]:
    """`connect-portal serve --workers N` on a socket bound here, as production runs it."""
    sock = bound_socket()
    process = ServerProcess(
        [CONNECT_PORTAL, "serve", "--fd", str(sock.fileno()), "--workers", str(workers)],
        sockets=[sock], ready_urls=[url_of(sock) + "/readyz"],
        env={**env, "PORTAL_PUBLIC_URL": url_of(sock)}, log_path=log_path)
    with process:
        yield process


def profiled_app() -> ASGIApp:
    """Uvicorn factory: the app of `BENCH_PROFILE_FACTORY` ("module:function") with cProfile
    on its event loop thread, written to `BENCH_PROFILE_OUTPUT` at lifespan shutdown
    (uvicorn re-raises SIGTERM after shutting down, so `python -m cProfile` never gets to
    write its file)."""
    module, _, name = os.environ["BENCH_PROFILE_FACTORY"].partition(":")
    app: ASGIApp = getattr(importlib.import_module(module), name)()
    profiler = cProfile.Profile()

    async def profiled(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def send_after_dump(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                profiler.disable()
                profiler.dump_stats(os.environ["BENCH_PROFILE_OUTPUT"])
            await send(message)

        profiler.enable()
        await app(scope, receive, send_after_dump)

    return profiled


@contextmanager
def profiled_process(factory: str, env: dict[str, str], log_path: Path, output: Path,
                     ready_path: str) -> Iterator[ServerProcess]:
    """One uvicorn worker of `factory` under cProfile (`profiled_app`)."""
    sock = bound_socket()
    process = ServerProcess(
        uvicorn_command("bench.wrk:profiled_app", sock), sockets=[sock],
        ready_urls=[url_of(sock) + ready_path],
        env={**env, "PORTAL_PUBLIC_URL": url_of(sock), "BENCH_PROFILE_FACTORY": factory,
             "BENCH_PROFILE_OUTPUT": str(output)}, log_path=log_path)
    with process:
        yield process


def browser_cookies(portal_url: str, token: str) -> str:
    """Open `connectUrl` as a browser does; the Cookie header it then sends."""
    with httpx.Client(base_url=portal_url, timeout=10) as client:
        opened = client.get("/connect", params={"token": token})
        if opened.status_code not in (302, 303):
            raise SystemExit(f"GET /connect answered {opened.status_code}, not a redirect")
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def profile(running: dict[str, Any], targets: list[Target], args: argparse.Namespace,
            directory: Path) -> dict[str, Any]:
    """cProfile each of `--profile-targets` in a server process of its own (the floor or the
    portal, same settings) under the same wrk load for `--duration` seconds; the functions
    with the most own time, per request. The .prof files stay for `python -m pstats`."""
    servers_of = {"floor": ("bench.floor:create_floor_app", running["floor"], "/ceiling"),
                  "portal": ("portal.asgi:app_from_env", running["portal"], "/readyz")}
    found: dict[str, Any] = {}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for measured_target in targets:
        if measured_target.name not in args.profile_targets:
            continue
        name = measured_target.name
        server = "floor" if measured_target.base_url == running["floor"].url else "portal"
        factory, running_server, ready = servers_of[server]
        output = args.output.parent / f"bench-wrk-{name}.prof"
        with profiled_process(factory, running_server.process.env,
                              directory / f"profile-{name}.log", output, ready) as process:
            target = Target(name, name, process.url, measured_target.requests, process.pid)
            target.script = write_script(target, directory)
            if args.pin:
                pin(process.pid, SERVER_CPU)
            measured = run_wrk(target, args, args.duration)
        stats = pstats.Stats(str(output))
        rows: list[tuple[float, float, str]] = []
        for (filename, line, function), (_, calls, own, cumulative, _) in (
                stats.stats.items()):  # type: ignore[attr-defined]
            short = filename.split("site-packages/")[-1].replace(str(REPOSITORY) + "/", "")
            rows.append((own, cumulative, f"{function} ({short}:{line}) x{calls}"))
        total_own = sum(own for own, _, _ in rows)
        rows.sort(reverse=True)
        found[name] = {
            "requests": measured.requests,
            "requests_per_second_under_profile": round(measured.per_second, 1),
            "profiled_us_per_request": round(total_own / measured.requests * 1e6, 1),
            "top_own_time": [{"us_per_request": round(own / measured.requests * 1e6, 2),
                              "cumulative_us_per_request":
                                  round(cumulative / measured.requests * 1e6, 2),
                              "function": label}
                             for own, cumulative, label in rows[:args.profile_top]],
        }
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get(
        "TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--duration", type=float, default=4.0,
                        help="seconds per measurement (wrk counts whole seconds)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per target")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--connections", type=int, default=32, help="wrk --connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk --threads")
    parser.add_argument("--sessions", type=int, default=100,
                        help="pending sessions the lookups, polls and pages cycle through")
    parser.add_argument("--portal-log-level", default="INFO",
                        help="PORTAL_LOG_LEVEL (INFO writes an access log line, the default)")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=False,
                        help="wrk on CPU 0 and each one-worker server on CPU 1 (taskset)")
    parser.add_argument("--no-scale-out", dest="scale_out", action="store_false",
                        help="leave out serve --workers 1 vs 2")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile the targets of --profile-targets (one more run each)")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--profile-targets", type=lambda text: text.split(","),
                        default=["floor", "lookup", "poll", "poll-key", "static", "page"],
                        help="comma-separated targets to profile with --profile")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    if shutil.which("wrk") is None:
        raise SystemExit(WRK_MISSING)
    if args.pin and (shutil.which("taskset") is None or (os.cpu_count() or 1) < 2):
        print("not pinning: taskset or a second CPU is missing", flush=True)
        args.pin = False

    prefix = f"bench:{uuid.uuid4().hex}:"
    store = redis.Redis.from_url(args.redis_url, decode_responses=True)
    started_at = datetime.now(tz=UTC)
    clock = time.monotonic()
    load_before = list(os.getloadavg())
    profiles: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="portal-bench-wrk-") as scratch, \
                servers(args.redis_url, prefix, Path(scratch), args.portal_log_level,
                        False) as running, ExitStack() as stack:
            directory = Path(scratch)
            floor, portal = running["floor"], running["portal"]
            issued = mint(portal.url, args.sessions)
            body = httpx.get(f"{portal.url}/api/v1/connect/session/{issued[0]['sessionId']}",
                             headers=AUTH).content
            for index in range(args.sessions):
                store.set(f"{prefix}floor:{index}", body, ex=3600)
            cookies = [browser_cookies(portal.url, item["token"]) for item in issued]
            first_page = httpx.get(f"{portal.url}/connect/s/{issued[0]['sessionId']}",
                                   headers={"Cookie": cookies[0]})
            if first_page.status_code != 200 or "<form" not in first_page.text:
                raise SystemExit(f"the connect page answered {first_page.status_code} "
                                 "without a form")
            page_bytes = len(first_page.content)
            if args.pin:
                pin(floor.process.pid, SERVER_CPU)
                pin(portal.process.pid, SERVER_CPU)

            lookups = [Request("GET", f"/api/v1/connect/session/{item['sessionId']}", AUTH)
                       for item in issued]
            targets = [
                Target("floor", "GET /floor/{key}: bare Starlette, one Redis GET", floor.url,
                       [Request("GET", f"/floor/{index}", {})
                        for index in range(args.sessions)], floor.process.pid),
                Target("lookup", "GET /api/v1/connect/session/{sessionId} (API key)",
                       portal.url, lookups, portal.process.pid),
                Target("poll", "POST /api/v1/connect/session/poll (token)", portal.url,
                       [Request("POST", "/api/v1/connect/session/poll",
                                {"Content-Type": "application/json"},
                                json.dumps({"token": item["token"]})) for item in issued],
                       portal.process.pid),
                Target("poll-key", "POST /api/v1/connect/session/poll (token + API key)",
                       portal.url,
                       [Request("POST", "/api/v1/connect/session/poll",
                                {"Content-Type": "application/json", **AUTH},
                                json.dumps({"token": item["token"]})) for item in issued],
                       portal.process.pid),
                Target("static", f"GET /page/{page_bytes}: fixed HTML of the page's size",
                       floor.url, [Request("GET", f"/page/{page_bytes}", {})],
                       floor.process.pid),
                Target("page", "GET /connect/s/{sessionId}: the credential form (cookies)",
                       portal.url,
                       [Request("GET", f"/connect/s/{item['sessionId']}", {"Cookie": cookie})
                        for item, cookie in zip(issued, cookies, strict=True)],
                       portal.process.pid),
            ]
            if args.scale_out:
                portal_env = dict(portal.process.env)
                for workers in (1, 2):
                    process = stack.enter_context(serve_process(
                        workers, portal_env, directory / f"serve-{workers}.log"))
                    targets.append(Target(
                        f"serve-{workers}", f"lookup on connect-portal serve --workers "
                        f"{workers}" + (" (not pinned)" if workers > 1 else ""),
                        process.url, lookups, process.pid))
                    if args.pin and workers == 1:
                        pin(process.pid, SERVER_CPU)
            for target in targets:
                target.script = write_script(target, directory)

            print(f"wrk: {args.threads} thread(s), {args.connections} connections, "
                  f"{args.duration:g}s per run, {args.repeats} rounds, "
                  + ("wrk on CPU 0, one-worker servers on CPU 1" if args.pin else "no pinning"),
                  flush=True)
            for target in targets:
                run_wrk(target, args, args.warmup)
            for number in range(1, args.repeats + 1):
                for target in targets:
                    measured = run_wrk(target, args, args.duration, store)
                    target.rounds.append(measured)
                    print(f"  round {number}  {target.name:8} {measured.per_second:9.0f} req/s"
                          f"  p50 {measured.p50_ms:6.2f} ms  p99 {measured.p99_ms:6.2f} ms"
                          f"  CPU us/request: server {measured.server_cpu_us_per_request:5.0f}"
                          f" wrk {measured.client_cpu_us_per_request:3.0f}"
                          f" redis {measured.redis_cpu_us_per_request:3.0f}",
                          flush=True)
            if args.profile:
                profiles = profile(running, targets, args, directory)
    finally:
        removed = delete_prefix(store, prefix)
        store.close()

    by_name = {target.name: target for target in targets}
    pairs = [("lookup", "floor"), ("poll", "floor"), ("poll-key", "floor"), ("page", "static")]
    if args.scale_out:
        pairs.append(("serve-2", "serve-1"))
    ratios: dict[str, dict[str, Any]] = {f"{name}/{base}": {
        "throughput": round(by_name[name].median() / by_name[base].median(), 3),
        "capacity_by_server_cpu": round(by_name[base].median_cpu_us()
                                        / by_name[name].median_cpu_us(), 3),
        "target": TARGETS.get(name),
    } for name, base in pairs}
    report = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "wall_seconds": round(time.monotonic() - clock, 1),
        "command": " ".join(["bench/wrk.py", *(sys.argv[1:] if argv is None else argv)]),
        "commit": _git_commit(),
        "machine": {
            "cpus": os.cpu_count(), "platform": platform.platform(),
            "processor": _cpu_model(), "python": platform.python_version(),
            "redis_server": store_version(args.redis_url),
            "wrk": _wrk_version(), "uvicorn": version("uvicorn"),
            "starlette": version("starlette"),
        },
        "settings": {
            "threads": args.threads, "connections": args.connections,
            "duration_s": args.duration, "warmup_s": args.warmup, "repeats": args.repeats,
            "sessions": args.sessions, "portal_log_level": args.portal_log_level,
            "pinned": ("wrk on CPU 0; floor, portal and serve --workers 1 on CPU 1; "
                       "serve --workers 2 not pinned") if args.pin else "no",
            "page_bytes": page_bytes,
        },
        "load_average_1_5_15": {"before": load_before, "after": list(os.getloadavg())},
        "targets": {target.name: target.summary() for target in targets},
        "ratios": ratios,
        "redis_keys_removed": removed,
        "profiles": profiles,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print(f"\nload average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs; medians of {args.repeats} rounds")
    print(f"  {'target':8} {'req/s':>9}   CPU us/req: {'server':>6} {'wrk':>4} {'redis':>5}"
          f" {'bytes':>6}  what")
    for target in targets:
        print(f"  {target.name:8} {target.median():9.0f} {target.median_cpu_us():19.0f}"
              f" {target.median_client_cpu_us():4.0f} {target.median_redis_cpu_us():5.0f}"
              f" {target.rounds[-1].bytes_per_response:6.0f}  {target.what}")
    print("ratios           throughput  capacity (server CPU)  target")
    for pair, figures in ratios.items():
        goal = figures["target"]
        verdict = "" if goal is None else (
            f">= {goal}  " + ("meets" if figures["throughput"] >= goal else "MISSES"))
        print(f"  {pair:14} {figures['throughput']:10.2f} {figures['capacity_by_server_cpu']:12.2f}"
              f"           {verdict}")
    for name, found in profiles.items():
        print(f"\ncProfile of {name}: {found['profiled_us_per_request']:.0f} us of profiled "
              "Python per request (cProfile inflates it); own time per request")
        for row in found["top_own_time"]:
            print(f"  {row['us_per_request']:7.2f} us"
                  f"  (cum {row['cumulative_us_per_request']:7.2f})  {row['function']}")
    print(f"\nwritten to {args.output}")
    return 0


def _wrk_version() -> str:
    finished = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (finished.stdout or finished.stderr).splitlines()[0].split(" [")[0]


if __name__ == "__main__":
    sys.exit(main())
