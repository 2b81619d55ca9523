"""Delivery under load: connect flows through the portal to a core API stand-in, with and
without a core outage.

Each run starts, as processes of their own on sockets bound here (loopback only):

    the core stand-in   tests.core_standin:app_from_env, one uvicorn worker, answering in
                        50 ms (`--latency-ms`), honouring Idempotency-Key
    the portal          `connect-portal serve --workers 2` (`--workers`), real Redis under a
                        key prefix of the run's own, removed at the end

and drives `--flows` SECRET_TEXT flows through it, at most `--concurrency` at a time, each
as a partner backend and a browser (its own cookie jar) would: mint a connect token, open
the connect link, submit the form, then poll the session until it is COMPLETED or FAILED.
The submit answer is never taken as the outcome (with the outbox it may be a "Finishing
your connection..." page): every flow is polled to a final status, until `--final-wait`
seconds after the last submit.

    A  the core answers every request in 50 ms
    B  the same, plus a `--outage` seconds 503 outage of the core, started once a third
       of the flows have been submitted (/_control/mode with for_seconds: it ends by itself)

Per run: completed, failed and not-final sessions, duplicates at the core (keys holding
more than one connection, accounts holding more than one), connections at the core
against completed sessions, submit latency p50/p99, the outbox's peak depth (GET /readyz
sampled every 0.5 s; "n/a" while /readyz has no "outbox"), and wall time. A table is
printed and everything goes to bench/results/delivery-<UTC time>.json (git ignores it),
with the processes' logs beside it in bench/results/delivery-<UTC time>/.

    .venv/bin/python bench/delivery.py [--flows 1000] [--concurrency 50] [--outage 20]
        [--runs A,B] [--rate 0] [--portal-env PORTAL_DELIVERY_INLINE_BUDGET=3 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import secrets
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import redis

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))

from tests.core_standin import core_standin_process, set_mode  # noqa: E402
from tests.core_standin import stats as standin_stats  # noqa: E402
from tests.live_servers import (  # noqa: E402
    CONNECT_PORTAL,
    ProcessFailed,
    ServerProcess,
    bound_socket,
    delete_keys,
    url_of,
)

RESULTS = REPOSITORY / "bench" / "results"
API_KEY = "bench-" + secrets.token_urlsafe(24)
CORE_API_KEY = "bench-core-" + secrets.token_urlsafe(24)
SECRET_KEY = secrets.token_urlsafe(48)
AUTH = {"Authorization": f"Bearer {API_KEY}"}
FINAL = frozenset({"COMPLETED", "FAILED"})
READYZ_EVERY = 0.5
CSRF_MARKER = 'name="csrf_token" value="'


@dataclass
class Flow:
    index: int
    session_id: str | None = None
    token: str | None = None
    submit_status: int | None = None
    submit_ms: float | None = None
    submitted_at: float | None = None  # seconds since the run's load started
    final_at: float | None = None
    status: str = "NOT_STARTED"  # the last status seen; NOT_STARTED / DRIVER_ERROR before one
    connection_id: str | None = None
    error_code: str | None = None
    driver_error: str | None = None
    poll_errors: int = 0
    polls: int = 0
    first_poll_status: str | None = None


@dataclass
class RunState:
    name: str
    portal_url: str
    core_url: str
    flows: list[Flow]
    outage: float
    started: float = field(default_factory=time.monotonic)
    submitted: int = 0
    last_submit_at: float | None = None
    poll_deadline: float | None = None  # monotonic; set once every submit is done
    outage_started_at: float | None = None
    outage_trigger_error: str | None = None
    depth_samples: list[tuple[float, int | None]] = field(default_factory=list)
    readyz_failures: int = 0
    poll_ms: list[float] = field(default_factory=list)
    poll_wait_ms: list[float] = field(default_factory=list)  # waiting for a free poll slot
    timed_out: bool = False

    def now(self) -> float:
        return time.monotonic() - self.started


# -- the processes ----------------------------------------------------------------------------

def portal_process(args: argparse.Namespace, *, core_url: str, prefix: str,
                   log_path: Path) -> ServerProcess:
    """`connect-portal serve` with `--workers` workers on a socket bound here (serve_command
    pins one worker, so the command is built here)."""
    sock = bound_socket()
    url = url_of(sock)
    env = {
        "PORTAL_PUBLIC_URL": url, "PORTAL_SECRET_KEYS": SECRET_KEY, "PORTAL_API_KEYS": API_KEY,
        "REDIS_URL": args.redis_url, "PORTAL_REDIS_PREFIX": prefix,
        "CORE_API_URL": core_url, "CORE_API_KEY": CORE_API_KEY,
        # The built-in OpenAI entry would check the key with OpenAI.
        "PORTAL_VERIFY_CREDENTIALS": "false",
        # One load generator is one client address and one API key: the abuse limits would
        # measure themselves, not the portal.
        "PORTAL_RATE_LIMIT_PAGES": "1000000/minute",
        "PORTAL_RATE_LIMIT_POLL": "1000000/minute",
        "PORTAL_RATE_LIMIT_MINT": "1000000/minute",
        "PORTAL_LOG_LEVEL": args.portal_log_level,
        **dict(item.split("=", 1) for item in args.portal_env),
    }
    if args.portal_root:
        # The console script's directory comes first on its sys.path, then PYTHONPATH:
        # `portal` is imported from that checkout, not from this one.
        env["PYTHONPATH"] = os.pathsep.join([str(args.portal_root), str(REPOSITORY)])
    return ServerProcess(
        [CONNECT_PORTAL, "serve", "--fd", str(sock.fileno()), "--workers", str(args.workers)],
        sockets=[sock], ready_urls=[f"{url}/readyz"], env=env, log_path=log_path)


# -- the load -----------------------------------------------------------------------------------

def csrf_of(html: str) -> str:
    start = html.index(CSRF_MARKER) + len(CSRF_MARKER)
    return html[start:html.index('"', start)]


async def drive(run: RunState, args: argparse.Namespace) -> None:
    """Submit every flow (at most `--concurrency` at a time), poll each to a final status
    beside that, and sample /readyz throughout."""
    next_index = 0
    trigger_at = max(1, len(run.flows) // 3)
    polls: set[asyncio.Task[None]] = set()
    poll_clients: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    for _ in range(args.poll_concurrency):
        poll_clients.put_nowait(httpx.AsyncClient(base_url=run.portal_url, timeout=30,
                                                  limits=limits))
    stop_sampling = asyncio.Event()

    async def start_outage() -> None:
        try:
            async with httpx.AsyncClient(timeout=10) as control:
                answer = await control.post(f"{run.core_url}/_control/mode", json={
                    "mode": "status", "status": 503, "for_seconds": run.outage,
                    "latency_ms": args.latency_ms})
                answer.raise_for_status()
            run.outage_started_at = run.now()
        except httpx.HTTPError as exc:
            run.outage_trigger_error = repr(exc)

    async def poll_until_final(flow: Flow) -> None:
        assert flow.token is not None
        while True:
            waited = time.perf_counter()
            client = await poll_clients.get()
            sent = time.perf_counter()
            run.poll_wait_ms.append((sent - waited) * 1000)
            try:
                answer = await client.post("/api/v1/connect/session/poll",
                                           json={"token": flow.token})
                session = answer.json() if answer.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                session = None
            finally:
                poll_clients.put_nowait(client)
                run.poll_ms.append((time.perf_counter() - sent) * 1000)
            flow.polls += 1
            if isinstance(session, dict):
                flow.status = str(session.get("status"))
                if flow.first_poll_status is None:
                    flow.first_poll_status = flow.status
                flow.connection_id = session.get("connectionId")
                flow.error_code = session.get("errorCode")
                if flow.status in FINAL:
                    flow.final_at = run.now()
                    return
            else:
                flow.poll_errors += 1
            if run.poll_deadline is not None and time.monotonic() > run.poll_deadline:
                return
            await asyncio.sleep(args.poll_interval)

    async def one_flow(flow: Flow, backend: httpx.AsyncClient,
                       browser: httpx.AsyncClient) -> None:
        # A fresh cookie jar per flow: each flow is a browser of its own. (A client per
        # flow would build an SSL context each time, which costs the generator ~10 ms of
        # CPU per flow and shows up as latency in every figure.)
        browser.cookies = httpx.Cookies()
        minted = await backend.post("/api/v1/connect/token", headers=AUTH, json={
            "integrationName": "openai", "connectionName": f"Bench {flow.index}",
            "externalId": f"bench-{run.name}-{flow.index:05d}", "workspaceId": "ws-bench"})
        if minted.status_code != 200:
            raise RuntimeError(f"mint answered {minted.status_code}")
        issued = minted.json()
        flow.session_id, flow.token = issued["sessionId"], issued["token"]
        opened = await browser.get(issued["connectUrl"])
        if opened.status_code != 303:
            raise RuntimeError(f"the connect link answered {opened.status_code}")
        page_url = run.portal_url + opened.headers["location"]
        page = await browser.get(page_url)
        if page.status_code != 200:
            raise RuntimeError(f"the connect page answered {page.status_code}")
        form = {"csrf_token": csrf_of(page.text),
                "secret_text": f"sk-bench-{secrets.token_hex(16)}"}
        sent = time.perf_counter()
        answer = await browser.post(page_url, data=form,
                                    headers={"Origin": run.portal_url})
        flow.submit_ms = (time.perf_counter() - sent) * 1000
        flow.submit_status = answer.status_code
        flow.submitted_at = run.now()
        flow.status = "SUBMITTED"

    async def submitter() -> None:
        nonlocal next_index
        async with httpx.AsyncClient(base_url=run.portal_url, timeout=args.request_timeout,
                                     limits=limits) as backend, \
                httpx.AsyncClient(timeout=args.request_timeout, follow_redirects=False,
                                  limits=limits) as browser:
            while next_index < len(run.flows):
                flow = run.flows[next_index]
                next_index += 1
                if args.rate > 0:
                    await asyncio.sleep(max(0.0, flow.index / args.rate - run.now()))
                try:
                    await one_flow(flow, backend, browser)
                except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as exc:
                    flow.status = "DRIVER_ERROR"
                    flow.driver_error = f"{type(exc).__name__}: {exc}"[:300]
                if flow.submitted_at is None:
                    continue
                run.submitted += 1
                if run.outage and run.submitted == trigger_at:
                    trigger = asyncio.create_task(start_outage())
                    polls.add(trigger)
                    trigger.add_done_callback(polls.discard)
                task = asyncio.create_task(poll_until_final(flow))
                polls.add(task)
                task.add_done_callback(polls.discard)

    async def sampler() -> None:
        async with httpx.AsyncClient(base_url=run.portal_url, timeout=5) as client:
            while not stop_sampling.is_set():
                depth: int | None = None
                try:
                    answer = await client.get("/readyz")
                    outbox = answer.json().get("outbox")
                    if isinstance(outbox, dict) and isinstance(outbox.get("depth"), int):
                        depth = outbox["depth"]
                    if answer.status_code != 200:
                        run.readyz_failures += 1
                except (httpx.HTTPError, ValueError, AttributeError):
                    run.readyz_failures += 1
                run.depth_samples.append((round(run.now(), 2), depth))
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop_sampling.wait(), READYZ_EVERY)

    sampling = asyncio.create_task(sampler())
    try:
        await asyncio.gather(*(submitter() for _ in range(args.concurrency)))
        run.last_submit_at = run.now()
        run.poll_deadline = time.monotonic() + args.final_wait
        while polls:
            await asyncio.gather(*list(polls))
        # A last look at the outbox once every flow is final (or given up on).
        stop_sampling.set()
        await sampling
    finally:
        stop_sampling.set()
        for task in [*polls, sampling]:
            task.cancel()
        while not poll_clients.empty():
            await poll_clients.get_nowait().aclose()


# -- figures ------------------------------------------------------------------------------------

def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * share // 1))
    return round(ordered[int(rank) - 1], 1)


def summarize(run: RunState, core: dict[str, Any], wall: float) -> dict[str, Any]:
    flows = run.flows
    statuses = Counter(flow.status for flow in flows)
    completed = [flow for flow in flows if flow.status == "COMPLETED"]
    by_session = {flow.session_id: flow for flow in flows if flow.session_id}
    core_by_key: dict[str, list[str]] = {}
    for connection in core["connections"]:
        core_by_key.setdefault(connection["idempotencyKey"], []).append(connection["id"])
    orphans = Counter(
        by_session[key].status if key in by_session else "UNKNOWN_KEY"
        for key in core_by_key
        if key not in by_session or by_session[key].status != "COMPLETED")
    missing = sum(1 for flow in completed if flow.connection_id not in
                  core_by_key.get(flow.session_id or "", []))
    submit_ms = [flow.submit_ms for flow in flows if flow.submit_ms is not None]
    to_final = [(flow.final_at - flow.submitted_at) * 1000 for flow in flows
                if flow.final_at is not None and flow.submitted_at is not None]
    depths = [depth for _, depth in run.depth_samples if depth is not None]
    outage_end = (run.outage_started_at + run.outage
                  if run.outage_started_at is not None else None)
    during_outage = (sum(1 for flow in flows if flow.submitted_at is not None
                         and run.outage_started_at is not None and outage_end is not None
                         and run.outage_started_at <= flow.submitted_at <= outage_end)
                     if outage_end is not None else 0)
    final_times = [flow.final_at for flow in flows if flow.final_at is not None]
    return {
        "flows": len(flows),
        "submitted": run.submitted,
        "completed": statuses["COMPLETED"],
        "failed": statuses["FAILED"],
        "not_final": sum(count for status, count in statuses.items()
                         if status not in FINAL and status not in {"DRIVER_ERROR",
                                                                    "NOT_STARTED"}),
        "driver_errors": statuses["DRIVER_ERROR"],
        "not_started": statuses["NOT_STARTED"],
        "statuses": dict(statuses),
        "failure_codes": dict(Counter(flow.error_code for flow in flows
                                      if flow.status == "FAILED")),
        "first_poll_statuses": dict(Counter(flow.first_poll_status for flow in flows
                                            if flow.first_poll_status is not None)),
        "polls": sum(flow.polls for flow in flows),
        "poll_ms": {"p50": percentile(run.poll_ms, 0.5), "p99": percentile(run.poll_ms, 0.99)},
        "poll_slot_wait_ms": {"p50": percentile(run.poll_wait_ms, 0.5),
                              "p99": percentile(run.poll_wait_ms, 0.99)},
        "poll_errors": sum(flow.poll_errors for flow in flows),
        "submit_answers": {str(code): count for code, count in
                           Counter(flow.submit_status for flow in flows
                                   if flow.submit_status is not None).items()},
        "submit_ms": {"p50": percentile(submit_ms, 0.5), "p99": percentile(submit_ms, 0.99),
                      "max": round(max(submit_ms), 1) if submit_ms else None},
        "submit_to_final_ms": {"p50": percentile(to_final, 0.5),
                               "p99": percentile(to_final, 0.99),
                               "max": round(max(to_final), 1) if to_final else None},
        "core": {
            "posts": core["posts"],
            "connections": len(core["connections"]),
            "keys_with_more_than_one_connection": sum(1 for count in core["by_key"].values()
                                                      if count > 1),
            "duplicate_accounts": core["duplicate_accounts"],
            "most_posts_for_one_key": max(core["posts_by_key"].values(), default=0),
            # Saved at the core, but the session did not end COMPLETED (FAILED, not final).
            "connections_without_completed_session": dict(orphans),
            # Sessions COMPLETED with a connection id the core does not hold for their key.
            "completed_without_matching_connection": missing,
        },
        "outbox_peak_depth": max(depths) if depths else "n/a",
        "outbox_final_depth": (run.depth_samples[-1][1] if run.depth_samples
                               and run.depth_samples[-1][1] is not None else "n/a"),
        "readyz_samples": len(run.depth_samples),
        "readyz_failures": run.readyz_failures,
        "outage": None if not run.outage else {
            "seconds": run.outage, "started_at_s": run.outage_started_at,
            "trigger_after_submits": max(1, len(flows) // 3),
            "submits_during_outage": during_outage, "trigger_error": run.outage_trigger_error},
        "last_submit_at_s": run.last_submit_at,
        "last_final_at_s": round(max(final_times), 2) if final_times else None,
        "wall_s": round(wall, 2),
        "timed_out": run.timed_out,
        "driver_error_examples": sorted({flow.driver_error for flow in flows
                                         if flow.driver_error})[:5],
        "depth_timeline": run.depth_samples if depths else [],
    }


def one_run(name: str, outage: float, args: argparse.Namespace, logs: Path,
            budget: float) -> dict[str, Any]:
    prefix = f"bench:delivery:{uuid.uuid4().hex}:"
    with ExitStack() as stack:
        core = stack.enter_context(core_standin_process(
            logs / f"core-{name}.log", api_key=CORE_API_KEY))
        set_mode(core.url, mode="ok", latency_ms=args.latency_ms)
        # Registered before the portal starts, so it runs after the portal has stopped.
        stack.callback(delete_keys, args.redis_url, prefix)
        portal = stack.enter_context(portal_process(
            args, core_url=core.url, prefix=prefix, log_path=logs / f"portal-{name}.log"))
        run = RunState(name=name, portal_url=portal.url, core_url=core.url,
                       flows=[Flow(index) for index in range(args.flows)], outage=outage)
        print(f"run {name}: {args.flows} flows, concurrency {args.concurrency}, core "
              f"{args.latency_ms} ms" + (f", {outage:g}s 503 outage after a third" if outage
                                         else ""), flush=True)
        started = time.monotonic()
        try:
            asyncio.run(asyncio.wait_for(drive(run, args), timeout=budget))
        except TimeoutError:
            run.timed_out = True
        wall = time.monotonic() - started
        summary = summarize(run, standin_stats(core.url), wall)
        summary["portal_log_lines"] = len(portal.log_lines())
        summary["portal_errors_logged"] = sum(1 for line in portal.log_lines()
                                              if "Traceback" in line)
    return summary


# -- report ---------------------------------------------------------------------------------

ROWS: list[tuple[str, Any]] = [
    ("flows submitted", lambda s: f"{s['submitted']}/{s['flows']}"),
    ("completed", lambda s: s["completed"]),
    ("failed", lambda s: s["failed"]),
    ("not final after the wait", lambda s: s["not_final"]),
    ("driver errors", lambda s: s["driver_errors"] + s["not_started"]),
    ("connections at the core", lambda s: s["core"]["connections"]),
    ("  without a COMPLETED session",
     lambda s: sum(s["core"]["connections_without_completed_session"].values())),
    ("  COMPLETED without it", lambda s: s["core"]["completed_without_matching_connection"]),
    ("keys with >1 connection", lambda s: s["core"]["keys_with_more_than_one_connection"]),
    ("accounts with >1 connection", lambda s: s["core"]["duplicate_accounts"]),
    ("POSTs at the core", lambda s: s["core"]["posts"]),
    ("submit p50 / p99 ms", lambda s: f"{s['submit_ms']['p50']} / {s['submit_ms']['p99']}"),
    ("submit to final p50 / p99 ms",
     lambda s: f"{s['submit_to_final_ms']['p50']} / {s['submit_to_final_ms']['p99']}"),
    ("submit answers", lambda s: " ".join(f"{code}:{n}" for code, n in
                                          sorted(s["submit_answers"].items()))),
    ("poll p50 / p99 ms", lambda s: f"{s['poll_ms']['p50']} / {s['poll_ms']['p99']}"),
    ("first poll saw", lambda s: " ".join(f"{status}:{n}" for status, n in
                                         sorted(s["first_poll_statuses"].items()))),
    ("outbox peak depth", lambda s: s["outbox_peak_depth"]),
    ("submits during the outage",
     lambda s: s["outage"]["submits_during_outage"] if s["outage"] else "-"),
    ("last final at s", lambda s: s["last_final_at_s"]),
    ("wall s", lambda s: s["wall_s"]),
    ("timed out", lambda s: s["timed_out"]),
]


def print_table(runs: dict[str, dict[str, Any]]) -> None:
    for name, summary in runs.items():
        if "error" in summary:
            print(f"run {name}: did not run: {summary['error']}")
    names = [name for name, summary in runs.items() if "error" not in summary]
    print(f"\n{'':30}" + "".join(f"{name:>30}" for name in names))
    for label, value in ROWS:
        print(f"{label:30}" + "".join(f"{value(runs[name])!s:>30}" for name in names))
    for name in names:
        summary = runs[name]
        if summary["failure_codes"]:
            print(f"run {name}: failure codes {summary['failure_codes']}")
        if summary["driver_error_examples"]:
            print(f"run {name}: driver errors, e.g. {summary['driver_error_examples']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get(
        "TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50,
                        help="flows in progress at once (mint, open, submit)")
    parser.add_argument("--outage", type=float, default=20.0,
                        help="seconds of core 503s in run B, from a third of the submits")
    parser.add_argument("--runs", default="A,B", help="which runs: A, B or A,B")
    parser.add_argument("--latency-ms", type=int, default=50, help="the core's answer time")
    parser.add_argument("--workers", type=int, default=2, help="portal worker processes")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="start at most this many flows per second (0: no pacing)")
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--poll-concurrency", type=int, default=10,
                        help="polls in flight at once (each on its own connection)")
    parser.add_argument("--final-wait", type=float, default=120.0,
                        help="seconds after the last submit to wait for final statuses")
    parser.add_argument("--request-timeout", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="hard limit in seconds for all runs together")
    parser.add_argument("--portal-log-level", default="INFO")
    parser.add_argument("--portal-root", type=Path, default=None, metavar="DIR",
                        help="run the portal package of another checkout (e.g. a git "
                        "worktree of an older commit) for before/after figures")
    parser.add_argument("--portal-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra variable for the portal, e.g. "
                        "PORTAL_DELIVERY_INLINE_BUDGET=3 (repeatable)")
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.portal_env):
        parser.error("--portal-env takes NAME=VALUE")
    runs = [name.strip().upper() for name in args.runs.split(",") if name.strip()]
    if not runs or set(runs) - {"A", "B"}:
        parser.error("--runs takes A, B or A,B")

    started_at = datetime.now(tz=UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    logs = RESULTS / f"delivery-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.timeout
    load_before = list(os.getloadavg())
    results: dict[str, dict[str, Any]] = {}
    for name in runs:
        budget = deadline - time.monotonic()
        if budget <= 0:
            print(f"run {name}: skipped, the --timeout is spent", flush=True)
            continue
        try:
            results[name] = one_run(name, args.outage if name == "B" else 0.0, args, logs,
                                    budget)
        except ProcessFailed as exc:  # a server that did not start: say so, go on
            results[name] = {"error": str(exc)[:2000]}

    report = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "command": " ".join(["bench/delivery.py", *(sys.argv[1:] if argv is None else argv)]),
        "commit": _git_commit(),
        "portal_root": str(args.portal_root or REPOSITORY),
        "portal_sources_sha256": _portal_fingerprint(args.portal_root or REPOSITORY),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "redis_server": _redis_version(
                        args.redis_url), "uvicorn": version("uvicorn"),
                    "httpx": version("httpx")},
        "settings": {key: str(value) if isinstance(value, Path) else value
                     for key, value in vars(args).items() if key != "redis_url"},
        "load_average_1_5_15": {"before": load_before, "after": list(os.getloadavg())},
        "logs": str(logs.relative_to(REPOSITORY)),
        "runs": results,
    }
    path = RESULTS / f"delivery-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(results)
    print(f"\ncommit {report['commit']}, portal sources {report['portal_sources_sha256']}; "
          f"load average before {load_before[0]:.2f}, after "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"written to {path.relative_to(REPOSITORY)} (logs in {report['logs']}/)")
    return 0


def _git_commit() -> str:
    """The last commit (`git log`, read-only). The working tree may differ from it: see
    `_portal_fingerprint`."""
    return subprocess.run(["git", "log", "-1", "--format=%h"], cwd=REPOSITORY,
                          capture_output=True, text=True, check=False).stdout.strip() or "unknown"


def _portal_fingerprint(root: Path) -> str:
    """A SHA-256 over portal/**/*.py as they are on disk: which code was measured, even
    between commits."""
    digest = hashlib.sha256()
    for path in sorted((root / "portal").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _redis_version(url: str) -> str:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
