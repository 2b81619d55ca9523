"""The core API stand-in (tests/core_standin.py) itself, run as the process other tests and
the delivery benchmark use: idempotency, its fault modes and their timed windows, its
stats, and the webhook signature check (signed here with the `standardwebhooks` package,
not with the stand-in's own code)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks import Webhook

from tests.core_standin import core_standin_process, reset, set_mode, stats
from tests.live_servers import ServerProcess, wait_until

API_KEY = "standin-core-key-0123456789abcdef"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"standin-webhook-secret-0123456789").decode()
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("core-standin") / "standin.log"
    with core_standin_process(log, api_key=API_KEY, webhook_secret=WEBHOOK_SECRET) as process:
        yield process


@pytest.fixture
def core(standin: ServerProcess) -> Iterator[httpx.Client]:
    """A client of the stand-in, which starts each test empty and in the normal mode."""
    reset(standin.url)
    set_mode(standin.url, mode="ok", latency_ms=0, webhook_status=None)
    with httpx.Client(base_url=standin.url, timeout=10) as client:
        yield client


def create(client: httpx.Client, key: str | None, external_id: str = "user-1",
           timeout: float = 10.0) -> httpx.Response:
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    return client.post("/api/v1/connections", headers=headers, timeout=timeout,
                       json={"type": "SECRET_TEXT", "integrationName": "openai",
                             "externalId": external_id, "secretText": "sk-not-a-real-key"})


def test_the_same_idempotency_key_gives_the_same_connection_and_never_a_second(
    core: httpx.Client,
) -> None:
    first = create(core, "session-a")
    again = create(core, "session-a")
    other = create(core, "session-b", external_id="user-2")

    assert first.status_code == 201
    assert again.status_code == 200
    assert other.status_code == 201
    assert again.json()["connection"]["id"] == first.json()["connection"]["id"]
    assert other.json()["connection"]["id"] != first.json()["connection"]["id"]
    assert first.json()["connection"]["id"].startswith("conn_")
    found = core.get("/api/v1/connections", params={"idempotencyKey": "session-a"},
                     headers=AUTH).json()["connections"]
    assert [item["id"] for item in found] == [first.json()["connection"]["id"]]
    assert found[0]["externalId"] == "user-1"
    assert found[0]["integrationName"] == "openai"
    assert core.get("/api/v1/connections", params={"idempotencyKey": "nobody"},
                    headers=AUTH).json() == {"connections": []}
    figures = stats(str(core.base_url))
    assert figures["posts"] == 3
    assert figures["by_key"] == {"session-a": 1, "session-b": 1}
    assert figures["posts_by_key"] == {"session-a": 2, "session-b": 1}
    assert figures["duplicate_accounts"] == 0
    assert len(figures["connections"]) == 2


def test_two_keys_for_one_account_count_as_a_duplicate_account(core: httpx.Client) -> None:
    create(core, "session-a", external_id="user-7")
    create(core, "session-b", external_id="user-7")
    create(core, "session-c", external_id="user-8")

    assert stats(str(core.base_url))["duplicate_accounts"] == 1


def test_a_wrong_key_is_refused_and_saves_nothing(core: httpx.Client) -> None:
    refused = core.post("/api/v1/connections", json={"integrationName": "openai"},
                        headers={"Authorization": "Bearer wrong", "Idempotency-Key": "k"})

    assert refused.status_code == 401
    assert core.get("/api/v1/connections", headers={"Authorization": "Bearer wrong"}
                    ).status_code == 401
    figures = stats(str(core.base_url))
    assert figures["posts"] == 1
    assert figures["connections"] == []


def test_a_timed_503_window_saves_nothing_and_ends_by_itself(core: httpx.Client) -> None:
    url = str(core.base_url)
    # Read the clock before asking: the window opens when the stand-in gets the request,
    # so it cannot have opened before this reading (after the call, it could have).
    opened = time.monotonic()
    set_mode(url, mode="status", status=503, retry_after=2, for_seconds=1.0)

    down = create(core, "session-a")
    assert down.status_code == 503
    assert down.headers["retry-after"] == "2"
    assert stats(url)["mode"]["name"] == "status"
    wait_until(lambda: create(core, "session-a").status_code == 201, timeout=10,
               what="the 503 window to end")

    assert time.monotonic() - opened >= 1.0
    figures = stats(url)
    assert figures["mode"]["name"] == "ok"
    assert figures["by_key"] == {"session-a": 1}
    assert figures["posts_by_key"]["session-a"] >= 2


def test_latency_delays_every_answer(core: httpx.Client) -> None:
    set_mode(str(core.base_url), mode="ok", latency_ms=300)
    started = time.monotonic()
    assert create(core, "session-a").status_code == 201
    assert time.monotonic() - started >= 0.3


def test_slow_saves_before_the_client_gives_up(core: httpx.Client) -> None:
    url = str(core.base_url)
    set_mode(url, mode="slow", seconds=3)
    with pytest.raises(httpx.ReadTimeout):
        create(core, "session-a", timeout=0.5)
    set_mode(url, mode="ok")

    saved = core.get("/api/v1/connections", params={"idempotencyKey": "session-a"},
                     headers=AUTH).json()["connections"]
    retried = create(core, "session-a")
    assert len(saved) == 1
    assert retried.status_code == 200
    assert retried.json()["connection"]["id"] == saved[0]["id"]


def test_save_then_status_and_malformed_save_but_reject_does_not(core: httpx.Client) -> None:
    url = str(core.base_url)
    set_mode(url, mode="save_then_status", status=500)
    assert create(core, "session-a").status_code == 500
    set_mode(url, mode="malformed")
    malformed = create(core, "session-b")
    assert malformed.status_code == 201
    with pytest.raises(ValueError):
        malformed.json()
    set_mode(url, mode="reject", status=422, error="That key is revoked.")
    rejected = create(core, "session-c")
    assert rejected.status_code == 422
    assert rejected.json() == {"error": "That key is revoked.", "code": "VALIDATION_ERROR"}

    assert stats(url)["by_key"] == {"session-a": 1, "session-b": 1}


def test_an_unknown_mode_is_refused(core: httpx.Client) -> None:
    assert core.post("/_control/mode", json={"mode": "explode"}).status_code == 400
    assert stats(str(core.base_url))["mode"]["name"] == "ok"


def signed_headers(webhook_id: str, body: str, *, secret: str = WEBHOOK_SECRET,
                   at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(tz=UTC)
    return {"webhook-id": webhook_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
            "content-type": "application/json"}


def test_webhooks_are_counted_only_when_the_signature_holds(core: httpx.Client) -> None:
    body = '{"type":"connection.completed"}'
    other_secret = "whsec_" + base64.b64encode(b"another-secret-0123456789abcdef").decode()
    stale = datetime.now(tz=UTC) - timedelta(minutes=10)

    first = core.post("/_webhooks", content=body, headers=signed_headers("msg_1", body))
    again = core.post("/_webhooks", content=body, headers=signed_headers("msg_1", body))
    forged = core.post("/_webhooks", content=body,
                       headers=signed_headers("msg_2", body, secret=other_secret))
    tampered = core.post("/_webhooks", content=body + " ",
                         headers=signed_headers("msg_3", body))
    old = core.post("/_webhooks", content=body, headers=signed_headers("msg_4", body, at=stale))

    assert [first.status_code, again.status_code] == [200, 200]
    assert [forged.status_code, tampered.status_code, old.status_code] == [400, 400, 400]
    figures = stats(str(core.base_url))
    assert figures["webhooks"] == {"msg_1": 2}
    assert figures["webhook_attempts"] == 5


def test_a_timed_webhook_outage_answers_its_status_and_ends_by_itself(
    core: httpx.Client,
) -> None:
    url = str(core.base_url)
    body = '{"type":"connection.completed"}'
    set_mode(url, webhook_status=503, webhook_for_seconds=1.0)

    assert core.post("/_webhooks", content=body,
                     headers=signed_headers("msg_1", body)).status_code == 503
    assert stats(url)["webhooks"] == {}
    wait_until(lambda: core.post("/_webhooks", content=body,
                                 headers=signed_headers("msg_1", body)).status_code == 200,
               timeout=10, what="the webhook outage to end")
    assert stats(url)["webhooks"] == {"msg_1": 1}
    # The core API itself was never down.
    assert create(core, "session-a").status_code == 201
