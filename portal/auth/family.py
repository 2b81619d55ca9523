"""The one interface every auth family implements, and what a submission can lead to.

The connect flow (portal/flow.py) knows only this: a family names the page that collects
what it needs, says where that page's form may lead (CSP `form-action`), and turns a
submission into one outcome. The flow owns the session's state; a family never moves it.

    Deliver       the submission is complete: the flow marks the session CONNECTING
                  and sends `body` to the core API
    SendBrowser   the browser must go elsewhere first (an OAuth provider's sign-in);
                  the family finishes later through its own callback
    FormRejected  the input had errors; nothing changed
    Refuse        this attempt cannot go on (no OAuth app after all): the flow records
                  the failed attempt; the user may try again or choose otherwise
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from portal.catalog import AuthOption, Integration
from portal.errors import SessionFailure
from portal.field_problems import FieldProblem, FormNotice
from portal.sessions import ConnectSession


@dataclass(frozen=True)
class Submission:
    """What the browser sent with a form post: its text fields and its cookies."""

    form: Mapping[str, str]
    cookies: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Cookie:
    """A cookie a family asks the view to set (site-wide, HttpOnly, SameSite=Lax)."""

    name: str
    value: str
    max_age: int


@dataclass(frozen=True)
class Deliver:
    body: dict[str, Any]


@dataclass(frozen=True)
class SendBrowser:
    url: str
    cookie: Cookie | None = None


@dataclass(frozen=True)
class FormRejected:
    """The form had errors; nothing changed. `values` holds only non-secret input.

    `notice` is a form-wide reason, such as the provider being unreachable for the check.
    """

    errors: dict[str, FieldProblem]
    values: dict[str, str]
    notice: FormNotice | None = None


@dataclass(frozen=True)
class Refuse:
    code: SessionFailure
    message: str


Outcome = Deliver | SendBrowser | FormRejected | Refuse


class AuthFamily(Protocol):
    """One way of connecting an account (portal/auth/registry.py maps auth types to it)."""

    # The template of the page that collects what this family needs for an option.
    page: str

    def page_context(self, option: AuthOption) -> dict[str, Any]:
        """What the page needs besides the session, integration, option and form state."""
        ...

    def form_action_sources(self, option: AuthOption) -> tuple[str, ...]:
        """Where the page's form may lead besides this portal and the partner's redirect
        URIs (an OAuth provider's sign-in origin); CSP `form-action` allows exactly these."""
        ...

    def available(self, integration: Integration, option: AuthOption, *,
                  oauth_app_mode: str | None, oauth_app_id: str | None) -> bool:
        """Whether `option` can work for a session minted with these app choices, as far
        as the portal knows without asking anyone (an OAuth option needs an app): options
        that cannot are never offered, and a token that names only such options is refused."""
        ...

    async def submit(
        self,
        session: ConnectSession,
        integration: Integration,
        option: AuthOption,
        submission: Submission,
    ) -> Outcome:
        """Read a submission for a PENDING session; never changes the session."""
        ...
