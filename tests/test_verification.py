"""Check before saving: a credential is verified with its provider (here a real HTTP
server on loopback) before anything reaches the core API."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from portal.auth.credentials.checker import MAX_RESPONSE_BYTES, CredentialChecker, Outcome
from portal.catalog import Verification
from tests.catalog_server import provider_app
from tests.conftest import mint, open_page, received, session_of, submit
from tests.live_servers import bound_socket, server_thread, trickling_server


@pytest.fixture
def provider() -> Iterator[tuple[str, Starlette]]:
    app = provider_app()
    with server_thread(app) as url:
        yield url, app


def verified_entry(provider_url: str) -> dict[str, Any]:
    return {
        "name": "acme-verified",
        "displayName": "Acme Verified",
        "category": "Testing",
        "description": "Credentials checked before saving.",
        "website": "https://acme.example",
        "authOptions": [
            {"key": "token", "type": "SECRET_TEXT", "displayName": "API token",
             "helpUrl": "https://acme.example/tokens",
             "verification": {"url": f"{provider_url}/v1/me",
                              "headers": {"Authorization": "Bearer {secret_text}"}}},
            {"key": "basic", "type": "BASIC_AUTH", "displayName": "User and password",
             "helpUrl": "https://acme.example/users",
             "verification": {"url": f"{provider_url}/basic",
                              "basicAuth": {"username": "{username}", "password": "{password}"}}},
            {"key": "moved", "type": "SECRET_TEXT", "displayName": "Moved key",
             "helpUrl": "https://acme.example/moved",
             "verification": {"url": f"{provider_url}/moved",
                              "headers": {"Authorization": "Bearer {secret_text}"}}},
        ],
    }


@pytest.fixture
def acme(make_client: Any, provider: tuple[str, Starlette], tmp_path: Path) -> TestClient:
    path = tmp_path / "verified.json"
    path.write_text(json.dumps({"integrations": [verified_entry(provider[0])]}))
    client: TestClient = make_client(catalog_paths=(str(path),), verify_credentials=True,
                                     allow_http_loopback=True)
    return client


def start(client: TestClient, method: str) -> tuple[str, str, str]:
    answer = mint(client, integrationName="acme-verified", authMethodKey=method)
    page_path, csrf = open_page(client, answer["token"])
    return page_path, csrf, answer["sessionId"]


def field_error(page: str, key: str) -> str:
    match = re.search(rf'<p id="{key}-error" class="error">(.*?)</p>', page, re.S)
    assert match, f"no error on {key}"
    return html.unescape(match.group(1))


def test_a_valid_key_is_checked_then_delivered(
    acme: TestClient, provider: tuple[str, Starlette], core_app: Starlette
) -> None:
    url, app = provider
    page_path, csrf, session_id = start(acme, "token")
    response = submit(acme, page_path, csrf, secret_text="good-key")
    assert response.status_code == 200
    assert "Connected" in response.text
    (request,) = app.state.requests
    assert request["path"] == "/v1/me"
    assert request["authorization"] == "Bearer good-key"
    assert request["host"] == url.removeprefix("http://")
    assert received(core_app)[0]["body"]["secretText"] == "good-key"
    assert session_of(acme, session_id)["status"] == "COMPLETED"


def test_a_rejected_key_is_blamed_on_its_field_and_nothing_is_delivered(
    acme: TestClient, provider: tuple[str, Starlette], core_app: Starlette
) -> None:
    page_path, csrf, session_id = start(acme, "token")
    response = submit(acme, page_path, csrf, secret_text="wrong-key-123")
    assert response.status_code == 400
    assert field_error(response.text, "secret_text") == (
        "Acme Verified did not accept this API token. Check it and enter it again.")
    assert "wrong-key-123" not in response.text
    assert received(core_app) == []
    assert session_of(acme, session_id)["status"] == "PENDING"
    # the user fixes the key on the same page
    fixed = submit(acme, page_path, csrf, secret_text="good-key")
    assert "Connected" in fixed.text
    assert len(received(core_app)) == 1


def test_basic_auth_check_blames_the_password(
    acme: TestClient, provider: tuple[str, Starlette], core_app: Starlette
) -> None:
    page_path, csrf, _ = start(acme, "basic")
    refused = submit(acme, page_path, csrf, username="alice", password="nope")
    assert refused.status_code == 400
    assert field_error(refused.text, "password").startswith("Acme Verified did not accept")
    assert 'value="alice"' in refused.text and "nope" not in refused.text
    accepted = submit(acme, page_path, csrf, username="alice", password="good-pass")
    assert "Connected" in accepted.text
    body = received(core_app)[0]["body"]
    assert (body["username"], body["password"]) == ("alice", "good-pass")


def test_a_provider_that_is_down_gives_a_clear_message_and_a_retry(
    acme: TestClient, provider: tuple[str, Starlette], core_app: Starlette
) -> None:
    _, app = provider
    app.state.down = True
    page_path, csrf, session_id = start(acme, "token")
    response = submit(acme, page_path, csrf, secret_text="good-key")
    assert response.status_code == 400
    assert "Acme Verified could not be reached to check your details." in response.text
    assert ">Try again</button>" in response.text
    assert "good-key" not in response.text
    assert received(core_app) == []
    assert session_of(acme, session_id)["status"] == "PENDING"
    app.state.down = False
    retried = submit(acme, page_path, csrf, secret_text="good-key")
    assert "Connected" in retried.text
    assert session_of(acme, session_id)["status"] == "COMPLETED"


def test_an_unreachable_provider_is_the_same_clear_message(
    make_client: Any, tmp_path: Path, core_app: Starlette
) -> None:
    closed = bound_socket()  # bound but never listening: connections are refused
    port = closed.getsockname()[1]
    path = tmp_path / "down.json"
    path.write_text(json.dumps({"integrations": [verified_entry(f"http://127.0.0.1:{port}")]}))
    client = make_client(catalog_paths=(str(path),), verify_credentials=True,
                         allow_http_loopback=True)
    page_path, csrf, _ = start(client, "token")
    response = submit(client, page_path, csrf, secret_text="good-key")
    closed.close()
    assert "could not be reached to check your details" in response.text
    assert received(core_app) == []


def test_redirects_are_not_followed(
    acme: TestClient, provider: tuple[str, Starlette], core_app: Starlette
) -> None:
    _, app = provider
    page_path, csrf, _ = start(acme, "moved")
    response = submit(acme, page_path, csrf, secret_text="good-key")
    assert "could not be reached to check your details" in response.text
    assert [request["path"] for request in app.state.requests] == ["/moved"]
    assert received(core_app) == []


def test_without_the_loopback_setting_a_loopback_provider_is_never_contacted(
    make_client: Any, provider: tuple[str, Starlette], tmp_path: Path, core_app: Starlette
) -> None:
    url, app = provider
    path = tmp_path / "verified.json"
    path.write_text(json.dumps({"integrations": [verified_entry(url)]}))
    client = make_client(catalog_paths=(str(path),), verify_credentials=True)
    page_path, csrf, _ = start(client, "token")
    response = submit(client, page_path, csrf, secret_text="good-key")
    assert response.status_code == 400
    assert app.state.requests == []
    assert received(core_app) == []


async def test_a_dns_answer_is_checked_and_that_address_is_the_one_connected_to(
    provider: tuple[str, Starlette],
) -> None:
    url, app = provider
    port = int(url.rsplit(":", 1)[1])
    verification = Verification(method="GET", url=f"http://provider.example:{port}/v1/me",
                                headers=(("Authorization", "Bearer {secret_text}"),),
                                blame_field="secret_text")

    async def rebinding(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "10.0.0.7"]  # one answer is private: the whole name is refused

    async def loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    # DNS is faked here (no resolver answers for provider.example); the HTTP is real.
    refused = CredentialChecker(allow_http_loopback=True, lookup=rebinding)
    result = await refused.check(verification, {"secret_text": "good-key"})
    await refused.aclose()
    assert result.outcome is Outcome.UNSAFE
    assert app.state.requests == []

    # http to a name is refused even when loopback is allowed: only loopback *addresses* are.
    plain = CredentialChecker(allow_http_loopback=True, lookup=loopback)
    assert (await plain.check(verification, {"secret_text": "good-key"})).outcome is Outcome.UNSAFE
    await plain.aclose()

    https_name = Verification(method="GET", url=f"https://provider.example:{port}/v1/me",
                              blame_field="secret_text")
    checker = CredentialChecker(allow_http_loopback=True, lookup=loopback, timeout=2)
    result = await checker.check(https_name, {"secret_text": "good-key"})
    await checker.aclose()
    # The TLS handshake to 127.0.0.1 fails against the plain-HTTP test server, which shows
    # the connection went to the checked address rather than a fresh lookup of the name.
    assert result.outcome is Outcome.UNAVAILABLE


async def test_at_most_the_size_cap_of_an_answer_is_read() -> None:
    sent = 0

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self) -> Any:
            nonlocal sent
            while sent < 50 * MAX_RESPONSE_BYTES:
                sent += 8192
                yield b"x" * 8192

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Endless())

    checker = CredentialChecker(transport=httpx.MockTransport(handler))
    verification = Verification(method="GET", url="https://93.184.215.14/v1/me",
                                blame_field="secret_text")
    result = await checker.check(verification, {"secret_text": "k"})
    await checker.aclose()
    assert result.outcome is Outcome.VALID
    assert sent <= MAX_RESPONSE_BYTES + 8192


async def test_a_provider_that_does_not_answer_in_time_is_unavailable(
    provider: tuple[str, Starlette],
) -> None:
    url, app = provider
    checker = CredentialChecker(timeout=0.5, allow_http_loopback=True)
    result = await checker.check(Verification(method="GET", url=f"{url}/slow",
                                              blame_field="secret_text"),
                                 {"secret_text": "good-key"})
    await checker.aclose()
    assert (result.outcome, result.reason) == (Outcome.UNAVAILABLE, "timeout")
    assert [request["path"] for request in app.state.requests] == ["/slow"]


async def test_a_provider_that_trickles_its_answer_is_cut_off_at_the_deadline() -> None:
    """A byte every 0.2 s never trips a 0.5 s wait for the next read; the whole check
    still ends at twice the timeout, as unavailable, instead of when the provider stops."""
    with trickling_server("/drip") as url:
        checker = CredentialChecker(timeout=0.5, allow_http_loopback=True)
        started = time.monotonic()
        result = await checker.check(Verification(method="GET", url=f"{url}/drip",
                                                  blame_field="secret_text"),
                                     {"secret_text": "good-key"})
        took = time.monotonic() - started
        await checker.aclose()
    assert (result.outcome, result.reason) == (Outcome.UNAVAILABLE, "timeout")
    assert took < 2.5, f"the check took {took:.1f} s"


async def test_a_resolver_that_hangs_is_bounded_by_the_timeout() -> None:
    async def hanging(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()  # never set: a resolver that never answers
        return []

    checker = CredentialChecker(timeout=0.5, lookup=hanging)
    result = await checker.check(Verification(method="GET", url="https://api.acme.example/me",
                                              blame_field="secret_text"), {"secret_text": "k"})
    await checker.aclose()
    assert (result.outcome, result.reason) == (Outcome.UNAVAILABLE, "timeout")


def test_no_secret_reaches_the_logs_during_a_check(
    acme: TestClient, provider: tuple[str, Starlette], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    page_path, csrf, _ = start(acme, "token")
    submit(acme, page_path, csrf, secret_text="wrong-secret-4711")
    submit(acme, page_path, csrf, secret_text="good-key")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "credential check" in logged
    assert "wrong-secret-4711" not in logged
    assert "good-key" not in logged


def test_check_settings_come_from_the_environment_and_serve_refuses_loopback_http() -> None:
    from portal.settings import Settings, SettingsError

    default = Settings.from_env({})
    assert (default.verify_credentials, default.verification_timeout,
            default.allow_http_loopback) == (True, 5.0, False)
    custom = Settings.from_env({"PORTAL_VERIFY_CREDENTIALS": "false",
                                "PORTAL_VERIFY_TIMEOUT": "2.5",
                                "PORTAL_ALLOW_HTTP_LOOPBACK": "yes"})
    assert (custom.verify_credentials, custom.verification_timeout,
            custom.allow_http_loopback) == (False, 2.5, True)
    with pytest.raises(SettingsError, match="PORTAL_VERIFY_CREDENTIALS must be true or false"):
        Settings.from_env({"PORTAL_VERIFY_CREDENTIALS": "maybe"})
    with pytest.raises(SettingsError, match=r"PORTAL_VERIFY_TIMEOUT must be between 0\.5 and 30"):
        Settings.from_env({"PORTAL_VERIFY_TIMEOUT": "90"})
    production = Settings.from_env({
        "PORTAL_SECRET_KEYS": "k" * 40, "PORTAL_API_KEYS": "a" * 20,
        "REDIS_URL": "redis://127.0.0.1:6379/0", "CORE_API_URL": "https://core.example",
        "CORE_API_KEY": "c" * 20, "PORTAL_ALLOW_HTTP_LOOPBACK": "true",
    })
    with pytest.raises(SettingsError, match="PORTAL_ALLOW_HTTP_LOOPBACK is for tests"):
        production.require_production_secrets()


# -- issue 8, finding 6: a value that cannot be sent in a header --------------------------------
@pytest.mark.parametrize("value", ["glpat-é", "glpat-\u20ac123", "tok\u202eken", "ключ"])
def test_a_value_that_cannot_go_in_a_header_is_a_field_error_and_nothing_is_sent(
    acme: TestClient, provider: tuple[str, Starlette], core_app: Starlette, value: str
) -> None:
    _, app = provider
    page_path, csrf, session_id = start(acme, "token")
    response = submit(acme, page_path, csrf, secret_text=value)
    assert response.status_code == 400
    assert field_error(response.text, "secret_text") == (
        "This API token contains characters that cannot be sent to Acme Verified: only "
        "unaccented letters, digits and common symbols can. Check that you copied it exactly.")
    assert value not in response.text
    assert app.state.requests == []
    assert received(core_app) == []
    assert session_of(acme, session_id)["status"] == "PENDING"
    # The user fixes it on the same page.
    assert "Connected" in submit(acme, page_path, csrf, secret_text="good-key").text
