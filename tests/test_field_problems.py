"""What is wrong with a form is a typed value, and each one reads as its own sentence:
every FieldProblem in templates/_field.html (with the field's label and limits and the
integration's name), every refusal of the SSRF guard and the outbound policy as a
FieldProblem, every FormNotice in templates/connect.html."""

from __future__ import annotations

import html
import re
from types import SimpleNamespace
from typing import Any

import jinja2
import pytest
from jinja2 import nodes

from portal.catalog import AuthType, Choice, Field, FieldFormat, FieldType, load_catalog
from portal.field_problems import FieldProblem, FormNotice
from portal.settings import Settings
from portal.ssrf import Refusal

ACCOUNT = Field(key="account", type=FieldType.SHORT_TEXT, display_name="Account name",
                required=True, min=3, max=40)
REGION = Field(key="region", type=FieldType.STATIC_DROPDOWN, display_name="Region",
               required=True, options=(Choice(label="Europe", value="eu"),))
PORT = Field(key="port", type=FieldType.NUMBER, display_name="Port", min=1.0, max=65535.0)
FALLBACK = "Check this value."

# What each problem says, on the field it is shown with (the integration is "Acme").
SAYS: dict[FieldProblem, tuple[Field, str]] = {
    FieldProblem.REQUIRED: (ACCOUNT, "Enter Account name."),
    FieldProblem.CHOICE: (REGION, "Choose one of the listed options."),
    FieldProblem.TOO_SHORT: (ACCOUNT, "Account name needs at least 3 characters."),
    FieldProblem.TOO_LONG: (ACCOUNT, "This is too long for Account name (at most 40 characters)."),
    FieldProblem.CONTROL_CHARACTERS: (
        ACCOUNT, "This contains characters that cannot be part of Account name. "
                 "Type or paste it again."),
    FieldProblem.PATTERN: (
        ACCOUNT, "This does not look like a valid Account name. Check that you copied all of it."),
    FieldProblem.NOT_A_NUMBER: (PORT, "Port must be a number."),
    FieldProblem.TOO_SMALL: (PORT, "Port must be at least 1."),
    FieldProblem.TOO_LARGE: (PORT, "Port must be at most 65535."),
    FieldProblem.REJECTED: (
        ACCOUNT, "Acme did not accept this Account name. Check it and enter it again."),
    FieldProblem.CHARSET: (
        ACCOUNT, "This Account name contains characters that cannot be sent to Acme: only "
                 "unaccented letters, digits and common symbols can. Check that you copied it "
                 "exactly."),
    FieldProblem.SUBDOMAIN_SUBDOMAIN: (
        ACCOUNT, "Enter only the name before the dot: lower-case letters, digits and hyphens, "
                 "up to 63 characters, not starting or ending with a hyphen."),
    FieldProblem.HOSTNAME_HOST: (
        ACCOUNT, "Enter a host name such as mail.example.com, without http:// or a port."),
    FieldProblem.HOSTNAME_PRIVATE_ADDRESS: (
        ACCOUNT, "This host is on a private or local network, which cannot be used here."),
    FieldProblem.HOSTNAME_UNRESOLVABLE: (
        ACCOUNT, "This host could not be found from here. Check the spelling."),
    FieldProblem.URL_URL: (
        ACCOUNT, "Enter an address such as https://example.com, without spaces, a query or a "
                 "fragment."),
    FieldProblem.URL_SCHEME: (ACCOUNT, "The address must start with https://."),
    FieldProblem.URL_USERINFO: (
        ACCOUNT, "The address must not contain a user name or password (nothing before an @)."),
    FieldProblem.URL_HOST: (ACCOUNT, "The host name in this address is not valid."),
    FieldProblem.URL_PORT: (ACCOUNT, "The port in this address is not valid."),
    FieldProblem.URL_SUBDOMAIN: (
        ACCOUNT, "Enter only the name before the dot: lower-case letters, digits and hyphens."),
    FieldProblem.URL_PRIVATE_ADDRESS: (
        ACCOUNT, "This address is on a private or local network, which cannot be used here."),
    FieldProblem.URL_UNRESOLVABLE: (ACCOUNT, "This address could not be found."),
}


@pytest.fixture
def templates(settings: Settings, make_app: Any) -> jinja2.Environment:
    """The portal's own template environment, filters and all."""
    env: jinja2.Environment = make_app(settings).state.templates.env
    return env


def _error_text(env: jinja2.Environment, field: Field, problem: str) -> str:
    page = env.get_template("_field.html").render(
        field=field, values={}, errors={field.key: problem}, option=None,
        integration=SimpleNamespace(display_name="Acme"))
    shown = re.search(rf'<p id="{field.key}-error" class="error">(.*?)</p>', page, re.DOTALL)
    assert shown, f"no error shown for {problem!r}"
    return html.unescape(shown.group(1))


def test_every_field_problem_has_a_sentence_of_its_own(templates: jinja2.Environment) -> None:
    assert set(SAYS) == set(FieldProblem), "a FieldProblem without an expected sentence here"
    for problem, (field, sentence) in SAYS.items():
        assert _error_text(templates, field, problem) == sentence, problem


def test_a_required_dropdown_asks_to_choose_and_a_text_without_max_omits_it(
    templates: jinja2.Environment,
) -> None:
    assert _error_text(templates, REGION, FieldProblem.REQUIRED) == "Choose Region."
    unbounded = Field(key="notes", type=FieldType.LONG_TEXT, display_name="Notes")
    assert _error_text(templates, unbounded, FieldProblem.TOO_LONG) == "This is too long for Notes."


def test_the_template_words_exactly_the_field_problems(templates: jinja2.Environment) -> None:
    """No member without words (it would read "Check this value."), and no words for a
    code that is not a member (a problem nothing can produce)."""
    assert templates.loader is not None
    source, _, _ = templates.loader.get_source(templates, "_field.html")
    messages = next(node.node for node in templates.parse(source).find_all(nodes.Assign)
                    if isinstance(node.target, nodes.Name) and node.target.name == "messages")
    assert isinstance(messages, nodes.Dict)
    keys = {pair.key.value for pair in messages.items if isinstance(pair.key, nodes.Const)}
    assert len(keys) == len(messages.items)
    assert keys == {problem.value for problem in FieldProblem}
    for problem in FieldProblem:
        field, _ = SAYS[problem]
        assert _error_text(templates, field, problem) != FALLBACK


def test_a_code_that_is_not_a_field_problem_cannot_be_made() -> None:
    with pytest.raises(ValueError):
        FieldProblem("url_bogus")
    assert FieldProblem("url_scheme") is FieldProblem.URL_SCHEME


# -- refusals of the SSRF guard and the outbound policy ---------------------------------
def test_every_refusal_of_a_url_keeps_its_own_problem() -> None:
    for reason in Refusal:
        assert FieldProblem.refused(FieldFormat.URL, reason) == f"url_{reason}"


def test_a_host_name_field_says_why_it_was_refused_or_that_it_is_no_host_name() -> None:
    own = {Refusal.HOST: FieldProblem.HOSTNAME_HOST,
           Refusal.PRIVATE_ADDRESS: FieldProblem.HOSTNAME_PRIVATE_ADDRESS,
           Refusal.UNRESOLVABLE: FieldProblem.HOSTNAME_UNRESOLVABLE}
    for reason in Refusal:
        assert (FieldProblem.refused(FieldFormat.HOSTNAME, reason)
                is own.get(reason, FieldProblem.HOSTNAME_HOST)), reason


def test_a_subdomain_field_is_refused_as_not_a_subdomain() -> None:
    for reason in Refusal:
        assert (FieldProblem.refused(FieldFormat.SUBDOMAIN, reason)
                is FieldProblem.SUBDOMAIN_SUBDOMAIN), reason


# -- notices of the whole form ----------------------------------------------------------
NOTICES = {
    FormNotice.PROVIDER_UNAVAILABLE: "could not be reached to check your details.",
}


def test_every_form_notice_is_said_on_the_credential_form(
    templates: jinja2.Environment, settings: Settings
) -> None:
    assert set(NOTICES) == set(FormNotice)
    integration = next(item for item in load_catalog(settings.catalog_paths)
                       if any(o.type is AuthType.SECRET_TEXT for o in item.auth_options))
    option = next(o for o in integration.auth_options if o.type is AuthType.SECRET_TEXT)
    for notice, sentence in NOTICES.items():
        page = templates.get_template("connect.html").render(
            session=SimpleNamespace(id="s-1"), integration=integration, option=option,
            csrf_token="t", errors={}, values={}, notice=notice, checked=True,
            csp_nonce=lambda: "n")
        shown = re.search(r'<div class="notice" role="alert" id="form-notice">(.*?)</div>',
                          page, re.DOTALL)
        assert shown, notice
        assert f"{integration.display_name} {sentence}" in html.unescape(
            re.sub(r"<[^>]+>", "", shown.group(1))), notice
