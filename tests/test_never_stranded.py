"""Never a dead end: Back undoes a choice, a failed attempt can be tried again in place on
the same link, giving up ends the session for good, and only options that can work are
offered (the backend hears at minting time when nothing can). Driven over HTTP as a
browser would; the OAuth cases against a real provider are in tests/test_oauth.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from portal.settings import Settings
from tests.conftest import (
    AUTH,
    PARTNER_ORIGIN,
    PORTAL_URL,
    Clock,
    csrf_of,
    mint,
    open_page,
    received,
    session_of,
    submit,
    token_body,
)

CUSTOM_APP = {"oauthAppMode": "custom", "oauthAppId": "app-1"}


def step(client: TestClient, page_path: str, action: str, **fields: str) -> httpx.Response:
    """Press one of the page's step buttons (Back, Try again, Stop) as the browser does."""
    csrf = csrf_of(client.get(page_path).text)
    return submit(client, page_path, csrf, action=action, **fields)


def choose(client: TestClient, page_path: str, **fields: str) -> httpx.Response:
    csrf = csrf_of(client.get(page_path).text)
    return submit(client, page_path, csrf, **fields)


def picker_names(html: str) -> set[str]:
    return set(re.findall(r'name="integration" value="([^"]+)"', html))


def offered(client: TestClient, page_path: str, name: str) -> bool:
    """Whether the picker offers `name` (searched for: the picker shows a page at a time)."""
    return name in picker_names(client.get(page_path, params={"q": name}).text)


# -- Back -------------------------------------------------------------------------------
def test_back_from_the_chooser_returns_to_the_picker_and_another_app_can_be_connected(
    client: TestClient, core_app: Starlette,
) -> None:
    answer = mint(client, integrationName=None, **CUSTOM_APP)
    page_path, _ = open_page(client, answer["token"])
    assert choose(client, page_path, action="choose", integration="github").status_code == 303
    chooser = client.get(page_path).text
    assert "How do you want to connect?" in chooser
    assert "data-back" in chooser and "Choose another app" in chooser

    assert step(client, page_path, "back").headers["location"] == page_path
    assert offered(client, page_path, "github")  # the picker again, every app on offer
    session = session_of(client, answer["sessionId"])
    assert (session["status"], session["integrationName"]) == ("PENDING", None)

    choose(client, page_path, action="choose", integration="openai")
    form = client.get(page_path).text
    assert "Connect your OpenAI account" in form
    done = choose(client, page_path, secret_text="sk-live-123")
    assert done.status_code in (200, 303)
    [connection] = received(core_app)
    assert connection["body"]["integrationName"] == "openai"
    session = session_of(client, answer["sessionId"])
    assert (session["status"], session["integrationName"]) == ("COMPLETED", "openai")


def test_back_from_the_form_undoes_the_way_to_connect_then_the_app(
    client: TestClient,
) -> None:
    answer = mint(client, integrationName=None, **CUSTOM_APP)
    page_path, _ = open_page(client, answer["token"])
    choose(client, page_path, action="choose", integration="github")
    choose(client, page_path, action="auth_method", auth_method="personal_access_token")
    form = client.get(page_path).text
    assert 'name="secret_text"' in form
    assert "Choose another way to connect" in form

    step(client, page_path, "back")
    assert "How do you want to connect?" in client.get(page_path).text
    assert session_of(client, answer["sessionId"])["authMethodKey"] is None
    step(client, page_path, "back")
    assert offered(client, page_path, "github")


def test_a_choice_the_token_fixed_has_no_back_and_a_forged_back_changes_nothing(
    client: TestClient,
) -> None:
    answer = mint(client)  # openai, fixed by the backend
    page_path, _ = open_page(client, answer["token"])
    assert "data-back" not in client.get(page_path).text
    refused = step(client, page_path, "back")
    assert refused.status_code == 400
    assert "Connect your OpenAI account" in client.get(page_path).text
    assert session_of(client, answer["sessionId"])["integrationName"] == "openai"


def test_a_submitted_choice_cannot_be_undone(client: TestClient, core_app: Starlette) -> None:
    answer = mint(client, integrationName=None)
    page_path, _ = open_page(client, answer["token"])
    choose(client, page_path, action="choose", integration="openai")
    csrf = csrf_of(client.get(page_path).text)  # the form, still open in a second tab
    choose(client, page_path, secret_text="sk-live-123")
    assert session_of(client, answer["sessionId"])["status"] == "COMPLETED"
    again = submit(client, page_path, csrf, action="back")
    assert again.status_code == 303  # shows where the session is: its result
    assert "Connected" in client.get(page_path).text
    session = session_of(client, answer["sessionId"])
    assert (session["status"], session["integrationName"]) == ("COMPLETED", "openai")
    assert len(received(core_app)) == 1


# -- a failed attempt, tried again ----------------------------------------------------------
class RefusesOnce(httpx.AsyncBaseTransport):
    """The core API refusing the first connection (a definite 422), then the demo core."""

    def __init__(self, core_app: Starlette) -> None:
        self.inner = httpx.ASGITransport(app=core_app)
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/api/v1/connections" \
                and not self.refused:
            self.refused += 1
            return httpx.Response(422, json={"error": "duplicate key externalId=user-42",
                                             "code": "CONFLICT"})
        return await self.inner.handle_async_request(request)


@pytest.fixture
def refusing(make_client: Any, core_app: Starlette) -> Iterator[tuple[TestClient, RefusesOnce]]:
    transport = RefusesOnce(core_app)
    yield make_client(core_transport=transport), transport


def test_a_refused_connection_can_be_tried_again_in_place_on_the_same_link(
    refusing: tuple[TestClient, RefusesOnce], core_app: Starlette,
) -> None:
    client, transport = refusing
    answer = mint(client, allowedOrigins=[PARTNER_ORIGIN])
    page_path, csrf = open_page(client, answer["token"])
    first = submit(client, page_path, csrf, secret_text="sk-live-123", opener="1")
    assert first.status_code == 303 and transport.refused == 1
    page = client.get(page_path)
    assert page.status_code == 200
    assert "Your account could not be saved" in page.text
    assert "duplicate key" not in page.text  # the core's words go to the backend only
    assert "CORE_API_REJECTED" not in re.sub(r'data-failure="[^"]*"', "", page.text)
    assert "Try again" in page.text
    assert "connect-result" not in page.text  # nothing told to the opener yet
    session = session_of(client, answer["sessionId"])
    assert (session["status"], session["errorCode"]) == ("PENDING", "CORE_API_REJECTED")
    assert session["error"] == "duplicate key externalId=user-42"

    assert step(client, page_path, "try_again").headers["location"] == page_path
    form = client.get(page_path).text
    assert 'name="secret_text"' in form
    assert session_of(client, answer["sessionId"])["errorCode"] is None
    second = choose(client, page_path, secret_text="sk-live-456", opener="1")
    assert second.status_code == 200 and "Connected" in second.text
    [connection] = received(core_app)
    assert connection["body"]["secretText"] == "sk-live-456"
    assert session_of(client, answer["sessionId"])["status"] == "COMPLETED"


def test_giving_up_ends_the_session_failed_with_the_last_reason_and_redirects_back(
    refusing: tuple[TestClient, RefusesOnce], core_app: Starlette,
) -> None:
    client, _ = refusing
    error_uri = f"{PARTNER_ORIGIN}/failed"
    answer = mint(client, errorRedirectUri=error_uri)
    page_path, csrf = open_page(client, answer["token"])
    first = submit(client, page_path, csrf, secret_text="sk-live-123")
    # Redirect mode: a retryable failure stays in the portal, it does not leave yet.
    assert not first.headers["location"].startswith(PARTNER_ORIGIN)
    csrf = csrf_of(client.get(page_path).text)
    gave_up = submit(client, page_path, csrf, action="give_up", opener="0")
    assert gave_up.status_code == 303
    assert gave_up.headers["location"] == (
        f"{error_uri}?sessionId={answer['sessionId']}&status=error&code=CORE_API_REJECTED")
    session = session_of(client, answer["sessionId"])
    assert (session["status"], session["errorCode"]) == ("FAILED", "CORE_API_REJECTED")
    # Final for good: trying again (from a page still open) changes nothing.
    again = submit(client, page_path, csrf, action="try_again")
    assert (again.status_code, again.headers["location"]) == (303, page_path)
    assert 'data-failure="CORE_API_REJECTED"' in client.get(page_path).text
    assert session_of(client, answer["sessionId"])["status"] == "FAILED"
    assert received(core_app) == []


def test_giving_up_in_a_popup_tells_the_opener_the_reason(
    refusing: tuple[TestClient, RefusesOnce],
) -> None:
    client, _ = refusing
    answer = mint(client, allowedOrigins=[PARTNER_ORIGIN])
    page_path, csrf = open_page(client, answer["token"])
    submit(client, page_path, csrf, secret_text="sk-live-123", opener="1")
    result = step(client, page_path, "give_up", opener="1")
    assert result.status_code == 200
    assert '"status": "error"' in result.text and '"code": "CORE_API_REJECTED"' in result.text
    assert "Your account could not be saved" in result.text


def test_a_session_left_without_any_attempt_is_cancelled_when_the_user_stops(
    client: TestClient,
) -> None:
    answer = mint(client, integrationName=None)
    page_path, _ = open_page(client, answer["token"])
    step(client, page_path, "give_up")
    session = session_of(client, answer["sessionId"])
    assert (session["status"], session["errorCode"]) == ("FAILED", "CANCELLED")


# -- only options that can work ------------------------------------------------------------
def test_minting_an_integration_that_only_oauth_can_connect_without_an_app_is_refused(
    client: TestClient,
) -> None:
    for body in ({"integrationName": "slack"},
                 {"integrationName": "github", "authMethodKey": "oauth2"}):
        refused = client.post("/api/v1/connect/token", json=token_body(**body), headers=AUTH)
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "MISSING_OAUTH2_CONFIG"
        assert refused.json()["details"]["integrationName"] == body["integrationName"]
    # Another option works, or the customer's own app is named: fine.
    mint(client, integrationName="github")
    mint(client, integrationName="slack", **CUSTOM_APP)


def test_the_picker_and_the_chooser_offer_only_what_can_work(client: TestClient) -> None:
    answer = mint(client, integrationName=None)
    page_path, _ = open_page(client, answer["token"])
    assert offered(client, page_path, "openai") and offered(client, page_path, "github")
    assert not offered(client, page_path, "slack")  # OAuth only, and no app for it here
    choose(client, page_path, action="choose", integration="github")
    page = client.get(page_path).text
    assert "How do you want to connect?" not in page  # one workable way: straight to it
    assert 'name="secret_text"' in page
    forged = mint(client, integrationName=None)
    forged_path, _ = open_page(client, forged["token"])
    assert choose(client, forged_path, action="choose", integration="slack").status_code == 404

    with_app = mint(client, integrationName=None, **CUSTOM_APP)
    path, _ = open_page(client, with_app["token"])
    assert offered(client, path, "slack")


# -- plain words ---------------------------------------------------------------------------
def test_error_pages_speak_plainly_and_keep_the_code_out_of_the_text(
    client: TestClient, make_client: Any,
) -> None:
    answer = mint(client)
    page_path, _ = open_page(client, answer["token"])
    stranger = make_client().get(page_path)  # another browser, without the binding
    assert stranger.status_code == 403
    assert 'data-error-code="SESSION_NOT_BOUND"' in stranger.text
    text = re.sub(r"<[^>]+>", " ", stranger.text)
    assert "SESSION_NOT_BOUND" not in text and "Error code" not in text


def test_a_link_that_expires_after_a_failed_attempt_reads_failed_with_that_reason(
    settings: Settings, core_app: Starlette, make_app: Any,
) -> None:
    clock = Clock()
    app = make_app(settings, core_transport=RefusesOnce(core_app), clock=clock)
    with TestClient(app, base_url=PORTAL_URL, follow_redirects=False) as client:
        answer = mint(client, expiresIn=600)
        page_path, csrf = open_page(client, answer["token"])
        submit(client, page_path, csrf, secret_text="sk-live-123")
        assert session_of(client, answer["sessionId"])["status"] == "PENDING"
        clock.now += 601
        session = session_of(client, answer["sessionId"])
        assert (session["status"], session["errorCode"]) == ("FAILED", "CORE_API_REJECTED")
        expired = client.get(page_path)  # the page says the link expired, not "another browser"
        assert expired.status_code == 401
        assert 'data-error-code="INVALID_TOKEN"' in expired.text


def test_the_binding_cookie_outlives_the_link_so_expiry_is_told_as_expiry(
    client: TestClient, settings: Settings,
) -> None:
    answer = mint(client, expiresIn=600)
    opened = client.get("/connect", params={"token": answer["token"]})
    binding = next(value for value in opened.headers.get_list("set-cookie")
                   if value.startswith("portal_binding="))
    max_age = int(re.search(r"Max-Age=(\d+)", binding, re.I).group(1))  # type: ignore[union-attr]
    assert max_age > 600  # the link's life plus the time a result stays readable


def test_every_error_page_has_a_way_forward(make_client: Any) -> None:
    client = make_client(rate_limit_pages="2/minute")
    answer = mint(client)
    client.get("/connect", params={"token": answer["token"]})
    client.get("/connect", params={"token": answer["token"]})
    limited = client.get("/connect", params={"token": answer["token"]})
    assert limited.status_code == 429
    assert "data-reload" in limited.text and "Try again" in limited.text  # waiting helps
    assert "data-close-window" in limited.text  # and a popup can be closed
    gone = make_client().get("/connect", params={"token": "cst_forged"})
    assert "data-close-window" in gone.text and "data-reload" not in gone.text
