"""The one guarded outbound path (portal/outbound.py), against real sockets on loopback:
which addresses it may reach, that it connects only to the address it checked (with
the right SNI and Host), that a refused address never even gets a TCP connection,
that redirects and proxies from the environment are not followed, and its timeouts."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import re
import socket
import ssl
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from portal import ssrf
from portal.outbound import OutboundPolicy, OutboundRefused, guarded_client
from tests.fake_network import Listener, Names
from tests.live_servers import server_thread, wait_until

T = TypeVar("T")
ONLY_127_0_0_1 = OutboundPolicy(allow_networks=(ipaddress.ip_network("127.0.0.1/32"),))


# -- helpers ------------------------------------------------------------------------------
@pytest.fixture
def listener() -> Iterator[Listener]:
    opened = Listener()
    yield opened
    opened.close()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


async def get(policy: OutboundPolicy, url: str, *, lookup: ssrf.Lookup | None = None,
              timeout: float = 3.0, **kwargs: object) -> httpx.Response:
    client = guarded_client(policy=policy, timeout=timeout, user_agent="outbound-test",
                            lookup=lookup or Names({}), **kwargs)
    async with client:
        return await client.get(url)


def host_header(head: bytes) -> str:
    for line in head.decode("latin-1").split("\r\n"):
        if line.lower().startswith("host:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no Host header")


# -- the address policy --------------------------------------------------------------------
REFUSED = [
    "127.0.0.1", "127.8.9.10", "0.0.0.0", "0.1.2.3", "10.1.2.3", "172.16.0.1",  # noqa: S104
    "192.168.1.1", "100.64.0.1", "169.254.169.254", "192.0.0.8", "192.0.0.170",
    "192.0.2.1", "198.18.0.1", "198.19.255.254", "198.51.100.7", "203.0.113.9",
    "192.88.99.1", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::", "::1", "::127.0.0.1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe", "64:ff9b::10.0.0.1", "64:ff9b:1::8.8.8.8", "100::1",
    "2001::1", "2001:2::1", "2001:db8::1", "2002:0808:0808::1", "2002:7f00:1::",
    "3fff::1", "5f00::1", "fc00::1", "fd00:ec2::254", "fe80::1", "fec0::1", "ff02::1",
    "4000::1",
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "151.101.1.69", "2606:4700:4700::1111",
           "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_special_purpose_addresses_are_refused(address: str) -> None:
    assert OutboundPolicy().address_allowed(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", ALLOWED)
def test_public_unicast_addresses_are_allowed(address: str) -> None:
    assert OutboundPolicy().address_allowed(ipaddress.ip_address(address)) is True


def test_the_allow_list_opens_exactly_the_networks_and_hosts_it_names() -> None:
    policy = OutboundPolicy.from_setting(" 10.1.2.3, 10.20.0.0/16,fd12:3456::/32 ,"
                                         "SSO.Corp.Internal. ")
    allowed = policy.address_allowed
    assert allowed(ipaddress.ip_address("10.1.2.3"))
    assert allowed(ipaddress.ip_address("::ffff:10.1.2.3"))  # the same address, mapped
    assert allowed(ipaddress.ip_address("10.20.255.1"))
    assert allowed(ipaddress.ip_address("fd12:3456::1"))
    assert not allowed(ipaddress.ip_address("10.1.2.4"))
    assert not allowed(ipaddress.ip_address("10.21.0.1"))
    assert not allowed(ipaddress.ip_address("127.0.0.1"))
    assert policy.trusts("sso.corp.internal") and policy.trusts("SSO.CORP.INTERNAL")
    assert not policy.trusts("corp.internal")
    assert OutboundPolicy.from_setting("") == OutboundPolicy()
    trusting = policy.trusting("Core.Example", "10.9.9.9")
    assert trusting.trusts("core.example") and trusting.trusts("10.9.9.9")
    assert not policy.trusts("core.example")  # a copy; the original is unchanged


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "0.0.0.0/0", "::/0", "https://sso.example",
                                   "sso.example:8443", "under_score.example", "999"])
def test_a_bad_allow_list_entry_is_named(entry: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(entry))):
        OutboundPolicy.from_setting(f"10.1.2.3, {entry}")


def test_every_answer_of_a_name_must_be_allowed() -> None:
    lookup = Names({"mixed.example.com": ["8.8.8.8", "10.0.0.1"],
                    "public.example.com": ["8.8.8.8", "8.8.8.8", "2606:4700:4700::1111"],
                    "empty.example.com": []})
    policy = OutboundPolicy()
    with pytest.raises(ssrf.UnsafeUrl, match="private_address"):
        run(policy.resolve("mixed.example.com", 443, lookup=lookup))
    assert run(policy.resolve("public.example.com", 443, lookup=lookup)) == [
        ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("2606:4700:4700::1111")]
    for host in ("empty.example.com", "missing.example.com"):
        with pytest.raises(ssrf.UnsafeUrl, match="unresolvable"):
            run(policy.resolve(host, 443, lookup=lookup))
    # A trusted host is the operator's own: whatever it resolves to is used.
    trusted = policy.trusting("mixed.example.com")
    assert len(run(trusted.resolve("mixed.example.com", 443, lookup=lookup))) == 2


def test_a_slow_name_service_gives_up_in_time() -> None:
    async def hangs(host: str, port: int) -> list[str]:
        await asyncio.sleep(30)
        return ["8.8.8.8"]

    started = time.monotonic()
    with pytest.raises(ssrf.UnsafeUrl, match="unresolvable"):
        run(OutboundPolicy().resolve("slow.example.com", 443, lookup=hangs, timeout=0.3))
    assert time.monotonic() - started < 2


# -- URLs refused before anything is resolved ------------------------------------------------
@pytest.mark.parametrize(("url", "reason"), [
    ("http://api.example.com/", "scheme"),
    ("ftp://api.example.com/", "scheme"),
    ("https://user:pass@api.example.com/", "userinfo"),
    ("https://127.0.0.1/", "private_address"),
    ("https://[::ffff:169.254.169.254]/", "private_address"),
    ("https://10.0.0.1/", "private_address"),
    ("https://localhost/", "host"),
    ("https://db.service.consul/", "private_address"),
    ("https://kubernetes.default.svc/", "private_address"),
    ("https://metadata.google.internal/", "private_address"),
    ("https://intranet/", "host"),
    ("https://0x7f.1/", "host"),
    ("https://2130706433/", "host"),
])
def test_urls_are_refused_before_any_lookup(url: str, reason: str) -> None:
    lookup = Names({})
    with pytest.raises(OutboundRefused) as caught:
        run(get(OutboundPolicy(), url, lookup=lookup))
    assert caught.value.reason == reason
    assert isinstance(caught.value, httpx.TransportError)
    assert caught.value.request.url == httpx.URL(url)
    assert lookup.calls == []


def test_plain_http_is_for_loopback_in_development_and_for_trusted_hosts_only(
    listener: Listener,
) -> None:
    lookup = Names({"core.internal": ["127.0.0.1"]})
    direct = f"http://127.0.0.1:{listener.port}/"
    with pytest.raises(OutboundRefused, match="scheme"):
        run(get(OutboundPolicy(), direct))
    development = OutboundPolicy(allow_http_loopback=True)
    assert run(get(development, direct)).text == "ok"
    trusted = OutboundPolicy().trusting("core.internal")
    answer = run(get(trusted, f"http://core.internal:{listener.port}/", lookup=lookup))
    assert answer.text == "ok"
    assert host_header(listener.connections[-1]) == f"core.internal:{listener.port}"


# -- real sockets: the connection goes to the checked address only ----------------------------
def test_a_refused_address_never_gets_a_connection(listener: Listener) -> None:
    lookup = Names({"victim.example.com": ["127.0.0.1"],
                    "split.example.com": ["8.8.8.8", "127.0.0.1"]})
    port = listener.port
    for url in (f"https://victim.example.com:{port}/oauth/token",
                f"https://split.example.com:{port}/oauth/token",
                f"https://127.0.0.1:{port}/", f"https://[::ffff:127.0.0.1]:{port}/"):
        with pytest.raises(OutboundRefused) as caught:
            run(get(OutboundPolicy(), url, lookup=lookup))
        assert caught.value.reason == "private_address"
    # Control: once the address is allowed the same request does connect (TLS starts with
    # a ClientHello, record type 0x16). It is the first connection the listener ever saw.
    with pytest.raises(httpx.ConnectError):
        run(get(ONLY_127_0_0_1, f"https://victim.example.com:{port}/", lookup=lookup))
    wait_until(lambda: len(listener.connections) >= 1, timeout=5, what="the control connection")
    assert len(listener.connections) == 1
    assert listener.connections[0][:1] == b"\x16"


def test_the_connection_goes_to_the_checked_answer_never_a_second_one() -> None:
    """DNS rebinding: the name first resolves to an allowed address, then to a refused one.
    The request uses the first answer only, asking the name service once."""
    allowed = Listener(host="127.0.0.1")
    rebound = Listener(host="127.0.0.2", port=allowed.port)
    try:
        answers = iter([["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"]])
        calls: list[str] = []

        async def rebinding(host: str, port: int) -> list[str]:
            calls.append(host)
            return next(answers)

        url = f"https://rebind.example.com:{allowed.port}/"
        with pytest.raises(httpx.ConnectError):  # the listener does not speak TLS
            run(get(ONLY_127_0_0_1, url, lookup=rebinding))
        assert calls == ["rebind.example.com"]
        wait_until(lambda: len(allowed.connections) == 1, timeout=5, what="the connection")
        with pytest.raises(OutboundRefused, match="private_address"):
            run(get(ONLY_127_0_0_1, url, lookup=rebinding))
        assert rebound.connections == []
    finally:
        allowed.close()
        rebound.close()


@dataclass
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


def tls_for(name: str, tmp_path: Path) -> Tls:
    """A private CA and a certificate for `name` signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "outbound test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = tmp_path / "leaf.pem"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(chain)
    client = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return Tls(server=server, client=client)


def test_tls_goes_to_the_checked_address_with_the_real_name_for_sni_host_and_certificate(
    tmp_path: Path,
) -> None:
    tls = tls_for("idp.example.com", tmp_path)
    server = Listener(tls=tls.server)
    try:
        lookup = Names({"idp.example.com": ["127.0.0.1"], "other.example.com": ["127.0.0.1"]})
        answer = run(get(ONLY_127_0_0_1, f"https://idp.example.com:{server.port}/token",
                         lookup=lookup, verify=tls.client))
        assert answer.text == "ok"
        assert server.server_names == ["idp.example.com"]
        assert host_header(server.connections[0]) == f"idp.example.com:{server.port}"
        assert server.connections[0].startswith(b"GET /token HTTP/1.1\r\n")
        # The certificate is still checked against the name in the URL.
        with pytest.raises(httpx.ConnectError, match="certificate"):
            run(get(ONLY_127_0_0_1, f"https://other.example.com:{server.port}/",
                    lookup=lookup, verify=tls.client))
    finally:
        server.close()


# -- redirects, proxies, timeouts ---------------------------------------------------------------
def redirecting_app() -> Starlette:
    async def moved(request: Request) -> Response:
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def landed(request: Request) -> Response:
        request.app.state.landed += 1
        return JSONResponse({"landed": True})

    app = Starlette(routes=[Route("/moved", moved), Route("/landed", landed)])
    app.state.landed = 0
    return app


def test_redirects_are_not_followed_and_each_hop_would_be_checked() -> None:
    app = redirecting_app()
    lookup = Names({"metadata.example.com": ["169.254.169.254"]})
    development = OutboundPolicy(allow_http_loopback=True)
    with server_thread(app) as url:
        answer = run(get(development, f"{url}/moved?to={url}/landed"))
        assert answer.status_code == 302
        assert app.state.landed == 0

        async def follow(target: str) -> httpx.Response:
            client = guarded_client(policy=development, timeout=3, user_agent="t",
                                    lookup=lookup)
            async with client:
                return await client.get(f"{url}/moved", params={"to": target},
                                        follow_redirects=True)

        # A caller that turns redirects on still gets every hop checked.
        with pytest.raises(OutboundRefused, match="private_address"):
            run(follow("https://metadata.example.com/latest/meta-data/"))
        with pytest.raises(OutboundRefused, match="scheme"):
            run(follow("http://internal.example.com/"))
        assert run(follow(f"{url}/landed")).json() == {"landed": True}
        assert app.state.landed == 1


def test_proxies_from_the_environment_are_ignored(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = Listener()
    try:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                     "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        development = OutboundPolicy(allow_http_loopback=True)
        answer = run(get(development, f"http://127.0.0.1:{listener.port}/direct"))
        assert answer.text == "ok"
        assert listener.connections[0].startswith(b"GET /direct ")
        # Control: our own connection to the proxy is the first it ever saw.
        socket.create_connection(("127.0.0.1", proxy.port)).close()
        wait_until(lambda: len(proxy.connections) >= 1, timeout=5, what="the control")
        assert proxy.connections == [b""]
    finally:
        proxy.close()


def test_a_silent_server_times_out_and_connecting_never_waits_long() -> None:
    silent = Listener(silent=True)
    try:
        development = OutboundPolicy(allow_http_loopback=True)
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            run(get(development, f"http://127.0.0.1:{silent.port}/", timeout=0.5))
        assert time.monotonic() - started < 3
    finally:
        silent.close()
    client = guarded_client(policy=OutboundPolicy(), timeout=60, user_agent="t")
    assert client.timeout.connect == 3.0 and client.timeout.read == 60
    assert client.follow_redirects is False

    async def hangs(host: str, port: int) -> list[str]:
        await asyncio.sleep(30)
        return ["8.8.8.8"]

    started = time.monotonic()
    with pytest.raises(httpx.ConnectTimeout):
        run(get(OutboundPolicy(), "https://slow-dns.example.com/", lookup=hangs, timeout=0.5))
    assert time.monotonic() - started < 3


def test_a_test_transport_still_gets_every_check_first() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"ok": True})

    lookup = Names({"public.example.com": ["93.184.215.14"], "inside.example.com": ["10.0.0.7"]})
    transport = httpx.MockTransport(handler)
    assert run(get(OutboundPolicy(), "https://public.example.com/x", lookup=lookup,
                   transport=transport)).json() == {"ok": True}
    with pytest.raises(OutboundRefused, match="private_address"):
        run(get(OutboundPolicy(), "https://inside.example.com/x", lookup=lookup,
                transport=httpx.MockTransport(handler)))
    with pytest.raises(httpx.ConnectError):
        run(get(OutboundPolicy(), "https://unknown.example.com/x", lookup=lookup,
                transport=httpx.MockTransport(handler)))
    assert seen == ["https://public.example.com/x"]
    assert lookup.calls == ["public.example.com", "inside.example.com",
                            "unknown.example.com"]


# -- PORTAL_OUTBOUND_ALLOW, from the environment to a request ------------------------------------
def test_the_allow_list_is_read_from_the_environment_and_a_bad_entry_stops_the_start() -> None:
    from portal.settings import Settings, SettingsError

    assert Settings.from_env({}).outbound_allow == ""
    value = "10.1.2.3, 10.20.0.0/16, sso.corp.example"
    assert Settings.from_env({"PORTAL_OUTBOUND_ALLOW": value}).outbound_allow == value
    with pytest.raises(SettingsError, match=r"PORTAL_OUTBOUND_ALLOW: '10\.0\.0\.1/8' is not"):
        Settings.from_env({"PORTAL_OUTBOUND_ALLOW": "10.1.2.3, 10.0.0.1/8"})
    with pytest.raises(SettingsError, match=r"PORTAL_OUTBOUND_ALLOW: '0\.0\.0\.0/0' would allow"):
        Settings.from_env({"PORTAL_OUTBOUND_ALLOW": "0.0.0.0/0"})


def test_the_allow_list_is_the_one_way_to_reach_a_private_address(
    make_client: Any, tmp_path: Path, listener: Listener
) -> None:
    """A provider on the operator's private network (127.0.0.1 stands in for 10.1.2.3):
    refused, without a connection, until PORTAL_OUTBOUND_ALLOW names its network."""
    from tests.conftest import mint, open_page, submit

    entry = {"name": "keycloak", "displayName": "Keycloak", "category": "Testing",
             "description": "An identity provider inside the operator's network.",
             "website": "https://keycloak.example",
             "authOptions": [{"key": "token", "type": "SECRET_TEXT", "displayName": "Token",
                              "helpUrl": "https://keycloak.example/tokens",
                              "verification": {
                                  "url": f"https://sso.corp-example.com:{listener.port}/me",
                                  "headers": {"Authorization": "Bearer {secret_text}"}}}]}
    path = tmp_path / "keycloak.json"
    path.write_text(json.dumps({"integrations": [entry]}))
    names = Names({"sso.corp-example.com": ["127.0.0.1"]})

    def attempt(**overrides: Any) -> str:
        client = make_client(catalog_paths=(str(path),), verify_credentials=True,
                             outbound_lookup=names, **overrides)
        answer = mint(client, integrationName="keycloak", authMethodKey="token")
        page_path, csrf = open_page(client, answer["token"])
        text: str = submit(client, page_path, csrf, secret_text="tok-1").text
        return text

    assert "could not be reached to check your details" in attempt()
    assert names.calls == ["sso.corp-example.com"]
    # Allowed: the check now connects (the listener answers no TLS, so it is still
    # unavailable), and this is the first connection the listener ever saw.
    assert "could not be reached to check your details" in attempt(
        outbound_allow="127.0.0.1/32")
    wait_until(lambda: len(listener.connections) >= 1, timeout=5, what="the connection")
    assert len(listener.connections) == 1 and listener.connections[0][:1] == b"\x16"
