"""End-user portal links (`eut_` tokens) through the backend API: the Weavz SDK, unchanged,
against the portal as its own process (`portal.asgi:app_from_env`), with the demo core API
in a second process and the real Redis.

Minting, the errors that store nothing, revoking one link or all of an end user's, and
the walls between end users and between `eut_` and `cst_` tokens.
"""

from __future__ import annotations

import asyncio
import calendar
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from weavz_sdk import WeavzClient
from weavz_sdk.errors import WeavzError

from portal.end_users.links import (
    DEFAULT_LINK_TTL,
    EndUserLinks,
    LinkRefused,
)
from portal.store.revocations import MemoryRevocationStore, RedisRevocationStore
from portal.store.stores import redis_client
from portal.tokens import Signer, TokenRefused
from tests.live_servers import LivePortal, ServerProcess, portal_process, uvicorn_process

API_KEY = "end-user-api-key-0123456789abcdef"
CORE_API_KEY = "end-user-core-key-0123456789abcdef"
SECRET_KEY = "end-user-secret-key-0123456789abcdef0123456789"
WORKSPACE = "ws-end-users"


# -- shared with tests/test_invites.py ------------------------------------------------------

@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The demo core API (with its end-user endpoints) in a process of its own."""
    logs = tmp_path_factory.mktemp("core")
    with uvicorn_process("tests.live_apps:core_app", env={"CORE_API_KEY": CORE_API_KEY},
                         log_path=logs / "core.log") as process:
        yield process


def start_portal(redis_url: str, core_url: str, log_path: Path,
                 **env: str) -> Any:
    """The portal as `serve` runs it, its core API the demo's (a context manager)."""
    return portal_process(redis_url, log_path, api_key=API_KEY, secret_key=SECRET_KEY,
                          CORE_API_URL=core_url, CORE_API_KEY=CORE_API_KEY, **env)


def new_end_user(core_url: str, *, workspace: str = WORKSPACE, **fields: str) -> dict[str, Any]:
    """An end user registered at the demo core API."""
    answer = httpx.post(f"{core_url}/api/v1/end-users",
                        headers={"Authorization": f"Bearer {CORE_API_KEY}"},
                        json={"workspaceId": workspace,
                              "externalId": f"user-{uuid.uuid4().hex[:8]}", **fields})
    assert answer.status_code == 201, answer.text
    end_user: dict[str, Any] = answer.json()["endUser"]
    return end_user


def link_state(redis_url: str, prefix: str, token: str) -> str:
    """"valid", or why the portal's links refuse `token` (read as the portal reads it:
    its key, its Redis revocations)."""
    async def read() -> str:
        client = redis_client(redis_url)
        try:
            links = EndUserLinks((SECRET_KEY,), RedisRevocationStore(client, prefix=prefix))
            await links.read(token)
            return "valid"
        except LinkRefused as refused:
            return refused.reason
        finally:
            await client.aclose()
    return asyncio.run(read())


def opens(portal: LivePortal, url: str) -> int:
    """The status of opening a link in a browser-like client (no redirects followed)."""
    with portal.client() as browser:
        return browser.get(url).status_code


def prefixed_keys(redis_url: str, prefix: str) -> list[str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return sorted(client.scan_iter(match=f"{prefix}*", count=500))
    finally:
        client.close()


# -- fixtures of this module ----------------------------------------------------------------

@pytest.fixture(scope="module")
def portal(redis_url: str, core: ServerProcess,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    logs = tmp_path_factory.mktemp("portal")
    with start_portal(redis_url, core.url, logs / "portal.log",
                      PORTAL_VERIFY_CREDENTIALS="false") as live:
        yield live


@pytest.fixture
def sdk(portal: LivePortal) -> Iterator[WeavzClient]:
    with WeavzClient(api_key=API_KEY, base_url=portal.url, timeout=10,
                     max_retries=0) as client:
        yield client


def revoke_all(sdk: WeavzClient, end_user_id: str) -> Any:
    return sdk.request("DELETE", f"/api/v1/end-users/{end_user_id}/connect-tokens")


def revoke_one(sdk: WeavzClient, end_user_id: str, token: str) -> Any:
    return sdk.request("POST", f"/api/v1/end-users/{end_user_id}/connect-tokens/revoke",
                       json={"token": token})


def error_of(call: Any) -> WeavzError:
    with pytest.raises(WeavzError) as caught:
        call()
    return caught.value


# -- minting ------------------------------------------------------------------------------

def test_a_link_is_an_eut_token_with_its_url_and_expiry(
        sdk: WeavzClient, portal: LivePortal, core: ServerProcess, redis_url: str) -> None:
    end_user = new_end_user(core.url, displayName="Ada")
    before = int(time.time())
    answer = sdk.end_users.create_connect_token(end_user["id"])

    assert set(answer) == {"token", "connectUrl", "expiresAt"}
    token = answer["token"]
    assert token.startswith("eut_")
    assert answer["connectUrl"] == f"{portal.url}/connect/portal?token={token}"
    expires = calendar.timegm(time.strptime(answer["expiresAt"], "%Y-%m-%dT%H:%M:%SZ"))
    assert before + DEFAULT_LINK_TTL <= expires <= time.time() + DEFAULT_LINK_TTL + 1
    assert link_state(redis_url, portal.redis_prefix, token) == "valid"
    # The page takes it: the token goes into a cookie and out of the address.
    assert opens(portal, answer["connectUrl"]) == 303


def test_a_link_narrowed_to_one_integration_carries_it(
        sdk: WeavzClient, portal: LivePortal, core: ServerProcess) -> None:
    end_user = new_end_user(core.url)
    answer = sdk.end_users.create_connect_token(
        end_user["id"], integration_name="openai", workspace_integration_id="wi-7",
        expires_in=3600)
    link = EndUserLinks((SECRET_KEY,), MemoryRevocationStore()).read_signed(answer["token"])
    assert (link.end_user_id, link.workspace_id) == (end_user["id"], WORKSPACE)
    assert (link.integration_name, link.workspace_integration_id) == ("openai", "wi-7")
    assert link.expires_at - link.issued_at_ms // 1000 == 3600


def test_an_unknown_end_user_is_end_user_not_found(sdk: WeavzClient) -> None:
    error = error_of(lambda: sdk.end_users.create_connect_token("eu_nobody"))
    assert (error.status, error.code) == (404, "END_USER_NOT_FOUND")
    error = error_of(lambda: sdk.end_users.create_connect_token("x" * 201))
    assert (error.status, error.code) == (404, "END_USER_NOT_FOUND")


@pytest.mark.parametrize(("body", "field", "text"), [
    ({"expiresIn": 3599}, "expiresIn", "Must be between 3600 and 2592000 seconds."),
    ({"expiresIn": 2592001}, "expiresIn", "Must be between 3600 and 2592000 seconds."),
    ({"expiresIn": "3600"}, "expiresIn", "Must be a whole number of seconds."),
    ({"expiresIn": 3600.5}, "expiresIn", "Must be a whole number of seconds."),
    ({"integrationName": 7}, "integrationName", "Must be a string."),
    ({"color": "red"}, "color", "Unknown field."),
])
def test_bad_fields_are_validation_errors_and_store_nothing(
        sdk: WeavzClient, portal: LivePortal, core: ServerProcess, redis_url: str,
        body: dict[str, Any], field: str, text: str) -> None:
    end_user = new_end_user(core.url)
    keys = prefixed_keys(redis_url, portal.redis_prefix)
    error = error_of(lambda: sdk.request(
        "POST", f"/api/v1/end-users/{end_user['id']}/connect-token", json=body))
    assert (error.status, error.code) == (400, "VALIDATION_ERROR")
    assert error.details == {"fields": {field: text}}
    assert prefixed_keys(redis_url, portal.redis_prefix) == keys


def test_an_unknown_integration_is_refused_and_stores_nothing(
        sdk: WeavzClient, portal: LivePortal, core: ServerProcess, redis_url: str) -> None:
    end_user = new_end_user(core.url)
    keys = prefixed_keys(redis_url, portal.redis_prefix)
    error = error_of(lambda: sdk.end_users.create_connect_token(
        end_user["id"], integration_name="no-such-app"))
    assert (error.status, error.code) == (404, "INTEGRATION_NOT_FOUND")
    assert error.details == {"integrationName": "no-such-app"}
    assert prefixed_keys(redis_url, portal.redis_prefix) == keys


def test_the_api_key_is_required(portal: LivePortal, core: ServerProcess) -> None:
    end_user = new_end_user(core.url)
    with portal.client() as client:
        for method, path, body in [
            ("POST", "connect-token", {}), ("POST", "invite", {"email": "a@example.com"}),
            ("DELETE", "connect-tokens", None), ("POST", "connect-tokens/revoke",
                                                 {"token": "eut_x"}),
        ]:
            answer = client.request(method, f"/api/v1/end-users/{end_user['id']}/{path}",
                                    json=body, headers={"Authorization": "Bearer wrong-key"})
            assert (answer.status_code, answer.json()["code"]) == (401, "UNAUTHORIZED"), path


def test_a_core_api_that_cannot_answer_is_service_unavailable(
        redis_url: str, tmp_path: Path) -> None:
    # The core API's address is the discard port: every connection is refused.
    with portal_process(redis_url, tmp_path / "portal.log", api_key=API_KEY,
                        secret_key=SECRET_KEY) as lonely, \
            WeavzClient(api_key=API_KEY, base_url=lonely.url, timeout=10,
                        max_retries=0) as client:
        error = error_of(lambda: client.end_users.create_connect_token("eu_someone"))
        assert (error.status, error.code) == (503, "SERVICE_UNAVAILABLE")
        # Revoking needs no core API: a partner can always cut links.
        assert revoke_all(client, "eu_someone") is None


# -- revoking -------------------------------------------------------------------------------

def test_revoke_all_cuts_every_link_of_that_end_user_only(
        sdk: WeavzClient, portal: LivePortal, core: ServerProcess, redis_url: str) -> None:
    ada, bob = new_end_user(core.url), new_end_user(core.url)
    ada_links = [sdk.end_users.create_connect_token(ada["id"]) for _ in range(2)]
    bob_link = sdk.end_users.create_connect_token(bob["id"])

    assert revoke_all(sdk, ada["id"]) is None  # 204

    for link in ada_links:
        assert link_state(redis_url, portal.redis_prefix, link["token"]) == "revoked"
        assert opens(portal, link["connectUrl"]) == 401
    assert link_state(redis_url, portal.redis_prefix, bob_link["token"]) == "valid"
    # A link issued after the revocation works.
    fresh = sdk.end_users.create_connect_token(ada["id"])
    assert link_state(redis_url, portal.redis_prefix, fresh["token"]) == "valid"
    assert opens(portal, fresh["connectUrl"]) == 303


def test_revoke_one_cuts_that_link_only(
        sdk: WeavzClient, portal: LivePortal, core: ServerProcess, redis_url: str) -> None:
    ada = new_end_user(core.url)
    first, second = (sdk.end_users.create_connect_token(ada["id"]) for _ in range(2))

    assert revoke_one(sdk, ada["id"], first["token"]) is None  # 204

    assert link_state(redis_url, portal.redis_prefix, first["token"]) == "revoked"
    assert opens(portal, first["connectUrl"]) == 401
    assert link_state(redis_url, portal.redis_prefix, second["token"]) == "valid"
    # Kept only until the link would have expired anyway.
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        [key] = [key for key in prefixed_keys(redis_url, portal.redis_prefix)
                 if key.startswith(f"{portal.redis_prefix}eut-revoked:")
                 and client.ttl(key) > 0]
        assert DEFAULT_LINK_TTL - 60 <= client.ttl(key) <= DEFAULT_LINK_TTL
    finally:
        client.close()


def test_a_link_of_one_end_user_cannot_revoke_anothers(
        sdk: WeavzClient, portal: LivePortal, core: ServerProcess, redis_url: str) -> None:
    ada, bob = new_end_user(core.url), new_end_user(core.url)
    ada_link = sdk.end_users.create_connect_token(ada["id"])
    keys = prefixed_keys(redis_url, portal.redis_prefix)

    error = error_of(lambda: revoke_one(sdk, bob["id"], ada_link["token"]))

    assert (error.status, error.code) == (404, "END_USER_NOT_FOUND")
    assert prefixed_keys(redis_url, portal.redis_prefix) == keys
    assert link_state(redis_url, portal.redis_prefix, ada_link["token"]) == "valid"


@pytest.mark.parametrize("token", ["", "eut_", "eut_not.signed", "x" * 3000, None])
def test_revoking_something_that_is_not_a_link_is_a_validation_error(
        sdk: WeavzClient, core: ServerProcess, token: Any) -> None:
    ada = new_end_user(core.url)
    error = error_of(lambda: sdk.request(
        "POST", f"/api/v1/end-users/{ada['id']}/connect-tokens/revoke", json={"token": token}))
    assert (error.status, error.code) == (400, "VALIDATION_ERROR")
    assert set(error.details["fields"]) == {"token"}


# -- eut_ and cst_ never pass for each other ------------------------------------------------

def test_a_connect_token_is_never_a_link_nor_a_link_a_connect_token(
        sdk: WeavzClient, portal: LivePortal, core: ServerProcess) -> None:
    ada = new_end_user(core.url)
    link = sdk.end_users.create_connect_token(ada["id"])["token"]
    connect = sdk.connect.create_token(
        integration_name="openai", connection_name="Mine", external_id=ada["externalId"],
        workspace_id=WORKSPACE, end_user_id=ada["id"])["token"]
    assert connect.startswith("cst_")

    # Over HTTP: a cst_ token cannot be revoked as a link nor open the portal page ...
    error = error_of(lambda: revoke_one(sdk, ada["id"], connect))
    assert (error.status, error.code) == (400, "VALIDATION_ERROR")
    with portal.client() as browser:
        assert browser.get("/connect/portal", params={"token": connect}).status_code == 401
        # ... and an eut_ token opens no connect session nor polls one.
        assert browser.get("/connect", params={"token": link}).status_code == 401
        polled = browser.post("/api/v1/connect/session/poll", json={"token": link})
        assert (polled.status_code, polled.json()["code"]) == (401, "INVALID_TOKEN")

    # Signed with the same key, but for another purpose: even with the prefixes swapped
    # neither verifies as the other (different salts).
    links = EndUserLinks((SECRET_KEY,), MemoryRevocationStore())
    with pytest.raises(LinkRefused) as refused:
        links.read_signed("eut_" + connect.removeprefix("cst_"))
    assert refused.value.reason == "invalid"
    with pytest.raises(TokenRefused):
        Signer((SECRET_KEY,)).read_signed_connect_token("cst_" + link.removeprefix("eut_"))


# -- the links module on its own -------------------------------------------------------------

async def test_links_expire_and_rotate_keys() -> None:
    now = [1_800_000_000.0]
    old_key, new_key = "o" * 40, "n" * 40
    store = MemoryRevocationStore()
    before = EndUserLinks((old_key,), store, clock=lambda: now[0])
    token, _ = before.issue(end_user_id="eu_1", workspace_id="ws", expires_in=3600)
    rotated = EndUserLinks((new_key, old_key), store, clock=lambda: now[0])
    assert (await rotated.read(token)).end_user_id == "eu_1"  # all keys verify
    fresh, _ = rotated.issue(end_user_id="eu_1", workspace_id="ws", expires_in=3600)
    with pytest.raises(LinkRefused, match="invalid"):
        await before.read(fresh)  # the newest key signs
    now[0] += 3600
    with pytest.raises(LinkRefused, match="expired"):
        await rotated.read(token)


@pytest.mark.parametrize(("token", "reason"), [
    (None, "missing"), ("", "missing"), (7, "missing"), ("cst_abc", "malformed"),
    ("eut_" + "a" * 3000, "malformed"), ("eut_é", "malformed"), ("eut_abc.def", "invalid"),
])
async def test_links_refuse_what_is_not_one(token: object, reason: str) -> None:
    links = EndUserLinks(("k" * 40,), MemoryRevocationStore())
    with pytest.raises(LinkRefused) as refused:
        await links.read(token)
    assert refused.value.reason == reason
    assert refused.value.error().status == 401


async def test_redis_revocations_move_forward_only(redis_url: str, redis_prefix: str) -> None:
    client = redis_client(redis_url)
    try:
        store = RedisRevocationStore(client, prefix=redis_prefix)
        await store.revoke_end_user("eu_1", before_ms=2_000, ttl=60)
        await store.revoke_end_user("eu_1", before_ms=1_000, ttl=60)  # an older racer
        assert await store.is_revoked("j", "eu_1", issued_at_ms=1_500)
        assert await store.is_revoked("j", "eu_1", issued_at_ms=2_000)
        assert not await store.is_revoked("j", "eu_1", issued_at_ms=2_001)
        assert not await store.is_revoked("j", "eu_2", issued_at_ms=1)
        await store.revoke_link("gone", expires_at=int(time.time()) - 1)  # already expired
        assert await client.exists(store.link_key("gone")) == 0
    finally:
        await client.aclose()
