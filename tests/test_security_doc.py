"""SECURITY.md names each protection with the test that proves it: every name must exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE = re.compile(r"`(?:(tests/[\w/]+\.py))?(?:::(\w+))?`")


def cited_tests() -> list[tuple[str, str | None]]:
    """(file, test) pairs; `::name` alone means a test in the file cited before it."""
    cited: list[tuple[str, str | None]] = []
    current = None
    for match in REFERENCE.finditer((REPO / "SECURITY.md").read_text()):
        path, name = match.groups()
        if path is None and name is None:
            continue
        current = path or current
        assert current is not None, f"`::{name}` cited before any test file"
        cited.append((current, name))
    return cited


def test_security_md_cites_only_tests_that_exist() -> None:
    cited = cited_tests()
    assert len(cited) > 40
    missing = []
    for path, name in cited:
        source = REPO / path
        if not source.exists():
            missing.append(path)
        elif name and not re.search(rf"^(async )?def {name}\(", source.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, missing


def test_every_red_team_finding_has_a_row() -> None:
    text = (REPO / "SECURITY.md").read_text()
    assert all(f"**(F{number})**" in text for number in range(1, 11))
