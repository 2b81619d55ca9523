"""Log injection: a request path or any other value a client chooses must never start a line
of its own in the portal's log. The access log writes the path as it came, still
percent-encoded; every log line escapes control and line-breaking characters."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import API_KEY, SECRET_KEY
from tests.live_servers import REPOSITORY, LivePortal, portal_process, process_env

# Every line the portal writes starts with the time stamp of configure_logging's format.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")

INJECTIONS = [
    "/connect/s/%0d%0aX-Injected:%201",
    "/connect/s/x%0a2026-01-01%2000:00:00,000%20INFO%20portal.access%20GET%20/forged%20200",
    "/connect/s/%1b[2J%1b[31mred",
    "/connect/s/%c2%85next-line%e2%80%a8and-another%e2%80%a9",
    "/nowhere/%0d%0aX-Injected:%201",
]


@pytest.fixture(scope="module")
def portal(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    log = tmp_path_factory.mktemp("log-injection") / "portal.log"
    with portal_process(redis_url, log, api_key=API_KEY, secret_key=SECRET_KEY) as portal:
        yield portal


@pytest.mark.parametrize("path", INJECTIONS)
def test_a_hostile_path_writes_exactly_one_access_line(portal: LivePortal, path: str) -> None:
    lines_before = len(portal.log_lines())
    answer = httpx.get(f"{portal.url}{path}")
    assert answer.status_code in {403, 404}
    written = portal.lines_since(lines_before, until=f"portal.access GET {path} ")
    # The fixture's readiness probe may log its own access line late; it is not ours.
    access = [line for line in written
              if " portal.access " in line and " /readyz " not in line]
    assert len(access) == 1, written
    assert all(LOG_LINE.match(line) for line in written), written
    assert not any("X-Injected" in line and not LOG_LINE.match(line) for line in written)
    # Written as sent: the operator sees exactly what the client asked for.
    assert path.split("?")[0] in access[0]
    assert "\x1b" not in "".join(written)


def test_every_log_line_escapes_control_characters_in_values() -> None:
    """configure_logging, as `serve` runs it, in a process of its own: a value with line
    breaks (an OAuth app id, a provider's error text) stays inside its one line."""
    script = (
        "import logging\n"
        "from portal.logs import configure_logging\n"
        "configure_logging('INFO')\n"
        "forged = 'app\\r\\n2026-01-01 00:00:00,000 INFO portal forged\\x1b[31m\\u2028x\\x85y'\n"
        "logging.getLogger('portal').warning('no OAuth app %s', forged)\n"
        "logging.getLogger('portal').warning(forged)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=process_env({}),
                            cwd=REPOSITORY, capture_output=True, text=True, timeout=30,
                            check=True)
    lines = result.stderr.split("\n")
    assert lines[-1] == ""
    assert len(lines[:-1]) == 2, result.stderr
    assert all(LOG_LINE.match(line) for line in lines[:-1]), result.stderr
    assert "\\r\\n2026-01-01" in lines[0]
    for character in ("\r", "\x1b", "\u2028", "\x85"):
        assert character not in result.stderr
