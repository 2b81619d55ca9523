"""Dependencies are bounded, locked with hashes, and import without hidden deprecations."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RUNTIME = [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]
TEST = [Requirement(text) for text in PYPROJECT["project"]["optional-dependencies"]["test"]]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)")


def pinned(lock: str) -> dict[str, tuple[Version, list[str]]]:
    """name → (version, hashes) of every requirement in a lock file."""
    found: dict[str, tuple[Version, list[str]]] = {}
    current: str | None = None
    for line in (REPO / lock).read_text().splitlines():
        match = PIN.match(line)
        # A pin for other Pythons (`pkg==1 ; python_full_version >= '3.12'`) is not this one.
        marker = line.partition(";")[2].rstrip(" \\").strip() if match else ""
        if match and marker and not Marker(marker).evaluate():
            current = None
        elif match:
            current = canonicalize_name(match.group(1))
            found[current] = (Version(match.group(2)), [])
        elif current and line.strip().startswith("--hash=sha256:"):
            found[current][1].append(line.strip())
    return found


@pytest.mark.parametrize("requirement", RUNTIME + TEST, ids=str)
def test_every_direct_dependency_has_an_upper_bound(requirement: Requirement) -> None:
    assert any(spec.operator in {"<", "<=", "=="} for spec in requirement.specifier), (
        f"{requirement} has no upper bound: a major release could land untested"
    )


@pytest.mark.parametrize(("lock", "requirements"), [
    ("requirements.lock", RUNTIME),
    ("requirements-test.lock", RUNTIME + TEST),
])
def test_lock_pins_every_dependency_within_its_bounds_with_hashes(
    lock: str, requirements: list[Requirement]
) -> None:
    pins = pinned(lock)
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not in {lock}: run ./dev lock"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, outside {requirement.specifier}: run ./dev lock"
        )
    unhashed = [name for name, (_, hashes) in pins.items() if not hashes]
    assert not unhashed, f"{lock}: pins without hashes: {unhashed}"


def test_installed_releases_are_the_locked_ones() -> None:
    from importlib.metadata import PackageNotFoundError, version

    for name, (locked, _) in pinned("requirements-test.lock").items():
        try:
            installed = Version(version(name))
        except PackageNotFoundError:  # a pin whose marker does not apply here (Windows, …)
            continue
        assert installed == locked, f"{name}: {installed} installed, {locked} locked"


def test_the_portal_imports_without_a_deprecation_warning() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning",
         "-W", "error::PendingDeprecationWarning",
         "-c", "import portal.app, portal.cli, portal.auth.oauth.provider"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_warnings_filter_hides_anything_in_the_portal() -> None:
    offenders = [str(path.relative_to(REPO)) for path in (REPO / "portal").rglob("*.py")
                 if "filterwarnings" in path.read_text() or "simplefilter" in path.read_text()]
    assert not offenders
