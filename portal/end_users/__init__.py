"""End users (issue 12): the links that open the connect portal (`links`), invites by
email (`invites`), the portal page (`portal_page`), and here what the backend API does
with them (`EndUserApi`, behind portal/views/end_user_api.py).

    POST   /api/v1/end-users/{id}/connect-token         a link (`eut_…`) and its URL
    POST   /api/v1/end-users/{id}/invite                the link sent by email
    DELETE /api/v1/end-users/{id}/connect-tokens        revoke every link issued so far
    POST   /api/v1/end-users/{id}/connect-tokens/revoke revoke one link ({token})

Minting and inviting ask the core API for the end user (404 END_USER_NOT_FOUND when it
knows none; 503 when it cannot answer) and store nothing: a link is a signed value.
Revoking asks no one but the revocation store, so a partner can always cut links, even
while the core API is down.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.headerregistry import Address
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import AfterValidator, ConfigDict, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from portal.catalog import Catalog
from portal.connect_request import LOCALES, MAX_ID_LENGTH, Locale, OptionalId, field_errors
from portal.core_api import CoreApiClient, DeliveryFailed, EndUser
from portal.end_users.invites import Invite, Invites
from portal.end_users.links import (
    DEFAULT_LINK_TTL,
    MAX_LINK_TTL,
    MIN_LINK_TTL,
    EndUserLink,
    EndUserLinks,
    LinkRefused,
)
from portal.errors import (
    EndUserNotFound,
    IntegrationNotFound,
    NotConfigured,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)
from portal.mail import MailFailed
from portal.store.answers import answered_by_store

logger = logging.getLogger("portal.end_users")

MAX_EMAIL_LENGTH = 254
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"[^@\s<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def _problem(text: str) -> PydanticCustomError:
    return PydanticCustomError("end_user_request", "{reason}", {"reason": text})


def _email(value: str) -> str:
    value = value.strip()
    if not value:
        raise _problem("Required.")
    if len(value) > MAX_EMAIL_LENGTH or _CONTROL.search(value) or not _EMAIL.fullmatch(value):
        raise _problem("Must be an email address.")
    try:
        Address(addr_spec=value)
    except (HeaderParseError, ValueError, IndexError):
        raise _problem("Must be an email address.") from None
    return value


Email = Annotated[str, AfterValidator(_email),
                  WithJsonSchema({"type": "string", "format": "email",
                                  "maxLength": MAX_EMAIL_LENGTH})]
LinkLifetime = Annotated[pydantic.StrictInt, pydantic.Field(ge=MIN_LINK_TTL, le=MAX_LINK_TTL)]


class LinkRequest(pydantic.BaseModel):
    """The body of `POST /api/v1/end-users/{id}/connect-token`."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel)

    integration_name: OptionalId | None = pydantic.Field(
        None, description="Show only this integration (it must be in the catalog).")
    workspace_integration_id: OptionalId | None = None
    expires_in: LinkLifetime | None = pydantic.Field(
        None, description=f"Link lifetime in seconds (default {DEFAULT_LINK_TTL}).")


class InviteRequest(LinkRequest):
    """The body of `POST /api/v1/end-users/{id}/invite`."""

    email: Email
    locale: Locale | None = pydantic.Field(
        None, description="Language of the email: one of " + ", ".join(LOCALES) + " (default "
        "en). Portal extension.")


Request = TypeVar("Request", bound=LinkRequest)


_WRONG_TYPE = {"expiresIn": "Must be a whole number of seconds.",
               "email": "Must be an email address."}
_OUT_OF_RANGE = f"Must be between {MIN_LINK_TTL} and {MAX_LINK_TTL} seconds."


def parse_body(model: type[Request], body: Any) -> Request:
    """The request as `model`, or ValidationFailed naming every bad field."""
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        fields = _field_errors(model, exc.errors(include_url=False))
        raise ValidationFailed(
            "The request has invalid fields: " + ", ".join(sorted(fields)) + ".",
            details={"fields": fields},
        ) from None


def _field_errors(model: type[LinkRequest],
                  errors: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    aliases = {name: info.alias or name for name, info in model.model_fields.items()}
    return field_errors(errors, aliases=aliases, wrong_type=_WRONG_TYPE,
                        out_of_range=_OUT_OF_RANGE)


@dataclass(frozen=True)
class IssuedLink:
    token: str
    url: str
    link: EndUserLink


class EndUserApi:
    """What the end-user API calls do; portal/views/end_user_api.py reads the requests
    and writes the answers. Built once in the app's lifespan."""

    def __init__(self, *, public_url: str, catalog: Catalog, core: CoreApiClient,
                 links: EndUserLinks, invites: Invites) -> None:
        self._public_url = public_url.rstrip("/")
        self._catalog = catalog
        self._core = core
        self.links = links
        self.invites = invites

    async def issue_link(self, end_user_id: str, request: LinkRequest) -> IssuedLink:
        self._check_integration(request)
        end_user = await self._end_user(end_user_id)
        return self._issue(end_user, request)

    async def invite(self, end_user_id: str, request: InviteRequest) -> Invite:
        """Send the end user a link by email: NotConfigured without SMTP, RateLimited
        past the limit, ServiceUnavailable when the relay does not take it."""
        self._check_integration(request)
        mailer = self.invites.mailer
        if mailer is None:
            raise NotConfigured("Invites need an SMTP server: this portal has no "
                                "PORTAL_SMTP_URL.")
        end_user = await self._end_user(end_user_id)
        retry_after = await answered_by_store(self.invites.limiter.take(end_user.id),
                                              "invite limit store")
        if retry_after is not None:
            raise RateLimited("Too many invites for this end user; try again later.",
                              retry_after=retry_after,
                              details={"retryAfter": retry_after})
        issued = self._issue(end_user, request)
        integration = (self._catalog.get(request.integration_name)
                       if request.integration_name else None)
        message = self.invites.mail.message(
            to=request.email, display_name=end_user.display_name, link_url=issued.url,
            link=issued.link,
            integration_title=integration.display_name if integration else None,
            locale=request.locale)
        invite = Invite(id=Invites.new_id(), email=request.email,
                        expires_at=issued.link.expires_at)
        try:
            await mailer.send(message)
        except MailFailed:
            # Never delivered: no one should hold it.
            await self.links.revoke(issued.link)
            raise ServiceUnavailable("The mail server did not take the invite; try again "
                                     "later.") from None
        logger.info("invite %s sent for end user %s (link %s)", invite.id, end_user.id,
                    issued.link.jti)
        return invite

    async def revoke_all(self, end_user_id: str) -> None:
        _check_id(end_user_id)
        await self.links.revoke_all(end_user_id)
        logger.info("portal links of end user %s revoked", end_user_id)

    async def revoke_one(self, end_user_id: str, body: Any) -> None:
        """Revoke the link in `body` ({token}) if it is one of this end user's; a link of
        another end user is EndUserNotFound (404) and nothing changes."""
        _check_id(end_user_id)
        if not isinstance(body, dict):
            raise ValidationFailed("The request body must be a JSON object with a token.")
        unknown = sorted(set(body) - {"token"})
        token = body.get("token")
        problems = dict.fromkeys(unknown, "Unknown field.")
        link = None
        if not isinstance(token, str) or not token:
            problems["token"] = "Required."
        else:
            try:
                link = self.links.read_signed(token)
            except LinkRefused:
                problems["token"] = "Must be a portal link token (eut_…) of this portal."
        if problems or link is None:
            raise ValidationFailed(
                "The request has invalid fields: " + ", ".join(sorted(problems)) + ".",
                details={"fields": problems})
        if link.end_user_id != end_user_id:
            raise EndUserNotFound("This end user has no such portal link.",
                                  details={"endUserId": end_user_id[:MAX_ID_LENGTH]})
        await self.links.revoke(link)
        logger.info("portal link %s of end user %s revoked", link.jti, end_user_id)

    # -- helpers --------------------------------------------------------------------
    def _check_integration(self, request: LinkRequest) -> None:
        name = request.integration_name
        if name is not None and self._catalog.get(name) is None:
            raise IntegrationNotFound(f"No integration named {name!r} is in the catalog.",
                                      details={"integrationName": name})

    async def _end_user(self, end_user_id: str) -> EndUser:
        _check_id(end_user_id)
        try:
            end_user = await self._core.get_end_user(end_user_id)
        except DeliveryFailed as exc:
            raise ServiceUnavailable(exc.message, details={"reason": exc.code}) from None
        if end_user is None:
            raise EndUserNotFound("The platform knows no end user with that id.",
                                  details={"endUserId": end_user_id})
        return end_user

    def _issue(self, end_user: EndUser, request: LinkRequest) -> IssuedLink:
        token, link = self.links.issue(
            end_user_id=end_user.id, workspace_id=end_user.workspace_id,
            integration_name=request.integration_name,
            workspace_integration_id=request.workspace_integration_id,
            expires_in=request.expires_in or DEFAULT_LINK_TTL)
        return IssuedLink(token=token, url=f"{self._public_url}/connect/portal?token={token}",
                          link=link)


def _check_id(end_user_id: str) -> None:
    """An id the core API could hold: else no such end user, without asking it."""
    if not end_user_id or len(end_user_id) > MAX_ID_LENGTH or _CONTROL.search(end_user_id):
        raise EndUserNotFound("The platform knows no end user with that id.",
                              details={"endUserId": end_user_id[:MAX_ID_LENGTH]})
