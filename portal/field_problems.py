"""What can be wrong with a submitted form, as typed values.

A `FieldProblem` is what is wrong with one field. Its value is the short code a form's
errors map holds and the refresh API answers in `details.fields` (`props.<key>`);
templates/_field.html turns it into words with the field's label, its limits and the
integration's name, which is why the words live there and not here.

A `FormNotice` is a problem of the whole form that is no field's fault;
templates/connect.html says it.
"""

from __future__ import annotations

from enum import StrEnum

from portal.catalog import FieldFormat
from portal.ssrf import Refusal


class FieldProblem(StrEnum):
    # -- the field's own rules (portal/auth/fields.py) -----------------------------------
    REQUIRED = "required"
    CHOICE = "choice"  # not one of a dropdown's options
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    CONTROL_CHARACTERS = "control_characters"
    PATTERN = "pattern"
    NOT_A_NUMBER = "not_a_number"
    TOO_SMALL = "too_small"
    TOO_LARGE = "too_large"
    # -- the provider's check of a credential --------------------------------------------
    REJECTED = "rejected"  # the provider refused the credential, blamed on this field
    CHARSET = "charset"  # the value cannot be sent in a header of the check request
    # -- refused by the SSRF guard or the outbound policy: see `refused` ----------------
    SUBDOMAIN_SUBDOMAIN = "subdomain_subdomain"
    HOSTNAME_HOST = "hostname_host"
    HOSTNAME_PRIVATE_ADDRESS = "hostname_private_address"
    HOSTNAME_UNRESOLVABLE = "hostname_unresolvable"
    URL_URL = "url_url"
    URL_SCHEME = "url_scheme"
    URL_USERINFO = "url_userinfo"
    URL_HOST = "url_host"
    URL_PORT = "url_port"
    URL_SUBDOMAIN = "url_subdomain"
    URL_PRIVATE_ADDRESS = "url_private_address"
    URL_UNRESOLVABLE = "url_unresolvable"

    @classmethod
    def refused(cls, checked: FieldFormat, reason: Refusal) -> FieldProblem:
        """The problem of a field whose value was refused for `reason` while checking
        `checked`: the field itself when it has that format, or the URL built from it
        (FieldFormat.URL: a credential check's URL, an OAuth endpoint).

        Every pair has a member. A URL keeps each refusal apart; a host name or a
        subdomain is checked for fewer reasons, and any other reads as "not a host name"
        or "not a subdomain"."""
        try:
            return cls(f"{checked.value}_{reason.value}")
        except ValueError:
            if checked is FieldFormat.URL:
                raise
            return cls.HOSTNAME_HOST if checked is FieldFormat.HOSTNAME else cls.SUBDOMAIN_SUBDOMAIN


class FormNotice(StrEnum):
    # The credential check could not reach the provider; nothing was saved.
    PROVIDER_UNAVAILABLE = "provider_unavailable"
