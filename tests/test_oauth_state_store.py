"""OAuth `state` records, one contract for both stores: Redis (production) and the
in-process store that is the embedded default when no REDIS_URL is set. A state is
written once when a sign-in starts and taken exactly once at the callback."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
import redis

from portal.store import oauth_state
from portal.store.oauth_state import (
    MemoryOAuthStateStore,
    OAuthStateStore,
    RedisOAuthStateStore,
)
from portal.store.stores import Stores, open_stores


@pytest.fixture(params=["redis", "memory"])
def states(request: pytest.FixtureRequest, stores: Stores) -> OAuthStateStore:
    return stores.oauth_states if request.param == "redis" else MemoryOAuthStateStore()


async def test_a_state_is_taken_exactly_once(states: OAuthStateStore) -> None:
    await states.put("k1", "sealed-record", ttl=600)
    assert await states.take("k1") == "sealed-record"
    assert await states.take("k1") is None  # a replayed callback finds nothing


async def test_an_unknown_state_is_none(states: OAuthStateStore) -> None:
    assert await states.take("never-written") is None


async def test_a_second_put_under_the_same_key_keeps_the_first(states: OAuthStateStore) -> None:
    await states.put("k2", "first", ttl=600)
    await states.put("k2", "second", ttl=600)
    assert await states.take("k2") == "first"


async def test_states_under_other_keys_are_left_alone(states: OAuthStateStore) -> None:
    await states.put("a", "record-a", ttl=600)
    await states.put("b", "record-b", ttl=600)
    assert await states.take("a") == "record-a"
    assert await states.take("b") == "record-b"


async def test_of_many_callbacks_racing_with_one_state_exactly_one_gets_it(
    states: OAuthStateStore,
) -> None:
    await states.put("raced", "record", ttl=600)
    taken = await asyncio.gather(*(states.take("raced") for _ in range(20)))
    assert taken.count("record") == 1
    assert taken.count(None) == 19


async def test_a_memory_state_expires_after_its_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(oauth_state, "time", SimpleNamespace(monotonic=lambda: now[0]))
    store = MemoryOAuthStateStore()
    await store.put("fresh", "record", ttl=600)
    await store.put("stale", "record", ttl=600)
    now[0] += 599
    assert await store.take("fresh") == "record"
    now[0] += 2
    assert await store.take("stale") is None  # 601 s after it was written


async def test_an_expired_memory_state_does_not_block_a_new_one_under_its_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(oauth_state, "time", SimpleNamespace(monotonic=lambda: now[0]))
    store = MemoryOAuthStateStore()
    await store.put("k", "old", ttl=10)
    now[0] += 11
    await store.put("k", "new", ttl=10)
    assert await store.take("k") == "new"


async def test_a_redis_state_carries_its_ttl(stores: Stores, redis_client: redis.Redis
                                             ) -> None:
    store = stores.oauth_states
    assert isinstance(store, RedisOAuthStateStore)
    await store.put("k", "record", ttl=600)
    assert 590 <= redis_client.ttl(store.key("k")) <= 600


async def test_without_redis_the_embedded_default_keeps_states_in_process(
    stores: Stores, redis_prefix: str,
) -> None:
    embedded = open_stores(None, prefix=redis_prefix)
    assert isinstance(embedded.oauth_states, MemoryOAuthStateStore)
    assert isinstance(stores.oauth_states, RedisOAuthStateStore)
    await embedded.oauth_states.put("k", "in-process", ttl=600)
    assert await stores.oauth_states.take("k") is None  # nothing went to Redis
    assert await embedded.oauth_states.take("k") == "in-process"
