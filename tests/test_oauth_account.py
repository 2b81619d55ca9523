"""Who signed in at the provider (`TokenSet.account_id`, delivered as `accountId`), and the
warning when an end user reconnects a connection with another account than before: the
extraction rules on their own, then the whole reconnect from the end-user portal against
the real OpenID Connect provider (oidc-provider under node) and the demo core API."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from portal.auth.oauth.provider import MAX_ACCOUNT_ID_LENGTH, account_id_of
from tests.conftest import PORTAL_URL, csrf_of, received
from tests.oauth_provider import Provider, run_provider, sign_in, write_config
from tests.test_end_user_portal import (
    core_connection,
    core_requests,
    issue,
    new_end_user,
    open_portal,
    post,
)

CALLBACK = f"{PORTAL_URL}/oauth/callback"
WARNING = ("You signed in to a different Test ID Header account than this connection used "
           "before. If that was not intended, reconnect it with the right account.")


def jwt(claims: object, *, parts: int = 3) -> str:
    """A compact JWS with `claims` as its payload and a signature nobody checks here."""
    def segment(value: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    pieces = [segment({"alg": "RS256", "kid": "k1"}), segment(claims), "c2lnbmF0dXJl"]
    return ".".join(pieces + ["ZXh0cmE"] * (parts - 3))


# -- the extraction rules ---------------------------------------------------------------------
def test_the_id_token_subject_names_the_account() -> None:
    answer = {"access_token": "at", "id_token": jwt({"sub": "248289761001", "aud": "x"}),
              "user_id": "not-this-one"}
    assert account_id_of(answer) == "248289761001"


def test_an_unpadded_payload_of_any_length_is_read() -> None:
    for subject in ("a", "ab", "abc", "abcd"):
        assert account_id_of({"id_token": jwt({"sub": subject})}) == subject


def test_slack_names_the_team_and_notion_the_workspace() -> None:
    slack = {"ok": True, "access_token": "xoxb-1", "team": {"id": "T0123", "name": "Acme"},
             "authed_user": {"id": "U0456"}}
    assert account_id_of(slack) == "T0123"
    notion = {"access_token": "secret_1", "workspace_id": "8f1e-workspace",
              "workspace_name": "Acme", "bot_id": "b1"}
    assert account_id_of(notion) == "8f1e-workspace"


def test_plain_user_and_account_fields() -> None:
    assert account_id_of({"access_token": "at", "user_id": 12345}) == "12345"
    assert account_id_of({"access_token": "at", "account_id": "dbid:AAH4f99"}) == "dbid:AAH4f99"


@pytest.mark.parametrize("id_token", [
    "not-a-jwt",
    "a.b",
    "!!!.@@@.###",
    jwt({"sub": "x"}, parts=5),  # an encrypted id_token cannot be read
    jwt(["sub", "x"]),
    jwt({"sub": 42}),
    jwt({"sub": ""}),
    jwt({"aud": "no subject"}),
    "eyJhbGciOiJub25lIn0." + base64.urlsafe_b64encode(b"\xff\xfe{").decode() + ".sig",
    jwt({"sub": "x" * (MAX_ACCOUNT_ID_LENGTH + 1)}),
    "a" * 70_000,
    12345,
    None,
])
def test_a_malformed_id_token_names_nobody(id_token: object) -> None:
    assert account_id_of({"access_token": "at", "id_token": id_token}) is None


def test_a_malformed_id_token_falls_back_to_plain_fields() -> None:
    assert account_id_of({"id_token": "garbage", "team": {"id": "T9"}}) == "T9"


def test_nothing_known_names_nobody() -> None:
    assert account_id_of({"access_token": "at", "token_type": "Bearer"}) is None
    assert account_id_of({"access_token": "at", "team": "T1", "user_id": True,
                          "account_id": {"id": "x"}, "workspace_id": ["w"]}) is None


def test_the_identifier_is_cleaned_text() -> None:
    assert account_id_of({"user_id": "  u\u202e1\u200b\n2  "}) == "u 1 2"
    assert account_id_of({"user_id": "\u200b\u202e"}) is None
    assert account_id_of({"id_token": jwt({"sub": "evil\r\nINFO forged"})}) == "evil INFO forged"


# -- a reconnect from the end-user portal, against the real provider ---------------------------
@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with run_provider([CALLBACK]) as running:
        yield running


@pytest.fixture
def portal(make_client: Any, provider: Provider, tmp_path: Path) -> TestClient:
    catalog, apps = write_config(tmp_path, provider.issuer)
    client: TestClient = make_client(catalog_paths=(str(catalog),),
                                     oauth_apps_file=str(apps), allow_http_loopback=True)
    return client


@pytest.fixture
def user() -> Iterator[httpx.Client]:
    """The user's browser at the provider (the dev login signs in as `alice`)."""
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        yield client


def reconnect(portal: TestClient, user: httpx.Client, connection_id: str) -> str:
    """Press Reconnect on the portal page, sign in at the provider, come back: the
    result page's HTML."""
    page = portal.get("/connect/portal")
    assert page.status_code == 200, page.text
    started = post(portal, f"/connect/portal/connections/{connection_id}/reconnect",
                   csrf_of(page.text))
    assert started.status_code == 303, started.text
    session_path = started.headers["location"]
    hand_off = portal.get(session_path)
    assert hand_off.status_code == 200, hand_off.text
    pressed = post(portal, f"{session_path}/oauth", csrf_of(hand_off.text))
    assert pressed.status_code == 303, pressed.text
    back = sign_in(user, pressed.headers["location"], stop_at=CALLBACK)
    finished = portal.get(back)
    assert finished.status_code == 303, finished.text
    assert finished.headers["location"] == session_path
    result = portal.get(session_path)
    assert result.status_code == 200, result.text
    assert "Connected" in result.text and "Back to your connections" in result.text
    return result.text


def stored(core_app: Starlette, connection_id: str) -> dict[str, Any]:
    [record] = [item for item in received(core_app) if item["id"] == connection_id]
    return record


def test_a_reconnect_with_another_account_is_saved_with_a_warning(
    portal: TestClient, user: httpx.Client, core_app: Starlette,
) -> None:
    alice = new_end_user(core_app, "ws-1", "user-alice", "Alice Example")
    # Made earlier (at the core) by a sign-in as another account of the provider.
    connection_id = core_connection(
        core_app, type="OAUTH2", integrationName="testid-basic", authMethodKey="oauth2",
        workspaceId="ws-1", endUserId=alice["id"], externalId="user-alice",
        displayName="Alice Example \u2013 Test ID Header", accountId="someone-else")
    open_portal(portal, issue(alice)[0])

    html = reconnect(portal, user, connection_id)
    assert WARNING in html
    patch = ("PATCH", f"/api/v1/connections/{connection_id}")
    assert core_requests(core_app).count(patch) == 1
    assert len(received(core_app)) == 1  # updated in place, nothing created
    body = stored(core_app, connection_id)["body"]
    assert body["accountId"] == "alice"  # the id_token's `sub`
    assert body["accessToken"] and body["type"] == "OAUTH2"
    assert "someone-else" not in html  # the ids are not shown

    # Again, now that the core lists the account it was made with: the same account, no
    # warning.
    html = reconnect(portal, user, connection_id)
    assert WARNING not in html and "different" not in html
    assert core_requests(core_app).count(patch) == 2
    assert stored(core_app, connection_id)["body"]["accountId"] == "alice"


def test_no_warning_when_the_connection_never_named_its_account(
    portal: TestClient, user: httpx.Client, core_app: Starlette,
) -> None:
    alice = new_end_user(core_app, "ws-1", "user-alice", "Alice Example")
    connection_id = core_connection(
        core_app, type="OAUTH2", integrationName="testid-basic", authMethodKey="oauth2",
        workspaceId="ws-1", endUserId=alice["id"], externalId="user-alice",
        displayName="Alice Example \u2013 Test ID Header")
    open_portal(portal, issue(alice)[0])

    html = reconnect(portal, user, connection_id)
    assert "different" not in html
    assert stored(core_app, connection_id)["body"]["accountId"] == "alice"
