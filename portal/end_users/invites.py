"""Invites: an end user's portal link sent by email, at most PORTAL_INVITE_LIMIT an hour.

The limit is kept by the `limits` library (a moving window: never more than the limit in
any hour), in Redis on the portal's own connection pool, so every portal process counts
the same invites; without Redis, in this process. An invite whose send fails still
counts (a failing relay is not hammered), and its link is revoked: it was never
delivered, so no one should hold it.

The message has a plain-text and an HTML part rendered from templates/email/invite.*;
the link's token appears only in the message, never in a log line.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage

import jinja2
from limits import RateLimitItemPerHour
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from portal import i18n
from portal.end_users.links import EndUserLink
from portal.mail import Mailer, SmtpTarget
from portal.resources import templates_dir
from portal.settings import Settings
from portal.store import StoreUnavailable
from portal.store.client import RedisClient
from portal.store.limits_storage import limits_storage

logger = logging.getLogger("portal.invites")


class InviteLimiter:
    """At most `per_hour` invites per end user in any hour."""

    def __init__(self, per_hour: int, storage: Storage, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._item = RateLimitItemPerHour(per_hour)
        self._limiter = MovingWindowRateLimiter(storage)
        self._clock = clock

    @classmethod
    def open(cls, per_hour: int, *, redis: RedisClient | None, prefix: str) -> InviteLimiter:
        """In Redis on `redis`'s pool (the stores' client, portal/store/stores.py) under
        `prefix`, or in this process without it."""
        return cls(per_hour, limits_storage(redis, key_prefix=f"{prefix}invite-limit"))

    async def take(self, end_user_id: str) -> int | None:
        """Count one invite: None when allowed, else the seconds until one is (the answer's
        Retry-After). StoreUnavailable when Redis does not answer."""
        try:
            if await self._limiter.hit(self._item, end_user_id):
                return None
            stats = await self._limiter.get_window_stats(self._item, end_user_id)
        except StorageError as exc:
            raise StoreUnavailable(type(exc.storage_error).__name__) from None
        return max(1, math.ceil(stats.reset_time - self._clock()))


@dataclass(frozen=True)
class Invite:
    id: str
    email: str
    expires_at: int


class InviteMail:
    """Renders an invite from templates/email/invite.txt and invite.html."""

    def __init__(self, *, brand_name: str) -> None:
        self.brand_name = brand_name
        self._templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(templates_dir() / "email"),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",),
                                                default_for_string=False),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        i18n.install(self._templates)

    def subject(self) -> str:
        """In the language `i18n.activated()` sets (English outside)."""
        return i18n.gettext("%(brand)s invites you to connect your accounts") % {
            "brand": self.brand_name}

    def message(self, *, to: str, display_name: str, link_url: str,
                link: EndUserLink, integration_title: str | None,
                locale: str | None = None) -> EmailMessage:
        with i18n.activated(locale or i18n.DEFAULT_LOCALE):
            return self._message(to=to, display_name=display_name, link_url=link_url,
                                 link=link, integration_title=integration_title)

    def _message(self, *, to: str, display_name: str, link_url: str,
                 link: EndUserLink, integration_title: str | None) -> EmailMessage:
        context = {
            "brand": self.brand_name,
            "name": display_name,
            "url": link_url,
            "expires_at": i18n.format_utc(link.expires_at),
            "integration": integration_title,
        }
        message = EmailMessage()
        message["To"] = Address(addr_spec=to)
        message["Subject"] = self.subject()
        message.set_content(self._templates.get_template("invite.txt").render(context))
        message.add_alternative(self._templates.get_template("invite.html").render(context),
                                subtype="html")
        return message


class Invites:
    """What `POST /api/v1/end-users/{id}/invite` needs besides the link: the mailer (None
    when PORTAL_SMTP_URL is unset: invites answer 501), the limit and the message."""

    def __init__(self, *, mailer: Mailer | None, limiter: InviteLimiter,
                 mail: InviteMail) -> None:
        self.mailer = mailer
        self.limiter = limiter
        self.mail = mail

    @classmethod
    def from_settings(cls, settings: Settings, *, redis: RedisClient | None) -> Invites:
        """PORTAL_SMTP_URL, _FROM, _BRAND_NAME and _INVITE_LIMIT; the limit in Redis on
        `redis` (the stores' client) or, without it, in this process."""
        mailer = None
        if settings.smtp_url:
            mailer = Mailer(SmtpTarget.from_url(settings.smtp_url), sender=settings.smtp_from)
        return cls(mailer=mailer,
                   limiter=InviteLimiter.open(settings.invite_limit, redis=redis,
                                              prefix=settings.redis_prefix),
                   mail=InviteMail(brand_name=settings.brand_name))

    @staticmethod
    def new_id() -> str:
        return "inv_" + secrets.token_urlsafe(12)
