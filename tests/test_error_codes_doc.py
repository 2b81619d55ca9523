"""The README's error code tables say exactly what portal/errors.py defines: every code,
its HTTP statuses and its meaning, and every session failure code."""

from __future__ import annotations

import re
from pathlib import Path

from portal.errors import ErrorCode, SessionFailure

README = Path(__file__).resolve().parents[1] / "README.md"


def _table(header: str) -> list[list[str]]:
    """The rows of the README table that starts with `header` under "### Error codes"."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^### Error codes\n(.*?)(?=^#)", text, re.DOTALL | re.MULTILINE)
    assert section, "README.md has no '### Error codes' section"
    lines = section.group(1).splitlines()
    assert header in lines, f"the Error codes section has no table headed {header!r}"
    rows = []
    for line in lines[lines.index(header) + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def test_the_readme_lists_every_error_code_with_its_statuses_and_meaning() -> None:
    documented = _table("| code | HTTP status | meaning |")
    expected = [[f"`{code}`", ", ".join(map(str, code.statuses)), code.meaning]
                for code in ErrorCode]
    assert documented == expected


def test_the_readme_lists_every_session_failure_code_with_its_meaning() -> None:
    documented = _table("| errorCode | meaning |")
    assert documented == [[f"`{code}`", code.meaning] for code in SessionFailure]

