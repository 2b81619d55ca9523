"""The built-in integrations' logos (static/logos/, written by `./dev logos` from the
Simple Icons package) and the monogram badge drawn for the others: every logo the catalog
names is shipped, small, well-formed and inert; its mark stands out from its square; every
monogram hue passes 4.5:1; the licence is recorded; the picker shows them."""

from __future__ import annotations

import colorsys
import importlib.util
import json
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from portal.catalog.loader import load_catalog
from portal.resources import static_dir
from tests.conftest import mint, open_page

ROOT = Path(__file__).resolve().parent.parent
LOGOS = static_dir() / "logos"
SVG = "{http://www.w3.org/2000/svg}"
MAX_BYTES = 4096
# What a logo may be made of: shapes and their fills, nothing that runs, loads or embeds.
ALLOWED_ELEMENTS = {f"{SVG}{name}" for name in ("svg", "g", "path", "rect", "circle")}
ALLOWED_ATTRIBUTES = {"xmlns", "viewBox", "x", "y", "width", "height", "rx", "ry", "r",
                      "cx", "cy", "d", "fill", "fill-rule", "clip-rule", "transform"}


def luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: tuple[float, float, float], second: tuple[float, float, float]) -> float:
    lighter, darker = sorted((luminance(first), luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def colour(value: str) -> tuple[float, float, float]:
    """#rgb, #rrggbb or hsl(h s% l%) as sRGB channels from 0 to 1."""
    value = value.strip().lower()
    hsl = re.fullmatch(r"hsl\(\s*([\d.]+)(?:deg)?[\s,]+([\d.]+)%[\s,]+([\d.]+)%\s*\)", value)
    if hsl:
        h, s, lightness = (float(part) for part in hsl.groups())
        return colorsys.hls_to_rgb(h / 360, lightness / 100, s / 100)
    hex_digits = re.fullmatch(r"#([0-9a-f]{3}|[0-9a-f]{6})", value)
    assert hex_digits, f"not a colour this test reads: {value!r}"
    digits = hex_digits.group(1)
    if len(digits) == 3:
        digits = "".join(2 * d for d in digits)
    r, g, b = (int(digits[i:i + 2], 16) / 255 for i in (0, 2, 4))
    return r, g, b


def catalog_logos() -> dict[str, str]:
    entries = json.loads((ROOT / "portal" / "catalog" / "integrations.json").read_text())
    return {entry["name"]: entry["logo"] for entry in entries["integrations"] if "logo" in entry}


def parse(text: str) -> ElementTree.Element:
    """A logo's XML tree. Our own checked-in files, and no DOCTYPE or entity may be in
    them (checked first), so the standard parser is safe here."""
    assert "<!" not in text and "<?" not in text  # no DOCTYPE, entity, CDATA or processing
    return ElementTree.fromstring(text)  # noqa: S314


def logo_files() -> list[Path]:
    return sorted(LOGOS.glob("*.svg"))


def test_the_built_in_catalog_names_a_logo_for_most_integrations_and_each_is_shipped() -> None:
    integrations = list(load_catalog())
    with_logo = [item for item in integrations if item.logo]
    assert len(with_logo) >= 50, "the logos were not generated (./dev logos)"
    for item in with_logo:
        assert item.logo == f"logos/{item.name}.svg"
        assert (static_dir() / item.logo).is_file(), f"{item.name}: {item.logo} is not shipped"


def test_every_shipped_logo_belongs_to_an_integration() -> None:
    named = {f"{name}.svg" for name in catalog_logos()}
    assert {path.name for path in logo_files()} == named


@pytest.mark.parametrize("path", logo_files(), ids=lambda path: path.stem)
def test_a_logo_is_a_small_well_formed_svg_that_runs_and_loads_nothing(path: Path) -> None:
    raw = path.read_bytes()
    assert len(raw) <= MAX_BYTES, f"{path.name} is {len(raw)} bytes"
    text = raw.decode("utf-8")
    root = parse(text)
    assert root.tag == f"{SVG}svg"
    assert re.fullmatch(r"-?[\d.]+ -?[\d.]+ [\d.]+ [\d.]+", root.get("viewBox", ""))
    for element in root.iter():
        assert element.tag in ALLOWED_ELEMENTS, f"{path.name}: <{element.tag}>"
        for name, value in element.attrib.items():
            assert name in ALLOWED_ATTRIBUTES, f"{path.name}: {name}= on <{element.tag}>"
            assert not name.lower().startswith("on")
            assert "url(" not in value and "javascript:" not in value.lower()
    for forbidden in ("script", "foreignobject", "href", "<image", "<use", "style"):
        assert forbidden not in text.lower(), f"{path.name} contains {forbidden}"


@pytest.mark.parametrize("path", logo_files(), ids=lambda path: path.stem)
def test_a_logos_mark_stands_out_from_its_square_in_any_theme(path: Path) -> None:
    """The mark is drawn on a square of the brand's colour, so what the page behind looks
    like (light or dark) does not matter: mark against square is at least 3:1 (1.4.11)."""
    root = parse(path.read_text())
    square = root.find(f"{SVG}rect")
    mark = root.find(f"{SVG}path")
    assert square is not None and mark is not None
    assert square.get("width") == square.get("height") == root.get("viewBox", "").split()[2]
    ratio = contrast(colour(square.get("fill", "")), colour(mark.get("fill", "")))
    assert ratio >= 3.0, f"{path.name}: mark against square {ratio:.2f}:1"


def hue_rules(css: str) -> list[tuple[int, str, str]]:
    """Each rule that colours a monogram hue class: (hue, background, colour)."""
    found: list[tuple[int, str, str]] = []
    for selector, body in re.findall(r"([^{}]*\.hue-\d+[^{}]*)\{([^{}]*)\}", css):
        declarations = dict(re.findall(r"([\w-]+)\s*:\s*([^;]+);?", body))
        for hue in re.findall(r"\.hue-(\d+)", selector):
            found.append((int(hue), declarations["background"], declarations["color"]))
    return found


def test_every_monogram_hue_passes_4_5_to_1_for_its_letter() -> None:
    rules = hue_rules((static_dir() / "portal.css").read_text())
    # The template picks hue-(monogram_hue // 30), monogram_hue being 0 to 359.
    assert {hue for hue, _, _ in rules} == set(range(12))
    for hue, background, foreground in rules:
        ratio = contrast(colour(background), colour(foreground))
        assert ratio >= 4.5, f"hue-{hue}: {foreground} on {background} is {ratio:.2f}:1"


def test_the_licence_of_the_icons_and_the_trademark_note_are_recorded() -> None:
    package = json.loads((ROOT / "tools" / "logos" / "package.json").read_text())
    lock = json.loads((ROOT / "tools" / "logos" / "package-lock.json").read_text())
    pinned = package["dependencies"]["simple-icons"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "the icon set must be pinned exactly"
    locked = lock["packages"]["node_modules/simple-icons"]
    assert (locked["version"], locked["license"]) == (pinned, "CC0-1.0")
    licence = (LOGOS / "LICENSE.md").read_text()
    assert f"`simple-icons` {pinned}" in licence
    assert "CC0-1.0" in licence and "trademark of its owner" in licence
    for name in catalog_logos():
        assert f"| {name}.svg |" in licence
    assert "static/logos/LICENSE.md" in (ROOT / "README.md").read_text()


def build_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("logos_build", ROOT / "tools/logos/build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", [
    "M12 .297c-6.63 0-12 5.373-12 12 0 5.303 3.438 9.8 8.205 11.385.6.113.82-.258.82-.577z",
    "M1.111 1.111h2.222v2.222H1.111zm3.333.001l1.111 1.111 1.111-1.111 1.111 1.111V6.667z",
    "M0 0a3.333 3.333 0 016.667 0A3.333 3.333 0 110 0zm1.005.005a1.005 1.005 0 002.011 0",
    "M.5.5l.001.001.001.001.001.001.001.001.001.001.001.001.001.001.001.001.001.001.001.001",
])
def test_the_build_tool_rounds_path_data_without_drift(path: str) -> None:
    """Shorter paths round coordinates to two decimals; relative moves are taken between
    rounded points, so however long a path, no point moves more than half a hundredth."""
    build = build_tool()
    shorter: str = build.reduce_precision(path)
    before = build.absolute_points(path)
    after = build.absolute_points(shorter)
    assert len(after) == len(before)
    assert len(shorter) <= len(path)
    for (x0, y0), (x1, y1) in zip(before, after, strict=True):
        assert abs(x0 - x1) <= 0.00501 and abs(y0 - y1) <= 0.00501


def test_the_picker_shows_shipped_logos_and_monograms_for_the_rest(make_client: Any) -> None:
    client = make_client()
    page_path, _ = open_page(client, mint(client, integrationName=None)["token"])
    html = "".join(client.get(page_path, params={"q": name}).text
                   for name in ("github", "openai"))
    github = re.search(r'<img class="logo[^"]*" src="(/static/logos/github\.svg\?v=\w+)"', html)
    assert github, "the picker does not show GitHub's logo"
    served = client.get(github.group(1))
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("image/svg+xml")
    assert "immutable" in served.headers["cache-control"]
    assert re.search(r'class="logo monogram[^"]*hue-\d+"[^>]*>Op<', html), "OpenAI's monogram"


def test_the_build_tool_touches_only_the_catalogs_logo_lines() -> None:
    build = build_tool()
    text = (ROOT / "portal" / "catalog" / "integrations.json").read_text(encoding="utf-8")
    without: str = build.with_logos(text, {})
    assert '"logo"' not in without
    assert without.splitlines() == [line for line in text.splitlines() if '"logo"' not in line]
    assert build.with_logos(without, catalog_logos()) == text
