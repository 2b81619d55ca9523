"""The SSRF guard: hostile URLs and hosts typed into a form are refused with a clear
field error, and nothing is fetched."""

from __future__ import annotations

import html
import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from portal import ssrf
from tests.catalog_server import provider_app
from tests.conftest import mint, open_page, received, submit
from tests.fake_network import Names
from tests.hostile_values import HOSTILE_SHOPS
from tests.live_servers import server_thread

GENERIC = "Check this value."


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[str, Starlette]]:
    app = provider_app()
    with server_thread(app) as url:
        yield url, app


@pytest.fixture
def guarded(make_client: Any, tmp_path: Path, provider: tuple[str, Starlette]) -> TestClient:
    provider[1].state.requests.clear()
    entry = {
        "name": "guarded", "displayName": "Guarded", "category": "Testing",
        "description": "User input becomes part of a URL.", "website": "https://acme.example",
        "authOptions": [
            {"key": "site", "type": "CUSTOM_AUTH", "displayName": "Site and key",
             "helpUrl": "https://acme.example/keys",
             "props": {
                 "site": {"type": "SHORT_TEXT", "displayName": "Site URL", "required": True,
                          "format": "url"},
                 "api_key": {"type": "SECRET_TEXT", "displayName": "API key", "required": True},
             },
             "verification": {"url": "{site}/v1/me",
                              "headers": {"Authorization": "Bearer {api_key}"}}},
            {"key": "shop", "type": "CUSTOM_AUTH", "displayName": "Shop and token",
             "helpUrl": "https://acme.example/tokens",
             "props": {
                 "shop": {"type": "SHORT_TEXT", "displayName": "Shop", "required": True,
                          "format": "subdomain"},
                 "host": {"type": "SHORT_TEXT", "displayName": "Mail host", "required": False,
                          "format": "hostname"},
                 "token": {"type": "SECRET_TEXT", "displayName": "Token", "required": True},
             },
             "verification": {"url": "https://{shop}.myshopify.com/admin/api/shop.json",
                              "headers": {"X-Shopify-Access-Token": "{token}"}}},
        ],
    }
    path = tmp_path / "guarded.json"
    path.write_text(json.dumps({"integrations": [entry]}))
    # Credential checks on, loopback NOT allowed: the production posture.
    client: TestClient = make_client(catalog_paths=(str(path),), verify_credentials=True)
    return client


def field_error(page: str, key: str) -> str:
    match = re.search(rf'<p id="{key}-error" class="error">(.*?)</p>', page, re.S)
    assert match, f"no error on {key}"
    return html.unescape(match.group(1))


HOSTILE_SITES = [
    "https://127.0.0.1/",
    "https://127.0.0.1:{port}/",
    "http://127.0.0.1:{port}/",
    "https://[::1]/",
    "https://[::ffff:169.254.169.254]/",
    "https://[::ffff:a9fe:a9fe]/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://[2002:a9fe:a9fe::1]/",
    "https://[fd00:ec2::254]/",
    "https://[fe80::1]/",
    "https://169.254.169.254/latest/meta-data/",
    "https://metadata.google.internal/",
    "https://localhost/",
    "https://foo.localhost/",
    "https://0x7f.1/",
    "https://0x7f000001/",
    "https://2130706433/",
    "https://0177.0.0.1/",
    "https://127.1/",
    "https://0.0.0.0/",
    "https://10.0.0.1/",
    "https://172.16.5.4/",
    "https://192.168.1.1/",
    "https://100.64.0.1/",
    "https://224.0.0.1/",
    "https://240.0.0.1/",
    "https://255.255.255.255/",
    "https://a@b.example/",
    "https://user:pass@acme.example/",
    "https://acme.example\\@evil.example/",
    "https://acme .example/",
    "https://acme.example/\r\nX-Evil: 1",
    "https://" + "a" * 64 + ".example/",
    "https://-x.example/",
    "https://acme.example:0/",
    "https://acme.example:99999/",
    "https://acme.example/?next=1",
    "https://acme.example/#frag",
    "http://acme.example/",
    "ftp://acme.example/",
    "file:///etc/passwd",
    "gopher://acme.example:70/_x",
    "javascript:alert(1)",
    "//evil.example/",
    "acme.example",
]


@pytest.mark.parametrize("site", HOSTILE_SITES)
def test_hostile_site_urls_are_refused_on_the_field_and_nothing_is_fetched(
    guarded: TestClient, provider: tuple[str, Starlette], core_app: Starlette, site: str
) -> None:
    url, app = provider
    site = site.replace("{port}", url.rsplit(":", 1)[1])
    answer = mint(guarded, integrationName="guarded", authMethodKey="site")
    page_path, csrf = open_page(guarded, answer["token"])
    response = submit(guarded, page_path, csrf, site=site, api_key="good-key")
    assert response.status_code == 400
    message = field_error(response.text, "site")
    assert message != GENERIC
    assert re.search(r"address|host|https|characters that cannot be part", message), message
    assert app.state.requests == []
    assert received(core_app) == []


@pytest.mark.parametrize("shop", HOSTILE_SHOPS)
def test_hostile_subdomains_are_refused_on_the_field_and_nothing_is_fetched(
    guarded: TestClient, provider: tuple[str, Starlette], core_app: Starlette, shop: str
) -> None:
    answer = mint(guarded, integrationName="guarded", authMethodKey="shop")
    page_path, csrf = open_page(guarded, answer["token"])
    response = submit(guarded, page_path, csrf, shop=shop, token="t")
    assert response.status_code == 400
    assert field_error(response.text, "shop").startswith(
        ("Enter only the name before the dot", "This contains characters that cannot be part"))
    assert provider[1].state.requests == []
    assert received(core_app) == []


@pytest.mark.parametrize("host", [
    "localhost", "127.0.0.1", "10.1.2.3", "[::1]", "169.254.169.254", "smtp.internal",
    "0x7f.1", "2130706433", "smtp.example.com:25", "smtp://x.example", "a@b.example",
    "kubernetes.default.svc", "postgres.db.svc", "db.service.consul", "pg.cluster.local",
    "smtp", "[fec0::1]", "192.0.0.8",
])
def test_hostile_hostnames_are_refused(guarded: TestClient, core_app: Starlette,
                                       host: str) -> None:
    answer = mint(guarded, integrationName="guarded", authMethodKey="shop")
    page_path, csrf = open_page(guarded, answer["token"])
    response = submit(guarded, page_path, csrf, shop="acme", host=host, token="t")
    assert response.status_code == 400
    message = field_error(response.text, "host")
    assert message in {
        "Enter a host name such as mail.example.com, without http:// or a port.",
        "This host is on a private or local network, which cannot be used here.",
    }
    assert received(core_app) == []


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("10.0.0.1", False), ("172.31.255.255", False),
    ("192.168.0.1", False), ("100.64.0.1", False), ("100.127.255.254", False),
    ("169.254.169.254", False), ("0.0.0.0", False),  # noqa: S104 ("224.0.0.251", False),
    ("239.255.255.250", False), ("240.0.0.1", False), ("255.255.255.255", False),
    ("192.0.0.170", False), ("198.18.0.1", False),
    ("::1", False), ("::", False), ("fe80::1", False), ("fc00::1", False),
    ("fd00:ec2::254", False), ("ff02::1", False), ("::ffff:127.0.0.1", False),
    ("::ffff:169.254.169.254", False), ("::ffff:8.8.8.8", True),
    ("64:ff9b::10.0.0.1", False), ("2002:7f00:1::", False), ("2001:db8::1", False),
    # issue 8, finding 9: special-purpose ranges the interpreter's tables call global
    ("192.0.0.8", False), ("192.0.0.9", False), ("fec0::1", False), ("fec0:1:2::3", False),
    ("3fff::1", False), ("3fff:fff:ffff::1", False), ("5f00::1", False),
    ("64:ff9b:1::808:808", False), ("100::1", False), ("2001::1", False),
    ("64:ff9b::808:808", True), ("2a00:1450:4001:80b::200e", True),
])
def test_public_address_table(address: str, public: bool) -> None:
    assert ssrf.is_public_address(ipaddress.ip_address(address)) is public


async def test_resolution_refuses_names_that_point_inside() -> None:
    from portal.outbound import OutboundPolicy

    with pytest.raises(ssrf.UnsafeUrl) as caught:
        await OutboundPolicy().resolve("localhost", 443)  # the real resolver, via /etc/hosts
    assert caught.value.reason == "private_address"
    allowed = await OutboundPolicy(allow_http_loopback=True).resolve("localhost", 443)
    assert all(address.is_loopback for address in allowed)

    async def nothing(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(ssrf.UnsafeUrl, match="unresolvable"):
        await OutboundPolicy().resolve("nowhere.example", 443, lookup=nothing)


def test_templates_percent_encode_values_after_the_host() -> None:
    checked = ssrf.expand_url("https://api.acme.example/users/{user}?q={q}",
                              {"user": "../admin", "q": "a&b=c"})
    assert checked.url == "https://api.acme.example/users/..%2Fadmin?q=a%26b%3Dc"
    region = ssrf.expand_url("https://{region}/v3/domains", {"region": "api.eu.mailgun.net"})
    assert region.host == "api.eu.mailgun.net"
    with pytest.raises(ssrf.UnsafeUrl) as caught:
        ssrf.expand_url("https://{shop}.myshopify.com/x", {"shop": "evil.com#"})
    assert caught.value.field == "shop"
    with pytest.raises(ssrf.UnsafeUrl) as caught:
        ssrf.expand_url("{site}/v1/me", {"site": "https://10.0.0.1"})
    assert (caught.value.field, caught.value.reason) == ("site", "private_address")


# -- issue 8, finding 9: host names the core API will connect to ---------------------------
@pytest.fixture
def mail_form(make_client: Any, tmp_path: Path) -> tuple[TestClient, Any]:
    entry = {
        "name": "mailer", "displayName": "Mailer", "category": "Testing",
        "description": "An SMTP server the user names.", "website": "https://mailer.example",
        "authOptions": [{
            "key": "smtp", "type": "CUSTOM_AUTH", "displayName": "SMTP server",
            "helpUrl": "https://mailer.example/smtp",
            "props": {
                "host": {"type": "SHORT_TEXT", "displayName": "SMTP host", "required": True,
                         "format": "hostname"},
                "password": {"type": "SECRET_TEXT", "displayName": "Password",
                             "required": True},
            },
        }],
    }
    path = tmp_path / "mailer.json"
    path.write_text(json.dumps({"integrations": [entry]}))
    names = Names({"127.0.0.1.nip.io": ["127.0.0.1"],
                   "10.0.0.5.sslip.io": ["10.0.0.5"],
                   "rebind.example.com": ["93.184.215.14", "10.0.0.1"],
                   "mapped.example.com": ["::ffff:169.254.169.254"],
                   "smtp.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]})
    client: TestClient = make_client(catalog_paths=(str(path),), outbound_lookup=names)
    return client, names


PRIVATE_HOST = "This host is on a private or local network, which cannot be used here."


@pytest.mark.parametrize(("host", "message"), [
    ("127.0.0.1.nip.io", PRIVATE_HOST),
    ("10.0.0.5.sslip.io", PRIVATE_HOST),
    ("rebind.example.com", PRIVATE_HOST),
    ("mapped.example.com", PRIVATE_HOST),
    ("nowhere.example.com", "This host could not be found from here. Check the spelling."),
    ("kubernetes.default.svc", PRIVATE_HOST),
    ("postgres.db.svc.cluster.local", PRIVATE_HOST),
    ("redis.service.consul", PRIVATE_HOST),
    ("smtp", "Enter a host name such as mail.example.com, without http:// or a port."),
])
def test_a_host_name_field_that_points_inside_is_refused_before_delivery(
    mail_form: tuple[TestClient, Any], core_app: Starlette, host: str, message: str
) -> None:
    client, names = mail_form
    answer = mint(client, integrationName="mailer", authMethodKey="smtp")
    page_path, csrf = open_page(client, answer["token"])
    response = submit(client, page_path, csrf, host=host, password="smtp-pass-1")
    assert response.status_code == 400
    assert field_error(response.text, "host") == message
    assert "smtp-pass-1" not in response.text
    assert received(core_app) == []
    if "." in host and host.endswith((".svc", ".local", ".consul")):
        assert names.calls == []  # refused by its name alone, before any lookup
    # The user corrects the host on the same page and the connection goes through.
    fixed = submit(client, page_path, csrf, host="smtp.example.com", password="smtp-pass-1")
    assert "Connected" in fixed.text
    assert received(core_app)[0]["body"]["props"]["host"] == "smtp.example.com"
