"""The portal against a Redis that dies (kill -9) and comes back empty (our own server, on
a Unix socket of its own: the `own_redis` fixture, not the shared one), and against a
network that loses an answer after Redis acted on the command."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import redis

from portal.sessions import ConnectSession, SessionStatus
from portal.store import JobKind, NewJob
from portal.store.stores import open_stores
from tests.conftest import AUTH, token_body
from tests.fake_network import ReplyLosingProxy
from tests.live_servers import RedisServer


def test_redis_outage_answers_503_and_recovers(own_redis: RedisServer, make_client: Any) -> None:
    client = make_client(redis_url=own_redis.url)
    assert client.get("/readyz").status_code == 200
    minted = client.post("/api/v1/connect/token", json=token_body(), headers=AUTH).json()

    own_redis.stop()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    refused = client.post("/api/v1/connect/token", json=token_body(), headers=AUTH)
    assert refused.status_code == 503
    assert refused.json()["code"] == "SERVICE_UNAVAILABLE"
    polled = client.post("/api/v1/connect/session/poll", json={"token": minted["token"]})
    assert polled.status_code == 503
    page = client.get("/connect", params={"token": minted["token"]})
    assert page.status_code == 503
    assert "The portal is busy" in page.text
    assert client.get("/healthz").status_code == 200  # the process itself is alive

    own_redis.start()  # an empty Redis: the old session is gone, the portal works again
    assert client.get("/readyz").status_code == 200
    again = client.post("/api/v1/connect/token", json=token_body(), headers=AUTH)
    assert again.status_code == 200
    gone = client.post("/api/v1/connect/session/poll", json={"token": minted["token"]})
    assert gone.status_code == 404
    assert gone.json()["code"] == "SESSION_NOT_FOUND"


async def test_a_transition_whose_answer_was_lost_is_not_refused_when_re_sent(
        redis_url: str, redis_prefix: str) -> None:
    """The network drops the answer to a transition after Redis ran it: the client sends
    the script again on a new connection (portal/store/stores.py). The second run must
    report the transition applied, with its one job, not "refused" as if another process
    had moved the session first (a user was told their submit failed while it was being
    delivered)."""
    upstream = urlsplit(redis_url)
    proxy = await ReplyLosingProxy(upstream.hostname or "127.0.0.1",
                                   upstream.port or 6379).start()
    stores = open_stores(f"redis://127.0.0.1:{proxy.port}{upstream.path}", prefix=redis_prefix)
    store = stores.sessions
    now = int(time.time())
    try:
        sessions = [ConnectSession(
            id=str(uuid.uuid4()), workspace_id="ws", connection_name="Name",
            external_id="ext", integration_name="openai", expires_at=now + 600,
            created_at=now) for _ in range(2)]
        for session in sessions:
            await store.create(session, ttl=600)
        # The first transition loads the script, so the one that loses its answer runs it.
        await store.move(sessions[0].id, SessionStatus.CONNECTING, changes={},
                         jobs=[NewJob(JobKind.CONNECTION, "sealed-0")], consumer="c", now=now)

        proxy.lose_the_reply_to_the_next(b"EVALSHA")
        moved = await store.move(sessions[1].id, SessionStatus.CONNECTING, changes={},
                                 jobs=[NewJob(JobKind.CONNECTION, "sealed-1")], consumer="c",
                                 now=now)

        assert proxy.lost == 1
        assert moved.session.status is SessionStatus.CONNECTING
        assert [(job.kind, job.sealed) for job in moved.jobs] == [
            (JobKind.CONNECTION, "sealed-1")]
        # Queued once: the outbox holds one job for each session, not two for the second.
        queued = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            [stream] = [key for key in queued.scan_iter(match=f"{redis_prefix}*")
                        if queued.type(key) == "stream"]
            entries = queued.xrange(stream)
        finally:
            queued.close()
        assert sorted(fields["session"] for _, fields in entries) == sorted(
            session.id for session in sessions)
        assert moved.jobs[0].id == next(entry_id for entry_id, fields in entries
                                        if fields["session"] == sessions[1].id)
    finally:
        await stores.close()
        await proxy.close()
