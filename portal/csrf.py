"""A form post must come from this portal's own page, in the browser bound to the session.

Under `Referrer-Policy: no-referrer` browsers send `Origin: null` for form posts, so a
null Origin falls back to `Sec-Fetch-Site`; the CSRF token (tied to the browser binding,
portal/tokens.py) is checked always.
"""

from __future__ import annotations

from portal.errors import CsrfFailed
from portal.tokens import BrowserBinding, Signer


def check_form_post(
    signer: Signer,
    binding: BrowserBinding,
    token: object,
    *,
    public_origin: str,
    origin: str | None,
    fetch_site: str | None,
) -> None:
    """Raise CsrfFailed unless the post came from this portal's page in this browser."""
    if origin not in (None, "null") and origin != public_origin:
        raise CsrfFailed("The form was sent from another site.")
    if fetch_site is not None and fetch_site not in {"same-origin", "none"}:
        raise CsrfFailed("The form was sent from another site.")
    if not signer.check_csrf_token(token, binding):
        raise CsrfFailed("The form has expired or was not sent by this page.")
