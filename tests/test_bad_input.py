"""Every malformed token, body, header and form field gets its own answer and changes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from portal.tokens import Signer
from tests.conftest import AUTH, PORTAL_URL, SECRET_KEY, mint, open_page, received, token_body

OTHER_KEY = "another-secret-key-0123456789abcdef012345"


def keys_under(redis_client: redis.Redis, prefix: str) -> set[str]:
    """The portal's records under `prefix`; abuse-limit counters (which a flood of bad
    input is meant to move: portal/rate_limits.py) aside."""
    return {key for key in redis_client.scan_iter(match=f"{prefix}*", count=500)
            if not key.startswith(f"{prefix}rate-limit:")}


def bad_tokens(good: str) -> dict[str, str]:
    future = int(time.time()) + 600
    return {
        "forged": "cst_eyJzaWQiOiJ4In0.forgedsignature",
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "expired": Signer((SECRET_KEY,)).issue_connect_token(
            "3f1c7f0e-0000-4000-8000-000000000001", int(time.time()) - 1),
        "wrong key": Signer((OTHER_KEY,)).issue_connect_token(
            "3f1c7f0e-0000-4000-8000-000000000001", future),
        "truncated": good[: len(good) // 2],
        "non-ascii": "cst_ü" + good[5:],
        "1 MB": "cst_" + "A" * (1024 * 1024),
        "no prefix": good.removeprefix("cst_"),
        "not a string": "",
    }


def test_bad_tokens_get_invalid_token_on_the_api_and_write_nothing(
    client: TestClient, redis_client: redis.Redis, settings: Any,
) -> None:
    good = mint(client)["token"]
    before = keys_under(redis_client, settings.redis_prefix)
    for name, token in bad_tokens(good).items():
        body: dict[str, Any] = {"token": token}
        response = client.post("/api/v1/connect/session/poll", json=body)
        expected = "MISSING_TOKEN" if token == "" else "INVALID_TOKEN"
        assert response.status_code == 401, name
        assert response.json()["code"] == expected, name
    for token_value in (None, 42, ["cst_x"], {"a": 1}):
        response = client.post("/api/v1/connect/session/poll", json={"token": token_value})
        assert response.status_code == 401
    assert keys_under(redis_client, settings.redis_prefix) == before
    # every key in Redis is still exactly the one good session, untouched
    assert client.post("/api/v1/connect/session/poll",
                       json={"token": good}).json()["status"] == "PENDING"


def test_bad_tokens_get_a_friendly_page_in_the_browser(
    client: TestClient, redis_client: redis.Redis, settings: Any,
) -> None:
    good = mint(client)["token"]
    before = keys_under(redis_client, settings.redis_prefix)
    tokens = bad_tokens(good)
    # httpx (like uvicorn in front of a real portal) refuses a 1 MB URL outright; the page's
    # own limit is exercised with the longest query string the client will send.
    tokens["1 MB"] = "cst_" + "A" * 60_000
    for name, token in tokens.items():
        page = client.get("/connect", params={"token": token})
        assert page.status_code == 401, name
        assert "text/html" in page.headers["content-type"]
        assert "Traceback" not in page.text
        assert "set-cookie" not in page.headers, name
        expired = "This link is not valid or has expired"
        assert ("This link is incomplete" if token == "" else expired) in page.text, name
    assert client.get("/connect").status_code == 401
    assert keys_under(redis_client, settings.redis_prefix) == before


@pytest.mark.parametrize(("send", "status", "code"), [
    (lambda c: c.post("/api/v1/connect/token", content=b"{not json", headers={
        **AUTH, "Content-Type": "application/json"}), 400, "VALIDATION_ERROR"),
    (lambda c: c.post("/api/v1/connect/token", content=b"\xff\xfe", headers={
        **AUTH, "Content-Type": "application/json"}), 400, "VALIDATION_ERROR"),
    (lambda c: c.post("/api/v1/connect/token", data={"a": "b"}, headers=AUTH),
     400, "VALIDATION_ERROR"),
    (lambda c: c.post("/api/v1/connect/token", json=[token_body()], headers=AUTH),
     400, "VALIDATION_ERROR"),
    (lambda c: c.post("/api/v1/connect/token", json=None, headers=AUTH),
     400, "VALIDATION_ERROR"),
    (lambda c: c.post("/api/v1/connect/token", content=b"x" * (3 * 1024 * 1024), headers={
        **AUTH, "Content-Type": "application/json"}), 413, "PAYLOAD_TOO_LARGE"),
    (lambda c: c.post("/api/v1/connect/token", json=token_body(externalId="a" * 201),
                      headers=AUTH), 400, "VALIDATION_ERROR"),
    (lambda c: c.post("/api/v1/connect/token", json=token_body(externalId="a\nb"),
                      headers=AUTH), 400, "VALIDATION_ERROR"),
    (lambda c: c.post("/api/v1/connect/token", json=token_body(expiresIn=True),
                      headers=AUTH), 400, "VALIDATION_ERROR"),
    (lambda c: c.post("/api/v1/connect/token", json=token_body(),
                      headers={"Authorization": "Bearer"}), 401, "UNAUTHORIZED"),
    (lambda c: c.post("/api/v1/connect/token", json=token_body(),
                      headers={"Authorization": "Bearer " + "k" * 5000}), 401, "UNAUTHORIZED"),
    (lambda c: c.get("/api/v1/connect/session/x", headers={"Authorization": "Bearer ünï".encode()}),
     401, "UNAUTHORIZED"),
    (lambda c: c.post("/api/v1/connect/session/poll", content=b"token=cst_x",
                      headers={"Content-Type": "application/x-www-form-urlencoded"}),
     400, "VALIDATION_ERROR"),
])
def test_malformed_api_requests_get_specific_errors_and_write_nothing(
    client: TestClient, redis_client: redis.Redis, settings: Any,
    send: Callable[[TestClient], Any], status: int, code: str,
) -> None:
    before = keys_under(redis_client, settings.redis_prefix)
    response = send(client)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code
    assert set(body) == {"error", "code", "details"}
    assert keys_under(redis_client, settings.redis_prefix) == before


def test_malformed_form_posts_are_refused_and_change_nothing(
    client: TestClient, core_app: Any,
) -> None:
    answer = mint(client)
    page_path, csrf = open_page(client, answer["token"])
    origin = {"Origin": PORTAL_URL}
    too_long = client.post(page_path, data={"csrf_token": csrf, "secret_text": "k" * 9000},
                           headers=origin)
    assert too_long.status_code == 400
    assert "too long" in too_long.text
    many = client.post(page_path, data={f"f{i}": "x" for i in range(200)} | {
        "csrf_token": csrf}, headers=origin)
    assert many.status_code == 400
    upload = client.post(page_path, data={"csrf_token": csrf},
                         files={"secret_text": ("key.txt", b"sk-file")}, headers=origin)
    assert upload.status_code == 400
    huge_field = client.post(page_path, content=b"csrf_token=" + b"a" * (200 * 1024),
                             headers={**origin,
                                      "Content-Type": "application/x-www-form-urlencoded"})
    assert huge_field.status_code in {400, 413}
    for response in (too_long, many, upload, huge_field):
        assert "Traceback" not in response.text
    assert received(core_app) == []
    status = client.post("/api/v1/connect/session/poll", json={"token": answer["token"]})
    assert status.json()["status"] == "PENDING"


def test_unknown_pages_get_a_friendly_html_404(client: TestClient) -> None:
    response = client.get("/connect/s/not-a-session")
    assert response.status_code == 403  # no binding cookie for it
    assert "Traceback" not in response.text
    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert "Page not found" in missing.text
