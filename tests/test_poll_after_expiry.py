"""Poll by token after the token expired: a final session's result stays readable (for as
long as its record is kept), a session that is not final reads as expired, and a token
the portal did not sign reads nothing, expired or not. Opening the link stays refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from portal.flow import RESULT_RETENTION
from portal.settings import Settings
from portal.tokens import TOKEN_PREFIX, Signer
from tests.conftest import AUTH, FAST_DELIVERY, PORTAL_URL, Clock, mint, open_page, submit

TTL = 600  # the settings' token TTL, which the tests step past with the portal's clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(settings: Settings, core_app: Starlette, make_app: Any,
           clock: Clock) -> Iterator[TestClient]:
    app = make_app(settings, core_transport=httpx.ASGITransport(app=core_app), clock=clock)
    with TestClient(app, base_url=PORTAL_URL, follow_redirects=False) as client:
        yield client


def poll(client: TestClient, token: str) -> httpx.Response:
    response: httpx.Response = client.post("/api/v1/connect/session/poll",
                                           json={"token": token})
    return response


def completed_token(client: TestClient) -> str:
    token: str = mint(client, expiresIn=TTL)["token"]
    page_path, csrf = open_page(client, token)
    submit(client, page_path, csrf, secret_text="sk-live-abc")
    assert poll(client, token).json()["status"] == "COMPLETED"
    return token


def test_a_completed_session_is_polled_after_its_token_expired(
    client: TestClient, clock: Clock,
) -> None:
    token = completed_token(client)
    clock.now += TTL + 1
    polled = poll(client, token)
    assert polled.status_code == 200, polled.text
    assert polled.json()["status"] == "COMPLETED"
    assert polled.json()["connectionId"].startswith("conn_")
    clock.now += RESULT_RETENTION - 2  # still within the time the record is kept
    assert poll(client, token).json()["status"] == "COMPLETED"


def test_a_pending_session_polled_after_expiry_is_refused_as_expired(
    client: TestClient, clock: Clock,
) -> None:
    token = mint(client, expiresIn=TTL)["token"]
    assert poll(client, token).json()["status"] == "PENDING"
    clock.now += TTL
    refused = poll(client, token)
    assert refused.status_code == 401
    assert refused.json()["code"] == "INVALID_TOKEN"
    assert refused.json()["details"] == {"reason": "expired"}


def test_an_expired_link_still_does_not_open(client: TestClient, clock: Clock) -> None:
    token = completed_token(client)
    clock.now += TTL + 1
    opened = client.get("/connect", params={"token": token})
    assert opened.status_code == 401


def test_a_token_the_portal_did_not_sign_reads_nothing_after_expiry(
    client: TestClient, clock: Clock,
) -> None:
    token = completed_token(client)
    session_id = poll(client, token).json()["id"]
    expires_at = int(clock.now) + TTL
    forged = Signer(("another-portal-key-0123456789abcdef0123",)).issue_connect_token(
        session_id, expires_at)
    body, signature = token[len(TOKEN_PREFIX):].rsplit(".", 1)
    tampered = f"{TOKEN_PREFIX}{body}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    clock.now += TTL + 1
    for bad in (forged, tampered):
        refused = poll(client, bad)
        assert refused.status_code == 401
        assert refused.json()["code"] == "INVALID_TOKEN"
        assert refused.json()["details"] == {"reason": "invalid"}


def test_a_never_submitted_session_reads_expired_by_id_once_its_token_expired(
    client: TestClient, clock: Clock,
) -> None:
    answer = mint(client, expiresIn=TTL)
    open_page(client, answer["token"])
    lookup = f"/api/v1/connect/session/{answer['sessionId']}"
    assert client.get(lookup, headers=AUTH).json()["session"]["status"] == "PENDING"
    clock.now += TTL
    session = client.get(lookup, headers=AUTH).json()["session"]
    assert (session["status"], session["errorCode"]) == ("FAILED", "EXPIRED")
    assert session["error"] == "The connect link expired before the account was connected."
    # By token it is the expired token's 401, as before.
    assert poll(client, answer["token"]).status_code == 401


def test_a_session_still_connecting_reads_connecting_by_id_after_its_token_expired(
    settings: Settings, make_app: Any, clock: Clock,
) -> None:
    down = httpx.MockTransport(lambda request: httpx.Response(503))
    app = make_app(settings, core_transport=down, clock=clock,
                   delivery_timing=replace(FAST_DELIVERY, inline_budget=0.05))
    with TestClient(app, base_url=PORTAL_URL, follow_redirects=False) as client:
        answer = mint(client, expiresIn=TTL)
        page_path, csrf = open_page(client, answer["token"])
        submit(client, page_path, csrf, secret_text="sk-live-abc")
        clock.now += TTL + 5
        lookup = f"/api/v1/connect/session/{answer['sessionId']}"
        assert client.get(lookup, headers=AUTH).json()["session"]["status"] == "CONNECTING"
