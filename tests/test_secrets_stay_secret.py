"""A whole flow at DEBUG: no secret in any log line, URL the partner sees, or Redis value."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from portal.logs import configure_logging
from tests.conftest import (
    API_KEY,
    CORE_API_KEY,
    PARTNER_ORIGIN,
    SECRET_KEY,
    mint,
    open_page,
    redis_values,
    submit,
)

CONNECTION_SECRET = "sk-proj-SECRET-never-logged-123"


def test_no_secret_reaches_a_log_line_or_redis(
    make_client: Any, caplog: pytest.LogCaptureFixture, redis_client: redis.Redis,
    settings: Any,
) -> None:
    configure_logging("DEBUG")  # the portal's own logging set-up, as `serve` uses it
    caplog.set_level(logging.DEBUG)
    # Its worker stays off: it would deliver the failing portal's job below through its
    # own core API, as any process of a deployment may.
    client: TestClient = make_client(start_delivery_worker=False)
    answer = mint(client, successRedirectUri=f"{PARTNER_ORIGIN}/done")
    opened = client.get("/connect", params={"token": answer["token"]})
    cookie = opened.cookies.get("portal_binding") or client.cookies.get("portal_binding")
    page_path, csrf = open_page(client, answer["token"])
    result = submit(client, page_path, csrf, secret_text=CONNECTION_SECRET)
    redirect = result.headers["location"]
    failing = make_client(core_transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    other = mint(failing)
    other_path, other_csrf = open_page(failing, other["token"])
    submit(failing, other_path, other_csrf, secret_text=CONNECTION_SECRET)
    client.post("/api/v1/connect/session/poll", json={"token": answer["token"]})

    secrets = {
        "API key": API_KEY, "core API key": CORE_API_KEY, "signing key": SECRET_KEY,
        "connection secret": CONNECTION_SECRET, "binding cookie": cookie or "",
        "connect token": answer["token"], "csrf token": csrf,
    }
    assert all(secrets.values())
    lines = [record.getMessage() for record in caplog.records]
    lines += [str(record.exc_info) for record in caplog.records if record.exc_info]
    assert any("completed as connection" in line for line in lines)  # the flow did log
    for name, value in secrets.items():
        leaked = [line for line in lines if value in line]
        assert not leaked, f"{name} appears in the logs: {leaked[:1]}"
        assert value not in redirect, f"{name} appears in the redirect URL"

    stored = redis_values(redis_client, settings.redis_prefix)
    # The failing core API left its session CONNECTING, its job waiting in the outbox.
    [job] = redis_client.xrange(f"{settings.redis_prefix}outbox")
    assert job[1]["session"] == other["sessionId"]
    assert f"{settings.redis_prefix}outbox" in stored, "the scan reads the outbox"
    values = list(stored.values())
    for name, value in secrets.items():
        assert not [item for item in values if value in item], f"{name} is stored in Redis"
