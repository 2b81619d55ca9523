"""Invites: the portal (its own process) sends an end user's link through a real SMTP
server (aiosmtpd, in a thread of this test, on a socket bound here), and the test reads
the message as it arrived: its parts, its headers, and a link that opens the portal.
Without SMTP an invite is 501; past PORTAL_INVITE_LIMIT it is 429 with Retry-After; a
relay that cannot be reached is 503; and no token or SMTP password reaches the log."""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from weavz_sdk import WeavzClient
from weavz_sdk.errors import WeavzError

from portal.mail import Mailer, MailFailed, SmtpTarget
from tests.live_servers import LivePortal, ServerProcess, bound_socket, wait_until
from tests.test_end_user_api import (
    API_KEY,
    core,  # noqa: F401 -- the module's core API process, a fixture
    link_state,
    new_end_user,
    opens,
    start_portal,
)

SMTP_USER = "portal-mailer"
SMTP_PASSWORD = "smtp-password-0123456789secret"
SENDER = "Acme Connect <connect@acme.example>"
BRAND = "Acme"
LIMIT = 3
# The test's relay takes AUTH in the clear, which the portal allows on loopback only.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


@dataclass
class Mailbox:
    """What the SMTP server received, and who logged in."""

    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append((envelope, message))
        return "250 Message accepted for delivery"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                     mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        with self.lock:
            self.logins.append((login, password))
        return AuthResult(success=(login, password) == (SMTP_USER, SMTP_PASSWORD))

    def received(self, count: int) -> list[tuple[Envelope, EmailMessage]]:
        wait_until(lambda: len(self.messages) >= count, timeout=10,
                   what=f"{count} message(s) at the SMTP server")
        with self.lock:
            return list(self.messages)


class SocketController(Controller):
    """aiosmtpd's threaded controller, serving on a socket bound by the test."""

    def __init__(self, handler: Any, sock: socket.socket, **smtp: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **smtp)
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock,
                                       ssl=self.ssl_context)


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, str]]:
    """A real SMTP server on loopback that takes AUTH (in the clear: loopback only) and
    records every message; yields it and its PORTAL_SMTP_URL."""
    box = Mailbox()
    sock = bound_socket()
    sock.listen(16)
    controller = SocketController(box, sock, authenticator=box.authenticate,
                                  auth_require_tls=False, auth_required=True)
    controller.start()
    try:
        host, port = sock.getsockname()[:2]
        yield box, f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@{host}:{port}"
    finally:
        controller.stop()
        sock.close()


@pytest.fixture(scope="module")
def portal(redis_url: str, core: ServerProcess, mailbox: tuple[Mailbox, str],  # noqa: F811
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    logs = tmp_path_factory.mktemp("invites")
    with start_portal(redis_url, core.url, logs / "portal.log", PORTAL_SMTP_URL=mailbox[1],
                      PORTAL_SMTP_FROM=SENDER, PORTAL_BRAND_NAME=BRAND,
                      PORTAL_INVITE_LIMIT=str(LIMIT)) as live:
        yield live


@pytest.fixture
def sdk(portal: LivePortal) -> Iterator[WeavzClient]:
    with WeavzClient(api_key=API_KEY, base_url=portal.url, timeout=10,
                     max_retries=0) as client:
        yield client


def link_in(text: str, portal: LivePortal) -> str:
    found = re.findall(re.escape(portal.url) + r"/connect/portal\?token=eut_[A-Za-z0-9_.-]+",
                       text)
    assert found, text
    assert len(set(found)) == 1
    url: str = found[0]
    return url


def test_an_invite_is_a_two_part_email_with_a_working_link(
        sdk: WeavzClient, portal: LivePortal, core: ServerProcess,  # noqa: F811
        mailbox: tuple[Mailbox, str], redis_url: str) -> None:
    box, _ = mailbox
    already = len(box.messages)
    end_user = new_end_user(core.url, displayName="Ada <b>Lovelace</b>")
    answer = sdk.end_users.invite(end_user["id"], email="ada@example.com",
                                  integration_name="openai", expires_in=86400)

    invite = answer["invite"]
    assert set(invite) == {"id", "email", "expiresAt"}
    assert invite["email"] == "ada@example.com"
    envelope, message = box.received(already + 1)[-1]
    assert envelope.mail_from == "connect@acme.example"
    assert envelope.rcpt_tos == ["ada@example.com"]
    assert (SMTP_USER, SMTP_PASSWORD) in box.logins
    assert message["From"] == SENDER
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Acme invites you to connect your accounts"

    text_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    url = link_in(text, portal)
    assert link_in(html, portal) == url
    assert "Ada <b>Lovelace</b>" in text and "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in html
    assert "OpenAI" in text
    expiry = invite["expiresAt"].replace("T", " ").replace("Z", " UTC")
    assert expiry in text and expiry in html

    token = url.split("token=", 1)[1]
    assert link_state(redis_url, portal.redis_prefix, token) == "valid"
    assert opens(portal, url) == 303


def test_past_the_limit_an_invite_is_rate_limited(
        portal: LivePortal, core: ServerProcess,  # noqa: F811
        mailbox: tuple[Mailbox, str]) -> None:
    box, _ = mailbox
    end_user, other = new_end_user(core.url), new_end_user(core.url)
    path = f"/api/v1/end-users/{end_user['id']}/invite"
    with portal.client(headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        for _ in range(LIMIT):
            assert client.post(path, json={"email": "bob@example.com"}).status_code == 200
        already = len(box.messages)
        refused = client.post(path, json={"email": "bob@example.com"})
        assert refused.status_code == 429
        assert refused.json()["code"] == "RATE_LIMITED"
        assert 3000 < int(refused.headers["retry-after"]) <= 3600
        # Another end user has a limit of their own.
        assert client.post(f"/api/v1/end-users/{other['id']}/invite",
                           json={"email": "eve@example.com"}).status_code == 200
    box.received(already + 1)
    assert all(message["To"] != "bob@example.com" for _, message in box.messages[already:])


@pytest.mark.parametrize(("body", "fields"), [
    ({}, {"email": "Required."}),
    ({"email": "not an address"}, {"email": "Must be an email address."}),
    ({"email": "a@example.com\r\nBcc: x@evil.example"}, {"email": "Must be an email address."}),
    ({"email": "a@example.com", "expiresIn": 60},
     {"expiresIn": "Must be between 3600 and 2592000 seconds."}),
])
def test_a_bad_invite_sends_nothing(
        sdk: WeavzClient, core: ServerProcess, mailbox: tuple[Mailbox, str],  # noqa: F811
        body: dict[str, Any], fields: dict[str, str]) -> None:
    box, _ = mailbox
    end_user = new_end_user(core.url)
    already = len(box.messages)
    with pytest.raises(WeavzError) as caught:
        sdk.request("POST", f"/api/v1/end-users/{end_user['id']}/invite", json=body)
    assert (caught.value.status, caught.value.code) == (400, "VALIDATION_ERROR")
    assert caught.value.details == {"fields": fields}
    with pytest.raises(WeavzError) as caught:
        sdk.end_users.invite("eu_nobody", email="a@example.com")
    assert (caught.value.status, caught.value.code) == (404, "END_USER_NOT_FOUND")
    assert len(box.messages) == already


def test_without_smtp_an_invite_is_not_configured(
        redis_url: str, core: ServerProcess, tmp_path: Path) -> None:  # noqa: F811
    end_user = new_end_user(core.url)
    with start_portal(redis_url, core.url, tmp_path / "portal.log") as live, \
            WeavzClient(api_key=API_KEY, base_url=live.url, timeout=10,
                        max_retries=0) as client:
        with pytest.raises(WeavzError) as caught:
            client.end_users.invite(end_user["id"], email="ada@example.com")
        assert (caught.value.status, caught.value.code) == (501, "NOT_CONFIGURED")


def test_a_relay_that_cannot_be_reached_is_service_unavailable(
        redis_url: str, core: ServerProcess, tmp_path: Path) -> None:  # noqa: F811
    end_user = new_end_user(core.url)
    with bound_socket() as closed:  # bound, never listening: connections are refused
        host, port = closed.getsockname()[:2]
        with start_portal(redis_url, core.url, tmp_path / "portal.log",
                          PORTAL_SMTP_URL=f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@{host}:{port}"
                          ) as live, \
                WeavzClient(api_key=API_KEY, base_url=live.url, timeout=10,
                            max_retries=0) as client:
            start = len(live.log_lines())
            with pytest.raises(WeavzError) as caught:
                client.end_users.invite(end_user["id"], email="ada@example.com")
            assert (caught.value.status, caught.value.code) == (503, "SERVICE_UNAVAILABLE")
            lines = live.lines_since(start, until="portal.access POST /api/v1/end-users/")
            assert any("mail to smtp://" in line for line in lines)
            assert not any(SMTP_PASSWORD in line or "eut_" in line for line in live.log_lines())


def test_no_link_token_or_smtp_password_reaches_the_log(
        sdk: WeavzClient, portal: LivePortal, core: ServerProcess,  # noqa: F811
        mailbox: tuple[Mailbox, str]) -> None:
    box, _ = mailbox
    end_user = new_end_user(core.url)
    already = len(box.messages)
    start = len(portal.log_lines())
    sdk.end_users.invite(end_user["id"], email="log@example.com")
    link = sdk.end_users.create_connect_token(end_user["id"])
    sdk.request("POST", f"/api/v1/end-users/{end_user['id']}/connect-tokens/revoke",
                json={"token": link["token"]})
    with httpx.Client() as browser:
        browser.get(link["connectUrl"])
    [(_, message)] = box.received(already + 1)[already:]
    body = message.get_body(("plain",))
    assert body is not None
    sent_token = link_in(body.get_content(), portal).split("token=", 1)[1]

    lines = portal.lines_since(start, until="portal.access GET /connect/portal ")
    assert any("invite inv_" in line for line in lines)  # the invite is logged ...
    log = "\n".join(portal.log_lines())
    for secret in (sent_token, link["token"], SMTP_PASSWORD, "eut_"):
        assert secret not in log  # ... but never its link, nor the relay's password


async def test_the_mailbox_sees_what_a_client_sends() -> None:
    """The test's SMTP server is a real one: a message sent with the standard library
    arrives as sent (so the tests above judge the portal, not the server)."""
    import smtplib

    box = Mailbox()
    with bound_socket() as sock:
        sock.listen(4)
        controller = SocketController(box, sock)
        controller.start()
        try:
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "a@x.example", "b@y.example", "hi"
            message.set_content("hello")
            host, port = sock.getsockname()[:2]

            def send() -> None:
                with smtplib.SMTP(host, port, timeout=5) as client:
                    client.send_message(message)

            await asyncio.to_thread(send)
            [(envelope, got)] = box.received(1)
            assert envelope.rcpt_tos == ["b@y.example"] and got["Subject"] == "hi"
        finally:
            controller.stop()


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for 127.0.0.1: the server's context, and a client's that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


@pytest.mark.parametrize("scheme", ["smtp", "smtps"])
async def test_the_mailer_encrypts_before_it_logs_in(scheme: str, tmp_path: Path) -> None:
    """smtp:// upgrades with STARTTLS (the server here requires it), smtps:// is TLS from
    the first byte; either way the password goes over TLS, checked against the
    certificate."""
    server_tls, client_tls = _self_signed(tmp_path)
    box = Mailbox()
    with bound_socket() as sock:
        sock.listen(4)
        if scheme == "smtp":
            controller = SocketController(box, sock, tls_context=server_tls,
                                          require_starttls=True, auth_require_tls=True,
                                          authenticator=box.authenticate)
        else:
            # aiosmtpd counts only STARTTLS as TLS for AUTH; this socket is TLS throughout.
            controller = SocketController(box, sock, ssl_context=server_tls,
                                          auth_require_tls=False,
                                          authenticator=box.authenticate)
        controller.start()
        try:
            host, port = sock.getsockname()[:2]
            target = SmtpTarget.from_url(f"{scheme}://{SMTP_USER}:{SMTP_PASSWORD}@{host}:{port}")
            mailer = Mailer(target, sender=SENDER, ssl_context=client_tls, timeout=5)
            message = EmailMessage()
            message["To"], message["Subject"] = "ada@example.com", "over TLS"
            message.set_content("hello")
            await mailer.send(message)
            [(_, got)] = box.received(1)
            assert got["Subject"] == "over TLS" and got["From"] == SENDER
            assert box.logins == [(SMTP_USER, SMTP_PASSWORD)]
            # A client that does not trust the certificate sends nothing.
            untrusting = Mailer(target, sender=SENDER, timeout=5)
            with pytest.raises(MailFailed):
                await untrusting.send(message)
            assert len(box.messages) == 1
        finally:
            controller.stop()
