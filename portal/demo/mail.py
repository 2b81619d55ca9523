"""A demo mail catcher: the demo's SMTP server, so an invite can be sent and read.

`connect-portal demo` serves it on a loopback port of its own (an `aiosmtpd` SMTP server
in the demo's event loop) and points PORTAL_SMTP_URL at it; the partner page lists what
arrived at `/mail`. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass(frozen=True)
class CaughtMail:
    sender: str
    recipients: tuple[str, ...]
    subject: str
    text: str


class MailCatcher:
    """Keeps every message it is sent, newest first, at most `keep` of them."""

    def __init__(self, *, keep: int = 50) -> None:
        self.messages: list[CaughtMail] = []
        self._keep = keep
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    async def handle_DATA(self, server: SMTP, session: Session,  # aiosmtpd calls it so
                          envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        part = message.get_body(preferencelist=("plain",))
        text = part.get_content() if part is not None else ""
        self.messages.insert(0, CaughtMail(
            sender=str(envelope.mail_from), recipients=tuple(envelope.rcpt_tos),
            subject=str(message.get("subject", "")), text=str(text)))
        del self.messages[self._keep:]
        return "250 Message accepted for delivery"

    async def start(self, host: str = "127.0.0.1") -> str:
        """Serve on a free loopback port; returns the PORTAL_SMTP_URL that reaches it."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((host, 0))
        self.port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SMTP(self, hostname="demo-mail"),
                                                sock=sock)
        return f"smtp://{host}:{self.port}"

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    def as_json(self) -> list[dict[str, Any]]:
        return [{"from": item.sender, "to": list(item.recipients), "subject": item.subject,
                 "text": item.text} for item in self.messages]
