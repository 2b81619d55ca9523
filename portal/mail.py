"""Sending email over SMTP (PORTAL_SMTP_URL): the portal's invites.

Why the standard library's `smtplib`, run in a worker thread, rather than aiosmtplib:
an invite is rare (rate-limited per end user) and one message long, so a thread for the
few seconds of a send costs nothing, while `smtplib` is maintained with Python itself,
adds no dependency to the production image, and does STARTTLS, implicit TLS and AUTH as
every relay expects. Each send is bounded by a socket timeout, so a relay that hangs
holds its thread no longer than that.

`PORTAL_SMTP_URL`:
- `smtp://[user:password@]host[:port]` (port 25 by default): STARTTLS whenever the
  server offers it; without it the message goes in the clear, and a password is then
  only ever sent to a loopback relay (never over a network unencrypted);
- `smtps://[user:password@]host[:port]` (port 465 by default): TLS from the first byte.
Certificates are checked against the system's trust store (a test may pass its own
`ssl_context`). User and password are percent-decoded.

Nothing here logs a message's body (an invite's holds a live link) or the password: a
failure is logged and raised as its kind and the server's reply code only.
"""

from __future__ import annotations

import ipaddress
import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from starlette.concurrency import run_in_threadpool

logger = logging.getLogger("portal.mail")

DEFAULT_TIMEOUT = 10.0


class MailFailed(Exception):
    """The relay did not take the message (`reason`: safe to log and show: a kind and a
    reply code, never a credential)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to send, read from PORTAL_SMTP_URL (see the module's docstring)."""

    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ValueError("PORTAL_SMTP_URL must be smtp://… or smtps://… with a host")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            implicit_tls=implicit,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    def __str__(self) -> str:  # for logs: never the user name or password
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"


class Mailer:
    """Sends one message per `send`, on a fresh connection (invites are too rare to keep
    one open)."""

    def __init__(self, target: SmtpTarget, *, sender: str, timeout: float = DEFAULT_TIMEOUT,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.target = target
        self.sender = sender
        self._timeout = timeout
        self._ssl = ssl_context or ssl.create_default_context()

    async def send(self, message: EmailMessage) -> None:
        """Send `message` (its From is set to the sender when missing); MailFailed if the
        relay cannot be reached, refuses a step, or the send takes too long."""
        if "From" not in message:
            message["From"] = self.sender
        await run_in_threadpool(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        target = self.target
        try:
            if target.implicit_tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    target.host, target.port, timeout=self._timeout, context=self._ssl)
            else:
                client = smtplib.SMTP(target.host, target.port, timeout=self._timeout)
            with client:
                client.ehlo()
                encrypted = target.implicit_tls
                if not encrypted and client.has_extn("starttls"):
                    client.starttls(context=self._ssl)
                    client.ehlo()
                    encrypted = True
                if target.username is not None:
                    if not encrypted and not _is_loopback(target.host):
                        raise MailFailed("refused to send the SMTP password unencrypted "
                                         "(the server offers no STARTTLS)")
                    client.login(target.username, target.password or "")
                client.send_message(message)
        except MailFailed as exc:
            logger.error("mail to %s not sent: %s", target, exc.reason)
            raise
        except smtplib.SMTPResponseException as exc:
            # The reply text may echo what was sent (a user name): only its code is kept.
            reason = f"{type(exc).__name__} {exc.smtp_code}"
            logger.error("mail to %s not sent: %s", target, reason)
            raise MailFailed(reason) from None
        except (smtplib.SMTPException, OSError) as exc:
            reason = type(exc).__name__
            logger.error("mail to %s not sent: %s", target, reason)
            raise MailFailed(reason) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
