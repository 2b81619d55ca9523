"""bench/instructions.py's counted process, without valgrind (`./dev test` never needs it):
every target it counts answers 200 from the real apps, so the bench cannot quietly count
error answers."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from bench.instructions import TARGETS
from tests.live_servers import REPOSITORY, delete_keys, process_env


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_each_counted_target_answers_200(target: str, redis_url: str) -> None:
    prefix = f"test:bench-instructions:{uuid.uuid4().hex}:"
    try:
        result = subprocess.run(
            [sys.executable, "bench/instructions.py", "--run", target, "--requests", "3",
             "--redis-url", redis_url, "--prefix", prefix],
            cwd=REPOSITORY, env=process_env({}),
            capture_output=True, text=True, timeout=60, check=False)
    finally:
        delete_keys(redis_url, prefix)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "answered" not in result.stderr
