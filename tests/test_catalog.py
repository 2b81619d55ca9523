"""The catalog format: schema validation with useful messages, operator overrides,
`connect-portal catalog check`, and the public listing."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from portal.app import create_app
from portal.catalog import AuthType, CatalogError, FieldType, load_catalog, parse_catalog
from portal.settings import Settings

VALID_ENTRY: dict[str, Any] = {
    "name": "acme",
    "displayName": "Acme",
    "category": "Testing",
    "description": "The Acme API.",
    "website": "https://acme.example",
    "authOptions": [{
        "key": "custom",
        "type": "CUSTOM_AUTH",
        "displayName": "API key and region",
        "props": {
            "intro": {"type": "MARKDOWN", "markdown": "Find **both** in [settings](https://acme.example/s)."},
            "subdomain": {"type": "SHORT_TEXT", "displayName": "Subdomain", "required": True,
                          "format": "subdomain"},
            "region": {"type": "STATIC_DROPDOWN", "displayName": "Region", "required": True,
                       "defaultValue": "eu",
                       "options": [{"label": "Europe", "value": "eu"},
                                   {"label": "United States", "value": "us"}]},
            "api_key": {"type": "SECRET_TEXT", "displayName": "API key", "required": True},
        },
        "verification": {
            "method": "GET",
            "url": "https://{subdomain}.acme.example/api/me",
            "headers": {"Authorization": "Bearer {api_key}"},
            "blameField": "api_key",
        },
    }],
}


def entry(**changes: Any) -> dict[str, Any]:
    """VALID_ENTRY with changes; a key like "authOptions.0.props.region.type" goes deep."""
    result = copy.deepcopy(VALID_ENTRY)
    for path, value in changes.items():
        target: Any = result
        *parents, last = path.split(".")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is DELETE:
            del target[last]
        elif isinstance(target, list) and int(last) == len(target):
            target.append(value)
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return result


DELETE = object()


def catalog_text(*entries: dict[str, Any]) -> str:
    return json.dumps({"integrations": list(entries)})


def test_a_valid_entry_parses_with_every_part() -> None:
    (integration,) = parse_catalog(catalog_text(VALID_ENTRY), source="acme.json")
    option = integration.auth_options[0]
    assert option.type is AuthType.CUSTOM_AUTH
    assert [item.key for item in option.fields] == ["intro", "subdomain", "region", "api_key"]
    assert [item.key for item in option.inputs] == ["subdomain", "region", "api_key"]
    region = next(item for item in option.fields if item.key == "region")
    assert region.type is FieldType.STATIC_DROPDOWN
    assert option.verification is not None
    assert option.verification.blame_field == "api_key"
    assert option.verification.invalid_status == (401, 403)


BROKEN = [
    ({"name": "Acme Corp"}, "integration 'Acme Corp': name: must be lower-case"),
    ({"displayName": ""}, "integration 'acme': displayName: is required"),
    ({"website": "http://acme.example"}, "integration 'acme': website: must be an https:// URL"),
    ({"authOptions": []}, "integration 'acme': authOptions: must be a non-empty list"),
    ({"logo": "https://cdn.example/logo.png"}, "logo: must name a file shipped in static/"),
    ({"colour": "red"}, "integration 'acme': colour: unknown field"),
    ({"authOptions.0.type": "API_KEY"},
     "authOptions[0]: type: is 'API_KEY'; expected one of OAUTH2, PLATFORM_OAUTH2"),
    ({"authOptions.0.key": "my key"}, "authOptions[0] ('my key'): key: must be letters"),
    ({"authOptions.0.props": {}}, "('custom'): props: must be an object of fields"),
    ({"authOptions.0.props.region.type": "DROPDOWN"},
     "props.region: type: is 'DROPDOWN'; expected one of SHORT_TEXT"),
    ({"authOptions.0.props.region.options": []},
     "props.region: options: must be a non-empty list"),
    ({"authOptions.0.props.region.defaultValue": "asia"},
     "props.region: defaultValue: must be the value of one of the options"),
    ({"authOptions.0.props.api_key.defaultValue": "sk-123"},
     "props.api_key: defaultValue: a secret field cannot have a default"),
    ({"authOptions.0.props.port": {"type": "NUMBER", "displayName": "Port", "min": 10,
                                   "max": 1}}, "props.port: min: is larger than max"),
    ({"authOptions.0.props.port": {"type": "NUMBER", "displayName": "Port",
                                   "defaultValue": "587"}},
     "props.port: defaultValue: must be a number"),
    ({"authOptions.0.props.tls": {"type": "CHECKBOX", "displayName": "TLS", "pattern": "x"}},
     "props.tls: CHECKBOX fields take no pattern, min or max"),
    ({"authOptions.0.props.subdomain.pattern": "[a-"},
     "props.subdomain: pattern: not a valid regular expression"),
    ({"authOptions.0.props.subdomain.format": "email"},
     "props.subdomain: format: is 'email'; expected one of url, hostname, subdomain"),
    ({"authOptions.0.props.csrf_token": {"type": "SHORT_TEXT", "displayName": "X"}},
     "props.csrf_token: the key 'csrf_token' is reserved"),
    ({"authOptions.0.props.subdomain.format": DELETE},
     "verification: url: {subdomain} is in the host, so its field needs"),
    ({"authOptions.0.verification.url": "http://acme.example/api/me"},
     "verification: url: not a safe https URL (scheme)"),
    ({"authOptions.0.verification.url": "https://user@{subdomain}.acme.example/"},
     "verification: url: must not contain a user name or password"),
    ({"authOptions.0.verification.url": "https://{tenant}.acme.example/"},
     "verification: url: {tenant} is not a field of this option"),
    ({"authOptions.0.verification.url": "https://{subdomain}.acme.example/me?key={api_key}"},
     "verification: url: {api_key} is a secret and cannot be part of a URL"),
    ({"authOptions.0.verification.headers": {"Authorization": "Bearer {token}"}},
     "verification: headers.Authorization: {token} is not a field of this option"),
    ({"authOptions.0.verification.method": "DELETE"}, "verification: method: must be one of"),
    ({"authOptions.0.verification.blameField": "nope"},
     "verification: blameField: must name a field of this option"),
    ({"authOptions.0.verification.successStatus": [200, 999]},
     "verification: successStatus: must be a non-empty list of HTTP status codes"),
    ({"authOptions.1": {"key": "oauth", "type": "OAUTH2", "displayName": "Sign in",
                        "authUrl": "https://acme.example/oauth/authorize",
                        "tokenUrl": "https://acme.example/oauth/token",
                        "authorizationMethod": "QUERY"}},
     "authOptions[1] ('oauth'): authorizationMethod: must be HEADER or BODY"),
    ({"authOptions.1": {"key": "oauth", "type": "OAUTH2", "displayName": "Sign in",
                        "authUrl": "https://{shop}.acme.example/authorize",
                        "tokenUrl": "https://acme.example/oauth/token"}},
     "authOptions[1] ('oauth'): authUrl: {shop} is not a field of this option"),
    ({"authOptions.1": {"key": "oauth", "type": "OAUTH2", "displayName": "Sign in",
                        "authUrl": "https://acme.example/authorize",
                        "tokenUrl": "https://acme.example/oauth/token",
                        "extraParams": {"redirect_uri": "https://evil.example"}}},
     "extraParams: redirect_uri is set by the portal"),
    ({"authOptions.1": copy.deepcopy(VALID_ENTRY["authOptions"][0])},
     "integration 'acme': authOptions: two options have the same key"),
]


@pytest.mark.parametrize(("changes", "message"), BROKEN,
                         ids=[message[:50] for _, message in BROKEN])
def test_schema_rejects_a_broken_entry_naming_file_entry_and_field(
    changes: dict[str, Any], message: str
) -> None:
    broken = entry(**changes)
    with pytest.raises(CatalogError) as caught:
        parse_catalog(catalog_text(broken), source="operator.json")
    text = str(caught.value)
    assert text.startswith("operator.json: integration "), text
    assert message in text, text


# A list or object where one word is expected used to stop start-up with a TypeError
# traceback ("unhashable type") instead of a message naming the field.
@pytest.mark.parametrize(("changes", "message"), [
    ({"authOptions.0.verification.method": []},
     "('custom'): verification: method: must be one of GET, HEAD, POST"),
    ({"authOptions.0.verification.blameField": {}},
     "('custom'): verification: blameField: must name a field of this option"),
    ({"authOptions.0.props.region.defaultValue": ["eu"]},
     "('custom'): props.region: defaultValue: must be the value of one of the options"),
    ({"authOptions.1": {"key": "oauth", "type": "OAUTH2", "displayName": "Sign in",
                        "authUrl": "https://acme.example/oauth/authorize",
                        "tokenUrl": "https://acme.example/oauth/token",
                        "authorizationMethod": ["HEADER"]}},
     "('oauth'): authorizationMethod: must be HEADER or BODY"),
])
def test_a_list_or_object_where_a_word_belongs_is_named_not_a_crash(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(catalog_text(entry(**changes)), source="operator.json")
    assert str(caught.value).startswith("operator.json: integration 'acme': authOptions[")
    assert message in str(caught.value)


def test_a_catalog_file_may_name_the_shipped_schema(tmp_path: Path) -> None:
    schema = Path(__file__).parents[1] / "portal" / "catalog" / "catalog.schema.json"
    named = tmp_path / "ours.json"
    named.write_text(json.dumps({"$schema": str(schema), "integrations": [VALID_ENTRY]}))
    assert load_catalog([str(named)]).get("acme") is not None
    assert run_cli("catalog", "check", str(named)).returncode == 0


def test_a_file_that_is_not_a_catalog_is_named() -> None:
    with pytest.raises(CatalogError, match=r"^x.json: not valid JSON"):
        parse_catalog("{", source="x.json")
    with pytest.raises(CatalogError, match=r'^x.json: expected an object with an "integrations"'):
        parse_catalog("[]", source="x.json")
    with pytest.raises(CatalogError, match=r"^x.json: integration 'acme': name: is used twice"):
        parse_catalog(catalog_text(VALID_ENTRY, VALID_ENTRY), source="x.json")


def test_builtin_catalog_has_sixty_real_integrations_of_every_credential_type() -> None:
    catalog = load_catalog()
    assert len(catalog) >= 60
    types = {option.type for item in catalog for option in item.auth_options}
    assert {AuthType.SECRET_TEXT, AuthType.BASIC_AUTH, AuthType.CUSTOM_AUTH,
            AuthType.OAUTH2} <= types
    for item in catalog:
        for option in item.auth_options:
            if not option.type.is_oauth:
                assert option.help_url, f"{item.name}: {option.key} has no help link"


def test_portal_catalog_file_adds_and_overrides_entries(tmp_path: Path) -> None:
    override = entry(**{"name": "openai", "displayName": "OpenAI (company proxy)"})
    (tmp_path / "ours.json").write_text(catalog_text(VALID_ENTRY, override))
    catalog = load_catalog([str(tmp_path / "ours.json")])
    assert catalog.get("acme") is not None
    assert catalog.get("openai").display_name == "OpenAI (company proxy)"  # type: ignore[union-attr]
    assert catalog.get("anthropic") is not None


def test_portal_catalog_directory_loads_every_json_file_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "10-acme.json").write_text(catalog_text(VALID_ENTRY))
    (tmp_path / "20-acme-renamed.json").write_text(
        catalog_text(entry(displayName="Acme Two")))
    (tmp_path / "notes.txt").write_text("not a catalog")
    catalog = load_catalog([str(tmp_path)])
    assert catalog.get("acme").display_name == "Acme Two"  # type: ignore[union-attr]


def test_a_bad_operator_file_stops_start_up_naming_it(tmp_path: Path, settings: Settings) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(catalog_text(entry(**{"authOptions.0.props.region.options": []})))
    from dataclasses import replace

    with pytest.raises(CatalogError, match=r"bad.json: integration 'acme': authOptions\[0\] "
                                           r"\('custom'\): props.region: options"):
        create_app(replace(settings, catalog_paths=(str(bad),)))
    with pytest.raises(CatalogError, match="no such file or directory"):
        load_catalog([str(tmp_path / "missing.json")])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portal", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_catalog_check_command_reports_every_broken_entry(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(catalog_text(VALID_ENTRY))
    bad = tmp_path / "bad.json"
    bad.write_text(catalog_text(
        VALID_ENTRY,
        entry(name="two", **{"authOptions.0.props.region.defaultValue": "asia"}),
        entry(name="three", website="ftp://x"),
    ))
    ok = run_cli("catalog", "check", str(good))
    assert ok.returncode == 0, ok.stderr
    assert f"ok: {good}: 1 valid integrations" in ok.stdout

    failed = run_cli("catalog", "check", str(bad))
    assert failed.returncode == 1
    assert (f"error: {bad}: integration 'two': authOptions[0] ('custom'): props.region: "
            "defaultValue: must be the value of one of the options") in failed.stderr
    assert f"error: {bad}: integration 'three': website: must be an https:// URL" in failed.stderr
    assert f"2 problem(s): {bad}: 1 valid integrations" in failed.stdout


def test_catalog_check_accepts_the_builtin_file_and_names_a_missing_path(tmp_path: Path) -> None:
    builtin = Path(__file__).parents[1] / "portal" / "catalog" / "integrations.json"
    assert run_cli("catalog", "check", str(builtin)).returncode == 0
    missing = run_cli("catalog", "check", str(tmp_path / "nope.json"))
    assert missing.returncode == 1
    assert "nope.json: no such file or directory" in missing.stderr


def test_integrations_listing_describes_fields_and_never_a_secret(client: TestClient) -> None:
    listing = client.get("/api/v1/integrations").json()["integrations"]
    text = json.dumps(listing)
    assert "client_secret" not in text.lower()
    for item in listing:
        assert set(item) == {"name", "displayName", "category", "description", "website",
                             "logo", "authOptions"}
    zendesk = client.get("/api/v1/integrations", params={"name": "zendesk"}).json()
    option = zendesk["integrations"][0]["authOptions"][0]
    assert option["type"] == "CUSTOM_AUTH"
    assert option["props"]["subdomain"]["format"] == "subdomain"
    assert option["props"]["api_token"]["type"] == "SECRET_TEXT"
    assert option["verifiesCredentials"] is True
    shopify = client.get("/api/v1/integrations", params={"name": "shopify"}).json()
    oauth = next(o for o in shopify["integrations"][0]["authOptions"] if o["type"] == "OAUTH2")
    assert oauth["oauth"]["authUrl"] == "https://{shop}.myshopify.com/admin/oauth/authorize"
    assert oauth["props"]["shop"]["format"] == "subdomain"


def test_the_documented_example_entry_is_valid() -> None:
    text = (Path(__file__).parents[1] / "docs" / "catalog.md").read_text()
    example = text.split("## A full example", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    (zendesk,) = parse_catalog(example, source="docs/catalog.md")
    assert [option.key for option in zendesk.auth_options] == ["api_token", "oauth2"]
    assert {item.type for item in zendesk.auth_options[0].fields} == set(FieldType)


def test_serve_and_demo_refuse_to_start_with_a_bad_catalog(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(catalog_text(entry(website="http://acme.example")))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PORTAL_CATALOG": str(bad),
        "PORTAL_SECRET_KEYS": "k" * 40,
        "PORTAL_API_KEYS": "a" * 20,
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "CORE_API_URL": "https://core.example",
        "CORE_API_KEY": "c" * 20,
    }
    for command in (["serve", "--port", "0"], ["demo", "--port", "0"]):
        result = subprocess.run([sys.executable, "-m", "portal", *command], env=env,
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 2, (command, result.stderr)
        assert (f"connect-portal: catalog error: {bad}: integration 'acme': website: must be "
                "an https:// URL") in result.stderr
        assert "Traceback" not in result.stderr


# -- OAuth URLs whose host the end user would choose (red-team issue 8, finding 1) -----
BASE_URL_PROP = {"base_url": {"type": "SHORT_TEXT", "displayName": "Server URL",
                              "required": True, "format": "url"}}
HOST_PROP = {"host": {"type": "SHORT_TEXT", "displayName": "Server", "required": True,
                      "format": "hostname"}}
TWO_LABELS_PROP = {"org": {"type": "SHORT_TEXT", "displayName": "Org", "required": True,
                           "format": "subdomain"},
                   "domain": {"type": "SHORT_TEXT", "displayName": "Domain", "required": True,
                              "format": "subdomain"}}


def oauth_entry(props: dict[str, Any] | None = None, **option: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"key": "oauth2", "type": "OAUTH2", "displayName": "Sign in",
                            "authUrl": "https://acme.example/oauth/authorize",
                            "tokenUrl": "https://acme.example/oauth/token", **option}
    if props:
        spec["props"] = props
    return entry(**{"authOptions.1": spec})


USER_CHOSEN_HOSTS = [
    (oauth_entry(BASE_URL_PROP, tokenUrl="{base_url}/oauth/token"), "tokenUrl", "{base_url}"),
    (oauth_entry(BASE_URL_PROP, authUrl="{base_url}/oauth/authorize"), "authUrl", "{base_url}"),
    (oauth_entry(BASE_URL_PROP, issuer="{base_url}"), "issuer", "{base_url}"),
    (oauth_entry(HOST_PROP, tokenUrl="https://{host}/oauth/token"), "tokenUrl", "{host}"),
    (oauth_entry(HOST_PROP, tokenUrl="https://{host}:8443/oauth/token"), "tokenUrl", "{host}"),
    (oauth_entry(TWO_LABELS_PROP, tokenUrl="https://{org}.{domain}.com/oauth/token"),
     "tokenUrl", "{domain}"),
    (oauth_entry(TWO_LABELS_PROP, tokenUrl="https://{org}.com/oauth/token"), "tokenUrl",
     "{org}"),
    (oauth_entry(TWO_LABELS_PROP, tokenUrl="https://login.{org}.com/oauth/token"),
     "tokenUrl", "{org}"),
    (oauth_entry(TWO_LABELS_PROP, tokenUrl="https://{org}-login.com/oauth/token"),
     "tokenUrl", "{org}"),
]


@pytest.mark.parametrize(("broken", "field", "placeholder"), USER_CHOSEN_HOSTS,
                         ids=[f"{f}:{b['authOptions'][1].get(f)}" for b, f, _ in USER_CHOSEN_HOSTS])
def test_an_oauth_url_whose_host_the_user_chooses_is_refused_naming_the_field(
    broken: dict[str, Any], field: str, placeholder: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(catalog_text(broken), source="operator.json")
    text = str(caught.value)
    assert text.startswith(
        f"operator.json: integration 'acme': authOptions[1] ('oauth2'): {field}: "
        f"{placeholder} lets the end user choose the host"), text
    assert '"customerAppOnly": true' in text


@pytest.mark.parametrize("template", [
    "https://{org}.zendesk.com/oauth/tokens",
    "https://{org}.myshopify.com/admin/oauth/access_token",
    "https://{org}-eu.login.acme.example/oauth/token",
    "https://{org}.{domain}.login.acme.example/oauth/token",
    "https://login.acme.example/{org}/oauth2/v2.0/token",
])
def test_an_oauth_host_with_a_fixed_suffix_of_two_labels_loads(template: str) -> None:
    (integration,) = parse_catalog(catalog_text(oauth_entry(TWO_LABELS_PROP,
                                                            tokenUrl=template)),
                                   source="operator.json")
    oauth = integration.auth_options[1].oauth
    assert oauth is not None and oauth.token_url == template
    assert oauth.customer_app_only is False


def test_a_dropdown_in_the_host_is_the_operators_choice_not_the_users() -> None:
    sites = {"site": {"type": "STATIC_DROPDOWN", "displayName": "Site", "required": True,
                      "options": [{"label": "EU", "value": "login.acme.eu"},
                                  {"label": "US", "value": "login.acme.com"}]}}
    parse_catalog(catalog_text(oauth_entry(sites, tokenUrl="https://{site}/oauth/token")),
                  source="operator.json")


def test_customer_app_only_allows_a_user_chosen_host_and_is_listed() -> None:
    marked = oauth_entry(BASE_URL_PROP, authUrl="{base_url}/oauth/authorize",
                         tokenUrl="{base_url}/oauth/token", issuer="{base_url}",
                         customerAppOnly=True)
    (integration,) = parse_catalog(catalog_text(marked), source="operator.json")
    option = integration.auth_options[1]
    assert option.oauth is not None and option.oauth.customer_app_only is True
    assert option.public()["oauth"]["customerAppOnly"] is True


@pytest.mark.parametrize(("changes", "message"), [
    ({"type": "PLATFORM_OAUTH2", "customerAppOnly": True},
     "customerAppOnly: only OAUTH2 options can be limited to the customer's own app"),
    ({"customerAppOnly": "yes"}, "customerAppOnly: must be true or false"),
])
def test_customer_app_only_is_checked(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(catalog_text(oauth_entry(**changes)), source="operator.json")
    assert "authOptions[1] ('oauth2'): " + message in str(caught.value)


def test_catalog_check_refuses_a_user_chosen_token_host(tmp_path: Path) -> None:
    bad = tmp_path / "selfhosted.json"
    bad.write_text(catalog_text(oauth_entry(BASE_URL_PROP, tokenUrl="{base_url}/oauth/token")))
    failed = run_cli("catalog", "check", str(bad))
    assert failed.returncode == 1
    assert (f"error: {bad}: integration 'acme': authOptions[1] ('oauth2'): tokenUrl: "
            "{base_url} lets the end user choose the host") in failed.stderr
    marked = tmp_path / "marked.json"
    marked.write_text(catalog_text(oauth_entry(BASE_URL_PROP, tokenUrl="{base_url}/oauth/token",
                                               customerAppOnly=True)))
    ok = run_cli("catalog", "check", str(marked))
    assert ok.returncode == 0, ok.stderr
