"""The shape docs/architecture.md describes, kept true: no import cycle anywhere in the
portal (imports inside functions included), views that talk to no outside system, a
connect flow that knows only the auth family interface, and a family for every auth type."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import cast

from portal.auth.credentials import SHAPES
from portal.auth.family import AuthFamily
from portal.auth.registry import AuthRegistry
from portal.catalog import AuthOption, AuthType

PORTAL = Path(__file__).resolve().parent.parent / "portal"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PORTAL.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Every portal module and the portal modules it imports, wherever the import sits."""
    modules = {_module_name(path): path for path in PORTAL.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            found |= {target for target in targets if target in modules}
        graph[name] = found - {name}
    return graph


def _without_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Edges to a package's own `__init__` from inside it are how Python loads it, not a
    design dependency: keep only module-to-module edges outside one's own package."""
    return {name: {target for target in targets if not name.startswith(target + ".")}
            for name, targets in graph.items()}


def test_no_portal_module_imports_itself_back() -> None:
    graph = _without_packages(_imports())
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_views_talk_to_no_outside_system_directly() -> None:
    for path in (PORTAL / "views").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"redis", "httpx", "httpcore"}, path.name


def test_the_connect_flow_knows_the_family_interface_not_the_families() -> None:
    graph = _imports()
    for core in ("portal.flow", "portal.return_path", "portal.picker"):
        family_modules = {target for target in graph[core]
                          if target.startswith(("portal.auth.credentials", "portal.auth.oauth"))}
        assert family_modules == set(), core
    assert {"portal.auth.family", "portal.auth.registry"} <= graph["portal.flow"]


def test_every_auth_type_of_the_catalog_has_a_family() -> None:
    # Two distinct stand-ins: the registry only places families, it never calls them.
    credentials, oauth = cast(AuthFamily, object()), cast(AuthFamily, object())
    registry = AuthRegistry.of(credentials=credentials, oauth=oauth)
    for auth_type in AuthType:
        option = AuthOption(key="k", type=auth_type, display_name="K")
        assert registry.runs(option), auth_type
        assert registry.family_for(option) is (oauth if auth_type.is_oauth else credentials)


def test_every_credential_type_has_a_shape_and_only_those() -> None:
    assert set(SHAPES) == {item for item in AuthType if not item.is_oauth}


def test_every_module_path_the_docs_name_exists() -> None:
    """A module moved or renamed without its docs fails here, not in a reader's hands."""
    repository = PORTAL.parent
    documents = [repository / "README.md", repository / "SECURITY.md",
                 *sorted((repository / "docs").glob("*.md"))]
    missing = []
    for document in documents:
        for path in re.findall(r"(?<![\w./-])portal/[\w/.]*[\w/]", document.read_text()):
            if not (repository / path).exists():
                missing.append(f"{document.name}: {path}")
    assert missing == []
