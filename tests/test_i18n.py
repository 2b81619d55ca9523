"""The pages' languages: every message translated in every language, the language each
request gets, `lang`/`dir` on the page, German and Arabic pages as a user sees them (the
Arabic one in a real Chromium), the catalog's own words per language, and invites in the
end user's language."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from babel.messages.catalog import Catalog as MessageCatalog
from playwright.sync_api import Browser, expect
from starlette.testclient import TestClient

from portal import i18n, messages
from portal.catalog import CatalogError, load_catalog
from portal.catalog.i18n import (
    CatalogTranslations,
    builtin_integrations,
    parse_translation,
    read_translation,
)
from portal.end_users.invites import InviteMail
from portal.end_users.links import EndUserLink
from portal.settings import Settings
from tests.conftest import AUTH, mint, open_page, submit
from tests.live_servers import loopback_socket, server_thread, url_of

LANGUAGES = i18n.SUPPORTED[1:]


# -- the message catalogs --------------------------------------------------------------
@pytest.fixture(scope="module")
def extracted() -> MessageCatalog:
    """Every message of the templates and the code, extracted now (not the .pot on disk),
    so a new English text without translations fails here."""
    return messages.extract()


def test_the_sources_have_messages_to_translate(extracted: MessageCatalog) -> None:
    ids = {message.id if isinstance(message.id, str) else message.id[0]
           for message in extracted if message.id}
    # From a template, a plural, the error pages' texts and the code.
    assert "Choose an app to connect" in ids
    assert "%(num)d app" in ids
    assert "This link is not valid or has expired" in ids
    assert "%(brand)s invites you to connect your accounts" in ids


@pytest.mark.parametrize("locale", LANGUAGES)
def test_every_message_is_translated_and_none_is_fuzzy(
        extracted: MessageCatalog, locale: str) -> None:
    problems = [str(problem) for problem in messages.problems(extracted)
                if problem.locale == locale and problem.what != "placeholders differ"]
    assert problems == [], "run ./dev i18n update, then translate:\n" + "\n".join(problems)


@pytest.mark.parametrize("locale", LANGUAGES)
def test_every_translation_keeps_its_placeholders(
        extracted: MessageCatalog, locale: str) -> None:
    problems = [str(problem) for problem in messages.problems(extracted)
                if problem.locale == locale and problem.what == "placeholders differ"]
    assert problems == []


def test_a_message_no_language_has_yet_fails_the_check(extracted: MessageCatalog) -> None:
    grown = MessageCatalog()
    for message in extracted:
        if message.id:
            grown.add(message.id, None, context=message.context)
    grown.add("A sentence written today")
    missing = {problem.locale for problem in messages.problems(grown)
               if problem.message == "A sentence written today" and problem.what == "missing"}
    assert missing == set(LANGUAGES)


def test_a_fuzzy_translation_is_reported_and_not_used() -> None:
    po = ('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
          '#, fuzzy\nmsgid "Search"\nmsgstr "Suchen"\n\n'
          'msgid "All"\nmsgstr "Alle"\n')
    compiled = i18n.compile_po(po, "de")
    assert compiled.gettext("Search") == "Search"
    assert compiled.gettext("All") == "Alle"


def test_arabic_counts_in_its_six_plural_forms() -> None:
    assert messages.read_locale("ar").num_plurals == 6
    with i18n.activated("ar"):
        said = {n: i18n.ngettext("%(num)d app", "%(num)d apps", n) % {"num": n}
                for n in (0, 1, 2, 3, 11, 100)}
    assert said[1] == "تطبيق واحد" and said[2] == "تطبيقان"
    assert said[3] == "3 تطبيقات" and said[11] == "11 تطبيقًا" and said[100] == "100 تطبيق"
    assert len(set(said.values())) == 6


# -- which language ----------------------------------------------------------------------
@pytest.mark.parametrize(("requested", "header", "expected"), [
    ("ja", "de-DE,de;q=0.9", "ja"),  # the token's locale beats the browser
    (None, "de-DE,de;q=0.9,en;q=0.8", "de"),
    (None, "en;q=0.5, fr;q=0.9, ar;q=0.7", "fr"),  # by q-value, not by order
    (None, "pt-BR, es-MX;q=0.8", "es"),  # an unsupported first choice is passed over
    (None, "ar;q=0, de;q=0.1", "de"),  # q=0 means "not this one"
    (None, "pt-BR, zh", "en"),  # nothing supported: English
    (None, None, "en"),
    (None, "*", "en"),
    ("xx", "es", "es"),  # a locale that is not supported is not used
    ("de_CH", None, "de"),
    (None, "garbage;;q=x, ,ja-JP", "ja"),
])
def test_the_page_language_is_negotiated(requested: str | None, header: str | None,
                                         expected: str) -> None:
    assert i18n.negotiate(requested, header) == expected


# -- pages -----------------------------------------------------------------------------
def _html_tag(html: str) -> str:
    found = re.search(r"<html[^>]*>", html)
    assert found is not None
    return found.group(0)


def test_a_token_locale_sets_lang_and_dir_whatever_the_browser_says(
        client: TestClient) -> None:
    client.headers["Accept-Language"] = "de-DE,de;q=0.9"
    minted = mint(client, locale="ar")
    page_path, _ = open_page(client, minted["token"])
    page = client.get(page_path)
    assert 'lang="ar"' in _html_tag(page.text) and 'dir="rtl"' in _html_tag(page.text)
    assert page.headers["content-language"] == "ar"
    assert "ربط" in page.text  # the Connect button


def test_without_a_token_locale_the_browser_language_is_used(client: TestClient) -> None:
    client.headers["Accept-Language"] = "fr-CA,fr;q=0.9,en;q=0.5"
    minted = mint(client)
    page_path, _ = open_page(client, minted["token"])
    page = client.get(page_path)
    assert 'lang="fr"' in _html_tag(page.text) and 'dir="ltr"' in _html_tag(page.text)
    assert ">Connecter</button>" in page.text


def test_an_english_browser_gets_english(client: TestClient) -> None:
    minted = mint(client)
    page_path, _ = open_page(client, minted["token"])
    page = client.get(page_path)
    assert 'lang="en"' in _html_tag(page.text) and 'dir="ltr"' in _html_tag(page.text)
    assert ">Connect</button>" in page.text


def test_a_german_form_speaks_german_labels_and_errors(client: TestClient) -> None:
    minted = mint(client, locale="de")
    page_path, csrf = open_page(client, minted["token"])
    page = client.get(page_path)
    # The page's own words, and the catalog's German for OpenAI's field.
    assert ">Verbinden</button>" in page.text
    assert '<label for="secret_text">API-Schlüssel</label>' in page.text
    assert "Erstellen Sie in Ihrem OpenAI-Dashboard" in page.text
    assert ">Anzeigen</button>" in page.text

    refused = submit(client, page_path, csrf, secret_text="")
    assert refused.status_code == 400
    assert "Geben Sie API-Schlüssel ein." in refused.text
    assert "Prüfen Sie das markierte Feld. Es wurde nichts gespeichert." in refused.text
    assert "Enter API key" not in refused.text


def test_the_german_chooser_and_sign_in_page_name_options_and_scopes_in_german(
        settings: Settings, make_app: Any) -> None:
    from portal.auth.oauth.provider import ClientApp

    app = make_app(settings, oauth_apps={"github": ClientApp("client-1", "secret-1")})
    with TestClient(app, base_url="http://portal.test", follow_redirects=False) as client:
        minted = mint(client, integrationName="github", locale="de")
        page_path, csrf = open_page(client, minted["token"])
        chooser = client.get(page_path)
        assert "Wie möchten Sie sich verbinden?" in chooser.text
        assert "<strong>Persönliches Zugriffstoken</strong>" in chooser.text
        assert "<strong>Anmelden</strong>" in chooser.text

        chosen = submit(client, page_path, csrf, action="auth_method", auth_method="oauth2")
        assert chosen.status_code == 303, chosen.text
        sign_in = client.get(page_path)
        german = read_translation("de")
        assert german is not None
        scopes = (german.integrations["github"].auth_options or {})["oauth2"].scope_descriptions
        assert scopes is not None and len(scopes) == 2
        for words in scopes.values():
            assert f"<li>{words}</li>" in sign_in.text
        assert ">Mit GitHub anmelden</button>" in sign_in.text


def test_an_error_page_speaks_the_browser_language(client: TestClient) -> None:
    answer = client.get("/connect", params={"token": "cst_not-a-token"},
                        headers={"Accept-Language": "de"})
    assert answer.status_code == 401
    assert 'lang="de"' in _html_tag(answer.text)
    assert "Dieser Link ist ungültig oder abgelaufen" in answer.text

    arabic = client.get("/connect", params={"token": "cst_not-a-token"},
                        headers={"Accept-Language": "ar"})
    assert 'dir="rtl"' in _html_tag(arabic.text)
    assert "هذا الرابط غير صالح أو انتهت صلاحيته" in arabic.text


@pytest.mark.parametrize("locale", LANGUAGES)
def test_every_language_has_its_own_error_page(client: TestClient, locale: str) -> None:
    answer = client.get("/connect", params={"token": "cst_not-a-token"},
                        headers={"Accept-Language": f"{locale};q=0.9, en;q=0.1"})
    assert f'lang="{locale}"' in _html_tag(answer.text)
    assert answer.headers["content-language"] == locale
    with i18n.activated(locale):
        title = i18n.gettext("This link is not valid or has expired")
    assert title != "This link is not valid or has expired"
    assert f"<title>{title}</title>" in answer.text


def test_the_picker_counts_and_names_categories_in_the_page_language(
        client: TestClient) -> None:
    minted = mint(client, integrationName=None, locale="de")
    page_path, _ = open_page(client, minted["token"])
    page = client.get(page_path)
    count = re.search(r'id="picker-count"[^>]*>([^<]*)<', page.text)
    assert count is not None and re.fullmatch(r"\d+ Apps", count.group(1)), count
    assert ">KI</a>" in page.text  # the category "AI"
    assert "Apps suchen" in page.text

    one = client.get(page_path, params={"q": "stripe"})
    assert 'id="picker-count" class="muted small" role="status" aria-live="polite">1 App<' in (
        one.text)
    # The search reads the page's language too: "Zahlungen" is Stripe's category in German.
    german = client.get(page_path, params={"q": "zahlungen"})
    assert 'data-name="stripe"' in german.text


# -- the catalog's words -----------------------------------------------------------------
def test_every_shipped_catalog_translation_loads_and_fits_the_catalog() -> None:
    for locale in LANGUAGES:
        read_translation(locale)  # raises CatalogError naming the place
    catalog = load_catalog()
    translations = CatalogTranslations.load(catalog)
    openai = catalog.get("openai")
    assert openai is not None
    german = translations.localized(openai, "de")
    # A copy of a catalog object (not the object itself) is found too.
    assert translations.localized(replace(openai), "de") == german
    assert german.auth_options[0].fields[0].display_name == "API-Schlüssel"
    assert translations.localized(openai, "en") is openai
    assert translations.category("AI", "de") == "KI"


@pytest.mark.parametrize(("change", "complaint"), [
    ({"integrations": {"no-such-app": {"description": "x"}}}, "no integration has this name"),
    ({"integrations": {"openai": {"authOptions": {"nope": {"displayName": "x"}}}}},
     "no auth option with this key"),
    ({"integrations": {"openai": {"authOptions": {"api_key": {"props": {"a": {}}}}}}},
     "this option has no props"),
    ({"integrations": {"openai": {"authOptions": {"api_key": {"username": {}}}}}},
     "only BASIC_AUTH"),
    ({"integrations": {"openai": {"descripton": "typo"}}}, "unknown field"),
    ({"integrations": {"openai": {"description": ""}}}, "at least 1 character"),
    ({"categories": {"Gardening": "Gartenarbeit"}}, "no integration has this category"),
    ({"locale": "fr"}, "the file is for 'de'"),
])
def test_a_catalog_translation_that_does_not_fit_is_refused(
        change: dict[str, Any], complaint: str) -> None:
    document = {"locale": "de", **change}
    with pytest.raises(CatalogError, match=re.escape(complaint)):
        parse_translation(json.dumps(document), source="de.json", locale="de")


def test_a_dropdown_and_a_markdown_block_take_their_own_words_only() -> None:
    catalog = builtin_integrations()
    dropdown = markdown = None
    for integration in catalog.values():
        for option in integration.auth_options:
            for field in option.fields:
                place = (integration.name, option.key, field.key)
                if field.type.value == "STATIC_DROPDOWN" and dropdown is None:
                    dropdown = (*place, field.options[0].value)
                if field.type.value == "MARKDOWN" and markdown is None:
                    markdown = place
    assert dropdown is not None and markdown is not None

    def file(name: str, option: str, key: str, words: dict[str, Any]) -> str:
        return json.dumps({"locale": "de", "integrations": {name: {"authOptions": {
            option: {"props": {key: words}}}}}})

    name, option, key, value = dropdown
    parse_translation(file(name, option, key, {"options": {value: "Eins"}}),
                      source="de.json", locale="de")
    with pytest.raises(CatalogError, match="no option with this value"):
        parse_translation(file(name, option, key, {"options": {"zzz": "Eins"}}),
                          source="de.json", locale="de")
    with pytest.raises(CatalogError, match="only MARKDOWN blocks"):
        parse_translation(file(name, option, key, {"markdown": "Hilfe"}),
                          source="de.json", locale="de")
    with pytest.raises(CatalogError, match="a MARKDOWN block has only markdown"):
        parse_translation(file(*markdown, {"displayName": "Hilfe"}),
                          source="de.json", locale="de")


def test_the_scopes_an_oauth_option_asks_for_are_described_in_the_language() -> None:
    catalog = load_catalog()
    translations = CatalogTranslations.load(catalog)
    slack = catalog.get("slack")
    assert slack is not None
    option = next(option for option in slack.auth_options if option.oauth)
    german = translations.localized(option, "de")
    assert german.oauth is not None and option.oauth is not None
    described = dict(german.oauth.scope_descriptions)
    assert described["chat:write"] == "Nachrichten in Ihrem Namen senden"
    assert german.oauth.scope == option.oauth.scope  # what the provider is asked is unchanged
    with pytest.raises(CatalogError, match="describes no such scope"):
        parse_translation(json.dumps({"locale": "de", "integrations": {"slack": {"authOptions": {
            option.key: {"scopeDescriptions": {"admin": "Alles"}}}}}}),
            source="de.json", locale="de")


def test_the_portal_own_username_and_password_labels_are_translated() -> None:
    # An operator's BASIC_AUTH entry that names no labels gets the portal's own.
    builtin = next(integration for integration in load_catalog()
                   if any(option.type.value == "BASIC_AUTH"
                          for option in integration.auth_options))
    option = next(option for option in builtin.auth_options
                  if option.type.value == "BASIC_AUTH")
    plain = replace(option, fields=(replace(option.fields[0], display_name="Username"),
                                    replace(option.fields[1], display_name="Password")))
    operators = replace(builtin, auth_options=(plain,))
    translations = CatalogTranslations.load([operators])
    labels = [field.display_name for field in translations.localized(plain, "ja").fields]
    assert labels == ["ユーザー名", "パスワード"]
    assert translations.localized(plain, "en") is plain


def test_an_operator_override_of_an_entry_stays_english() -> None:
    catalog = load_catalog()
    openai = catalog.get("openai")
    assert openai is not None
    changed = replace(openai, description="Our own OpenAI entry")
    translations = CatalogTranslations.load([changed])
    assert translations.localized(changed, "de") is changed


# -- invites ----------------------------------------------------------------------------
def test_an_invite_is_written_in_the_requested_language() -> None:
    mail = InviteMail(brand_name="Acme")
    link = EndUserLink(jti="j-1", end_user_id="eu-1", workspace_id="ws-1",
                       integration_name=None, workspace_integration_id=None,
                       issued_at_ms=0, expires_at=1_800_000_000)
    german = mail.message(to="ada@example.com", display_name="Ada", link_url="https://x.test/l",
                          link=link, integration_title="OpenAI", locale="de")
    assert german["Subject"] == "Acme lädt Sie ein, Ihre Konten zu verbinden"
    text = german.get_body(("plain",))
    html = german.get_body(("html",))
    assert text is not None and html is not None
    assert "Hallo Ada," in text.get_content()
    assert "Der Link gilt bis 15.01.2027, 08:00:00 UTC." in text.get_content()
    assert '<html lang="de" dir="ltr">' in html.get_content()

    english = mail.message(to="ada@example.com", display_name="Ada",
                           link_url="https://x.test/l", link=link, integration_title=None)
    assert english["Subject"] == "Acme invites you to connect your accounts"
    english_text = english.get_body(("plain",))
    assert english_text is not None
    assert "The link works until 2027-01-15 08:00:00 UTC." in english_text.get_content()


def test_the_invite_api_takes_a_locale(client: TestClient) -> None:
    refused = client.post("/api/v1/end-users/eu-1/invite", headers=AUTH,
                          json={"email": "ada@example.com", "locale": "klingon"})
    assert refused.status_code == 400
    assert "locale" in refused.json()["details"]["fields"]


# -- in a real Chromium ------------------------------------------------------------------
@pytest.fixture
def live_portal(settings: Settings, make_app: Any) -> Iterator[str]:
    sock = loopback_socket()
    live = replace(settings, public_url=url_of(sock))
    with server_thread(make_app(live), sock) as url:
        yield url


@pytest.mark.browser
def test_an_arabic_form_lays_out_right_to_left(browser: Browser, live_portal: str) -> None:
    minted = httpx.post(f"{live_portal}/api/v1/connect/token", headers=AUTH, json={
        "integrationName": "openai", "connectionName": "RTL", "externalId": "rtl-1",
        "workspaceId": "ws-1", "locale": "ar"}).json()
    context = browser.new_context(viewport={"width": 360, "height": 640})
    try:
        page = context.new_page()
        page.goto(minted["connectUrl"])
        expect(page.locator("html")).to_have_attribute("dir", "rtl")
        expect(page.locator("html")).to_have_attribute("lang", "ar")
        label = page.locator("label[for=secret_text]")
        assert label.evaluate("node => getComputedStyle(node).direction") == "rtl"
        # Where the label's words are drawn, against the form they belong to: against its
        # right edge, as Arabic is read, far from the left one.
        text, form = label.evaluate("""node => {
            const range = document.createRange();
            range.selectNodeContents(node);
            const words = range.getBoundingClientRect();
            const form = node.closest("form").getBoundingClientRect();
            return [[words.left, words.right], [form.left, form.right]];
        }""")
        assert abs(text[1] - form[1]) <= 2, (text, form)
        assert text[0] - form[0] > 50, (text, form)
        expect(page.get_by_role("button", name="ربط", exact=True)).to_be_visible()
    finally:
        context.close()


@pytest.mark.browser
def test_the_arabic_picker_counts_as_arabic_does(browser: Browser, live_portal: str) -> None:
    minted = httpx.post(f"{live_portal}/api/v1/connect/token", headers=AUTH, json={
        "connectionName": "RTL", "externalId": "rtl-2", "workspaceId": "ws-1",
        "locale": "ar"}).json()
    with i18n.activated("ar"):
        said = {i18n.ngettext("%(num)d app", "%(num)d apps", n) % {"num": n}: n
                for n in range(1, 300)}
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(minted["connectUrl"])
        count = page.locator("#picker-count")
        expect(count).to_have_text(re.compile(r"\S"))
        assert count.inner_text() in said
        search = page.locator("[data-picker-input]")
        search.fill("stripe")
        expect(count).to_have_text("تطبيق واحد")
        seen = set()
        for query in ("mail", "sql", "token"):
            search.fill(query)
            expect(page.locator("#picker-results[aria-busy]")).to_have_count(0)
            expect(count).not_to_have_text("تطبيق واحد")
            shown = count.inner_text()
            assert shown in said, shown
            listed = page.locator("#picker-list li").count()
            assert listed == min(said[shown], 12), (shown, listed)
            seen.add(said[shown])
        assert any(n >= 3 for n in seen), seen
        search.fill("zzzz-nothing")
        expect(count).to_have_text("لا يوجد تطبيق يطابق بحثك.")
    finally:
        context.close()


_LINKS_AND_CODE = re.compile(r"\]\((https://[^)]+)\)|`([^`]+)`")


@pytest.mark.parametrize("locale", LANGUAGES)
def test_translated_markdown_keeps_its_links_and_code(locale: str) -> None:
    translated = read_translation(locale)
    if translated is None:
        pytest.skip(f"no catalog translation for {locale}")
    for name, words in translated.integrations.items():
        for key, option_words in (words.auth_options or {}).items():
            for prop, prop_words in (option_words.props or {}).items():
                if prop_words.markdown is None:
                    continue
                option = builtin_integrations()[name].auth_option(key)
                assert option is not None
                english = next(f for f in option.fields if f.key == prop).markdown
                assert (sorted(_LINKS_AND_CODE.findall(prop_words.markdown))
                        == sorted(_LINKS_AND_CODE.findall(english))), (locale, name, prop)


@pytest.mark.parametrize("locale", LANGUAGES)
def test_the_template_for_translators_is_a_valid_complete_file(locale: str) -> None:
    from portal.catalog.i18n import translation_template

    template = translation_template(locale)
    parse_translation(json.dumps(template), source=f"{locale}.json", locale=locale)
    assert set(template["integrations"]) == set(builtin_integrations())


def test_german_catalog_words_are_complete() -> None:
    from portal.catalog.i18n import missing_catalog_strings

    assert missing_catalog_strings("de") == []
