"""axe-core, the accessibility checker, run inside a page by Playwright.

The script comes from npm (tests/browser_tools, pinned in its package-lock.json and
installed by `./dev test`); it is injected into the page under test and asked for the
WCAG 2.0/2.1 A and AA rules plus axe's best practices. The portal's CSP lets only its own
nonce'd scripts run, so the browser context of an audit is made with `bypass_csp=True`."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

TOOLS = Path(__file__).resolve().parent / "browser_tools"
AXE_JS = TOOLS / "node_modules" / "axe-core" / "axe.min.js"
RULE_SETS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice")


@cache
def axe_source() -> str:
    if not AXE_JS.is_file():
        pytest.skip("axe-core is installed by ./dev test (npm ci in tests/browser_tools)")
    return AXE_JS.read_text()


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Every rule the page breaks, each with the elements (CSS selectors) that break it."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(content=axe_source())
    violations: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
            const results = await axe.run(document, {runOnly: {type: 'tag', values: tags},
                                                     resultTypes: ['violations']});
            return results.violations.map((rule) => ({
                id: rule.id, impact: rule.impact, help: rule.help,
                nodes: rule.nodes.map((node) => ({target: node.target.join(' '),
                                                  summary: node.failureSummary})),
            }));
        }""",
        list(RULE_SETS),
    )
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for rule in violations:
        lines.append(f"{rule['id']} ({rule['impact']}): {rule['help']}")
        for node in rule["nodes"]:
            summary = " ".join(str(node["summary"] or "").split())
            lines.append(f"    {node['target']}: {summary}")
    return "\n".join(lines)


def assert_accessible(page: Page, what: str) -> None:
    """Fail with every violation and the elements it was found on."""
    violations = axe_violations(page)
    assert not violations, f"axe-core found problems on {what}:\n{describe(violations)}"
