"""The end-user portal page (`/connect/portal`, portal/end_users/portal_page.py): a link
opens it, the end user sees and manages their own connections only, through ordinary
connect sessions; against the demo core API and a real Redis."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from portal.end_users.links import EndUserLink, EndUserLinks
from portal.end_users.portal_page import PORTAL_COOKIE
from portal.picker import PAGE_SIZE
from portal.settings import Settings
from portal.store.revocations import MemoryRevocationStore
from portal.store.stores import open_stores
from tests.conftest import (
    AUTH,
    CORE_API_KEY,
    PORTAL_URL,
    SECRET_KEY,
    csrf_of,
    mint,
    open_page,
    received,
    session_of,
    submit,
)

ORIGIN = PORTAL_URL
WEEK = 7 * 24 * 3600


# -- the core API's side --------------------------------------------------------------------
def core_client(core_app: Starlette) -> TestClient:
    return TestClient(core_app, base_url="http://core.test",
                      headers={"Authorization": f"Bearer {CORE_API_KEY}"})


def new_end_user(core_app: Starlette, workspace: str, external_id: str,
                 display_name: str) -> dict[str, Any]:
    with core_client(core_app) as core:
        made = core.post("/api/v1/end-users", json={
            "workspaceId": workspace, "externalId": external_id,
            "displayName": display_name, "email": f"{external_id}@example.com"})
    assert made.status_code == 201, made.text
    end_user: dict[str, Any] = made.json()["endUser"]
    return end_user


def core_connection(core_app: Starlette, **body: Any) -> str:
    """A connection made at the core directly (not through the portal)."""
    with core_client(core_app) as core:
        made = core.post("/api/v1/connections", json={
            "type": "SECRET_TEXT", "secretText": "sk-elsewhere", **body})
    assert made.status_code == 201, made.text
    connection_id: str = made.json()["connection"]["id"]
    return connection_id


def live(core_app: Starlette) -> list[dict[str, Any]]:
    """The connections the core holds and has not deleted."""
    return [item for item in received(core_app) if item.get("status") != "DELETED"]


def core_requests(core_app: Starlette) -> list[tuple[str, str]]:
    requests: list[tuple[str, str]] = core_app.state.requests
    return requests


# -- links ----------------------------------------------------------------------------------
def issue(end_user: dict[str, Any], *, expires_in: int = WEEK, key: str = SECRET_KEY,
          **narrow: str) -> tuple[str, EndUserLink]:
    """A link as the portal's API issues it (the same keys, the same signing context)."""
    links = EndUserLinks((key,), MemoryRevocationStore())
    return links.issue(end_user_id=end_user["id"], workspace_id=end_user["workspaceId"],
                       expires_in=expires_in, **narrow)


def revoke(settings: Settings, link: EndUserLink) -> None:
    """Revoke `link` in the portal's own revocation store (its Redis, its prefix)."""
    async def run() -> None:
        assert settings.redis_url is not None
        stores = open_stores(settings.redis_url, prefix=settings.redis_prefix)
        try:
            await EndUserLinks(settings.secret_keys, stores.revocations).revoke(link)
        finally:
            await stores.close()
    asyncio.run(run())


def open_portal(client: TestClient, token: str) -> str:
    """Open the link as a browser does; return the page's HTML."""
    opened = client.get("/connect/portal", params={"token": token})
    assert opened.status_code == 303, opened.text
    assert opened.headers["location"] == "/connect/portal"
    page = client.get("/connect/portal")
    assert page.status_code == 200, page.text
    return page.text


def post(client: TestClient, path: str, csrf: str | None, **fields: str) -> httpx.Response:
    data = dict(fields)
    if csrf is not None:
        data["csrf_token"] = csrf
    return client.post(path, data=data, headers={"Origin": ORIGIN})


def connect_through_page(client: TestClient, integration: str, secret: str
                         ) -> tuple[str, httpx.Response]:
    """Connect from the portal page: a session, its form, its result."""
    csrf = csrf_of(client.get("/connect/portal").text)
    started = post(client, "/connect/portal/connect", csrf, integration=integration)
    assert started.status_code == 303, started.text
    session_path = started.headers["location"]
    assert session_path.startswith("/connect/s/")
    page = client.get(session_path)
    assert page.status_code == 200, page.text
    result = submit(client, session_path, csrf_of(page.text), secret_text=secret)
    assert result.status_code == 200, result.text
    return session_path.removeprefix("/connect/s/"), result


def listed_ids(html: str) -> list[str]:
    return re.findall(r'data-connection="([^"]+)"', html)


def shown_apps(html: str) -> list[str]:
    """The apps the page shows, connected ones first, then the "Connect an app" list."""
    return re.findall(r'data-integration="([^"]+)"', html)


def connect_buttons(html: str) -> list[str]:
    """The apps of the Connect buttons of the page's one connect form."""
    return re.findall(r'form="portal-connect" name="integration" value="([^"]+)"', html)


def runnable(client: TestClient) -> set[str]:
    flow = client.app.state.flow  # type: ignore[attr-defined]
    return {item.name for item in flow.catalog if flow.runnable_options(item)}


def every_page(client: TestClient, **params: str) -> list[str]:
    """The apps of every page of the "Connect an app" list, following its "More apps"
    links as a user without JavaScript would."""
    html = client.get("/connect/portal", params=params).text
    apps = shown_apps(html)
    while (more := re.search(r'href="([^"]+)" rel="next"', html)) is not None:
        html = client.get(more.group(1).replace("&amp;", "&")).text
        apps += [name for name in shown_apps(html) if name not in apps]
    return apps


@pytest.fixture
def people(core_app: Starlette) -> dict[str, dict[str, Any]]:
    return {
        "alice": new_end_user(core_app, "ws-1", "user-alice", "Alice Example"),
        "bob": new_end_user(core_app, "ws-1", "user-bob", "Bob Example"),
    }


# -- opening the link -----------------------------------------------------------------------
def test_link_sets_a_scoped_httponly_cookie_and_leaves_the_address_bar(
    client: TestClient, people: dict[str, dict[str, Any]],
) -> None:
    token, _ = issue(people["alice"], expires_in=3600)
    opened = client.get("/connect/portal", params={"token": token})
    assert opened.status_code == 303
    assert opened.headers["location"] == "/connect/portal"
    assert opened.headers["cache-control"] == "no-store"
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith(f"{PORTAL_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Path=/connect/portal" in cookie
    max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))  # type: ignore[union-attr]
    assert 3500 < max_age <= 3600
    assert token not in cookie.split(";")[0]  # signed again, under the cookie's own salt
    page = client.get("/connect/portal")
    assert page.status_code == 200
    assert "Alice Example" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_page_lists_every_runnable_integration_and_only_this_end_users_connections(
    client: TestClient, core_app: Starlette, people: dict[str, dict[str, Any]],
) -> None:
    alice, bob = people["alice"], people["bob"]
    own = core_connection(core_app, integrationName="openai", workspaceId="ws-1",
                          endUserId=alice["id"], externalId="user-alice",
                          displayName="Alice's key")
    bobs = core_connection(core_app, integrationName="openai", workspaceId="ws-1",
                           endUserId=bob["id"], externalId="user-bob", displayName="Bob's key")
    other_ws = core_connection(core_app, integrationName="openai", workspaceId="ws-2",
                               endUserId=alice["id"], externalId="user-alice",
                               displayName="Other workspace key")
    nobody = core_connection(core_app, integrationName="openai", workspaceId="ws-1",
                             externalId="user-alice", displayName="No end user key")
    html = open_portal(client, issue(alice)[0])
    assert listed_ids(html) == [own]
    for hidden in (bobs, other_ws, nobody, "Bob's key", "Other workspace key",
                   "No end user key"):
        assert hidden not in html
    assert "Active" in html
    # OpenAI, connected, comes first, and is not offered again in the list of apps.
    assert shown_apps(html)[0] == "openai"
    assert shown_apps(html).count("openai") == 1
    assert 'aria-label="Connect another OpenAI account"' in html
    # Every runnable app is on one of the list's pages, once.
    apps = every_page(client)
    assert len(apps) == len(set(apps))
    assert set(apps) == runnable(client)
    assert len(runnable(client)) > PAGE_SIZE


def test_the_page_shows_one_page_of_apps_and_one_connect_form(
    client: TestClient, people: dict[str, dict[str, Any]],
) -> None:
    html = open_portal(client, issue(people["alice"])[0])
    assert "You have not connected any app yet." in html
    assert "Connect an app" in html
    apps = shown_apps(html)
    assert len(apps) == PAGE_SIZE
    assert connect_buttons(html) == apps
    assert html.count('action="/connect/portal/connect"') == 1
    assert html.count('name="csrf_token"') == 1
    pages = -(-len(runnable(client)) // PAGE_SIZE)
    assert f"Page 1 of {pages}" in html
    assert 'href="/connect/portal?q=&amp;page=2" rel="next"' in html
    second = client.get("/connect/portal", params={"page": "2"}).text
    assert f"Page 2 of {pages}" in second
    assert not set(shown_apps(second)) & set(apps)
    assert 'rel="prev"' in second
    # An app of the second page connects like any other.
    started = post(client, "/connect/portal/connect", csrf_of(second),
                   integration=shown_apps(second)[0])
    assert started.status_code == 303, started.text
    assert started.headers["location"].startswith("/connect/s/")
    # A page number past the end shows the last page; nonsense shows the first.
    last = client.get("/connect/portal", params={"page": "9999"}).text
    assert f"Page {pages} of {pages}" in last
    assert shown_apps(client.get("/connect/portal", params={"page": "x"}).text) == apps


def test_the_search_finds_apps_by_their_words_in_the_pages_language(
    client: TestClient, people: dict[str, dict[str, Any]],
) -> None:
    open_portal(client, issue(people["alice"])[0])
    found = client.get("/connect/portal", params={"q": "Anthropic"}).text
    assert shown_apps(found) == ["anthropic"]
    assert connect_buttons(found) == ["anthropic"]
    assert "1 app" in found
    assert 'value="Anthropic"' in found  # the search box keeps what was typed
    none = client.get("/connect/portal", params={"q": "no-such-app-anywhere"}).text
    assert shown_apps(none) == []
    assert "No app matches your search." in none
    # The German page finds Anthropic by its German description; English does not.
    german = client.get("/connect/portal", params={"q": "Claude-Modelle"},
                        headers={"Accept-Language": "de"}).text
    assert shown_apps(german) == ["anthropic"]
    english = client.get("/connect/portal", params={"q": "Claude-Modelle"}).text
    assert shown_apps(english) == []


def test_a_narrowed_link_shows_and_connects_only_its_integration(
    client: TestClient, core_app: Starlette, people: dict[str, dict[str, Any]],
) -> None:
    alice = people["alice"]
    core_connection(core_app, integrationName="anthropic", workspaceId="ws-1",
                    endUserId=alice["id"], externalId="user-alice", displayName="Claude key")
    html = open_portal(client, issue(alice, integration_name="openai")[0])
    assert shown_apps(html) == ["openai"]
    assert connect_buttons(html) == ["openai"]
    assert "Claude key" not in html
    assert 'name="q"' not in html  # one app: nothing to search
    assert shown_apps(client.get("/connect/portal", params={"q": "anthropic"}).text) == [
        "openai"]
    refused = post(client, "/connect/portal/connect", csrf_of(html), integration="anthropic")
    assert refused.status_code == 404
    assert "INTEGRATION_NOT_FOUND" in refused.text


# -- connect, reconnect, disconnect ----------------------------------------------------------
def test_connect_two_integrations_reconnect_one_and_disconnect_the_other(
    client: TestClient, core_app: Starlette, people: dict[str, dict[str, Any]],
) -> None:
    alice = people["alice"]
    open_portal(client, issue(alice)[0])

    openai_session, result = connect_through_page(client, "openai", "sk-openai-one")
    assert 'href="/connect/portal"' in result.text
    assert "Back to your connections" in result.text
    anthropic_session, _ = connect_through_page(client, "anthropic", "sk-ant-one")

    made = live(core_app)
    assert len(made) == 2
    by_integration = {item["body"]["integrationName"]: item for item in made}
    for name, display in (("openai", "OpenAI"), ("anthropic", "Anthropic")):
        body = by_integration[name]["body"]
        assert body["endUserId"] == alice["id"]
        assert body["externalId"] == "user-alice"
        assert body["workspaceId"] == "ws-1"
        assert body["displayName"] == f"Alice Example \u2013 {display}"
    openai_id = by_integration["openai"]["id"]
    anthropic_id = by_integration["anthropic"]["id"]
    assert session_of(client, openai_session)["connectionId"] == openai_id
    assert session_of(client, anthropic_session)["connectionId"] == anthropic_id

    page = client.get("/connect/portal").text
    assert sorted(listed_ids(page)) == sorted([openai_id, anthropic_id])

    # Reconnect: the core API gets a PATCH of that connection, no new connection.
    started = post(client, f"/connect/portal/connections/{openai_id}/reconnect",
                   csrf_of(page))
    assert started.status_code == 303, started.text
    session_path = started.headers["location"]
    form = client.get(session_path)
    result = submit(client, session_path, csrf_of(form.text), secret_text="sk-openai-two")
    assert result.status_code == 200 and "Back to your connections" in result.text
    assert ("PATCH", f"/api/v1/connections/{openai_id}") in core_requests(core_app)
    assert len(live(core_app)) == 2
    [updated] = [item for item in live(core_app) if item["id"] == openai_id]
    assert updated["body"]["secretText"] == "sk-openai-two"
    assert updated["body"]["endUserId"] == alice["id"]
    assert session_of(client, session_path.removeprefix("/connect/s/"))["connectionId"] == (
        openai_id)

    # Disconnect: a confirm page, then a DELETE.
    confirm = client.get(f"/connect/portal/connections/{anthropic_id}/disconnect")
    assert confirm.status_code == 200
    assert "Disconnect Alice Example \u2013 Anthropic?" in confirm.text
    assert ("DELETE", f"/api/v1/connections/{anthropic_id}") not in core_requests(core_app)
    done = post(client, f"/connect/portal/connections/{anthropic_id}/disconnect",
                csrf_of(confirm.text))
    assert done.status_code == 303
    assert done.headers["location"] == "/connect/portal?notice=disconnected"
    assert ("DELETE", f"/api/v1/connections/{anthropic_id}") in core_requests(core_app)
    after = client.get(done.headers["location"])
    assert "The connection was removed." in after.text
    assert listed_ids(after.text) == [openai_id]


def test_connection_name_stays_within_bounds_for_a_long_display_name(
    client: TestClient, core_app: Starlette,
) -> None:
    long_name = new_end_user(core_app, "ws-1", "user-long", "N" * 400)
    open_portal(client, issue(long_name)[0])
    connect_through_page(client, "openai", "sk-long")
    [made] = live(core_app)
    name = made["body"]["displayName"]
    assert len(name) <= 200
    assert name.endswith("\u2026 \u2013 OpenAI")
    assert made["body"]["endUserId"] == long_name["id"]


# -- hostile ---------------------------------------------------------------------------------
def test_a_link_cannot_touch_another_end_users_or_another_workspaces_connection(
    client: TestClient, core_app: Starlette, people: dict[str, dict[str, Any]],
) -> None:
    alice, bob = people["alice"], people["bob"]
    bobs = core_connection(core_app, integrationName="openai", workspaceId="ws-1",
                           endUserId=bob["id"], externalId="user-bob", displayName="Bob's")
    other_ws = core_connection(core_app, integrationName="openai", workspaceId="ws-2",
                               endUserId=alice["id"], externalId="user-alice",
                               displayName="Other workspace")
    html = open_portal(client, issue(alice)[0])
    csrf = csrf_of(html)
    before = [dict(item) for item in received(core_app)]
    for target in (bobs, other_ws, "conn_does_not_exist"):
        for path, method in ((f"/connect/portal/connections/{target}/reconnect", "POST"),
                             (f"/connect/portal/connections/{target}/disconnect", "POST"),
                             (f"/connect/portal/connections/{target}/disconnect", "GET")):
            answer = (post(client, path, csrf) if method == "POST" else client.get(path))
            assert answer.status_code == 404, (path, method, answer.text)
            assert "location" not in answer.headers
            assert "Bob's" not in answer.text and "Other workspace" not in answer.text
    assert core_requests(core_app) == []  # no PATCH, no DELETE
    assert received(core_app) == before
    # Nor does it show them.
    assert bobs not in client.get("/connect/portal").text


def test_forged_expired_and_revoked_links_are_refused(
    client: TestClient, settings: Settings, people: dict[str, dict[str, Any]],
) -> None:
    alice = people["alice"]
    forged, _ = issue(alice, key="another-secret-key-0123456789abcdef0123")
    expired, _ = issue(alice, expires_in=-1)
    connect_token = mint(client)["token"]
    for token in (forged, expired, connect_token, "eut_not-a-link", ""):
        answer = client.get("/connect/portal", params={"token": token})
        assert answer.status_code == 401, (token, answer.text)
        assert "set-cookie" not in answer.headers
        assert "data-error-code=" in answer.text  # the error page, as for a bad connect link
    # A link revoked before it is opened.
    token, link = issue(alice)
    revoke(settings, link)
    assert client.get("/connect/portal", params={"token": token}).status_code == 401


def test_every_request_reads_the_link_again_revocation_and_expiry(
    make_app: Any, settings: Settings, core_app: Starlette,
    people: dict[str, dict[str, Any]],
) -> None:
    now = [1_900_000_000.0]
    app = make_app(settings, core_transport=httpx.ASGITransport(app=core_app),
                   clock=lambda: now[0])
    with TestClient(app, base_url=PORTAL_URL, follow_redirects=False) as client:
        alice = people["alice"]
        links = EndUserLinks((SECRET_KEY,), MemoryRevocationStore(), clock=lambda: now[0])
        token, _ = links.issue(end_user_id=alice["id"], workspace_id="ws-1", expires_in=3600)
        html = open_portal(client, token)
        now[0] += 3601  # the link expires; the cookie is still in this (fake-timed) browser
        assert client.get("/connect/portal").status_code == 401
        expired_post = post(client, "/connect/portal/connect", csrf_of(html),
                            integration="openai")
        assert expired_post.status_code == 401

    with TestClient(make_app(settings, core_transport=httpx.ASGITransport(app=core_app)),
                    base_url=PORTAL_URL, follow_redirects=False) as client:
        token, link = issue(people["alice"])
        html = open_portal(client, token)
        revoke(settings, link)
        assert client.get("/connect/portal").status_code == 401
        revoked_post = post(client, "/connect/portal/connect", csrf_of(html),
                            integration="openai")
        assert revoked_post.status_code == 401
    assert received(core_app) == []


def test_no_cookie_or_a_forged_cookie_is_refused(client: TestClient) -> None:
    assert client.get("/connect/portal").status_code == 401
    client.cookies.set(PORTAL_COOKIE, "not-signed", domain="portal.test",
                       path="/connect/portal")
    assert client.get("/connect/portal").status_code == 401


def test_posts_without_csrf_from_another_site_or_another_link_are_refused(
    make_client: Any, core_app: Starlette, people: dict[str, dict[str, Any]],
) -> None:
    alice_browser, bob_browser = make_client(), make_client()
    alice = people["alice"]
    own = core_connection(core_app, integrationName="openai", workspaceId="ws-1",
                          endUserId=alice["id"], externalId="user-alice", displayName="Mine")
    csrf = csrf_of(open_portal(alice_browser, issue(alice)[0]))
    bobs_csrf = csrf_of(open_portal(bob_browser, issue(people["bob"])[0]))
    paths = ["/connect/portal/connect", f"/connect/portal/connections/{own}/reconnect",
             f"/connect/portal/connections/{own}/disconnect"]
    for path in paths:
        fields = {"integration": "openai"}
        assert post(alice_browser, path, None, **fields).status_code == 403
        assert post(alice_browser, path, "forged", **fields).status_code == 403
        assert post(alice_browser, path, bobs_csrf, **fields).status_code == 403
        cross = alice_browser.post(path, data={"csrf_token": csrf, **fields},
                                   headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403
        cross_site = alice_browser.post(path, data={"csrf_token": csrf, **fields},
                                        headers={"Sec-Fetch-Site": "cross-site"})
        assert cross_site.status_code == 403
    assert core_requests(core_app) == []
    assert [item["id"] for item in live(core_app)] == [own]
    # The same forms with the page's token go through.
    assert post(alice_browser, paths[0], csrf, integration="openai").status_code == 303


def test_plain_connect_tokens_with_an_end_user_id_keep_working(
    client: TestClient, core_app: Starlette,
) -> None:
    answer = mint(client, endUserId="eu-plain")
    page_path, csrf = open_page(client, answer["token"])
    result = submit(client, page_path, csrf, secret_text="sk-plain", opener="1")
    assert result.status_code == 200
    assert "Back to your connections" not in result.text
    [made] = received(core_app)
    assert made["body"]["endUserId"] == "eu-plain"


def test_the_core_api_down_is_a_page_to_retry_not_a_crash(
    make_client: Any, people: dict[str, dict[str, Any]],
) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = make_client(core_transport=httpx.MockTransport(down))
    opened = client.get("/connect/portal", params={"token": issue(people["alice"])[0]})
    assert opened.status_code == 303
    page = client.get("/connect/portal")
    assert page.status_code == 503
    assert "SERVICE_UNAVAILABLE" in page.text



def test_a_link_from_the_api_opens_the_page_until_the_api_revokes_it(
    client: TestClient, people: dict[str, dict[str, Any]],
) -> None:
    alice = people["alice"]
    made = client.post(f"/api/v1/end-users/{alice['id']}/connect-token", headers=AUTH,
                       json={"integrationName": "openai"})
    assert made.status_code in {200, 201}, made.text
    answer = made.json()
    assert answer["connectUrl"] == f"{PORTAL_URL}/connect/portal?token={answer['token']}"
    html = open_portal(client, answer["token"])
    assert re.findall(r'data-integration="([^"]+)"', html) == ["openai"]
    revoked = client.post(f"/api/v1/end-users/{alice['id']}/connect-tokens/revoke",
                          headers=AUTH, json={"token": answer["token"]})
    assert revoked.is_success, revoked.text
    assert client.get("/connect/portal").status_code == 401
