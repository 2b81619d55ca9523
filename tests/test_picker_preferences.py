"""The picker as a partner shapes it with the token: `preferredIntegrations` first, in
their order and marked "Suggested"; `allowedIntegrations` the only ones shown, and the
only ones a user can choose, whatever the form posts."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from portal.catalog import load_catalog
from tests.conftest import mint, open_page, session_of, submit


def listed(html: str) -> list[str]:
    """The apps the picker lists, in page order."""
    return re.findall(r'<li data-name="([^"]+)"', html)


def test_preferred_apps_come_first_in_the_partners_order_marked_suggested(
    client: TestClient,
) -> None:
    answer = mint(client, integrationName=None, partnerName="Acme Books",
                  preferredIntegrations=["groq", "anthropic"])
    page_path, _ = open_page(client, answer["token"])
    html = client.get(page_path).text
    names = listed(html)
    assert names[:2] == ["groq", "anthropic"]
    assert len(names) > 10 and names.count("groq") == 1
    assert html.count("data-suggested") == 2
    assert "Acme Books wants to connect one of your apps" in html


def test_allowed_apps_are_the_only_ones_listed_and_chosen(client: TestClient) -> None:
    answer = mint(client, integrationName=None,
                  allowedIntegrations=["openai", "anthropic", "groq"],
                  preferredIntegrations=["groq"])
    page_path, csrf = open_page(client, answer["token"])
    html = client.get(page_path).text
    assert listed(html) == ["groq", "anthropic", "openai"]
    assert "Choose an app to connect" in html

    refused = submit(client, page_path, csrf, action="choose", integration="deepseek")
    assert refused.status_code == 404
    assert session_of(client, answer["sessionId"])["integrationName"] is None

    chosen = submit(client, page_path, csrf, action="choose", integration="anthropic")
    assert chosen.status_code == 303
    assert session_of(client, answer["sessionId"])["integrationName"] == "anthropic"


def test_a_picker_without_preferences_lists_the_whole_catalog_unmarked(
    client: TestClient,
) -> None:
    answer = mint(client, integrationName=None)
    page_path, _ = open_page(client, answer["token"])
    html = client.get(page_path).text
    assert "data-suggested" not in html
    # The whole catalog a page at a time: every entry with a way to connect here (no
    # platform OAuth apps in these settings, so not the sign-in-only ones).
    workable = sum(1 for item in load_catalog()
                   if any(not option.type.is_oauth for option in item.auth_options))
    assert f"{workable} apps" in html
    for name in ("openai", "anthropic", "groq", "deepseek"):
        assert name in listed(client.get(page_path, params={"q": name}).text)
