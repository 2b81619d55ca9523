"""The pieces of bench/wrk.py that decide what it measures, without wrk itself (`./dev test`
never needs it): the floor's static page is exactly as long as asked, and the Lua script
sends each request as written."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bench.floor import create_floor_app, fixed_page
from bench.wrk import Request, Target, lua_request, write_script


@pytest.mark.parametrize("size", [120, 2500, 31_337])
def test_floor_static_page_has_exactly_the_size_asked_for(
        size: int, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_REDIS_URL", redis_url)
    monkeypatch.setenv("BENCH_REDIS_PREFIX", f"test:bench:{uuid.uuid4().hex}:")
    with TestClient(create_floor_app()) as client:
        answer = client.get(f"/page/{size}", headers={"Accept-Encoding": "identity"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert len(answer.content) == size == len(fixed_page(size))
    assert answer.text.startswith("<!doctype html>")


def test_lua_request_carries_method_path_headers_and_a_json_body_intact() -> None:
    body = json.dumps({"token": 'cst_a"b\\c'})
    spec = lua_request(Request("POST", "/api/v1/connect/session/poll",
                               {"Content-Type": "application/json"}, body))
    assert spec == ('{"POST", "/api/v1/connect/session/poll", '
                    '{["Content-Type"] = "application/json"}, '
                    + json.dumps(body) + "}")
    assert lua_request(Request("GET", "/floor/1", {})).endswith("{}, nil}")


def test_write_script_cycles_through_every_request(tmp_path: Path) -> None:
    requests = [Request("GET", f"/floor/{index}", {}) for index in range(3)]
    script = write_script(Target("floor", "floor", "http://127.0.0.1:1", requests, 0),
                          tmp_path).read_text(encoding="ascii")
    assert all(f'"/floor/{index}"' in script for index in range(3))
    assert "function request()" in script and "WRK-RESULT" in script


def test_lua_request_refuses_text_lua_would_read_differently() -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        lua_request(Request("GET", "/connect/s/caf\u00e9", {}))
