"""The official Weavz Python SDK, unchanged, against the portal running as its own uvicorn
process (`portal.asgi:app_from_env`, the `serve` entry point) over real HTTP, with the
real Redis and the demo core API in a second process."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from weavz_sdk import WeavzClient
from weavz_sdk.errors import WeavzError

from tests.conftest import core_connections, csrf_of
from tests.live_servers import ServerProcess, bound_socket, delete_keys, url_of, uvicorn_process

API_KEY = "sdk-process-api-key-0123456789abcdef"
CORE_API_KEY = "sdk-process-core-key-0123456789abcdef"
SECRET_KEY = "sdk-process-secret-key-0123456789abcdef0123456789"
OPENAI_KEY = "sk-proj-sdkprocess0123456789abcdefghijklmnop"


@dataclass(frozen=True)
class Deployment:
    portal_url: str
    core_url: str
    redis_prefix: str
    portal: ServerProcess

    def received(self) -> list[dict[str, Any]]:
        return core_connections(self.core_url, CORE_API_KEY)


@pytest.fixture(scope="module")
def deployment(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    logs = tmp_path_factory.mktemp("sdk-process")
    prefix = f"test:sdk:{uuid.uuid4().hex}:"
    portal_socket = bound_socket()
    portal_url = url_of(portal_socket)
    with uvicorn_process("tests.live_apps:core_app", env={"CORE_API_KEY": CORE_API_KEY},
                         log_path=logs / "core.log") as core, \
            uvicorn_process("portal.asgi:app_from_env", sock=portal_socket, ready_path="/readyz",
                            log_path=logs / "portal.log", env={
                                "PORTAL_PUBLIC_URL": portal_url,
                                "PORTAL_SECRET_KEYS": SECRET_KEY,
                                "PORTAL_API_KEYS": API_KEY,
                                "REDIS_URL": redis_url,
                                "PORTAL_REDIS_PREFIX": prefix,
                                "CORE_API_URL": core.url,
                                "CORE_API_KEY": CORE_API_KEY,
                                # The built-in OpenAI entry would check the key with OpenAI.
                                "PORTAL_VERIFY_CREDENTIALS": "false",
                            }) as portal:
        try:
            yield Deployment(portal_url, core.url, prefix, portal)
        finally:
            delete_keys(redis_url, prefix)


@pytest.fixture
def sdk(deployment: Deployment) -> Iterator[WeavzClient]:
    with WeavzClient(api_key=API_KEY, base_url=deployment.portal_url, timeout=10) as client:
        yield client


def create_token(sdk: WeavzClient, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "integration_name": "openai",
        "connection_name": "My OpenAI",
        "external_id": f"user-{uuid.uuid4().hex[:8]}",
        "workspace_id": "ws-1",
    }
    arguments.update(overrides)
    answer: dict[str, Any] = sdk.connect.create_token(**arguments)
    return answer


def complete_in_browser(connect_url: str, portal_url: str, secret_text: str) -> httpx.Response:
    """What a browser does with the connect link: open it, read the form, submit it."""
    with httpx.Client(timeout=10, follow_redirects=False) as browser:
        opened = browser.get(connect_url)
        assert opened.status_code == 303, opened.text
        page_url = portal_url + opened.headers["location"]
        assert "token" not in page_url
        page = browser.get(page_url)
        assert page.status_code == 200, page.text
        result = browser.post(
            page_url,
            data={"csrf_token": csrf_of(page.text), "secret_text": secret_text},
            headers={"Origin": portal_url},
        )
        assert result.status_code == 200, result.text
        return result


def test_create_token_answers_token_connect_url_expiry_and_session_id(
    sdk: WeavzClient, deployment: Deployment
) -> None:
    answer = create_token(sdk)
    assert set(answer) == {"token", "connectUrl", "expiresAt", "sessionId"}
    assert answer["token"].startswith("cst_")
    assert answer["connectUrl"] == f"{deployment.portal_url}/connect?token={answer['token']}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", answer["expiresAt"])
    assert str(uuid.UUID(answer["sessionId"])) == answer["sessionId"]


def test_get_session_and_poll_say_pending_before_the_user_acts(sdk: WeavzClient) -> None:
    answer = create_token(sdk, external_id="user-pending")

    session = sdk.connect.get_session(answer["sessionId"])["session"]
    assert session["id"] == answer["sessionId"]
    assert session["status"] == "PENDING"
    assert session["integrationName"] == "openai"
    assert session["connectionName"] == "My OpenAI"
    assert session["externalId"] == "user-pending"
    assert session["connectionId"] is None
    assert session["expiresAt"] == answer["expiresAt"]

    polled = sdk.connect.poll(answer["token"])
    assert polled["id"] == answer["sessionId"]
    assert polled["status"] == "PENDING"
    assert polled["connectionId"] is None


def test_wait_returns_completed_with_the_connection_id_once_the_user_submits(
    sdk: WeavzClient, deployment: Deployment
) -> None:
    answer = create_token(sdk)
    # The backend waits while the user fills the form, as a partner backend would.
    with ThreadPoolExecutor(max_workers=1) as pool, \
            WeavzClient(api_key=API_KEY, base_url=deployment.portal_url, timeout=10) as waiter:
        waiting = pool.submit(waiter.connect.wait, answer["token"], timeout=20, interval=0.1)
        result_page = complete_in_browser(answer["connectUrl"], deployment.portal_url,
                                          OPENAI_KEY)
        finished = waiting.result(timeout=30)

    assert "Connected" in result_page.text
    assert finished["status"] == "COMPLETED"
    assert finished["id"] == answer["sessionId"]
    assert finished["connectionId"].startswith("conn_")
    assert sdk.connect.get_session(answer["sessionId"])["session"]["connectionId"] == (
        finished["connectionId"]
    )
    [connection] = [item for item in deployment.received()
                    if item["id"] == finished["connectionId"]]
    assert connection["idempotencyKey"] == answer["sessionId"]
    assert connection["body"]["type"] == "SECRET_TEXT"
    assert connection["body"]["secretText"] == OPENAI_KEY
    log = deployment.portal.output()
    for secret in (OPENAI_KEY, answer["token"], API_KEY, CORE_API_KEY):
        assert secret not in log


def test_a_wrong_api_key_is_an_unauthorized_weavz_error(deployment: Deployment) -> None:
    with WeavzClient(api_key="not-the-key-0123456789abcdef", base_url=deployment.portal_url,
                     timeout=10) as wrong, pytest.raises(WeavzError) as raised:
        create_token(wrong)
    assert raised.value.code == "UNAUTHORIZED"
    assert raised.value.status == 401


def test_a_bad_token_is_an_invalid_token_weavz_error(sdk: WeavzClient) -> None:
    answer = create_token(sdk)
    tampered = answer["token"][:-4] + ("AAAA" if not answer["token"].endswith("AAAA") else "BBBB")
    for token in ("cst_not-a-real-token", tampered):
        with pytest.raises(WeavzError) as raised:
            sdk.connect.poll(token)
        assert raised.value.code == "INVALID_TOKEN"
        assert raised.value.status == 401


def test_an_invalid_body_is_a_validation_weavz_error_and_creates_nothing(
    sdk: WeavzClient, deployment: Deployment, redis_url: str
) -> None:
    def sessions_in_redis() -> int:
        client = redis.Redis.from_url(redis_url)
        try:
            return len(list(client.scan_iter(match=f"{deployment.redis_prefix}session:*")))
        finally:
            client.close()

    before = sessions_in_redis()
    with pytest.raises(WeavzError) as raised:
        create_token(sdk, workspace_id="   ", scope="EVERYONE")
    assert raised.value.code == "VALIDATION_ERROR"
    assert raised.value.status == 400
    assert set(raised.value.details["fields"]) == {"workspaceId", "scope"}
    assert sessions_in_redis() == before
