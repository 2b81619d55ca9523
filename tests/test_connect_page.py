"""The hosted connect page for SECRET_TEXT, driven over HTTP as a browser would."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.conftest import (
    FAST_DELIVERY,
    PARTNER_ORIGIN,
    PORTAL_URL,
    csrf_of,
    mint,
    open_page,
    received,
    session_of,
    submit,
)
from tests.live_servers import wait_until


def result_payload(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="connect-result">(.*?)</script>',
                      html, re.S)
    assert match, html
    payload: dict[str, Any] = json.loads(match.group(1))
    return payload


def test_link_binds_browser_with_httponly_lax_cookie_and_drops_the_token(
    client: TestClient,
) -> None:
    answer = mint(client)
    opened = client.get("/connect", params={"token": answer["token"]})
    assert opened.status_code == 303
    location = opened.headers["location"]
    assert location == f"/connect/s/{answer['sessionId']}"
    assert "cst_" not in location
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert f"Path=/connect/s/{answer['sessionId']}" in cookie


def test_form_shows_the_integration_and_a_masked_key_input(client: TestClient) -> None:
    answer = mint(client)
    page_path, _ = open_page(client, answer["token"])
    html = client.get(page_path).text
    assert "Connect your OpenAI account" in html
    assert 'href="https://platform.openai.com/api-keys"' in html
    assert re.search(r'<input id="secret_text" name="secret_text" type="password"', html)
    assert 'autocomplete="off"' in html
    assert "data-toggle-secret" in html  # show/hide control
    headers = client.get(page_path).headers
    assert headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_submit_delivers_once_with_idempotency_key_and_completes(
    client: TestClient, core_app: Starlette,
) -> None:
    answer = mint(client, endUserId="eu-9", scope="USER", allowedOrigins=[PARTNER_ORIGIN])
    page_path, csrf = open_page(client, answer["token"])
    result = submit(client, page_path, csrf, secret_text="  sk-proj-abc123  ", opener="1")
    assert result.status_code == 200
    [connection] = received(core_app)
    assert connection["idempotencyKey"] == answer["sessionId"]
    assert connection["body"] == {
        "type": "SECRET_TEXT",
        "integrationName": "openai",
        "externalId": "user-42",
        "displayName": "My OpenAI",
        "workspaceId": "ws-1",
        "endUserId": "eu-9",
        "scope": "USER",
        "authMethodKey": "api_key",
        "secretText": "sk-proj-abc123",
    }
    session = session_of(client, answer["sessionId"])
    assert session["status"] == "COMPLETED"
    assert session["connectionId"] == connection["id"]
    payload = result_payload(result.text)
    assert payload["targetOrigins"] == [PARTNER_ORIGIN]
    assert payload["message"] == {
        "type": "weavz-connect-result",
        "status": "success",
        "sessionId": answer["sessionId"],
        "connectionId": connection["id"],
        "integrationName": "openai",
        "externalId": "user-42",
    }
    assert "sk-proj-abc123" not in result.text


def test_second_submit_shows_the_result_and_delivers_nothing(
    client: TestClient, core_app: Starlette,
) -> None:
    answer = mint(client)
    page_path, csrf = open_page(client, answer["token"])
    submit(client, page_path, csrf, secret_text="sk-one")
    again = submit(client, page_path, csrf, secret_text="sk-two")
    assert again.status_code == 200
    assert result_payload(again.text)["message"]["status"] == "success"
    assert [c["body"]["secretText"] for c in received(core_app)] == ["sk-one"]
    assert client.get(page_path).status_code == 200  # the page now shows the result


def test_redirect_mode_sends_the_user_back_with_ids_only(client: TestClient) -> None:
    answer = mint(client, successRedirectUri=f"{PARTNER_ORIGIN}/done?tab=apps",
                  errorRedirectUri=f"{PARTNER_ORIGIN}/failed")
    page_path, csrf = open_page(client, answer["token"])
    result = submit(client, page_path, csrf, secret_text="sk-redirect-secret")
    assert result.status_code == 303
    location = httpx.URL(result.headers["location"])
    connection_id = session_of(client, answer["sessionId"])["connectionId"]
    assert f"{location.scheme}://{location.host}{location.path}" == f"{PARTNER_ORIGIN}/done"
    assert dict(location.params) == {
        "tab": "apps", "sessionId": answer["sessionId"], "connectionId": connection_id,
        "status": "success",
    }
    assert "sk-redirect-secret" not in str(location)


def test_redirect_mode_error_carries_the_code(make_client: Any) -> None:
    refusing = httpx.MockTransport(lambda request: httpx.Response(422, json={"error": "No"}))
    client = make_client(core_transport=refusing)
    answer = mint(client, successRedirectUri=f"{PARTNER_ORIGIN}/done",
                  errorRedirectUri=f"{PARTNER_ORIGIN}/failed")
    page_path, csrf = open_page(client, answer["token"])
    result = submit(client, page_path, csrf, secret_text="sk-x")
    # The refusal can be tried again: the user stays on the portal until they stop.
    assert result.status_code == 303
    assert not result.headers["location"].startswith(PARTNER_ORIGIN)
    csrf = csrf_of(client.get(page_path).text)
    stopped = submit(client, page_path, csrf, action="give_up")
    assert stopped.status_code == 303
    location = httpx.URL(stopped.headers["location"])
    assert location.path == "/failed"
    assert dict(location.params) == {
        "sessionId": answer["sessionId"], "status": "error", "code": "CORE_API_REJECTED",
    }


def test_redirect_mode_waits_on_the_finishing_page_then_goes_on_to_the_redirect_uri(
    make_client: Any,
) -> None:
    up = threading.Event()

    def core(request: httpx.Request) -> httpx.Response:
        if not up.is_set():
            return httpx.Response(503)
        return httpx.Response(201, json={"connection": {"id": "conn_late"}})

    client = make_client(core_transport=httpx.MockTransport(core),
                         delivery_timing=replace(FAST_DELIVERY, inline_budget=0.1))
    answer = mint(client, successRedirectUri=f"{PARTNER_ORIGIN}/done")
    page_path, csrf = open_page(client, answer["token"])
    result = submit(client, page_path, csrf, secret_text="sk-x")
    assert result.status_code == 303
    progress = result.headers["location"]
    assert progress == f"/connect/s/{answer['sessionId']}?then=redirect"
    waiting = client.get(progress)
    assert "Finishing your connection" in waiting.text
    up.set()
    wait_until(lambda: client.get(progress).status_code == 303, timeout=10,
               what="the finishing page to go on")
    location = httpx.URL(client.get(progress).headers["location"])
    assert (location.path, location.params["connectionId"]) == ("/done", "conn_late")


def test_popup_mode_renders_the_result_even_with_redirect_uris(client: TestClient) -> None:
    answer = mint(client, successRedirectUri=f"{PARTNER_ORIGIN}/done")
    page_path, csrf = open_page(client, answer["token"])
    result = submit(client, page_path, csrf, secret_text="sk-x", opener="1")
    assert result.status_code == 200
    assert result_payload(result.text)["message"]["status"] == "success"


def test_core_api_retries_reuse_the_idempotency_key(make_client: Any) -> None:
    seen: list[str] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["idempotency-key"])
        if len(seen) == 1:
            raise httpx.ConnectError("refused")
        if len(seen) == 2:
            return httpx.Response(502)
        return httpx.Response(201, json={"connection": {"id": "conn_after_retry"}})

    client = make_client(core_transport=httpx.MockTransport(flaky))
    answer = mint(client)
    page_path, csrf = open_page(client, answer["token"])
    submit(client, page_path, csrf, secret_text="sk-x")
    assert seen == [answer["sessionId"]] * 3
    session = session_of(client, answer["sessionId"])
    assert (session["status"], session["connectionId"]) == ("COMPLETED", "conn_after_retry")


@pytest.mark.parametrize("answer", [
    httpx.Response(422, json={"error": "Workspace <b>ws-1</b> is archived"}),
    httpx.Response(400, text="<b>no json</b>"),
])
def test_core_api_refusal_is_a_failed_attempt_the_backend_can_read(
    make_client: Any, answer: httpx.Response,
) -> None:
    code = "CORE_API_REJECTED"
    client = make_client(core_transport=httpx.MockTransport(lambda request: answer))
    minted = mint(client)
    page_path, csrf = open_page(client, minted["token"])
    result = submit(client, page_path, csrf, secret_text="sk-x", opener="1")
    assert result.status_code == 303 and result.headers["location"] == page_path
    session = session_of(client, minted["sessionId"])
    assert (session["status"], session["errorCode"]) == ("PENDING", code)
    assert session["error"]  # the core's reason, for the backend
    page = client.get(page_path).text
    assert "Your account could not be saved" in page and "Try again" in page
    assert "ws-1" not in page and "no json" not in page  # the core's words stay off the page
    stopped = submit(client, page_path, csrf_of(page), action="give_up", opener="1")
    message = result_payload(stopped.text)["message"]
    assert (message["status"], message["code"]) == ("error", code)
    assert session_of(client, minted["sessionId"])["status"] == "FAILED"


def test_empty_key_is_refused_next_to_the_field_and_changes_nothing(
    client: TestClient, core_app: Starlette,
) -> None:
    answer = mint(client)
    page_path, csrf = open_page(client, answer["token"])
    result = submit(client, page_path, csrf, secret_text="   ")
    assert result.status_code == 400
    assert 'id="secret_text-error"' in result.text
    assert 'aria-invalid="true"' in result.text
    assert received(core_app) == []
    assert session_of(client, answer["sessionId"])["status"] == "PENDING"


def test_rejected_key_is_never_written_back_into_the_page(make_client: Any) -> None:
    client = make_client()
    answer = mint(client)
    page_path, csrf = open_page(client, answer["token"])
    result = submit(client, page_path, csrf, secret_text="sk-bad\x01secret-part")
    assert result.status_code == 400
    assert "secret-part" not in result.text


def test_another_browser_cannot_use_the_page(client: TestClient, make_client: Any,
                                             core_app: Starlette) -> None:
    answer = mint(client)
    page_path, csrf = open_page(client, answer["token"])
    stranger = make_client()
    page = stranger.get(page_path)
    assert page.status_code == 403
    assert "Open the link in this browser first" in page.text
    posted = stranger.post(page_path, data={"csrf_token": csrf, "secret_text": "sk-evil"},
                           headers={"Origin": PORTAL_URL})
    assert posted.status_code == 403
    assert received(core_app) == []


@pytest.mark.parametrize(("csrf", "headers"), [
    (None, {"Origin": PORTAL_URL}),
    ("forged", {"Origin": PORTAL_URL}),
    ("valid", {"Origin": "https://evil.example"}),
    ("valid", {"Origin": "null", "Sec-Fetch-Site": "cross-site"}),
    ("valid", {"Sec-Fetch-Site": "same-site"}),
])
def test_csrf_and_origin_are_checked(client: TestClient, core_app: Starlette,
                                     csrf: str | None, headers: dict[str, str]) -> None:
    answer = mint(client)
    page_path, real_csrf = open_page(client, answer["token"])
    data = {"secret_text": "sk-x"}
    if csrf is not None:
        data["csrf_token"] = real_csrf if csrf == "valid" else csrf
    result = client.post(page_path, data=data, headers=headers)
    assert result.status_code == 403
    assert "CSRF_FAILED" in result.text
    assert received(core_app) == []
    assert session_of(client, answer["sessionId"])["status"] == "PENDING"


def test_picker_lets_the_user_choose_when_no_integration_was_fixed(
    client: TestClient, core_app: Starlette,
) -> None:
    answer = mint(client, integrationName=None)
    opened = client.get("/connect", params={"token": answer["token"]})
    page_path = opened.headers["location"]
    picker = client.get(page_path)
    assert "Choose an app to connect" in picker.text
    assert 'value="anthropic"' in picker.text
    from tests.conftest import csrf_of
    chosen = client.post(page_path, data={
        "csrf_token": csrf_of(picker.text), "action": "choose", "integration": "anthropic",
    }, headers={"Origin": PORTAL_URL})
    assert chosen.status_code == 303
    form = client.get(page_path)
    assert "Connect your Anthropic account" in form.text
    submit(client, page_path, csrf_of(form.text), secret_text="sk-ant-xyz")
    assert received(core_app)[0]["body"]["integrationName"] == "anthropic"
    assert session_of(client, answer["sessionId"])["integrationName"] == "anthropic"


def test_a_null_origin_from_a_no_referrer_page_is_accepted_with_a_valid_csrf_token(
    client: TestClient, core_app: Starlette,
) -> None:
    # Chromium sends `Origin: null` for form posts from a page with Referrer-Policy: no-referrer.
    answer = mint(client)
    page_path, csrf = open_page(client, answer["token"])
    result = client.post(page_path, data={"csrf_token": csrf, "secret_text": "sk-x"},
                         headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert result.status_code == 200
    assert len(received(core_app)) == 1


@pytest.mark.parametrize(("verify", "claims_check"), [(True, True), (False, False)])
def test_form_claims_a_credential_check_only_when_one_will_run(
    make_client: Any, verify: bool, claims_check: bool,
) -> None:
    client = make_client(verify_credentials=verify)
    page_path, _ = open_page(client, mint(client)["token"])
    html = client.get(page_path).text
    assert ("We check these details with OpenAI" in html) is claims_check
    assert ("Checking your details with OpenAI" in html) is claims_check  # the busy words


def test_a_second_submit_joins_the_first_instead_of_failing(make_client: Any) -> None:
    """A double click, Enter twice or a second tab: the later posts answer what the first
    does ("Finishing…", then the result), never "already finished"."""
    up = threading.Event()

    def core(request: httpx.Request) -> httpx.Response:
        if not up.is_set():
            return httpx.Response(503)
        return httpx.Response(201, json={"connection": {"id": "conn_once"}})

    client = make_client(core_transport=httpx.MockTransport(core),
                         delivery_timing=replace(FAST_DELIVERY, inline_budget=0.1))
    answer = mint(client)
    page_path, csrf = open_page(client, answer["token"])
    first = submit(client, page_path, csrf, secret_text="sk-x", opener="1")
    assert first.status_code == 303
    second = submit(client, page_path, csrf, secret_text="sk-x", opener="1")
    assert second.status_code == 303
    assert second.headers["location"] == first.headers["location"] == page_path
    assert "Finishing your connection" in client.get(second.headers["location"]).text
    up.set()
    wait_until(lambda: session_of(client, answer["sessionId"])["status"] == "COMPLETED",
               timeout=10, what="the delivery")
    third = submit(client, page_path, csrf, secret_text="sk-x", opener="1")
    assert third.status_code == 200
    assert result_payload(third.text)["message"]["connectionId"] == "conn_once"
