"""One contract, two stores: Redis (production) and in-process memory (embedded default)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis

from portal.sessions import ConnectSession, SessionStatus
from portal.store import SessionNotFound, SessionStore, TransitionRefused
from portal.store.memory import MemorySessionStore
from portal.store.redis import RedisSessionStore


@pytest.fixture(params=["redis", "memory"])
async def store(request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
                ) -> AsyncIterator[SessionStore]:
    if request.param == "redis":
        store: SessionStore = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    else:
        store = MemorySessionStore()
    yield store
    await store.close()


def new_session(session_id: str = "3f1c7f0e-0000-4000-8000-000000000001") -> ConnectSession:
    now = int(time.time())
    return ConnectSession(
        id=session_id, workspace_id="ws", connection_name="Name", external_id="ext",
        integration_name="openai", allowed_origins=["https://a.example"],
        expires_at=now + 600, created_at=now,
    )


async def test_created_session_reads_back_equal(store: SessionStore) -> None:
    session = new_session()
    await store.create(session, ttl=600)
    assert await store.get(session.id) == session


async def test_missing_session_reads_as_none(store: SessionStore) -> None:
    assert await store.get("3f1c7f0e-0000-4000-8000-00000000dead") is None
    with pytest.raises(SessionNotFound):
        await store.transition("3f1c7f0e-0000-4000-8000-00000000dead", SessionStatus.CONNECTING)


async def test_happy_path_writes_fields_with_each_transition(store: SessionStore) -> None:
    session = new_session()
    await store.create(session, ttl=600)
    connecting = await store.transition(session.id, SessionStatus.CONNECTING)
    assert connecting.status is SessionStatus.CONNECTING
    done = await store.transition(session.id, SessionStatus.COMPLETED, connection_id="conn_1")
    assert (done.status, done.connection_id) == (SessionStatus.COMPLETED, "conn_1")
    assert await store.get(session.id) == done


@pytest.mark.parametrize("final", [SessionStatus.COMPLETED, SessionStatus.FAILED])
async def test_final_statuses_are_final(store: SessionStore, final: SessionStatus) -> None:
    session = new_session()
    await store.create(session, ttl=600)
    await store.transition(session.id, SessionStatus.CONNECTING)
    finished = await store.transition(session.id, final, error="x")
    for target in SessionStatus:
        with pytest.raises(TransitionRefused) as refused:
            await store.transition(session.id, target, connection_id="conn_other")
        assert refused.value.current is final
    assert await store.get(session.id) == finished


async def test_pending_may_fail_directly_but_not_complete(store: SessionStore) -> None:
    session = new_session()
    await store.create(session, ttl=600)
    with pytest.raises(TransitionRefused):
        await store.transition(session.id, SessionStatus.COMPLETED, connection_id="c")
    failed = await store.transition(session.id, SessionStatus.FAILED, error="denied")
    assert failed.error == "denied"


async def test_only_one_of_many_racing_submits_wins(store: SessionStore) -> None:
    session = new_session()
    await store.create(session, ttl=600)

    async def attempt() -> bool:
        try:
            await store.transition(session.id, SessionStatus.CONNECTING)
        except TransitionRefused:
            return False
        return True

    outcomes = await asyncio.gather(*(attempt() for _ in range(25)))
    assert outcomes.count(True) == 1


async def test_redis_keys_carry_a_ttl(redis_url: str, redis_prefix: str,
                                      redis_client: redis.Redis) -> None:
    store = RedisSessionStore.from_url(redis_url, prefix=redis_prefix)
    session = new_session()
    await store.create(session, ttl=900)
    await store.transition(session.id, SessionStatus.CONNECTING)
    ttl = redis_client.ttl(store.key(session.id))
    assert 890 <= ttl <= 900  # transitions keep the TTL
    await store.close()


async def test_memory_sessions_expire_after_their_ttl() -> None:
    now = [1000.0]
    store = MemorySessionStore(clock=lambda: now[0])
    session = new_session()
    await store.create(session, ttl=60)
    now[0] += 59
    assert await store.get(session.id) == session
    now[0] += 2
    assert await store.get(session.id) is None
