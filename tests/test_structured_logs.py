"""Structured logs (PORTAL_LOG_FORMAT=json): `connect-portal serve` with two workers, full
connect flows against the core API stand-in (one delivered, one refused) with webhooks,
then its log file read back: every line is one JSON object, a request's id is on every
line it logged, on its answer and at the core API, and no secret used anywhere appears."""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from portal.logs import JsonFormatter, request_id_from
from portal.settings import Settings, SettingsError
from tests.conftest import API_KEY, CORE_API_KEY, SECRET_KEY, mint, open_page, submit
from tests.core_standin import core_standin_process, set_mode, stats
from tests.live_servers import (
    REPOSITORY,
    ServerProcess,
    bound_socket,
    delete_keys,
    process_env,
    serve_process,
    url_of,
    wait_until,
)

WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
TYPED_KEY = "sk-proj-structured-logs-" + secrets.token_hex(12)
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
DEADLINE = 30.0


@dataclass
class Live:
    portal: ServerProcess
    core_url: str

    def lines(self) -> list[str]:
        return self.portal.log_lines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def access_line_of(self, request_id: str) -> dict[str, Any]:
        """The access record of the request `request_id`, once written (it comes last)."""
        found: list[dict[str, Any]] = []

        def written() -> bool:
            found[:] = [record for record in self.records()
                        if record.get("logger") == "portal.access"
                        and record.get("request_id") == request_id]
            return bool(found)

        wait_until(written, timeout=DEADLINE, what=f"the access line of {request_id}")
        return found[0]


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    logs = tmp_path_factory.mktemp("structured-logs")
    prefix = f"test:logs:{uuid.uuid4().hex}:"
    core = core_standin_process(logs / "core.log", api_key=CORE_API_KEY,
                                webhook_secret=WEBHOOK_SECRET)
    sock = bound_socket()
    with core:
        env = {
            "PORTAL_PUBLIC_URL": url_of(sock), "PORTAL_SECRET_KEYS": SECRET_KEY,
            "PORTAL_API_KEYS": API_KEY, "REDIS_URL": redis_url, "PORTAL_REDIS_PREFIX": prefix,
            "CORE_API_URL": core.url, "CORE_API_KEY": CORE_API_KEY,
            "PORTAL_WEBHOOK_URL": f"{core.url}/_webhooks",
            "PORTAL_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PORTAL_VERIFY_CREDENTIALS": "false",  # the built-in OpenAI entry asks OpenAI
            # The submit's own attempt delivers, even on a loaded machine.
            "PORTAL_DELIVERY_INLINE_BUDGET": "20",
            "PORTAL_LOG_FORMAT": "json", "PORTAL_LOG_LEVEL": "INFO",
        }
        try:
            with serve_process("--workers", "2", sock=sock, env=env,
                               log_path=logs / "portal.log") as portal:
                yield Live(portal, core.url)
        finally:
            delete_keys(redis_url, prefix)


def connect(live: Live, *, request_id: str, refused: bool = False
            ) -> tuple[dict[str, Any], httpx.Response]:
    """Mint, open and submit a SECRET_TEXT form; the submit carries `request_id`. A
    `refused` one is a failed attempt (a 303 to the page that offers a retry), and the
    user then stops, which ends the session (and sends its webhook)."""
    with httpx.Client(base_url=live.portal.url, timeout=30) as client:
        answer = mint(client)
        page_path, csrf = open_page(client, answer["token"])
        client.headers["X-Request-ID"] = request_id
        response = submit(client, page_path, csrf, secret_text=TYPED_KEY)
        assert response.status_code == (303 if refused else 200), response.text
        if refused:
            submit(client, page_path, csrf, action="give_up")
    return answer, response


def test_json_lines_carry_the_request_id_and_no_secret(live: Live) -> None:
    delivered, answer = connect(live, request_id="submit-ok.1")
    assert answer.headers["x-request-id"] == "submit-ok.1"
    set_mode(live.core_url, mode="reject", status=422, error="Over the connection limit.")
    try:
        refused, answer = connect(live, request_id="submit-refused_2", refused=True)
    finally:
        set_mode(live.core_url, mode="ok")
    assert answer.headers["x-request-id"] == "submit-refused_2"
    wait_until(lambda: len(stats(live.core_url)["webhooks"]) >= 2, timeout=DEADLINE,
               what="both webhooks at the stand-in")

    # The header reached the core API on the calls made for each submit.
    seen = stats(live.core_url)["request_ids"]
    assert "submit-ok.1" in seen and "submit-refused_2" in seen, seen

    live.access_line_of("submit-ok.1")
    live.access_line_of("submit-refused_2")
    records = live.records()  # every line parses, or this raises
    assert len(records) == len(live.lines())
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    # The refusal is logged inside the submit, with its id; so is its access line.
    refused_lines = [record for record in records
                     if record.get("request_id") == "submit-refused_2"]
    assert {record["logger"] for record in refused_lines} >= {"portal.core_api",
                                                              "portal.access"}, refused_lines
    assert any("refused the connection" in record["message"] for record in refused_lines)
    for record in records:
        if "refused the connection" in record["message"]:
            assert record.get("request_id") == "submit-refused_2", record
    access = live.access_line_of("submit-ok.1")
    assert access["method"] == "POST" and access["status"] == 200
    assert access["path"].startswith("/connect/") and "token" not in access["path"]
    assert isinstance(access["duration_ms"], float)
    # Every request got an access line with an id (uvicorn's own lines have none).
    assert all(record.get("request_id") for record in records
               if record["logger"] == "portal.access")

    used = {
        "API key": API_KEY, "core API key": CORE_API_KEY, "secret key": SECRET_KEY,
        "webhook secret": WEBHOOK_SECRET,
        "webhook key": WEBHOOK_SECRET.removeprefix("whsec_"),
        "typed credential": TYPED_KEY,
        "connect token": delivered["token"], "other connect token": refused["token"],
    }
    text = "\n".join(live.lines())
    for name, value in used.items():
        assert value not in text, f"the {name} appears in the log"


def test_a_sane_request_id_is_kept_and_any_other_replaced(live: Live) -> None:
    url = f"{live.portal.url}/healthz"
    generated = httpx.get(url, timeout=30).headers["x-request-id"]
    assert GENERATED_ID.fullmatch(generated)
    live.access_line_of(generated)
    for hostile in (b"a" * 65, b"has space", b"x;y", "é".encode(), b'{"level":"ERROR"}'):
        answered = httpx.get(url, headers={b"X-Request-ID": hostile}, timeout=30)
        replaced = answered.headers["x-request-id"]
        assert replaced.encode() != hostile and GENERATED_ID.fullmatch(replaced)
        live.access_line_of(replaced)
    kept = "A-b_c.9" + "z" * 57  # 64 characters, the longest kept
    assert httpx.get(url, headers={"X-Request-ID": kept}, timeout=30
                     ).headers["x-request-id"] == kept
    assert live.access_line_of(kept)["path"] == "/healthz"
    assert request_id_from("") != request_id_from("")


def test_the_formatter_writes_only_allow_listed_fields() -> None:
    record = logging.LogRecord("portal.x", logging.WARNING, __file__, 1,
                               "bad %s\n{\"forged\": 1}", ("value\u2028",), None)
    record.__dict__.update(status=500, path="/p", password="hunter2", api_key="k",
                           request_id="r-1")
    line = JsonFormatter().format(record)
    assert "\n" not in line and "\u2028" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "bad value\u2028\n{\"forged\": 1}"
    assert parsed["status"] == 500 and parsed["path"] == "/p"
    assert parsed["request_id"] == "r-1"
    assert "password" not in parsed and "api_key" not in parsed
    assert "hunter2" not in line


def test_queued_records_are_all_written_at_exit(tmp_path: Path) -> None:
    """The listener thread writes out everything queued before the process ends."""
    script = (
        "import logging\n"
        "from portal.logs import configure_logging\n"
        "configure_logging('INFO', 'json')\n"
        "for n in range(2000):\n"
        "    logging.getLogger('portal.x').info('line %d', n)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=process_env({}),
                            cwd=REPOSITORY, capture_output=True, text=True, timeout=30,
                            check=True)
    lines = result.stderr.splitlines()
    assert [json.loads(line)["message"] for line in lines] == [
        f"line {n}" for n in range(2000)]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_stopped_server_writes_every_worker_s_last_lines(
        workers: int, redis_url: str, tmp_path: Path) -> None:
    """SIGTERM: each worker shuts down, and its last lines reach the log, though uvicorn
    ends the worker with the signal it caught (no exit handler runs after that)."""
    sock = bound_socket()
    prefix = f"test:logs-stop:{uuid.uuid4().hex}:"
    env = {"PORTAL_PUBLIC_URL": url_of(sock), "PORTAL_SECRET_KEYS": SECRET_KEY,
           "PORTAL_API_KEYS": API_KEY, "REDIS_URL": redis_url, "PORTAL_REDIS_PREFIX": prefix,
           "CORE_API_URL": "http://127.0.0.1:9", "CORE_API_KEY": CORE_API_KEY,
           "PORTAL_LOG_FORMAT": "json", "PORTAL_LOG_LEVEL": "INFO"}
    server = serve_process("--workers", str(workers), sock=sock, env=env,
                           log_path=tmp_path / "portal.log")
    try:
        with server:
            httpx.get(f"{server.url}/readyz", timeout=10).raise_for_status()
    finally:
        delete_keys(redis_url, prefix)
    messages = [json.loads(line)["message"] for line in server.log_lines()]
    assert messages.count("Application startup complete.") == workers
    assert messages.count("Application shutdown complete.") == workers, messages
    assert sum(message.startswith("Finished server process") for message in messages) \
        == workers, messages


def test_the_log_format_setting_is_validated() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"PORTAL_LOG_FORMAT": " JSON "}).log_format == "json"
    with pytest.raises(SettingsError, match="PORTAL_LOG_FORMAT"):
        Settings.from_env({"PORTAL_LOG_FORMAT": "xml"})
