"""Compression and caching, against a real portal process: JSON, CSS and scripts are
gzipped when the client accepts it (and only then); no HTML page is (BREACH: the pages
carry CSRF tokens); pages link static files by content hash and those answers are cached
for a year as immutable, plain /static/ URLs briefly; pages are never stored."""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from portal.resources import static_dir
from portal.static_assets import HASH_LENGTH, IMMUTABLE, SHORT, StaticAssets, file_versions
from tests.conftest import API_KEY, AUTH, SECRET_KEY, csrf_of, token_body
from tests.live_servers import LivePortal, portal_process

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


@pytest.fixture(scope="module")
def portal(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    log = tmp_path_factory.mktemp("compression") / "portal.log"
    with portal_process(redis_url, log, api_key=API_KEY, secret_key=SECRET_KEY) as portal:
        yield portal


def fetch(portal: LivePortal, path: str, headers: dict[str, str]) -> tuple[httpx.Response, bytes]:
    """The answer and its body exactly as sent on the wire (not decoded)."""
    with httpx.Client(base_url=portal.url, timeout=30) as client, client.stream(
            "GET", path, headers=headers) as response:
        wire = b"".join(response.iter_raw())
    return response, wire


def expected_version(name: str) -> str:
    return hashlib.sha256((static_dir() / name).read_bytes()).hexdigest()[:HASH_LENGTH]


def open_form_page(portal: LivePortal) -> httpx.Response:
    with httpx.Client(base_url=portal.url, timeout=30) as client:
        minted = client.post("/api/v1/connect/token", json=token_body(), headers=AUTH)
        assert minted.status_code == 200, minted.text
        opened = client.get("/connect", params={"token": minted.json()["token"]})
        assert opened.status_code == 303, opened.text
        page = client.get(opened.headers["location"], headers=GZIP)
        assert page.status_code == 200, page.text
        return page


def test_large_json_is_gzipped_only_when_accepted(portal: LivePortal) -> None:
    plain, plain_wire = fetch(portal, "/api/v1/integrations", {**AUTH, **IDENTITY})
    assert plain.status_code == 200
    assert len(plain_wire) > 1024, "the catalog listing should be over the 1 KB threshold"
    assert "content-encoding" not in plain.headers
    zipped, zipped_wire = fetch(portal, "/api/v1/integrations", {**AUTH, **GZIP})
    assert zipped.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["vary"]
    assert gzip.decompress(zipped_wire) == plain_wire
    assert len(zipped_wire) < len(plain_wire)
    # The middleware order holds: the security headers are still on the compressed answer.
    assert zipped.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in zipped.headers


@pytest.mark.parametrize("name", ["connect.js", "portal.css"])
def test_static_css_and_js_are_gzipped_only_when_accepted(portal: LivePortal, name: str) -> None:
    content = (static_dir() / name).read_bytes()
    assert len(content) > 1024
    zipped, wire = fetch(portal, f"/static/{name}", GZIP)
    assert zipped.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(wire) == content
    plain, plain_wire = fetch(portal, f"/static/{name}", IDENTITY)
    assert "content-encoding" not in plain.headers
    assert plain_wire == content


def varies_on_encoding(response: httpx.Response) -> bool:
    return "accept-encoding" in response.headers.get("vary", "").lower()


def test_answers_a_gzip_client_would_get_compressed_vary_for_every_client(
        portal: LivePortal) -> None:
    """A shared cache must not hand a gzip answer to a client that cannot read it, nor
    keep the plain one from a gzip client: an answer that is compressed for some clients
    says `Vary: Accept-Encoding` to all of them. A small one, or HTML (never compressed),
    is the same for everyone and does not."""
    for path, headers in (("/api/v1/integrations", AUTH), ("/static/portal.css", {})):
        plain, _ = fetch(portal, path, {**headers, **IDENTITY})
        assert "content-encoding" not in plain.headers
        assert varies_on_encoding(plain), (path, plain.headers)
        zipped, _ = fetch(portal, path, {**headers, **GZIP})
        assert varies_on_encoding(zipped), (path, zipped.headers)
    for headers in (IDENTITY, GZIP):
        small, wire = fetch(portal, "/healthz", headers)
        assert small.status_code == 200 and len(wire) < 1024
        assert not varies_on_encoding(small), small.headers
    page = open_form_page(portal)
    assert len(page.content) > 1024 and "content-encoding" not in page.headers
    assert not varies_on_encoding(page), page.headers


def test_a_compressed_static_file_has_a_weak_etag_that_still_revalidates(
        portal: LivePortal) -> None:
    plain, _ = fetch(portal, "/static/portal.css", IDENTITY)
    zipped, _ = fetch(portal, "/static/portal.css", GZIP)
    strong = plain.headers["etag"]
    assert not strong.startswith("W/")
    # Two bodies, two tags: the gzip one is the weak form of the file's.
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["etag"] == "W/" + strong
    for tag, headers in ((zipped.headers["etag"], GZIP), (strong, IDENTITY)):
        again, _ = fetch(portal, "/static/portal.css", {**headers, "If-None-Match": tag})
        assert again.status_code == 304, (tag, again.headers)


def test_pages_link_hashed_static_urls_that_are_immutable(portal: LivePortal) -> None:
    page = open_form_page(portal)
    for name in ("portal.css", "form.js"):
        url = f"/static/{name}?v={expected_version(name)}"
        assert f'"{url}"' in page.text, f"{url} not in the page"
        answer = httpx.get(f"{portal.url}{url}", timeout=30)
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == IMMUTABLE
        assert answer.content == (static_dir() / name).read_bytes()
    assert not re.search(r'"/static/[^"?]+"', page.text), "a static URL without its hash"


def test_static_urls_without_the_current_hash_are_cached_briefly(portal: LivePortal) -> None:
    # connect.js is loaded by partner pages by its plain name: it must keep working.
    for path in ("/static/connect.js", "/static/form.js?v=0000000000000000",
                 "/static/form.js?v="):
        answer = httpx.get(f"{portal.url}{path}", timeout=30)
        assert answer.status_code == 200, path
        assert answer.headers["cache-control"] == SHORT, path


def test_pages_are_not_stored_and_csrf_pages_not_compressed(portal: LivePortal) -> None:
    page = open_form_page(portal)
    assert csrf_of(page.text)
    assert len(page.content) > 1024, "the page is large enough that only the rule keeps it plain"
    assert page.headers["cache-control"] == "no-store"
    assert "content-encoding" not in page.headers
    error_page = httpx.get(f"{portal.url}/connect", params={"token": "cst_forged"},
                           headers=GZIP, timeout=30)
    assert error_page.headers["cache-control"] == "no-store"
    assert "content-encoding" not in error_page.headers


def test_the_hash_changes_when_the_file_changes(tmp_path: Path) -> None:
    (tmp_path / "logos").mkdir()
    (tmp_path / "app.js").write_text("console.log(1);\n")
    (tmp_path / "logos" / "acme.svg").write_text("<svg/>")
    before = StaticAssets(tmp_path)
    first = hashlib.sha256(b"console.log(1);\n").hexdigest()[:HASH_LENGTH]
    assert before.url("app.js") == f"/static/app.js?v={first}"
    assert before.url("logos/acme.svg").startswith("/static/logos/acme.svg?v=")
    assert before.url("missing.js") == "/static/missing.js"
    (tmp_path / "app.js").write_text("console.log(2);\n")
    after = StaticAssets(tmp_path)
    second = hashlib.sha256(b"console.log(2);\n").hexdigest()[:HASH_LENGTH]
    assert second != first
    assert after.url("app.js") == f"/static/app.js?v={second}"
    assert file_versions(tmp_path)["logos/acme.svg"] == before.versions["logos/acme.svg"]
