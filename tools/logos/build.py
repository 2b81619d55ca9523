"""Write the built-in integrations' logos from the Simple Icons package: `./dev logos`.

For each integration of portal/catalog/integrations.json whose brand is in Simple Icons
(tools/logos/node_modules/simple-icons, the version pinned in package-lock.json), this
writes static/logos/<integration name>.svg and sets the entry's "logo"; an integration
whose brand is not in the set keeps its monogram. Each logo is the brand's mark on a
rounded square of the brand's colour, the mark white or black, whichever reaches 3:1
against that colour (WCAG 1.4.11), so it reads the same on a light or a dark page.
static/logos/LICENSE.md records where the marks come from.

    python tools/logos/build.py           # rewrite the logos, "logo" lines, LICENSE.md
    python tools/logos/build.py --check   # exit 1 if that would change anything
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(__file__).resolve().parent / "node_modules" / "simple-icons"
CATALOG = ROOT / "portal" / "catalog" / "integrations.json"
LOGOS = ROOT / "static" / "logos"

# Catalog names whose Simple Icons slug is not the name without its hyphens.
SLUGS = {
    "mistral": "mistralai",
    "postgres": "postgresql",
    "mongodb-atlas": "mongodb",
}
# Non-text contrast (WCAG 1.4.11) between the mark and its square.
MINIMUM_CONTRAST = 3.0
WHITE, BLACK = "FFFFFF", "000000"
# The icons' 24-unit box with a margin, and the square's corner radius, in those units.
PADDING = 5
RADIUS = 7
# Decimal places kept in path coordinates; Simple Icons ships up to three.
PRECISION = 2
MAX_BYTES = 4096


@dataclass(frozen=True)
class Icon:
    slug: str
    title: str
    hex: str
    path: str
    source: str
    guidelines: str | None
    license: str | None


def relative_luminance(hex_colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)),
                             reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def mark_colour(background: str) -> str:
    """White on the brand's colour when that reaches the minimum, otherwise black."""
    return WHITE if contrast(WHITE, background) >= MINIMUM_CONTRAST else BLACK


def short_hex(colour: str) -> str:
    colour = colour.lower()
    if all(colour[i] == colour[i + 1] for i in (0, 2, 4)):
        return colour[0] + colour[2] + colour[4]
    return colour


def logo_svg(icon: Icon) -> str:
    size = 24 + 2 * PADDING
    box = f"{-PADDING} {-PADDING} {size} {size}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{box}">'
        f'<rect x="{-PADDING}" y="{-PADDING}" width="{size}" height="{size}" rx="{RADIUS}" '
        f'fill="#{short_hex(icon.hex)}"/>'
        f'<path fill="#{short_hex(mark_colour(icon.hex))}" d="{icon.path}"/></svg>\n'
    )


# -- path data: fewer decimals without drift ---------------------------------------------
_TOKEN = re.compile(r"[MmLlHhVvCcSsQqTtAaZz]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ARITY = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "T": 2, "A": 7, "Z": 0}


def _tokens(d: str) -> list[str]:
    """Commands and numbers; an arc's flags may be written without separators ("011")."""
    out: list[str] = []
    command = ""
    index = 0
    position = 0
    while position < len(d):
        if d[position] in " ,\t\n":
            position += 1
            continue
        if command.upper() == "A" and index % 7 in (3, 4) and d[position] in "01":
            out.append(d[position])
            position += 1
            index += 1
            continue
        match = _TOKEN.match(d, position)
        if match is None:
            raise ValueError(f"unexpected path data at {position}: {d[position:position + 10]!r}")
        token = match.group()
        position = match.end()
        if token.isalpha():
            command, index = token, 0
        else:
            index += 1
        out.append(token)
    return out


def _number(value: float) -> str:
    text = f"{round(value, PRECISION):.{PRECISION}f}".rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    if text.startswith("0."):
        text = text[1:]
    elif text.startswith("-0."):
        text = "-" + text[2:]
    return text


def _join(numbers: list[str]) -> str:
    """Numbers with a space only where the next one would otherwise run on."""
    out = ""
    previous = ""
    for text in numbers:
        runs_on = text.startswith("-") or (text.startswith(".") and "." in previous)
        out += text if not out or runs_on else " " + text
        previous = text
    return out


def reduce_precision(d: str) -> str:
    """The same path with coordinates rounded to PRECISION decimals. Relative moves are
    taken between rounded absolute points, so rounding errors never add up."""
    tokens = _tokens(d)
    parts: list[str] = []
    x = y = 0.0  # the current point, exact
    wx = wy = 0.0  # the current point as written, rounded
    start = (0.0, 0.0, 0.0, 0.0)
    command = ""
    numbers: list[str] = []
    position = 0

    def flush() -> None:
        if command:
            parts.append(command + _join(numbers))

    while position < len(tokens):
        if tokens[position].isalpha():
            flush()
            command, numbers = tokens[position], []
            position += 1
            if command in "Zz":
                x, y, wx, wy = start
                continue
            opened = True
        upper, relative = command.upper(), command.islower()
        arity = _ARITY[upper]
        values = [float(value) for value in tokens[position:position + arity]]
        position += arity
        bx, by = (x, y) if relative else (0.0, 0.0)
        written: list[str] = []
        if upper == "A":
            written += [_number(values[0]), _number(values[1]), _number(values[2]),
                        str(int(values[3])), str(int(values[4]))]
            points = [(values[5] + bx, values[6] + by)]
        elif upper == "H":
            points = [(values[0] + bx, y)]
        elif upper == "V":
            points = [(x, values[0] + by)]
        else:
            points = [(values[i] + bx, values[i + 1] + by) for i in range(0, arity, 2)]
        for px, py in points:
            ax, ay = round(px, PRECISION), round(py, PRECISION)
            dx, dy = (ax - wx, ay - wy) if relative else (ax, ay)
            if upper == "H":
                written.append(_number(dx))
            elif upper == "V":
                written.append(_number(dy))
            else:
                written += [_number(dx), _number(dy)]
        x, y = points[-1]
        wx, wy = round(x, PRECISION), round(y, PRECISION)
        if upper == "M" and opened:
            start = (x, y, wx, wy)
        opened = False
        numbers += written
    flush()
    return "".join(parts)


def absolute_points(d: str) -> list[tuple[float, float]]:
    """Every point a path names, in absolute coordinates (to compare two writings).

    Written apart from `reduce_precision` on purpose, not on a shared path walker:
    tests/test_logos.py checks one against the other, and a shared walker would share
    its mistakes."""
    tokens = _tokens(d)
    out: list[tuple[float, float]] = []
    x = y = sx = sy = 0.0
    command = ""
    position = 0
    while position < len(tokens):
        if tokens[position].isalpha():
            command = tokens[position]
            position += 1
            if command in "Zz":
                x, y = sx, sy
                continue
            opened = True
        upper, relative = command.upper(), command.islower()
        arity = _ARITY[upper]
        values = [float(value) for value in tokens[position:position + arity]]
        position += arity
        bx, by = (x, y) if relative else (0.0, 0.0)
        if upper == "A":
            points = [(values[5] + bx, values[6] + by)]
        elif upper == "H":
            points = [(values[0] + bx, y)]
        elif upper == "V":
            points = [(x, values[0] + by)]
        else:
            points = [(values[i] + bx, values[i + 1] + by) for i in range(0, arity, 2)]
        out += points
        x, y = points[-1]
        if upper == "M" and opened:
            sx, sy = x, y
        opened = False
    return out


# -- the package, the catalog ------------------------------------------------------------
def load_icons() -> tuple[dict[str, Icon], dict[str, str]]:
    if not PACKAGE.is_dir():
        sys.exit("tools/logos/node_modules is missing: run ./dev logos (it runs npm ci)")
    meta = json.loads((PACKAGE / "package.json").read_text())
    icons: dict[str, Icon] = {}
    for entry in json.loads((PACKAGE / "data" / "simple-icons.json").read_text()):
        slug = entry["slug"]
        svg = (PACKAGE / "icons" / f"{slug}.svg").read_text()
        paths = re.findall(r'<path d="([^"]+)"/>', svg)
        if len(paths) != 1:
            continue
        licence = entry.get("license")
        icons[slug] = Icon(slug=slug, title=entry["title"], hex=entry["hex"].upper(),
                           path=paths[0], source=entry.get("source", ""),
                           guidelines=entry.get("guidelines"),
                           license=licence.get("type") if licence else None)
    return icons, {"name": meta["name"], "version": meta["version"],
                   "license": meta["license"]}


def icon_for(name: str, icons: dict[str, Icon]) -> Icon | None:
    return icons.get(SLUGS.get(name, name.replace("-", "")))


def svg_for(icon: Icon) -> str:
    svg = logo_svg(icon)
    if len(svg.encode()) > MAX_BYTES:
        icon = Icon(**{**icon.__dict__, "path": reduce_precision(icon.path)})
        svg = logo_svg(icon)
    return svg


def with_logos(text: str, logos: dict[str, str]) -> str:
    """The catalog's text with each entry's "logo" line (right after "website") set or
    removed, and nothing else touched: other people's formatting stays as it is."""
    out: list[str] = []
    name = None
    for line in text.splitlines(keepends=True):
        entry = re.fullmatch(r'      "name": "([^"]+)",\n', line)
        if entry:
            name = entry.group(1)
        if re.fullmatch(r'      "logo": "[^"]*",\n', line):
            continue
        out.append(line)
        if name in logos and re.fullmatch(r'      "website": "[^"]*",\n', line):
            out.append(f'      "logo": "{logos[name]}",\n')
    result = "".join(out)
    found = {entry["name"]: entry.get("logo") for entry in json.loads(result)["integrations"]}
    if {name: logo for name, logo in found.items() if logo} != logos:
        sys.exit("could not place the logo lines: is every entry's \"website\" on a line "
                 "of its own, indented by six spaces?")
    return result


def licence_text(package: dict[str, str], used: list[tuple[str, Icon]]) -> str:
    lines = [
        "# Logos of the built-in integrations",
        "",
        "Generated by `./dev logos` (tools/logos/build.py); do not edit by hand.",
        "",
        f"- Source: the npm package `{package['name']}` {package['version']}"
        " (https://simpleicons.org), pinned in tools/logos/package-lock.json.",
        f"- Licence of the package: {package['license']} (public domain dedication).",
        "  Where Simple Icons records a licence of an icon's own, it is listed below; Simple",
        "  Icons notes that a missing entry does not prove an icon is CC0 (its DISCLAIMER.md).",
        "- Trademarks: every mark below is a trademark of its owner. Its use here identifies",
        "  the service an end user connects to; it implies no endorsement. Brand guidelines,",
        "  where the package names them, are linked below.",
        "- Changes: each mark is drawn on a rounded square of its brand colour, in white or",
        "  black (whichever reaches 3:1 against that colour); long paths are rounded to two",
        "  decimals to stay under 4 KB.",
        "",
        "| file | brand | colour | icon licence | source | guidelines |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, icon in used:
        licence = icon.license or "none recorded"
        lines.append(f"| {name}.svg | {icon.title} | #{icon.hex} | {licence}"
                     f" | {icon.source} | {icon.guidelines or ''} |")
    return "\n".join(lines) + "\n"


def build(check: bool) -> int:
    icons, package = load_icons()
    catalog_text = CATALOG.read_text(encoding="utf-8")
    names = [entry["name"] for entry in json.loads(catalog_text)["integrations"]]
    wanted: dict[Path, str] = {}
    used: list[tuple[str, Icon]] = []
    for name in names:
        icon = icon_for(name, icons)
        if icon is not None:
            wanted[LOGOS / f"{name}.svg"] = svg_for(icon)
            used.append((name, icon))
    wanted[CATALOG] = with_logos(catalog_text, {name: f"logos/{name}.svg" for name, _ in used})
    wanted[LOGOS / "LICENSE.md"] = licence_text(package, used)
    stale = [path for path in LOGOS.glob("*.svg") if path not in wanted] if LOGOS.is_dir() else []
    changed = [path for path, text in wanted.items()
               if not path.exists() or path.read_text(encoding="utf-8") != text]
    if check:
        for path in changed + stale:
            print(f"out of date: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if changed or stale else 0
    LOGOS.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.unlink()
    for path in changed:
        path.write_text(wanted[path], encoding="utf-8")
    missing = sorted(set(names) - {name for name, _ in used}, key=names.index)
    print(f"{len(used)} logos from {package['name']} {package['version']}; "
          f"monograms for {len(missing)}: {', '.join(missing)}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the logos or the catalog's logo lines are out of date")
    sys.exit(build(parser.parse_args().check))


if __name__ == "__main__":
    main()
