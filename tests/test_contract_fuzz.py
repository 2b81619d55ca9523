"""The backend API against its own contract: schemathesis fuzzes every operation of
portal/openapi.json, with valid and invalid data, against the portal as `serve` runs it
(its own process, the real Redis, the demo core API in a process beside it), and follows
the document's links (token -> session lookup, token -> poll) in stateful runs.

Every answer must be no 5xx, a status the document lists for the operation, its content
type, and its schema. Bounded: a few examples per operation, the whole file well under
a minute and a half.
"""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import API_KEY, SECRET_KEY
from tests.live_servers import LivePortal, bound_socket, portal_process, uvicorn_process

# Hypothesis keeps caches in .hypothesis/ of the working directory: under .test-run/
# (ignored by git) instead.
set_hypothesis_home_dir(str(Path(__file__).resolve().parent.parent / ".test-run" / "hypothesis"))

pytestmark = pytest.mark.contract  # part of every ./dev test run; `-m contract` alone

OPENAPI = Path(__file__).resolve().parent.parent / "portal" / "openapi.json"
CORE_API_KEY = "contract-core-key-0123456789abcdef"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# 25 in the suite; CONTRACT_FUZZ_EXAMPLES=500 for a deeper run by hand.
EXAMPLES_PER_OPERATION = int(os.environ.get("CONTRACT_FUZZ_EXAMPLES", "25"))
TIMEOUT = 30  # seconds for one request: the machine may be loaded, the portal is not slow
COMMON_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "database": None,  # nothing written into the checkout
    "suppress_health_check": list(HealthCheck),
}


class SocketController(Controller):
    """aiosmtpd's threaded controller on a socket bound here (no port is guessed)."""

    def __init__(self, handler: Any, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class Discard:
    """Takes every message and keeps none: invites are fuzzed, not read."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


@pytest.fixture(scope="module")
def smtp_url() -> Iterator[str]:
    sock = bound_socket()
    sock.listen(16)
    controller = SocketController(Discard(), sock)
    controller.start()
    try:
        host, port = sock.getsockname()[:2]
        yield f"smtp://{host}:{port}"
    finally:
        controller.stop()
        sock.close()


@pytest.fixture(scope="module")
def live_portal(redis_url: str, smtp_url: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    logs = tmp_path_factory.mktemp("contract")
    with uvicorn_process("tests.live_apps:core_app", env={"CORE_API_KEY": CORE_API_KEY},
                         log_path=logs / "core.log") as core, portal_process(
            redis_url, logs / "portal.log", api_key=API_KEY, secret_key=SECRET_KEY,
            CORE_API_URL=core.url, CORE_API_KEY=CORE_API_KEY, PORTAL_SMTP_URL=smtp_url,
            # The fuzzer mints and polls far faster than any partner: not what is tested.
            PORTAL_RATE_LIMIT_MINT="100000/minute", PORTAL_RATE_LIMIT_POLL="100000/minute",
            PORTAL_RATE_LIMIT_PAGES="100000/minute") as portal:
        yield portal


@pytest.fixture(scope="module")
def api_schema(live_portal: LivePortal) -> Any:
    config = SchemathesisConfig.from_dict({
        "base-url": live_portal.url,
        "headers": {"Authorization": f"Bearer {API_KEY}"},
        "generation": {"mode": "all",  # positive and negative
                       "max-examples": EXAMPLES_PER_OPERATION},
        # Only the document's own links: the inferred ones (poll -> lookup by the polled
        # sessionId) would make poll, with random tokens, the run's only starting point.
        "phases": {"stateful": {"inference": {"algorithms": []}}},
    })
    return schemathesis.openapi.from_path(OPENAPI, config=config)


def cases() -> list[Any]:
    """(method, path, mode) of every operation: valid data for each, invalid data for each
    that takes a body (a string in a path or query can always be valid)."""
    document = json.loads(OPENAPI.read_text("utf-8"))
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            modes = [GenerationMode.POSITIVE]
            if "requestBody" in operation:
                modes.append(GenerationMode.NEGATIVE)
            found += [pytest.param(method.upper(), path, mode,
                                   id=f"{mode.value} {method.upper()} {path}")
                      for mode in modes]
    return found


# schemathesis' own pytest loader (`schemathesis.pytest.from_fixture`) does not run under
# pytest 9 (it reads a node attribute pytest removed): each operation runs Hypothesis on
# the operation's own strategies instead.
@pytest.mark.parametrize(("method", "path", "mode"), cases())
def test_every_operation_answers_as_documented(
    api_schema: Any, method: str, path: str, mode: GenerationMode,
) -> None:
    operation = api_schema[path][method]
    answered: Counter[int] = Counter()

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, **COMMON_SETTINGS)
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS, timeout=TIMEOUT)
        answered[response.status_code] += 1

    fuzz()
    assert answered, "no request was made"


def test_links_token_to_session_and_poll(api_schema: Any) -> None:
    """Stateful: a minted token's sessionId is looked up and its token polled, with the
    same checks on every step; the run must really have followed both links."""
    followed: Counter[tuple[str, int]] = Counter()
    machine = api_schema.as_state_machine()

    class Checked(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"timeout": TIMEOUT}

        def validate_response(self, response: Any, case: Any,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            followed[(case.operation.label, response.status_code)] += 1
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None,
                                   recorder=self.recorder)

    Checked.run(settings=hypothesis.settings(
        max_examples=20, stateful_step_count=6, derandomize=True, **COMMON_SETTINGS))
    assert followed[("POST /api/v1/connect/token", 200)], followed
    assert followed[("GET /api/v1/connect/session/{sessionId}", 200)], followed
    assert followed[("POST /api/v1/connect/session/poll", 200)], followed
