"""Hostile JSON on every JSON route: deep nesting and huge numbers get a 400
VALIDATION_ERROR that says what is wrong, never a 500 with a traceback in the log."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import API_KEY, AUTH, SECRET_KEY
from tests.live_servers import LivePortal, portal_process

JSON_ROUTES = ["/api/v1/connect/session/poll", "/api/v1/connect/token", "/api/v1/oauth/refresh"]

HOSTILE_BODIES = {
    # The red team's two: a RecursionError and the int-digits ValueError, both 500s.
    "100,000 open brackets": (b"[" * 100_000, "nested"),
    "a 5,000-digit token": (b'{"token": ' + b"9" * 5000 + b"}", "number"),
    "a 5,000-digit number deep inside": (b'{"a": [1, {"b": -' + b"7" * 5000 + b"}]}", "number"),
    "closed but too deep": (b"[" * 500 + b"]" * 500, "nested"),
    "objects too deep": (b'{"a":' * 200 + b"1" + b"}" * 200, "nested"),
    "brackets inside strings are not nesting": (
        b'{"token": "' + b"[" * 5000 + b'", "x": [[[]]]}', None),
}


@pytest.fixture(scope="module")
def portal(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    log = tmp_path_factory.mktemp("bad-json") / "portal.log"
    with portal_process(redis_url, log, api_key=API_KEY, secret_key=SECRET_KEY) as portal:
        yield portal


@pytest.mark.parametrize("path", JSON_ROUTES)
@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_hostile_json_gets_a_validation_error_and_no_traceback(
    portal: LivePortal, path: str, name: str,
) -> None:
    body, word = HOSTILE_BODIES[name]
    lines_before = len(portal.log_lines())
    answer = httpx.post(f"{portal.url}{path}", content=body,
                        headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
    assert answer.status_code < 500, answer.text
    envelope = answer.json()
    assert set(envelope) == {"error", "code", "details"}
    if word is not None:
        assert answer.status_code == 400
        assert envelope["code"] == "VALIDATION_ERROR"
        assert word in envelope["error"], envelope["error"]
    else:
        # Parsed fine: the route judges the content (a bad token, a bad request body).
        assert envelope["code"] in {"INVALID_TOKEN", "VALIDATION_ERROR"}
    written = "\n".join(portal.lines_since(lines_before, until=f"portal.access POST {path} "))
    assert "Traceback" not in written
    assert "INTERNAL_ERROR" not in answer.text
    assert httpx.get(f"{portal.url}/healthz").status_code == 200
