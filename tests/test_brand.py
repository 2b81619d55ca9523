"""The partner's brand on the hosted pages: who asks, their logo (fetched by the portal,
never by the browser) and their accent colour (kept readable whatever it is).

Logos come from a real HTTP server on loopback (the portal allows plain http to loopback
only with PORTAL_ALLOW_HTTP_LOOPBACK, as in development)."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from portal.brand import (
    DARK_ON_ACCENT,
    DARK_PAGES,
    LIGHT_ON_ACCENT,
    LIGHT_PAGES,
    AccentColors,
    contrast_ratio,
    readable_accent,
    sniff_image,
)
from portal.catalog.loader import CatalogError, parse_catalog
from tests.conftest import AUTH, mint, open_page, submit, token_body
from tests.live_servers import server_thread


def png(width: int = 2, height: int = 2) -> bytes:
    """A real PNG image (one colour)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + b"\xd0\x40\x20" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


LOGO = png()
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.fixture(scope="module")
def logo_server() -> Iterator[tuple[str, list[str]]]:
    """A partner's web server: a PNG, an SVG (even sent as image/png), an image too large,
    an HTML page, a 404; and the paths it was asked for."""
    asked: list[str] = []

    async def serve(request: Request) -> Response:
        name = request.path_params["name"]
        asked.append(name)
        bodies = {"logo.png": (LOGO, "image/png"), "logo.svg": (SVG, "image/png"),
                  "huge.png": (LOGO + b"\x00" * 70_000, "image/png"),
                  "page.png": (b"<html>hello</html>", "image/png")}
        if name not in bodies:
            return Response(b"", status_code=404)
        body, kind = bodies[name]
        return Response(body, media_type=kind)

    with server_thread(Starlette(routes=[Route("/{name}", serve)])) as url:
        yield url, asked


@pytest.fixture
def portal(make_client: Any) -> TestClient:
    client: TestClient = make_client(allow_http_loopback=True)
    return client


def logo_path_of(html: str) -> str | None:
    found = re.search(r'<img class="partner-logo" src="([^"]+)"', html)
    return found.group(1) if found else None


# -- contrast maths -----------------------------------------------------------------------
@pytest.mark.parametrize("color", ["#ffffff", "#000000", "#ffff00", "#777777", "#2456d6",
                                   "#00ff00", "#0000ff", "#ff0000", "#f6f7f9", "#101317"])
def test_any_accent_becomes_readable_in_both_themes(color: str) -> None:
    colors = AccentColors.of(color)
    for accent, on_accent, pages in ((colors.light, colors.on_light, LIGHT_PAGES),
                                     (colors.dark, colors.on_dark, DARK_PAGES)):
        assert contrast_ratio(accent, on_accent) >= 4.5
        for background in pages:
            assert contrast_ratio(accent, background) >= 4.5


def test_contrast_ratio_matches_wcag_reference_values() -> None:
    assert contrast_ratio("#ffffff", "#000000") == pytest.approx(21.0)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast_ratio("#ffff00", "#ffffff") == pytest.approx(1.07, abs=0.01)
    assert contrast_ratio("#2456d6", "#2456d6") == 1.0


def test_a_readable_accent_is_kept_as_it_is() -> None:
    assert readable_accent("#1d47b3", pages=LIGHT_PAGES, on_accent=LIGHT_ON_ACCENT) == "#1d47b3"
    assert readable_accent("#8fb2ff", pages=DARK_PAGES, on_accent=DARK_ON_ACCENT) == "#8fb2ff"


def test_hostile_accents_are_moved_only_as_far_as_needed() -> None:
    yellow = AccentColors.of("#ffff00")
    assert yellow.light != "#ffff00" and yellow.light not in {"#000000"}
    assert yellow.dark == "#ffff00"  # already readable on the dark page
    grey = AccentColors.of("#777777")
    assert grey.light != "#777777"
    assert contrast_ratio(grey.light, "#ffffff") < 6  # a step darker, not black


def test_only_png_jpeg_webp_and_gif_are_recognised() -> None:
    assert sniff_image(LOGO) == "image/png"
    assert sniff_image(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert sniff_image(b"GIF89a...") == "image/gif"
    assert sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image(SVG) is None
    assert sniff_image(b"<html>") is None


# -- the pages ----------------------------------------------------------------------------
def test_every_session_page_says_who_asks_for_which_app(portal: TestClient) -> None:
    answer = mint(portal, partnerName="Acme Books")
    page_path, _ = open_page(portal, answer["token"])
    html = portal.get(page_path).text
    assert "<h1>Acme Books wants to connect to your OpenAI account</h1>" in html


def test_without_a_partner_name_the_page_speaks_neutrally(portal: TestClient) -> None:
    answer = mint(portal)
    page_path, _ = open_page(portal, answer["token"])
    html = portal.get(page_path).text
    assert "<h1>Connect your OpenAI account</h1>" in html
    assert "partner-logo" not in html and "/connect/brand/" not in html


def test_a_partner_name_is_escaped(portal: TestClient) -> None:
    answer = mint(portal, partnerName='<img src=x onerror="alert(1)">')
    page_path, _ = open_page(portal, answer["token"])
    html = portal.get(page_path).text
    assert "&lt;img src=x" in html and '<img src=x' not in html


def test_the_accent_colour_is_a_stylesheet_of_the_portals_own_origin(
    portal: TestClient,
) -> None:
    answer = mint(portal, accentColor="#FFFF00")
    page_path, _ = open_page(portal, answer["token"])
    page = portal.get(page_path)
    assert '<link rel="stylesheet" href="/connect/brand/ffff00.css">' in page.text
    assert "style-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    sheet = portal.get("/connect/brand/ffff00.css")
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/css")
    colors = AccentColors.of("#ffff00")
    assert f"--accent: {colors.light};" in sheet.text and f"--accent: {colors.dark};" in sheet.text
    assert portal.get("/connect/brand/zzzzzz.css").status_code == 404


def test_a_partners_logo_is_fetched_once_and_served_from_the_portal(
    portal: TestClient, logo_server: tuple[str, list[str]],
) -> None:
    url, asked = logo_server
    before = asked.count("logo.png")
    answers = [mint(portal, partnerName="Acme", partnerLogoUrl=f"{url}/logo.png")
               for _ in range(2)]
    assert asked.count("logo.png") == before + 1  # cached by URL
    page_path, _ = open_page(portal, answers[0]["token"])
    html = portal.get(page_path).text
    assert url not in html  # never hot-linked
    logo_path = logo_path_of(html)
    assert logo_path == f"/connect/s/{answers[0]['sessionId']}/brand-logo"
    served = portal.get(logo_path)
    assert served.status_code == 200 and served.content == LOGO
    assert served.headers["content-type"] == "image/png"
    assert served.headers["cache-control"].startswith("private")
    assert "img-src 'self'" in portal.get(page_path).headers["content-security-policy"]


def test_a_logo_is_served_only_to_the_browser_bound_to_the_session(
    portal: TestClient, make_client: Any, logo_server: tuple[str, list[str]],
) -> None:
    url, _ = logo_server
    answer = mint(portal, partnerName="Acme", partnerLogoUrl=f"{url}/logo.png")
    open_page(portal, answer["token"])
    stranger: TestClient = make_client(allow_http_loopback=True)
    refused = stranger.get(f"/connect/s/{answer['sessionId']}/brand-logo")
    assert refused.status_code == 403 and refused.content != LOGO


@pytest.mark.parametrize("name", ["logo.svg", "huge.png", "page.png", "missing.png"])
def test_a_logo_that_is_not_a_small_image_falls_back_to_the_name(
    portal: TestClient, logo_server: tuple[str, list[str]], name: str,
) -> None:
    url, _ = logo_server
    answer = mint(portal, partnerName="Acme", partnerLogoUrl=f"{url}/{name}")
    page_path, _ = open_page(portal, answer["token"])
    html = portal.get(page_path).text
    assert logo_path_of(html) is None
    assert "Acme wants to connect to your OpenAI account" in html
    assert portal.get(f"/connect/s/{answer['sessionId']}/brand-logo").status_code == 404


def test_a_data_url_logo_is_checked_and_served_the_same_way(portal: TestClient) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(LOGO).decode()
    answer = mint(portal, partnerName="Acme", partnerLogoUrl=data_url)
    page_path, _ = open_page(portal, answer["token"])
    html = portal.get(page_path).text
    assert "data:image" not in html
    logo_path = logo_path_of(html)
    assert logo_path is not None and portal.get(logo_path).content == LOGO

    svg_url = "data:image/png;base64," + base64.b64encode(SVG).decode()
    refused = portal.post("/api/v1/connect/token", headers=AUTH,
                          json=token_body(partnerLogoUrl=svg_url))
    assert refused.status_code == 400
    assert "partnerLogoUrl" in refused.json()["details"]["fields"]


def test_brand_settings_are_the_defaults_of_a_token_without_them(
    make_client: Any, logo_server: tuple[str, list[str]],
) -> None:
    url, _ = logo_server
    portal: TestClient = make_client(allow_http_loopback=True, brand_name="Platform",
                                     brand_accent="#777777",
                                     brand_logo_url=f"{url}/logo.png")
    answer = mint(portal)
    page_path, _ = open_page(portal, answer["token"])
    html = portal.get(page_path).text
    assert "Platform wants to connect to your OpenAI account" in html
    assert "/connect/brand/777777.css" in html
    logo_path = logo_path_of(html)
    assert logo_path is not None and portal.get(logo_path).content == LOGO

    # A token that names its partner shows that partner, not the platform's logo.
    answer = mint(portal, partnerName="Acme", accentColor="#123456")
    page_path, _ = open_page(portal, answer["token"])
    html = portal.get(page_path).text
    assert "Acme wants to connect" in html and "/connect/brand/123456.css" in html
    assert logo_path_of(html) is None


def test_success_names_the_app_and_the_partner(portal: TestClient) -> None:
    answer = mint(portal, partnerName="Acme Books", connectionName="Work key")
    page_path, csrf = open_page(portal, answer["token"])
    submit(portal, page_path, csrf, secret_text="sk-test-123")
    html = portal.get(page_path).text
    assert "Your OpenAI account is connected to Acme Books." in html
    assert "Work key" in html


def test_the_sign_in_page_lists_the_permissions_in_plain_words(
    make_client: Any, tmp_path: Path,
) -> None:
    apps = tmp_path / "apps.json"
    apps.write_text(json.dumps({"apps": {"github": {"clientId": "id", "clientSecret": "s"}}}))
    portal: TestClient = make_client(oauth_apps_file=str(apps))
    answer = mint(portal, integrationName="github", authMethodKey="oauth2",
                  partnerName="Acme Books")
    page_path, _ = open_page(portal, answer["token"])
    html = portal.get(page_path).text
    assert "Acme Books wants to connect to your GitHub account" in html
    assert "Acme Books will be able to use your GitHub account to:" in html
    assert "<li>See and change your repositories, including private ones</li>" in html
    assert "<li>See your profile</li>" in html


def test_a_scope_description_must_name_a_scope_of_the_option(tmp_path: Path) -> None:
    entry = {"name": "acme", "displayName": "Acme", "category": "Other", "description": "d",
             "website": "https://acme.example", "authOptions": [{
                 "key": "oauth2", "type": "OAUTH2", "displayName": "Sign in",
                 "authUrl": "https://acme.example/authorize",
                 "tokenUrl": "https://acme.example/token", "scope": "read",
                 "scopeDescriptions": {"write": "Change everything"}}]}
    with pytest.raises(CatalogError, match="scopeDescriptions: 'write' is not in scope"):
        parse_catalog(json.dumps({"integrations": [entry]}), source="test")
