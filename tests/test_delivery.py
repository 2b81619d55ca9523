"""Delivery through the outbox (portal/delivery.py), in-process portals on the real Redis:
what a user and a backend see while the core API fails in every way it can, what is
queued in Redis meanwhile, and that each authorized session makes exactly one connection.

Cross-process faults (SIGKILL, two processes, Redis restarts) are in
tests/test_delivery_faults.py."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from portal.connect_request import ConnectRequest
from portal.delivery import DeliveryTiming
from portal.sessions import ConnectSession
from tests.conftest import (
    FAST_DELIVERY,
    PORTAL_URL,
    Clock,
    mint,
    open_page,
    session_of,
    submit,
)
from tests.live_servers import wait_until

SECRET_TYPED = "sk-live-outbox-7d1e0c5a9b"


class ScriptedCore:
    """A core API stand-in that answers each create from a script (then 201s), keeps
    connections by Idempotency-Key as the real one must, and records every attempt."""

    def __init__(self, *answers: httpx.Response | type[Exception], hold: float = 0) -> None:
        self.answers = list(answers)
        self.attempts: list[tuple[float, str]] = []
        self.by_key: dict[str, str] = {}
        self.lock = threading.Lock()

    def handle(self, request: httpx.Request) -> httpx.Response:
        key = request.headers.get("idempotency-key", "")
        if request.method == "GET":  # the reconciler's lookup
            found = self.by_key.get(request.url.params.get("idempotencyKey", ""))
            return httpx.Response(200, json={"connections": [{"id": found}] if found else []})
        with self.lock:
            self.attempts.append((time.monotonic(), key))
            answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, type):
            raise answer("scripted", request=request)
        if answer is not None:
            return answer
        connection_id = self.by_key.setdefault(key, f"conn_{len(self.by_key) + 1}")
        return httpx.Response(201, json={"connection": {"id": connection_id}})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def start_connect(client: TestClient, **overrides: Any) -> tuple[dict[str, Any], httpx.Response]:
    answer = mint(client, **overrides)
    page_path, csrf = open_page(client, answer["token"])
    return answer, submit(client, page_path, csrf, secret_text=SECRET_TYPED, opener="1")


def status_of(client: TestClient, session_id: str) -> str:
    status: str = session_of(client, session_id)["status"]
    return status


def wait_final(client: TestClient, session_id: str, timeout: float = 10) -> dict[str, Any]:
    wait_until(lambda: status_of(client, session_id) in {"COMPLETED", "FAILED"},
               timeout=timeout, what=f"session {session_id} to end")
    return session_of(client, session_id)


def outbox_entries(redis_client: redis.Redis, prefix: str) -> list[dict[str, str]]:
    return [fields for _, fields in redis_client.xrange(f"{prefix}outbox")]


def test_a_busy_core_api_is_retried_with_one_key_until_it_saves_the_connection(
    make_client: Any,
) -> None:
    core = ScriptedCore(httpx.Response(503), httpx.ConnectError, httpx.Response(429),
                        httpx.Response(502))
    client = make_client(core_transport=core.transport)
    answer, _ = start_connect(client)
    final = wait_final(client, answer["sessionId"])
    assert final["status"] == "COMPLETED"
    assert final["connectionId"] == "conn_1"
    assert [key for _, key in core.attempts] == [answer["sessionId"]] * 5
    assert core.by_key == {answer["sessionId"]: "conn_1"}


def test_while_the_core_api_is_down_the_user_sees_finishing_and_nothing_fails(
    make_client: Any, redis_client: redis.Redis, settings: Any,
) -> None:
    down = threading.Event()
    down.set()
    core = ScriptedCore()

    def handle(request: httpx.Request) -> httpx.Response:
        if down.is_set():
            core.attempts.append((time.monotonic(), request.headers["idempotency-key"]))
            return httpx.Response(503)
        return core.handle(request)

    client = make_client(core_transport=httpx.MockTransport(handle),
                         delivery_timing=replace(FAST_DELIVERY, inline_budget=0.2))
    answer, response = start_connect(client)
    # The page goes on to the session's own page, which says the connection is on its way.
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert "Finishing your connection" in page.text
    wait_until(lambda: len(core.attempts) >= 4, timeout=10, what="several tries")
    assert status_of(client, answer["sessionId"]) == "CONNECTING"
    ready = client.get("/readyz")
    assert ready.status_code == 200  # the portal still takes connections
    assert ready.json()["outbox"]["depth"] == 1
    down.clear()
    final = wait_final(client, answer["sessionId"])
    assert final["status"] == "COMPLETED"
    assert len(core.by_key) == 1
    assert client.get("/readyz").json()["outbox"]["depth"] == 0
    assert outbox_entries(redis_client, settings.redis_prefix) == []
    # The page the user kept open shows the result now.
    assert "Connected" in client.get(response.headers["location"]).text


def test_an_answer_lost_after_the_core_saved_is_resent_and_never_makes_a_second_connection(
    make_client: Any,
) -> None:
    # Saved, then the answer is lost (timeout) or unreadable: unknown, never failed.
    core = ScriptedCore(httpx.ReadTimeout, httpx.Response(201, text="not json"),
                        httpx.Response(500))
    real = core.handle

    def saving_first(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            core.by_key.setdefault(request.headers["idempotency-key"], "conn_saved")
        return real(request)

    client = make_client(core_transport=httpx.MockTransport(saving_first))
    answer, _ = start_connect(client)
    final = wait_final(client, answer["sessionId"])
    assert final["status"] == "COMPLETED"
    assert final["connectionId"] == "conn_saved"
    assert len(core.attempts) == 4


def test_a_definite_refusal_is_a_failed_attempt_with_the_cores_reason_at_once(
    make_client: Any, redis_client: redis.Redis, settings: Any,
) -> None:
    core = ScriptedCore(httpx.Response(422, json={"error": "Workspace ws-1 is archived"}))
    client = make_client(core_transport=core.transport)
    answer, response = start_connect(client)
    assert response.status_code == 303  # to the session's page, which offers to try again
    now = session_of(client, answer["sessionId"])
    # The link is still valid: the user may try again, so the session is not over.
    assert (now["status"], now["errorCode"], now["error"]) == (
        "PENDING", "CORE_API_REJECTED", "Workspace ws-1 is archived")
    assert len(core.attempts) == 1
    assert outbox_entries(redis_client, settings.redis_prefix) == []
    assert redis_client.zcard(f"{settings.redis_prefix}connecting") == 0


def test_a_refusal_that_comes_after_the_link_expired_ends_the_session_failed(
    settings: Any, make_app: Any, redis_client: redis.Redis,
) -> None:
    clock = Clock()

    def late_refusal(request: httpx.Request) -> httpx.Response:
        clock.now += 3600  # the link expires while the core API thinks
        return httpx.Response(422, json={"error": "Workspace ws-1 is archived"})

    app = make_app(settings, core_transport=httpx.MockTransport(late_refusal), clock=clock)
    with TestClient(app, base_url=PORTAL_URL, follow_redirects=False) as client:
        answer = mint(client, expiresIn=600)
        page_path, csrf = open_page(client, answer["token"])
        submit(client, page_path, csrf, secret_text=SECRET_TYPED)
        final = session_of(client, answer["sessionId"])
        assert (final["status"], final["errorCode"]) == ("FAILED", "CORE_API_REJECTED")
    assert outbox_entries(redis_client, settings.redis_prefix) == []


def test_retry_after_is_honoured_beyond_the_backoff_cap(make_client: Any) -> None:
    core = ScriptedCore(httpx.Response(503, headers={"Retry-After": "1"}))
    client = make_client(core_transport=core.transport)
    answer, _ = start_connect(client)
    wait_final(client, answer["sessionId"])
    (first, _), (second, _) = core.attempts
    assert second - first >= 0.95  # FAST_DELIVERY's cap is 0.05 s


def test_past_the_deadline_the_session_fails_as_delivery_failed(make_client: Any) -> None:
    core = ScriptedCore(*[httpx.Response(503)] * 1000)
    client = make_client(core_transport=core.transport,
                         delivery_timing=replace(FAST_DELIVERY, deadline=0.5))
    answer, _ = start_connect(client)
    final = wait_final(client, answer["sessionId"])
    assert (final["status"], final["errorCode"]) == ("FAILED", "DELIVERY_FAILED")
    assert final["error"] == "The connection could not be saved. Please connect again."
    assert len(core.attempts) >= 3
    assert not core.by_key


def test_the_job_is_queued_with_the_session_and_sealed(
    make_client: Any, redis_client: redis.Redis, settings: Any,
) -> None:
    core = ScriptedCore(*[httpx.Response(503)] * 1000)
    client = make_client(core_transport=core.transport,
                         delivery_timing=replace(FAST_DELIVERY, inline_budget=0.1))
    answer, _ = start_connect(client)
    [job] = outbox_entries(redis_client, settings.redis_prefix)
    assert job["kind"] == "connection"
    assert job["session"] == answer["sessionId"]
    record = json.loads(redis_client.get(f"{settings.redis_prefix}session:{answer['sessionId']}"))
    assert record["status"] == "CONNECTING"
    [(job_id, _)] = redis_client.xrange(f"{settings.redis_prefix}outbox")
    assert record["outbox_job"] == job_id
    # The record lives until the job's deadline and a while after.
    ttl = redis_client.ttl(f"{settings.redis_prefix}session:{answer['sessionId']}")
    assert ttl > FAST_DELIVERY.deadline
    # Nothing in Redis holds the typed key in the clear, in any encoding.
    dump = b"".join(
        redis.Redis.from_url(settings.redis_url).dump(key) or b""
        for key in redis_client.scan_iter(match=f"{settings.redis_prefix}*"))
    for form in (SECRET_TYPED, json.dumps(SECRET_TYPED)):
        assert form.encode() not in dump


def test_a_job_left_by_a_process_that_stopped_is_finished_by_another(
    make_client: Any, make_app: Any, settings: Any, redis_client: redis.Redis,
) -> None:
    core = ScriptedCore(*[httpx.Response(503)] * 2)
    timing = replace(FAST_DELIVERY, inline_budget=0.1, retry_cap=30, retry_base=30)
    # The first portal queues the job and tries once; its worker never runs, and its
    # next try is 15-30 s away.
    first = make_client(core_transport=core.transport, delivery_timing=timing)
    answer, _ = start_connect(first)
    assert status_of(first, answer["sessionId"]) == "CONNECTING"
    first.__exit__(None, None, None)  # the process goes away with the job leased to it
    # Another process takes it over once its lease has run out, without waiting for the
    # put-off try (the lease is 2 s here).
    redis_client.hset(f"{settings.redis_prefix}outbox:due",
                      redis_client.xrange(f"{settings.redis_prefix}outbox")[0][0], "0 1")
    second = make_client(core_transport=core.transport)
    started = time.monotonic()
    final = wait_final(second, answer["sessionId"])
    assert final["status"] == "COMPLETED"
    assert time.monotonic() - started < 5
    assert [key for _, key in core.attempts] == [answer["sessionId"]] * 3


def test_the_reconciler_settles_a_connecting_session_whose_job_is_gone(
    make_client: Any, redis_client: redis.Redis, settings: Any,
) -> None:
    core = ScriptedCore(*[httpx.Response(503)] * 1000)
    timing = replace(FAST_DELIVERY, inline_budget=0.1, reconcile_every=0.1,
                     reconcile_after=0.5)
    client = make_client(core_transport=core.transport, delivery_timing=timing)
    saved, _ = start_connect(client, externalId="saved-before-the-loss")
    lost, _ = start_connect(client, externalId="never-saved")
    # The core API holds the first one already; then both jobs are lost (an operator's
    # XDEL, a partial restore).
    core.by_key[saved["sessionId"]] = "conn_found"
    stream = f"{settings.redis_prefix}outbox"
    for entry_id, _ in redis_client.xrange(stream):
        redis_client.xdel(stream, entry_id)
    assert wait_final(client, saved["sessionId"])["connectionId"] == "conn_found"
    failed = wait_final(client, lost["sessionId"])
    assert (failed["status"], failed["errorCode"]) == ("FAILED", "DELIVERY_FAILED")


def test_jobs_sealed_before_a_key_rotation_are_still_delivered(
    make_client: Any, settings: Any,
) -> None:
    old_key, new_key = "outbox-key-old-0123456789abcdef0123", "outbox-key-new-0123456789abcdef0123"
    down = ScriptedCore(*[httpx.Response(503)] * 1000)
    first = make_client(core_transport=down.transport, outbox_keys=(old_key,),
                        start_delivery_worker=False,
                        delivery_timing=replace(FAST_DELIVERY, inline_budget=0.1))
    answer, _ = start_connect(first)
    first.__exit__(None, None, None)
    up = ScriptedCore()
    rotated = make_client(core_transport=up.transport, outbox_keys=(new_key, old_key))
    assert wait_final(rotated, answer["sessionId"])["status"] == "COMPLETED"


def test_a_job_no_configured_key_opens_fails_its_session_plainly(
    make_client: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    down = ScriptedCore(*[httpx.Response(503)] * 1000)
    first = make_client(core_transport=down.transport,
                        outbox_keys=("outbox-key-lost-0123456789abcdef012",),
                        delivery_timing=replace(FAST_DELIVERY, inline_budget=0.1))
    answer, _ = start_connect(first)
    first.__exit__(None, None, None)
    caplog.set_level(logging.ERROR, logger="portal.delivery")
    up = ScriptedCore()
    later = make_client(core_transport=up.transport,
                        outbox_keys=("outbox-key-new1-0123456789abcdef012",))
    final = wait_final(later, answer["sessionId"])
    assert (final["status"], final["errorCode"]) == ("FAILED", "DELIVERY_FAILED")
    assert not up.attempts
    assert any("cannot be opened" in record.getMessage() for record in caplog.records)


def test_the_embedded_store_delivers_through_the_same_outbox(
    settings: Any, make_app: Any,
) -> None:
    core = ScriptedCore(httpx.Response(503), httpx.Response(503))
    app = make_app(replace(settings, redis_url=None), core_transport=core.transport)
    with TestClient(app, base_url=PORTAL_URL, follow_redirects=False) as client:
        answer, _ = start_connect(client)
        final = wait_final(client, answer["sessionId"])
        assert final["status"] == "COMPLETED"
        assert client.get("/readyz").json()["outbox"]["depth"] == 0
    assert len(core.attempts) == 3


def test_a_session_that_ended_keeps_only_its_result_retention(
    make_client: Any, redis_client: redis.Redis, settings: Any,
) -> None:
    client = make_client(core_transport=ScriptedCore().transport)
    answer, _ = start_connect(client)
    assert status_of(client, answer["sessionId"]) == "COMPLETED"
    ttl = redis_client.ttl(f"{settings.redis_prefix}session:{answer['sessionId']}")
    # The token's life plus an hour, not the day a CONNECTING session is kept for.
    assert 0 < ttl <= settings.token_ttl + 3600
    assert redis_client.zcard(f"{settings.redis_prefix}connecting") == 0


def test_the_pause_grows_is_capped_and_yields_to_retry_after() -> None:
    timing = DeliveryTiming(retry_base=1, retry_cap=8)
    assert [max(timing.pause(n, None) for _ in range(50)) <= min(8, 2 ** n)
            for n in range(6)] == [True] * 6
    assert min(timing.pause(10, None) for _ in range(50)) >= 4  # full jitter over [cap/2, cap]
    assert timing.pause(0, 120) == 120


def test_a_session_record_without_outbox_fields_reads_as_before() -> None:
    record = {"id": "s", "workspace_id": "w", "connection_name": "c", "external_id": "e",
              "expires_at": "1", "created_at": "1", "status": "PENDING"}
    session = ConnectSession.from_record(record)
    assert session.outbox_job is None and session.finished_at is None
    assert "outboxJob" not in session.public() and "finishedAt" not in session.public()


def test_a_reconnect_updates_its_connection_in_place_with_the_same_key_rules(
    make_client: Any, core_app: Any,
) -> None:
    """A session made for a reconnect (the end-user portal's) PATCHes the connection it
    names instead of creating one; a retry sends the same key and updates once."""
    client = make_client(core_transport=httpx.ASGITransport(app=core_app))
    first, _ = start_connect(client)
    [original] = core_app.state.connections
    flow = client.app.state.flow  # type: ignore[attr-defined]
    request = ConnectRequest.model_validate(
        {"integrationName": "openai", "connectionName": "Again", "externalId": "user-42",
         "workspaceId": "ws-1"}, context={"settings": flow.settings})
    issued = client.portal.call(lambda: flow.create_session(  # type: ignore[union-attr]
        request, reconnect_connection_id=original["id"], return_to="/connect/portal"))
    page_path, csrf = open_page(client, issued.token)
    submit(client, page_path, csrf, secret_text="sk-live-rotated-0123", opener="1")
    final = session_of(client, issued.session_id)
    assert (final["status"], final["connectionId"]) == ("COMPLETED", original["id"])
    assert len(core_app.state.connections) == 1  # updated, not duplicated
    assert original["body"]["secretText"] == "sk-live-rotated-0123"
    assert core_app.state.requests == [("PATCH", f"/api/v1/connections/{original['id']}")]
    assert first["sessionId"] != issued.session_id
