"""Connect tokens, browser bindings and CSRF tokens: signing, rotation, expiry, refusal."""

from __future__ import annotations

import time

import pytest

from portal.tokens import Signer, TokenRefused, browser_claim, new_browser_id, read_browser_id

OLD = "old-secret-key-0123456789abcdef0123456789"
NEW = "new-secret-key-0123456789abcdef0123456789"


def test_token_round_trips_and_carries_only_session_and_expiry() -> None:
    signer = Signer((NEW,))
    expires = int(time.time()) + 600
    token = signer.issue_connect_token("sid-1", expires)
    assert token.startswith("cst_")
    claims = signer.read_connect_token(token)
    assert (claims.session_id, claims.expires_at) == ("sid-1", expires)


def test_rotation_first_key_signs_all_keys_verify() -> None:
    expires = int(time.time()) + 600
    old_token = Signer((OLD,)).issue_connect_token("sid-1", expires)
    rotated = Signer((NEW, OLD))
    assert rotated.read_connect_token(old_token).session_id == "sid-1"
    new_token = rotated.issue_connect_token("sid-2", expires)
    assert Signer((NEW,)).read_connect_token(new_token).session_id == "sid-2"
    with pytest.raises(TokenRefused):
        Signer((OLD,)).read_connect_token(new_token)


def test_expired_token_is_refused_as_expired() -> None:
    signer = Signer((NEW,))
    token = signer.issue_connect_token("sid-1", int(time.time()) + 60)
    with pytest.raises(TokenRefused) as refused:
        signer.read_connect_token(token, now=time.time() + 61)
    assert refused.value.reason == "expired"


def _tampered_signature(token: str) -> str:
    """The token with the first character of its signature changed. (Not the last one:
    base64's last character carries padding bits, and a change there may decode to the
    same bytes, a valid signature.)"""
    head, _, signature = token.rpartition(".")
    return f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


@pytest.mark.parametrize("make_bad", [
    lambda t: _tampered_signature(t),                         # tampered signature
    lambda t: t[:-10],                                        # truncated
    lambda t: t.replace("cst_", "cst_x", 1),                  # tampered payload
    lambda t: t.removeprefix("cst_"),                         # no prefix
    lambda t: "cst_" + "é" * 20,                              # non-ASCII
    lambda t: "cst_" + "A" * 1_000_000,                       # 1 MB
    lambda t: "",                                             # empty
])
def test_malformed_tokens_are_refused(make_bad: object) -> None:
    signer = Signer((NEW,))
    token = signer.issue_connect_token("sid-1", int(time.time()) + 600)
    with pytest.raises(TokenRefused):
        signer.read_connect_token(make_bad(token))  # type: ignore[operator]


def test_values_signed_for_one_purpose_never_verify_as_another() -> None:
    signer = Signer((NEW,))
    cookie, binding = signer.issue_browser_binding("sid-1", browser_id=new_browser_id())
    csrf = signer.csrf_token(binding)
    with pytest.raises(TokenRefused):
        signer.read_connect_token("cst_" + cookie)
    with pytest.raises(TokenRefused):
        signer.read_browser_binding(csrf)
    assert not signer.check_csrf_token(cookie, binding)
    assert signer.check_csrf_token(csrf, binding)


def test_csrf_token_is_bound_to_one_browser() -> None:
    signer = Signer((NEW,))
    _, first = signer.issue_browser_binding("sid-1", browser_id=new_browser_id())
    _, second = signer.issue_browser_binding("sid-1", browser_id=new_browser_id())
    assert not signer.check_csrf_token(signer.csrf_token(first), second)


def test_the_same_browser_gets_the_same_binding_so_its_open_tabs_stay_valid() -> None:
    signer = Signer((NEW,))
    browser_id = new_browser_id()
    _, first_tab = signer.issue_browser_binding("sid-1", browser_id=browser_id)
    _, second_tab = signer.issue_browser_binding("sid-1", browser_id=browser_id)
    assert signer.check_csrf_token(signer.csrf_token(first_tab), second_tab)
    _, other_session = signer.issue_browser_binding("sid-2", browser_id=browser_id)
    assert other_session.nonce != first_tab.nonce


@pytest.mark.parametrize("value", [None, "", "short", "x" * 3000, "a" * 42 + "!",
                                   "a" * 42 + "\u00e9", "a" * 44])
def test_anything_but_a_portal_browser_id_is_not_read_as_one(value: str | None) -> None:
    assert read_browser_id(value) is None


def test_a_browser_id_is_random_and_only_its_hash_is_a_claim() -> None:
    first, second = new_browser_id(), new_browser_id()
    assert first != second
    assert read_browser_id(first) == first
    assert browser_claim(first) == browser_claim(first) != browser_claim(second)
    assert first not in browser_claim(first)
