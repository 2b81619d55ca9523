"""Request bodies have a size cap per route, on the declared Content-Length and on the bytes
as they stream in (chunked bodies too): a form post, a JSON API call. Too large is a 413
(the error page for forms, the JSON envelope on /api/) before anything changes, and at
DEBUG a hostile body costs a handful of log lines, not one per byte."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import httpx
import pytest
from starlette.routing import Route

from portal.app import create_app
from portal.middleware import BodyLimit
from portal.resources import openapi_document
from portal.settings import Settings
from tests.conftest import API_KEY, AUTH, SECRET_KEY, mint, open_page, session_of
from tests.live_servers import LOOPBACK, LivePortal, portal_process

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def portal(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    log = tmp_path_factory.mktemp("body-limits") / "portal.log"
    with portal_process(redis_url, log, api_key=API_KEY, secret_key=SECRET_KEY,
                        PORTAL_LOG_LEVEL="DEBUG") as portal:
        yield portal


@pytest.fixture
def browser(portal: LivePortal) -> Iterator[httpx.Client]:
    with portal.client(headers={"Origin": portal.url}) as client:
        yield client


def chunks(total: int, piece: bytes = b"&" * 65536) -> Iterator[bytes]:
    """A body httpx sends chunked: no Content-Length for the server to refuse up front."""
    for _ in range(total // len(piece)):
        yield piece


def test_four_megabytes_of_ampersands_get_413_and_a_few_log_lines(
    portal: LivePortal, browser: httpx.Client,
) -> None:
    minted = mint(browser)
    page_path, csrf = open_page(browser, minted["token"])
    lines_before = len(portal.log_lines())
    answer = browser.post(f"{portal.url}{page_path}",
                          content=f"csrf_token={csrf}".encode() + b"&" * (4 * MiB), headers=FORM)
    assert answer.status_code == 413
    assert "text/html" in answer.headers["content-type"]
    assert "Traceback" not in answer.text
    written = portal.lines_since(lines_before, until=f"portal.access POST {page_path} ")
    # Was 4.2 million multipart debug lines; now the access line and a few more.
    assert len(written) < 20, "\n".join(written[:40])
    assert session_of(browser, minted["sessionId"])["status"] == "PENDING"


def test_ampersands_under_the_cap_cost_a_few_log_lines_too(
    portal: LivePortal, browser: httpx.Client,
) -> None:
    """python-multipart's per-field debug lines are off: the cap alone would still let
    60,000 of them through per request."""
    minted = mint(browser)
    page_path, csrf = open_page(browser, minted["token"])
    lines_before = len(portal.log_lines())
    answer = browser.post(f"{portal.url}{page_path}",
                          content=f"csrf_token={csrf}".encode() + b"&" * 60_000, headers=FORM)
    assert answer.status_code == 400  # no key in the form
    written = portal.lines_since(lines_before, until=f"portal.access POST {page_path} ")
    assert len(written) < 20, "\n".join(written[:40])
    assert session_of(browser, minted["sessionId"])["status"] == "PENDING"


def test_a_chunked_form_body_over_the_cap_gets_413_and_changes_nothing(
    portal: LivePortal, browser: httpx.Client,
) -> None:
    minted = mint(browser)
    page_path, csrf = open_page(browser, minted["token"])

    def body() -> Iterator[bytes]:
        yield f"csrf_token={csrf}&secret_text=".encode()
        yield from chunks(MiB, b"k" * 65536)

    answer = browser.post(f"{portal.url}{page_path}", content=body(), headers=FORM)
    assert answer.status_code == 413
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert session_of(browser, minted["sessionId"])["status"] == "PENDING"


@pytest.mark.parametrize("path", [
    "/api/v1/connect/token", "/api/v1/connect/session/poll", "/api/v1/oauth/refresh",
])
def test_a_chunked_json_body_over_the_cap_gets_the_413_envelope(
    portal: LivePortal, path: str,
) -> None:
    answer = httpx.post(f"{portal.url}{path}", content=chunks(2 * MiB, b" " * 65536),
                        headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 413
    assert answer.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert set(answer.json()) == {"error", "code", "details"}


def test_a_declared_content_length_over_the_cap_is_refused_before_the_body_is_sent(
    portal: LivePortal, browser: httpx.Client,
) -> None:
    minted = mint(browser)
    page_path, _ = open_page(browser, minted["token"])
    cookie = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    host, port = portal.url.removeprefix("http://").split(":")
    for path, headers in [
        (page_path, f"Cookie: {cookie}\r\nOrigin: {portal.url}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"),
        ("/api/v1/connect/token", f"Authorization: {AUTH['Authorization']}\r\n"
                                  "Content-Type: application/json\r\n"),
    ]:
        with socket.create_connection((LOOPBACK, int(port)), timeout=10) as sock:
            # Announce 100 MB, send nothing of it: the answer must not wait for it.
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}"
                         f"Content-Length: {100 * MiB}\r\n\r\n".encode())
            answer = b""
            while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
                answer += chunk
        status = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
        assert status and status.group(1) == b"413", answer[:300]
    assert session_of(browser, minted["sessionId"])["status"] == "PENDING"


def test_bodies_under_the_caps_still_work(portal: LivePortal, browser: httpx.Client) -> None:
    minted = mint(browser)
    page_path, csrf = open_page(browser, minted["token"])
    # A long API key (9 KB) in an ordinary form is refused by its field rule, not by size.
    answer = browser.post(f"{portal.url}{page_path}",
                          data={"csrf_token": csrf, "secret_text": "k" * 9000})
    assert answer.status_code == 400
    assert "too long" in answer.text
    poll = httpx.post(f"{portal.url}/api/v1/connect/session/poll",
                      json={"token": "cst_" + "A" * MiB})
    assert poll.status_code == 401
    assert poll.json()["code"] == "INVALID_TOKEN"


def test_every_api_route_with_a_body_cap_documents_its_413() -> None:
    """The contract says which calls can answer 413: every capped /api/ route, no other."""
    app = create_app(Settings(secret_keys=(SECRET_KEY,), core_api_url="http://core.test",
                              core_api_key="core-key-0123456789"))
    capped = {(re.sub(r"\{[^}]*\}", "{}", route.path), method.lower())
              for route in app.routes
              if isinstance(route, Route) and route.path.startswith("/api/")
              for method in (route.methods or set()) - {"HEAD"}
              if isinstance(route.app, BodyLimit)}
    assert ("/api/v1/connect/token", "post") in capped
    documented = {(re.sub(r"\{[^}]*\}", "{}", path), method)
                  for path, operations in openapi_document()["paths"].items()
                  for method, operation in operations.items()
                  if "413" in operation["responses"]}
    assert documented == capped
