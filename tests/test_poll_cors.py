"""connect.js polls from the partner's page, so `poll` answers CORS: a session is readable
only by its own target origins; other allowed origins see errors only; others nothing."""

from __future__ import annotations

from typing import Any

from tests.conftest import PARTNER_ORIGIN, mint

OTHER_PARTNER = "https://other-partner.example"
STRANGER = "https://stranger.example"


def poll(client: Any, token: str, origin: str) -> Any:
    return client.post("/api/v1/connect/session/poll", json={"token": token},
                       headers={"Origin": origin})


def test_preflight_is_answered_for_allowed_origins_only(make_client: Any) -> None:
    client = make_client(allowed_origins=(PARTNER_ORIGIN, OTHER_PARTNER))
    headers = {"Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type"}
    allowed = client.options("/api/v1/connect/session/poll",
                             headers={**headers, "Origin": PARTNER_ORIGIN})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == PARTNER_ORIGIN
    assert allowed.headers["access-control-allow-methods"] == "POST"
    assert "content-type" in allowed.headers["access-control-allow-headers"]
    stranger = client.options("/api/v1/connect/session/poll",
                              headers={**headers, "Origin": STRANGER})
    assert "access-control-allow-origin" not in stranger.headers


def test_only_the_sessions_origin_may_read_it(make_client: Any) -> None:
    client = make_client(allowed_origins=(PARTNER_ORIGIN, OTHER_PARTNER))
    token = mint(client, allowedOrigins=[PARTNER_ORIGIN])["token"]
    own = poll(client, token, PARTNER_ORIGIN)
    assert own.status_code == 200
    assert own.headers["access-control-allow-origin"] == PARTNER_ORIGIN
    assert own.headers["vary"] == "Origin"
    for origin in (OTHER_PARTNER, STRANGER):
        response = poll(client, token, origin)
        assert "access-control-allow-origin" not in response.headers
        assert "*" not in response.headers.get("access-control-allow-origin", "")


def test_errors_are_readable_by_allowed_origins(make_client: Any) -> None:
    client = make_client(allowed_origins=(PARTNER_ORIGIN, OTHER_PARTNER))
    response = poll(client, "cst_forged", OTHER_PARTNER)
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_TOKEN"
    assert response.headers["access-control-allow-origin"] == OTHER_PARTNER
    assert "access-control-allow-origin" not in poll(client, "cst_forged", STRANGER).headers
