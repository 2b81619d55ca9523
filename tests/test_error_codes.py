"""One error vocabulary: every code has one class at least, a class's status is its code's,
nothing but a leaf class can be raised, every code has the words its page shows, and the
answers the framework raises become the class of their status."""

from __future__ import annotations

import html
import inspect
from typing import Any

import pytest
from starlette.testclient import TestClient

from portal import errors, openapi
from portal.errors import ErrorCode, PortalError, SessionFailure
from portal.settings import Settings
from tests.conftest import PORTAL_URL


def _classes() -> list[type[PortalError]]:
    return [kind for _, kind in inspect.getmembers(errors, inspect.isclass)
            if issubclass(kind, PortalError)]


def _leaves() -> list[type[PortalError]]:
    return [kind for kind in _classes() if "code" in vars(kind)]


def test_every_code_is_raised_by_a_class_and_every_status_by_one() -> None:
    answered = {(kind.code, kind.status) for kind in _leaves()}
    assert answered == {(code, status) for code in ErrorCode for status in code.statuses}


def test_a_leaf_answers_its_code_and_status_and_its_kind_matches_the_status() -> None:
    kinds = {errors.ClientError: {400, 405, 413, 429}, errors.AuthError: {401, 403},
             errors.NotFoundError: {404}, errors.ConflictError: {409},
             errors.UpstreamError: {502}, errors.UnavailableError: {503},
             errors.ServerError: {500, 501}}
    for leaf in _leaves():
        error = leaf("text", details={"a": 1})
        assert error.envelope() == {"error": "text", "code": leaf.code.value, "details": {"a": 1}}
        kind = next(kind for kind in kinds if issubclass(leaf, kind))
        assert leaf.status in kinds[kind], leaf


def test_refresh_failed_is_400_when_refused_and_502_when_the_provider_failed() -> None:
    refused, failed = errors.RefreshFailed, errors.RefreshProviderFailed
    assert refused.code is failed.code is ErrorCode.REFRESH_FAILED
    assert (refused.status, failed.status) == (400, 502)


@pytest.mark.parametrize("kind", [PortalError, errors.ClientError, errors.NotFoundError])
def test_only_a_leaf_class_can_be_raised(kind: type[PortalError]) -> None:
    with pytest.raises(TypeError, match="raise a leaf class"):
        kind("no code")


def test_a_class_cannot_claim_a_status_its_code_does_not_answer() -> None:
    with pytest.raises(TypeError, match="does not answer 500"):
        type("Wrong", (errors.ClientError,), {"code": ErrorCode.NOT_FOUND, "status": 500})


def test_the_wire_value_of_every_code_is_its_name() -> None:
    assert [code.value for code in ErrorCode] == [code.name for code in ErrorCode]
    assert [code.value for code in SessionFailure] == [code.name for code in SessionFailure]


def test_every_code_has_page_words_and_every_page_text_is_used(
    settings: Settings, make_app: Any
) -> None:
    used = {code.message_key for code in ErrorCode}
    assert used == set(errors.PAGE_TEXTS)
    page = make_app(settings).state.templates.env.get_template("error.html")
    for code in ErrorCode:
        shown = html.unescape(page.render(code=code, status=code.status,
                                          csp_nonce=lambda: "nonce"))
        text = errors.PAGE_TEXTS[code.message_key]
        assert f"<title>{text.title}</title>" in shown, code
        assert text.advice in shown, code
        assert f'data-error-code="{code}"' in shown


def test_a_status_the_framework_raises_becomes_the_class_of_that_status() -> None:
    assert type(errors.for_http_status(404, "Not Found")) is errors.NotFound
    assert type(errors.for_http_status(405, "Method Not Allowed")) is errors.MethodNotAllowed
    assert type(errors.for_http_status(400, "bad form")) is errors.BadRequest
    assert type(errors.for_http_status(401, "Unauthorized")) is errors.BadRequest
    assert type(errors.for_http_status(503, "Unavailable")) is errors.InternalError


def test_a_page_the_framework_does_not_find_shows_its_page_words(
    settings: Settings, make_app: Any
) -> None:
    with TestClient(make_app(settings), base_url=PORTAL_URL) as client:
        page = client.get("/no-such-page")
        wrong_method = client.delete("/connect")
    assert page.status_code == 404
    assert "Page not found" in page.text and 'data-error-code="NOT_FOUND"' in page.text
    assert wrong_method.status_code == 405
    assert 'data-error-code="METHOD_NOT_ALLOWED"' in wrong_method.text


def test_openapi_lists_every_error_code_and_every_session_failure_code() -> None:
    document = openapi.build()
    schemas = document["components"]["schemas"]
    assert schemas["Error"]["properties"]["code"]["enum"] == [code.value for code in ErrorCode]
    assert schemas["Session"]["properties"]["errorCode"]["enum"] == [
        *(code.value for code in SessionFailure), None]
    for code in ErrorCode:
        assert f"| `{code}` | {', '.join(map(str, code.statuses))} | {code.meaning} |" in (
            document["info"]["description"])
