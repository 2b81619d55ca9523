"""The wheel carries every module of the portal and the templates, static files, catalog
and OpenAPI document it needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_templates_static_catalog_and_openapi(tmp_path: Path) -> None:
    # Built from a clean copy: a `build/` left in the checkout would hand setuptools
    # modules that pyproject.toml no longer lists.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", ".git", ".venv", ".test-run", "node_modules", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(source)],
        check=True, capture_output=True,
    )
    [wheel] = tmp_path.glob("connect_portal-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "portal/templates/" + path.name for path in (REPO / "templates").glob("*.html")
    } | {"portal/static/" + path.relative_to(REPO / "static").as_posix()
         for path in (REPO / "static").rglob("*") if path.is_file()} | {
        "portal/openapi.json", "portal/catalog/integrations.json", "portal/py.typed",
        "portal/catalog/catalog.schema.json", "portal/catalog/catalog-translations.schema.json",
        "portal/templates/email/invite.html", "portal/templates/email/invite.txt",
    } | {str(path.relative_to(REPO)) for path in (REPO / "portal").rglob("*.py")} | {
        # The languages: messages compiled at start, and the catalog's words.
        str(path.relative_to(REPO)) for pattern in ("locales/*/LC_MESSAGES/*.po",
                                                    "catalog/translations/*.json")
        for path in (REPO / "portal").glob(pattern)}
    assert expected <= names, sorted(expected - names)
    entry_points = zipfile.ZipFile(wheel).read(
        next(name for name in names if name.endswith("entry_points.txt"))
    ).decode()
    assert "connect-portal = portal.cli:main" in entry_points
