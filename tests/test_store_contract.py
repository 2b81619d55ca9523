"""One contract, two stores: Redis (production) and in-process memory (embedded default)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from portal.sessions import ConnectSession, SessionStatus
from portal.store import SessionNotFound, SessionStore, TransitionRefused
from portal.store.memory import MemorySessionStore
from portal.store.redis import RedisSessionStore
from portal.store.stores import Stores


@pytest.fixture
def redis_store(stores: Stores) -> RedisSessionStore:
    assert isinstance(stores.sessions, RedisSessionStore)
    return stores.sessions


@pytest.fixture(params=["redis", "memory"])
def store(request: pytest.FixtureRequest, stores: Stores) -> SessionStore:
    return stores.sessions if request.param == "redis" else MemorySessionStore()


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
            # As a submit moves it (portal/delivery.py): from PENDING only.
            await store.transition(session.id, SessionStatus.CONNECTING,
                                   only_from=frozenset({SessionStatus.PENDING}))
        except TransitionRefused:
            return False
        return True

    outcomes = await asyncio.gather(*(attempt() for _ in range(25)))
    assert outcomes.count(True) == 1


async def test_redis_keys_carry_a_ttl(redis_store: RedisSessionStore,
                                      redis_client: redis.Redis) -> None:
    store = redis_store
    session = new_session()
    await store.create(session, ttl=900)
    await store.transition(session.id, SessionStatus.CONNECTING)
    ttl = redis_client.ttl(store.key(session.id))
    assert 890 <= ttl <= 900  # transitions keep the TTL


async def test_memory_sessions_expire_after_their_ttl() -> None:
    now = [1000.0]
    store = MemorySessionStore(clock=lambda: now[0])
    session = new_session()
    await store.create(session, ttl=60)
    now[0] += 59
    assert await store.get(session.id) == session
    now[0] += 2
    assert await store.get(session.id) is None


# -- the first browser to open a link claims the session (issue 8, finding 10) ------------
async def test_first_claim_wins_and_its_holder_may_claim_again(store: SessionStore) -> None:
    session = new_session()
    await store.create(session, ttl=600)
    assert await store.claim(session.id, "browser-a") is True
    assert await store.claim(session.id, "browser-a") is True  # a reload, a second tab
    assert await store.claim(session.id, "browser-b") is False
    assert await store.claim(session.id, "browser-a") is True  # still A's


async def test_claiming_a_missing_session_raises_not_found(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        await store.claim("3f1c7f0e-0000-4000-8000-00000000dead", "browser-a")


async def test_a_claim_survives_transitions_and_changes_nothing_else(
    store: SessionStore,
) -> None:
    session = new_session()
    await store.create(session, ttl=600)
    await store.claim(session.id, "browser-a")
    assert await store.get(session.id) == session  # not part of the public record
    await store.transition(session.id, SessionStatus.CONNECTING)
    await store.transition(session.id, SessionStatus.COMPLETED, connection_id="conn_1")
    assert await store.claim(session.id, "browser-b") is False
    assert await store.claim(session.id, "browser-a") is True


async def test_only_one_of_many_racing_browsers_claims_the_session(store: SessionStore) -> None:
    session = new_session()
    await store.create(session, ttl=600)
    outcomes = await asyncio.gather(
        *(store.claim(session.id, f"browser-{n}") for n in range(25))
    )
    assert outcomes.count(True) == 1
    winner = f"browser-{outcomes.index(True)}"
    assert await store.claim(session.id, winner) is True


async def test_redis_claim_lives_in_the_session_key_and_keeps_its_ttl(
    redis_store: RedisSessionStore, redis_prefix: str, redis_client: redis.Redis,
) -> None:
    store = redis_store
    session = new_session()
    await store.create(session, ttl=900)
    await store.claim(session.id, "browser-a")
    assert 890 <= redis_client.ttl(store.key(session.id)) <= 900
    assert list(redis_client.scan_iter(match=f"{redis_prefix}*")) == [store.key(session.id)]


async def test_memory_claim_expires_with_its_session() -> None:
    now = [1000.0]
    store = MemorySessionStore(clock=lambda: now[0])
    session = new_session()
    await store.create(session, ttl=60)
    assert await store.claim(session.id, "browser-a") is True
    now[0] += 61
    with pytest.raises(SessionNotFound):
        await store.claim(session.id, "browser-b")


async def test_only_from_narrows_a_transition_and_changes_nothing_when_refused(
    store: SessionStore,
) -> None:
    """A provider's error answer may end a PENDING session, never a delivery in flight."""
    session = new_session()
    await store.create(session, ttl=600)
    connecting = await store.transition(session.id, SessionStatus.CONNECTING)
    with pytest.raises(TransitionRefused) as refused:
        await store.transition(session.id, SessionStatus.FAILED,
                               only_from=frozenset({SessionStatus.PENDING}), error="denied")
    assert refused.value.current is SessionStatus.CONNECTING
    assert await store.get(session.id) == connecting

    other = new_session("3f1c7f0e-0000-4000-8000-000000000002")
    await store.create(other, ttl=600)
    failed = await store.transition(other.id, SessionStatus.FAILED,
                                    only_from=frozenset({SessionStatus.PENDING}), error="denied")
    assert (failed.status, failed.error) == (SessionStatus.FAILED, "denied")
