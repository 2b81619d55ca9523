"""Signed webhooks: a receiver we run verifies them with the Standard Webhooks library;
a tampered one is rejected; failures are retried with the same id, a bounded number of
times, without holding up the user's result page; no secret is ever in an event."""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from portal.settings import Settings, SettingsError
from portal.webhooks import sign
from tests.conftest import CORE_API_KEY, FAST_DELIVERY, PARTNER_ORIGIN, mint, open_page, submit
from tests.fake_network import Listener, Names
from tests.live_apps import WebhookReceiver, refusing_core
from tests.live_servers import server_thread, wait_until

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
API_KEY_TYPED = "sk-live-webhook-test-0123456789"


@pytest.fixture
def receiver() -> Iterator[tuple[WebhookReceiver, str]]:
    receiver = WebhookReceiver(SECRET)
    with server_thread(receiver.app) as url:
        yield receiver, url


def connect(client: TestClient, **overrides: Any) -> dict[str, Any]:
    answer = mint(client, **overrides)
    page_path, csrf = open_page(client, answer["token"])
    response = submit(client, page_path, csrf, secret_text=API_KEY_TYPED, opener="1")
    assert response.status_code == 200, response.text
    return answer


def outbox_empty(client: TestClient) -> bool:
    """No job left in the outbox: every webhook was sent or given up."""
    depth: int = client.get("/readyz").json()["outbox"]["depth"]
    return depth == 0


def test_completed_session_sends_a_signed_event(
    make_client: Any, receiver: tuple[WebhookReceiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    hooks, url = receiver
    caplog.set_level(logging.DEBUG)
    client = make_client(webhook_url=f"{url}/hooks", webhook_secret=SECRET)
    answer = connect(client)
    wait_until(lambda: len(hooks.deliveries) >= 1 and outbox_empty(client),
               timeout=10, what="the webhook")
    [event] = hooks.verified
    assert event["type"] == "connect.session.completed"
    assert event["data"]["id"] == answer["sessionId"]
    assert event["data"]["status"] == "COMPLETED"
    assert event["data"]["connectionId"].startswith("conn_")
    delivery = hooks.deliveries[0]
    assert delivery["headers"]["webhook-id"] == f"msg_{answer['sessionId']}"
    assert delivery["headers"]["webhook-signature"].startswith("v1,")
    raw = delivery["body"].decode()
    portal_log = "\n".join(record.getMessage() for record in caplog.records
                           if record.name.startswith("portal"))
    assert "webhook" in portal_log
    for secret in (API_KEY_TYPED, answer["token"], SECRET, SECRET.removeprefix("whsec_")):
        assert secret not in raw
        assert secret not in portal_log


def test_failed_session_sends_a_failed_event(
    make_client: Any, receiver: tuple[WebhookReceiver, str]
) -> None:
    hooks, url = receiver
    client = make_client(webhook_url=f"{url}/hooks", webhook_secret=SECRET,
                         core_transport=httpx.ASGITransport(app=refusing_core(CORE_API_KEY)))
    answer = mint(client, externalId="reject-1")
    page_path, csrf = open_page(client, answer["token"])
    submit(client, page_path, csrf, secret_text=API_KEY_TYPED, opener="1")
    # A failed attempt the user may retry is no event (once nothing is left queued, none
    # was sent); giving up ends the session, with exactly one.
    wait_until(lambda: outbox_depth(client) == 0, timeout=10, what="an empty outbox")
    assert hooks.deliveries == []
    submit(client, page_path, csrf, action="give_up", opener="1")
    wait_until(lambda: len(hooks.deliveries) >= 1, timeout=10, what="the webhook")
    wait_until(lambda: outbox_depth(client) == 0, timeout=10, what="an empty outbox")
    [event] = hooks.verified
    assert event["type"] == "connect.session.failed"
    assert event["data"]["id"] == answer["sessionId"]
    assert event["data"]["status"] == "FAILED"
    assert event["data"]["errorCode"] == "CORE_API_REJECTED"


def test_tampered_or_foreign_events_are_rejected_by_the_receiver(
    make_client: Any, receiver: tuple[WebhookReceiver, str]
) -> None:
    hooks, url = receiver
    client = make_client(webhook_url=f"{url}/hooks", webhook_secret=SECRET)
    connect(client)
    wait_until(lambda: len(hooks.deliveries) >= 1, timeout=10, what="the webhook")
    genuine = hooks.deliveries[0]
    signed_headers = {key: genuine["headers"][key]
                      for key in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    tampered_body = genuine["body"].replace(b'"COMPLETED"', b'"FAILED"')
    assert tampered_body != genuine["body"]
    other_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    forged_signature = sign(
        base64.b64decode(other_secret.removeprefix("whsec_")),
        signed_headers["webhook-id"], int(signed_headers["webhook-timestamp"]), genuine["body"])
    attempts = [
        (tampered_body, signed_headers),
        (genuine["body"], {**signed_headers, "webhook-signature": forged_signature}),
        (genuine["body"], {**signed_headers, "webhook-id": "msg_other"}),
        (genuine["body"], {**signed_headers,
                           "webhook-timestamp": str(int(signed_headers["webhook-timestamp"]) + 1)}),
    ]
    for body, headers in attempts:
        response = httpx.post(f"{url}/hooks", content=body,
                              headers={**headers, "content-type": "application/json"})
        assert response.status_code == 400
    # The genuine one, replayed unchanged, still verifies: the check above is not vacuous.
    replay = httpx.post(f"{url}/hooks", content=genuine["body"],
                        headers={**signed_headers, "content-type": "application/json"})
    assert replay.status_code == 204
    assert len(hooks.verified) == 2


def test_failures_are_retried_with_the_same_id_and_body(make_client: Any) -> None:
    hooks = WebhookReceiver(SECRET, failures=2)
    with server_thread(hooks.app) as url:
        client = make_client(webhook_url=f"{url}/hooks", webhook_secret=SECRET)
        answer = connect(client)
        wait_until(lambda: outbox_empty(client) and len(hooks.deliveries) >= 3,
                   timeout=10, what="the webhook retries to end")
    assert len(hooks.deliveries) == 3
    assert {item["headers"]["webhook-id"] for item in hooks.deliveries} == {
        f"msg_{answer['sessionId']}"}
    # At least once, the same event: receivers dedupe by id, and the body never changes.
    assert len({item["body"] for item in hooks.deliveries}) == 1
    assert all(item["payload"] is not None for item in hooks.deliveries)


def test_retries_end_at_the_deadline_and_never_hold_up_the_result_page(
    make_client: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = WebhookReceiver(SECRET, failures=1000)
    with server_thread(hooks.app) as url:
        client = make_client(webhook_url=f"{url}/hooks", webhook_secret=SECRET,
                             delivery_timing=replace(FAST_DELIVERY, deadline=1.0))
        connect(client)  # the result page is answered while the webhook job waits
        assert not outbox_empty(client)
        wait_until(lambda: outbox_empty(client), timeout=10,
                   what="the webhook retries to give up")
    assert len(hooks.deliveries) >= 3
    assert "given up after" in caplog.text


def test_per_token_webhook_url_receives_its_session(
    make_client: Any, receiver: tuple[WebhookReceiver, str]
) -> None:
    hooks, url = receiver
    # The receiver is plain http on loopback: only the development setting reaches it.
    client = make_client(webhook_secret=SECRET, allowed_origins=(PARTNER_ORIGIN, url),
                         allow_http_loopback=True)
    answer = connect(client, webhookUrl=f"{url}/hooks")
    wait_until(lambda: len(hooks.deliveries) >= 1, timeout=10, what="the webhook")
    [event] = hooks.verified
    assert event["data"]["id"] == answer["sessionId"]
    session = client.post("/api/v1/connect/session/poll", json={"token": answer["token"]}).json()
    assert "webhookUrl" not in json.dumps(session)


def test_webhook_settings_are_read_and_checked() -> None:
    settings = Settings.from_env({"PORTAL_WEBHOOK_URL": "https://hooks.example/portal",
                                  "PORTAL_WEBHOOK_SECRET": SECRET})
    assert settings.webhook_url == "https://hooks.example/portal"
    assert settings.webhook_secret == SECRET
    with pytest.raises(SettingsError, match="PORTAL_WEBHOOK_SECRET is required"):
        Settings.from_env({"PORTAL_WEBHOOK_URL": "https://hooks.example/portal"})
    for bad in ("not-prefixed", "whsec_***", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(SettingsError, match="PORTAL_WEBHOOK_SECRET") as caught:
            Settings.from_env({"PORTAL_WEBHOOK_SECRET": bad})
        assert bad not in str(caught.value)


def test_a_token_webhook_url_on_a_private_address_gets_nothing_while_the_operators_does(
    make_client: Any, receiver: tuple[WebhookReceiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    """The operator's PORTAL_WEBHOOK_URL host is trusted (here plain http on loopback); a
    token's own webhookUrl goes through the outbound policy: a public-looking name that
    resolves to 127.0.0.1 never gets a connection, and is not retried."""
    hooks, url = receiver
    inside = Listener()
    try:
        origin = f"https://hooks.partner-example.com:{inside.port}"
        client = make_client(webhook_url=f"{url}/hooks", webhook_secret=SECRET,
                             allowed_origins=(PARTNER_ORIGIN, origin),
                             outbound_lookup=Names({"hooks.partner-example.com": ["127.0.0.1"]}))
        answer = connect(client, webhookUrl=f"{origin}/hooks")
        wait_until(lambda: len(hooks.deliveries) >= 1 and outbox_empty(client),
                   timeout=10, what="both webhook sends to finish")
        [event] = hooks.verified
        assert event["data"]["id"] == answer["sessionId"]
        assert inside.connections == []
        assert "refused by the outbound policy (private_address); not retried" in caplog.text
    finally:
        inside.close()


def outbox_depth(client: Any) -> int:
    """Jobs (webhooks among them) still queued, as the portal's readiness says."""
    depth: int = client.get("/readyz").json()["outbox"]["depth"]
    return depth
