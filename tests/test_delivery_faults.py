"""Delivery to the core API under faults, end to end: real portal processes, a real Redis,
the core API stand-in (tests/core_standin.py) as a process of its own, all on loopback.

Each case drives SECRET_TEXT connect flows over HTTP as a partner backend and a browser do
(mint a token, open the link, submit the form), breaks something on the way (the core API
refusing connections, answering 503, answering too late, saving then failing, answering
unreadable 2xx, rejecting; a portal process or Redis killed with SIGKILL; a portal
stopped with SIGTERM while attempts are in flight; two portals racing on one outbox),
then polls every session through the API until it is final and counts at the stand-in:
exactly one connection per submitted session (never a second one for a key or an
account), no session left CONNECTING, every webhook (`msg_<sessionId>`) delivered at
least once, and the outbox empty at the end.

The portal runs on short clocks (CORE_API_TIMEOUT=1, PORTAL_DELIVERY_RETRY_CAP=1,
PORTAL_DELIVERY_INLINE_BUDGET=1) so the file takes about four minutes. Each case's
figures are printed at the end of the module (`-s`) and written to
.test-run/delivery-faults.json.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, AUTH, CORE_API_KEY, SECRET_KEY, mint, open_page, submit
from tests.core_standin import READY_PATH, set_mode, stats
from tests.live_servers import (
    REPOSITORY,
    RedisServer,
    ServerProcess,
    bound_socket,
    delete_keys,
    url_of,
    uvicorn_process,
    wait_until,
)

pytestmark = pytest.mark.faults

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"delivery-faults-webhook-secret!!").decode()
FINAL = frozenset({"COMPLETED", "FAILED"})
SUMMARY_PATH = REPOSITORY / ".test-run" / "delivery-faults.json"
# The portal's clocks for these tests: one second for an attempt, at most one second
# between tries, one second of the submitting request spent on the first try.
FAST_CLOCKS = {"CORE_API_TIMEOUT": "1", "PORTAL_DELIVERY_RETRY_CAP": "1",
               "PORTAL_DELIVERY_INLINE_BUDGET": "1"}
SETTLE = 30.0  # seconds for sessions to end once the fault is over
REJECTION = "Workspace ws-1 has reached its connection limit."


# -- the servers ------------------------------------------------------------------------------

def standin(log_dir: Path, sock: Any = None) -> ServerProcess:
    """The core stand-in (not started) on `sock`, or on a socket of its own."""
    return uvicorn_process(
        "tests.core_standin:app_from_env", sock=sock or bound_socket(), ready_path=READY_PATH,
        log_path=log_dir / "core.log",
        env={"CORE_STANDIN_API_KEY": CORE_API_KEY, "CORE_STANDIN_WEBHOOK_SECRET": WEBHOOK_SECRET})


def portal(log_dir: Path, name: str, *, core_url: str, redis_url: str, prefix: str,
           **env: str) -> ServerProcess:
    """`portal.asgi:app_from_env` (what `serve` runs) in a process of its own (not started),
    delivering to `core_url`, its webhooks to the stand-in's receiver (the operator's
    PORTAL_WEBHOOK_URL, whose host is trusted: no loopback exception needed)."""
    sock = bound_socket()
    url = url_of(sock)
    return uvicorn_process("portal.asgi:app_from_env", sock=sock, ready_path="/readyz",
                           log_path=log_dir / f"{name}.log", env={
        "PORTAL_PUBLIC_URL": url, "PORTAL_SECRET_KEYS": SECRET_KEY, "PORTAL_API_KEYS": API_KEY,
        "REDIS_URL": redis_url, "PORTAL_REDIS_PREFIX": prefix,
        "CORE_API_URL": core_url, "CORE_API_KEY": CORE_API_KEY,
        "PORTAL_WEBHOOK_URL": f"{core_url}/_webhooks", "PORTAL_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # The built-in OpenAI entry would check the key with OpenAI.
        "PORTAL_VERIFY_CREDENTIALS": "false",
        **FAST_CLOCKS, **env,
    })


@dataclass
class Case:
    """One case's servers and sessions, and what it found."""

    name: str
    core: ServerProcess
    portals: list[ServerProcess]
    stack: ExitStack
    sessions: list[str] = field(default_factory=list)
    submit_answers: list[int] = field(default_factory=list)
    first_submit: float | None = None
    final_at: float | None = None
    finals: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def portal_url(self) -> str:
        return self.portals[0].url

    def users(self, count: int, *, via: list[ServerProcess] | None = None) -> list[str]:
        """`count` users connect at once, each through the next of `via` (round robin);
        their session ids, in order."""
        via = via or self.portals[:1]
        start = len(self.sessions)
        if self.first_submit is None:
            self.first_submit = time.monotonic()
        jobs = [(via[index % len(via)].url, f"{self.name}-user-{start + index:02d}")
                for index in range(count)]
        with ThreadPoolExecutor(max_workers=count) as pool:
            done = list(pool.map(lambda job: connect_user(*job), jobs))
        ids = [session_id for session_id, _ in done]
        self.sessions.extend(ids)
        self.submit_answers.extend(status for _, status in done)
        return ids

    def statuses(self, ids: list[str] | None = None) -> dict[str, str | None]:
        """Each session's status as the API gives it now (None: no answer)."""
        with httpx.Client(base_url=self.portal_url, timeout=5) as client:
            return {session_id: status_of(client, session_id)
                    for session_id in (self.sessions if ids is None else ids)}

    def wait_final(self, timeout: float) -> dict[str, dict[str, Any]]:
        """Poll every session until each is COMPLETED or FAILED (or fail, saying where
        things stood)."""
        with httpx.Client(base_url=self.portal_url, timeout=5) as client:
            def all_final() -> bool:
                for session_id in self.sessions:
                    if session_id in self.finals:
                        continue
                    session = session_record(client, session_id)
                    if session is None or session["status"] not in FINAL:
                        return False
                    self.finals[session_id] = session
                return True

            try:
                wait_until(all_final, timeout=timeout, what="every session to end")
            except TimeoutError as exc:
                left = {sid: status_of(client, sid) for sid in self.sessions
                        if sid not in self.finals}
                raise AssertionError(f"{exc}: not final {left}\n{self.diagnostics()}") from None
        self.final_at = time.monotonic()
        return self.finals

    def outbox_depth(self) -> int | None:
        try:
            answer = httpx.get(f"{self.portal_url}/readyz", timeout=5)
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        depth: int = answer.json()["outbox"]["depth"]
        return depth

    def diagnostics(self) -> str:
        core = stats(self.core.url) if self.core.running else {}
        logs = "\n".join(f"--- {process.log_path.name} (last 40 lines) ---\n"
                         + "\n".join(process.log_lines()[-40:]) for process in self.portals)
        core.pop("connections", None)
        return f"core stats: {json.dumps(core)}\n{logs}"


def connect_user(portal_url: str, external_id: str) -> tuple[str, int]:
    """A partner backend mints a token; the user's browser (a cookie jar of its own) opens
    the link and submits a SECRET_TEXT form. The session id and the submit's status: 200
    with the result when the first try ended within the inline budget, else 303 to the
    "Finishing your connection…" page."""
    with httpx.Client(base_url=portal_url, timeout=30, follow_redirects=False) as client:
        minted = mint(client, externalId=external_id, connectionName=f"Key of {external_id}")
        page_path, csrf = open_page(client, minted["token"])
        answer = submit(client, page_path, csrf, secret_text=f"sk-{secrets.token_hex(16)}")
    assert answer.status_code in {200, 303}, answer.text
    return minted["sessionId"], answer.status_code


def session_record(client: httpx.Client, session_id: str) -> dict[str, Any] | None:
    """GET /api/v1/connect/session/{id} with the API key; None while it cannot answer
    (a portal restarting, Redis down)."""
    try:
        answer = client.get(f"/api/v1/connect/session/{session_id}", headers=AUTH)
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    session: dict[str, Any] = answer.json()["session"]
    return session


def status_of(client: httpx.Client, session_id: str) -> str | None:
    session = session_record(client, session_id)
    return None if session is None else str(session["status"])


# -- what every case checks, and its figures -------------------------------------------------

def check_and_record(case: Case, figures: dict[str, Any], *, expect: str = "COMPLETED",
                     **notes: Any) -> dict[str, Any]:
    finals = case.finals
    assert sorted(finals) == sorted(case.sessions)
    assert {sid: finals[sid]["status"] for sid in case.sessions} == {
        sid: expect for sid in case.sessions}, case.diagnostics()
    core = stats(case.core.url)
    if expect == "COMPLETED":
        # Exactly one connection per submitted session, and the one the session names.
        assert core["by_key"] == {sid: 1 for sid in case.sessions}, case.diagnostics()
        assert len(core["connections"]) == len(case.sessions)
        held = {item["idempotencyKey"]: item["id"] for item in core["connections"]}
        assert {sid: finals[sid]["connectionId"] for sid in case.sessions} == held
    else:
        assert core["connections"] == [] and core["by_key"] == {}
    assert core["duplicate_accounts"] == 0
    # Every session's webhook arrives (at least once), and the outbox empties.
    wanted = {f"msg_{sid}" for sid in case.sessions}
    try:
        wait_until(lambda: wanted <= set(stats(case.core.url)["webhooks"]), timeout=SETTLE,
                   what="every session's webhook")
        wait_until(lambda: case.outbox_depth() == 0, timeout=SETTLE, what="an empty outbox")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{case.diagnostics()}") from None
    core = stats(case.core.url)
    assert set(core["webhooks"]) == wanted
    assert case.first_submit is not None and case.final_at is not None
    row = {
        "sessions": len(case.sessions),
        "completed": sum(1 for s in finals.values() if s["status"] == "COMPLETED"),
        "failed": sum(1 for s in finals.values() if s["status"] == "FAILED"),
        "connections": len(core["connections"]),
        "core_posts": core["posts"],
        "max_posts_one_session": max(core["posts_by_key"].values(), default=0),
        "webhooks": len(core["webhooks"]),
        "webhook_deliveries": sum(core["webhooks"].values()),
        "submits_final_inline": case.submit_answers.count(200),
        "seconds": round(case.final_at - case.first_submit, 1),
        **notes,
    }
    figures[case.name] = row
    return row


@pytest.fixture(scope="module")
def figures() -> Iterator[dict[str, Any]]:
    """Every case's figures; printed and written to .test-run/ once the module is done."""
    collected: dict[str, Any] = {}
    yield collected
    if not collected:
        return
    SUMMARY_PATH.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY_PATH.write_text(json.dumps(collected, indent=2) + "\n", encoding="utf-8")
    columns = ["sessions", "completed", "failed", "connections", "core_posts", "webhooks",
               "seconds"]
    print(f"\n{'case':48}" + "".join(f"{name:>13}" for name in columns))
    for name, row in collected.items():
        print(f"{name:48}" + "".join(f"{row[column]!s:>13}" for column in columns))
    print(f"(written to {SUMMARY_PATH.relative_to(REPOSITORY)})")


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    name = f"test:faults:{uuid.uuid4().hex}:"
    yield name
    delete_keys(redis_url, name)


@pytest.fixture
def case(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str,
         prefix: str) -> Iterator[Callable[..., Case]]:
    """Start a case: the stand-in (started unless `core_up=False`) and `portals` portal
    processes on one Redis prefix; everything stops at the end of the test."""
    with ExitStack() as stack:
        def make(*, portals: int = 1, core_up: bool = True, redis: str = redis_url,
                 core_sock: Any = None, **env: str) -> Case:
            core = standin(tmp_path, core_sock)
            stack.callback(core.close)
            if core_up:
                core.start()
            started = []
            for index in range(portals):
                process = portal(tmp_path, f"portal-{index}", core_url=core.url,
                                 redis_url=redis, prefix=prefix, **env)
                stack.callback(process.close)
                started.append(process.start())
            return Case(name=request.node.name.removeprefix("test_"), core=core,
                        portals=started, stack=stack)

        yield make


def no_session_final(case: Case) -> bool:
    return all(status == "CONNECTING" for status in case.statuses().values())


# -- the cases ---------------------------------------------------------------------------------

def test_core_refusing_connections(case: Callable[..., Case], figures: dict[str, Any]) -> None:
    """The core API's port refuses connections while six users submit; then it comes up."""
    sock = bound_socket()  # refuses connections until the stand-in takes it
    run = case(core_up=False, core_sock=sock)
    run.users(6)
    assert run.submit_answers == [303] * 6
    assert no_session_final(run)
    run.core.start()
    run.wait_final(SETTLE)
    check_and_record(run, figures, fault="core port refusing connections during the submits")


def test_core_answering_503_for_20_seconds(case: Callable[..., Case],
                                          figures: dict[str, Any]) -> None:
    """The issue's own numbers: the core answers 503 for 20 s while twelve users submit."""
    run = case()
    set_mode(run.core.url, mode="status", status=503, retry_after=1, for_seconds=20)
    run.users(12)
    assert run.submit_answers == [303] * 12
    assert no_session_final(run)
    run.wait_final(20 + SETTLE)
    row = check_and_record(run, figures, fault="503 (Retry-After: 1) for 20 s")
    assert row["seconds"] >= 15  # nothing completed through the outage


@pytest.mark.parametrize(("mode", "fault"), [
    ({"mode": "slow", "seconds": 2}, "saves, answers after the 1 s timeout, for 5 s"),
    ({"mode": "save_then_status", "status": 500}, "saves, then answers 500, for 5 s"),
    ({"mode": "malformed"}, "saves, then answers 2xx with a non-JSON body, for 5 s"),
], ids=["slow", "save_then_500", "malformed"])
def test_core_saves_but_the_answer_is_lost(case: Callable[..., Case], figures: dict[str, Any],
                                           mode: dict[str, Any], fault: str) -> None:
    """The core saves the connection but the portal cannot read the answer, for a window:
    every later try (same Idempotency-Key) gets the one connection, never a second."""
    run = case()
    set_mode(run.core.url, **mode, for_seconds=5)
    run.users(6)
    run.wait_final(5 + SETTLE)
    row = check_and_record(run, figures, fault=fault)
    assert row["core_posts"] > row["sessions"]  # retried, answered with the saved one


def test_core_rejecting(case: Callable[..., Case], figures: dict[str, Any]) -> None:
    """A definite 4xx is a failed attempt: every session goes back to PENDING at once with
    the core's message (the user may try again on the same link), never retried by the
    outbox, nothing saved, no webhook (the session is not over), the outbox empty."""
    run = case()
    set_mode(run.core.url, mode="reject", status=422, error=REJECTION)
    ids = run.users(6)
    with httpx.Client(base_url=run.portal_url, timeout=5) as client:
        def refused() -> dict[str, Any] | None:
            records = {sid: session_record(client, sid) for sid in ids}
            done = all(record and record["errorCode"] for record in records.values())
            return records if done else None

        wait_until(lambda: refused() is not None, timeout=SETTLE, what="every refusal")
        records = refused()
    assert records is not None
    assert {(r["status"], r["errorCode"], r["error"]) for r in records.values()} == {
        ("PENDING", "CORE_API_REJECTED", REJECTION)}
    core = stats(run.core.url)
    assert core["posts"] == 6 and core["connections"] == []  # a rejection is not retried
    assert run.outbox_depth() == 0
    assert core["webhooks"] == {}
    figures[run.name] = {"sessions": 6, "completed": 0, "failed": 0, "connections": 0,
                         "core_posts": core["posts"], "webhooks": 0,
                         "seconds": round(time.monotonic() - (run.first_submit or 0), 1),
                         "fault": "422 for every request: failed attempts, PENDING"}


def test_portal_killed_with_deliveries_in_flight(case: Callable[..., Case],
                                                 figures: dict[str, Any]) -> None:
    """Ten attempts are held by a slow core when the portal process is killed (SIGKILL, the
    whole process group); a new process on the same socket takes the jobs over once their
    lease ends (2 * max(CORE_API_TIMEOUT, 5) + 5 = 15 s) and completes every session."""
    # An attempt lasts up to 5 s here, so the kill surely lands while they are in flight.
    run = case(CORE_API_TIMEOUT="5")
    process = run.portals[0]
    set_mode(run.core.url, mode="slow", seconds=8)
    ids = run.users(10)
    wait_until(lambda: set(stats(run.core.url)["posts_by_key"]) == set(ids), timeout=10,
               what="all ten attempts to reach the core")
    process.kill()
    # No attempt had ended (none was put off) when the process died.
    assert not [line for line in process.log_lines() if "next try in" in line]
    killed_at = time.monotonic()
    set_mode(run.core.url, mode="ok")
    process.start()
    run.wait_final(15 + SETTLE)
    row = check_and_record(run, figures, fault="portal SIGKILLed with 10 attempts in flight")
    assert row["core_posts"] >= 20  # each tried by the dead process, then by the new one
    figures[run.name]["seconds_after_kill"] = round(time.monotonic() - killed_at, 1)


def stopped_with_attempts_in_flight(run: Case, *, core_seconds: float) -> float:
    """Ten users connect while the core answers in `core_seconds`; once all ten attempts
    have reached it, the portal gets SIGTERM and comes back with the core answering at
    once. The seconds the stop took."""
    process = run.portals[0]
    set_mode(run.core.url, mode="slow", seconds=core_seconds)
    ids = run.users(10)
    wait_until(lambda: set(stats(run.core.url)["posts_by_key"]) == set(ids), timeout=10,
               what="all ten attempts to reach the core")
    stopping = time.monotonic()
    process.stop()
    took = time.monotonic() - stopping
    assert any("Application shutdown complete." in line for line in process.log_lines())
    set_mode(run.core.url, mode="ok")
    process.start()
    return took


def test_portal_stopped_with_deliveries_in_flight_finishes_them(
        case: Callable[..., Case], figures: dict[str, Any]) -> None:
    """SIGTERM (a deploy, a scale-down) while ten attempts wait on a core that answers in
    3 s: the process gives them its 5 s of grace, records every answer and only then
    exits. Started again, it has nothing left to deliver: ten posts, ten connections."""
    run = case(CORE_API_TIMEOUT="5")
    took = stopped_with_attempts_in_flight(run, core_seconds=3)
    assert took < 10, f"the stop took {took:.1f} s"
    run.wait_final(SETTLE)
    row = check_and_record(run, figures, fault="portal SIGTERMed, attempts shorter than grace")
    assert row["core_posts"] == 10  # each answered before the exit: none was tried again
    figures[run.name]["stop_seconds"] = round(took, 1)


def test_portal_stopped_with_deliveries_outlasting_the_grace_leaves_them_queued(
        case: Callable[..., Case], figures: dict[str, Any]) -> None:
    """SIGTERM while ten attempts wait on a core that answers in 8 s, longer than the 5 s
    of grace: they are cut off, their jobs stay in the outbox, and the next process
    delivers them once their lease has passed, each exactly once (the core has already
    saved them: the Idempotency-Key gives the same connection back)."""
    run = case(CORE_API_TIMEOUT="10")
    took = stopped_with_attempts_in_flight(run, core_seconds=8)
    assert took < 15, f"the stop took {took:.1f} s"
    assert set(run.statuses().values()) == {"CONNECTING"}  # queued, not lost or failed
    # The lease: 2 * max(CORE_API_TIMEOUT, 5) + 5 = 25 s from the attempt's start.
    run.wait_final(25 + SETTLE)
    row = check_and_record(run, figures, fault="portal SIGTERMed, attempts longer than grace")
    assert row["core_posts"] >= 20  # cut off once, delivered again by the next process
    figures[run.name]["stop_seconds"] = round(took, 1)


def test_two_portals_racing_on_one_outbox(case: Callable[..., Case],
                                          figures: dict[str, Any]) -> None:
    """Two portal processes on one Redis prefix, each taking half of twelve submits, while
    the core answers 503 for 6 s: both workers take up due jobs, their own and the other's."""
    run = case(portals=2)
    first, second = run.portals
    set_mode(run.core.url, mode="status", status=503, for_seconds=6)
    ids = run.users(12, via=[first, second])
    run.wait_final(6 + SETTLE)

    def tried_by(process: ServerProcess, sessions: list[str]) -> int:
        lines = [line for line in process.log_lines() if "attempt" in line]
        return sum(1 for sid in sessions if any(f"session {sid}" in line for line in lines))

    crossed = (tried_by(second, ids[0::2]), tried_by(first, ids[1::2]))
    check_and_record(run, figures, fault="two processes, one outbox, 503 for 6 s",
                     tried_by_the_other_process=sum(crossed))
    assert all(crossed), f"no process took up the other's jobs: {crossed}"


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own on a loopback port, append-only with fsync always."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is installed by ./dev test")
    server = RedisServer(tcp=True, appendonly=True).start()
    yield server
    server.close()


def test_redis_killed_and_restarted(aof_redis: RedisServer, case: Callable[..., Case],
                                    figures: dict[str, Any]) -> None:
    """Redis (its own, append-only, fsync always) is SIGKILLed while eight jobs wait on a
    core answering 503, and started again: the jobs were on disk, every session completes."""
    run = case(redis=aof_redis.url)
    set_mode(run.core.url, mode="status", status=503)
    ids = run.users(8)
    wait_until(lambda: set(stats(run.core.url)["posts_by_key"]) == set(ids), timeout=10,
               what="every job to be tried once")
    assert run.outbox_depth() == 8
    aof_redis.stop()  # kill -9
    wait_until(lambda: run.outbox_depth() is None, timeout=10,
               what="the portal to notice Redis is gone")
    assert set(run.statuses().values()) == {None}
    set_mode(run.core.url, mode="ok")
    aof_redis.start()
    run.wait_final(15 + SETTLE)
    check_and_record(run, figures, fault="Redis SIGKILLed and restarted (AOF)")
