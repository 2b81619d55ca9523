"""The colours of static/portal.css, read from its custom properties and checked against
WCAG 2.1 in both themes: text 4.5:1 (1.4.3), input borders and the focus ring 3:1
against what surrounds them (1.4.11). No browser: a colour change that breaks a ratio
fails here before anyone looks at a page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from portal import brand

CSS = (Path(__file__).resolve().parent.parent / "static" / "portal.css").read_text()

# (foreground, background, minimum): every pair a page puts next to each other.
TEXT = 4.5
NON_TEXT = 3.0
PAIRS: list[tuple[str, str, float]] = [
    ("fg", "bg", TEXT), ("fg", "surface", TEXT), ("fg", "field-bg", TEXT),
    ("muted", "surface", TEXT), ("muted", "bg", TEXT),
    ("accent", "surface", TEXT),  # links
    ("on-accent", "accent", TEXT),  # the primary button, the current category
    ("ok", "surface", TEXT), ("fail", "surface", TEXT),
    ("fg", "notice-bg", TEXT), ("fg", "code-bg", TEXT),
    ("monogram-fg", "monogram-bg", TEXT),
    ("field-line", "field-bg", NON_TEXT), ("field-line", "surface", NON_TEXT),  # input borders
    ("fail", "field-bg", NON_TEXT),  # the border of a field with an error
    ("focus", "surface", NON_TEXT), ("focus", "bg", NON_TEXT),  # the focus ring
    ("accent", "surface", NON_TEXT),  # the primary button's edge
]


def block(selector: str, within: str = CSS) -> str:
    match = re.search(re.escape(selector) + r"\s*\{([^{}]*)\}", within)
    assert match, f"no {selector} block in portal.css"
    return match.group(1)


def properties(body: str) -> dict[str, str]:
    return {name: value.strip() for name, value in re.findall(r"--([\w-]+)\s*:\s*([^;]+);", body)}


def media_dark() -> dict[str, str]:
    start = CSS.index("@media (prefers-color-scheme: dark)")
    return properties(block(':root:not([data-theme="light"])', CSS[start:]))


LIGHT = properties(block(":root"))
DARK = {**LIGHT, **properties(block(':root[data-theme="dark"]'))}


def rgb(value: str) -> tuple[float, float, float]:
    match = re.fullmatch(r"#([0-9a-fA-F]{6})", value)
    assert match, f"{value!r}: theme colours are written #rrggbb"
    digits = match.group(1)
    red, green, blue = (int(digits[index:index + 2], 16) / 255 for index in (0, 2, 4))
    return red, green, blue


def luminance(value: str) -> float:
    def linear(channel: float) -> float:
        return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4
    red, green, blue = (linear(channel) for channel in rgb(value))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: str, second: str) -> float:
    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_contrast_maths_matches_known_ratios() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert contrast("#777777", "#777777") == pytest.approx(1.0)


def test_the_dark_theme_is_the_same_from_the_system_setting_and_from_data_theme() -> None:
    assert media_dark() == properties(block(':root[data-theme="dark"]'))
    assert set(media_dark()) == set(LIGHT), "the dark theme sets every colour the light one does"


def test_every_colour_of_the_stylesheet_is_a_theme_property() -> None:
    outside = re.sub(r":root[^{]*\{[^{}]*\}", "", CSS)
    # The monogram hues have a test of their own (tests/test_logos.py).
    outside = re.sub(r"\.hue-\d+\s*\{[^{}]*\}", "", outside)
    literals = re.findall(r"#[0-9a-fA-F]{3,8}\b|\b(?:rgb|hsl)a?\(", outside)
    assert literals == [], f"colours outside the theme blocks: {literals}"


def test_the_page_follows_the_system_colour_scheme() -> None:
    assert "color-scheme: light dark" in block(":root")


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize(("foreground", "background", "minimum"), PAIRS,
                         ids=[f"{fg}-on-{bg}" for fg, bg, _ in PAIRS])
def test_contrast(theme: str, foreground: str, background: str, minimum: float) -> None:
    colours = LIGHT if theme == "light" else DARK
    ratio = contrast(colours[foreground], colours[background])
    assert ratio >= minimum, (
        f"{theme}: --{foreground} {colours[foreground]} on --{background} "
        f"{colours[background]} is {ratio:.2f}:1, needs {minimum}:1")


def test_the_layout_uses_logical_properties_so_right_to_left_pages_mirror() -> None:
    physical = re.findall(
        r"\b(?:margin|padding|border)-(?:left|right)\b|\b(?:left|right)\s*:|"
        r"text-align:\s*(?:left|right)|float:\s*(?:left|right)", CSS)
    assert physical == []
    # A four-value shorthand sets left and right apart: a right-to-left page would not mirror it.
    for name, value in re.findall(r"\b(margin|padding)\s*:\s*([^;}]+)", CSS):
        parts = value.split()
        assert len(parts) < 4 or parts[1] == parts[3], f"{name}: {value}"


def test_a_busy_button_spins_only_when_motion_is_welcome() -> None:
    assert 'button[aria-busy="true"]::before' in CSS
    reduced = CSS[CSS.index("@media (prefers-reduced-motion: reduce)"):]
    assert "animation: none" in block('button[aria-busy="true"]::before', reduced)


def test_the_partner_accent_is_adjusted_against_these_page_colours() -> None:
    """portal/brand.py adjusts a partner's accent colour until it reads on the page colours;
    they must be this stylesheet's."""
    assert set(brand.LIGHT_PAGES) == {LIGHT["surface"], LIGHT["bg"]}
    assert set(brand.DARK_PAGES) == {DARK["surface"], DARK["bg"]}
