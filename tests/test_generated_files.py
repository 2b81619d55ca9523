"""The generated files (openapi.json, catalog.schema.json) match the models they come from,
and the models match what the API really accepts and answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from portal import generated, openapi
from portal.catalog import document
from portal.settings import Settings

REPO = Path(__file__).resolve().parents[1]
CATALOG_DIR = REPO / "portal" / "catalog"


@pytest.mark.parametrize("path", sorted(generated.generated_files()),
                         ids=lambda path: path.name)
def test_a_checked_in_generated_file_is_what_the_models_generate(path: Path) -> None:
    expected = generated.generated_files()[path]
    assert path.exists(), f"{path} is missing: run ./dev generate"
    assert path.read_text(encoding="utf-8") == expected, (
        f"{path.relative_to(REPO)} differs from the models: run ./dev generate")


def test_the_check_names_a_drifted_file_and_writing_repairs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "portal"
    (package / "catalog").mkdir(parents=True)
    for path in generated.generated_files():
        shutil.copy(path, package / path.relative_to(generated.PACKAGE))
    monkeypatch.setattr(generated, "PACKAGE", package)
    assert generated.main(["--check"]) == 0

    drifted = package / "openapi.json"
    edited = json.loads(drifted.read_text())
    edited["paths"]["/api/v1/connect/token"]["post"]["summary"] = "edited by hand"
    drifted.write_text(json.dumps(edited, indent=2) + "\n")
    assert generated.main(["--check"]) == 1
    assert "out of date: portal/openapi.json" in capsys.readouterr().err

    assert generated.main([]) == 0
    assert generated.main(["--check"]) == 0
    assert json.loads(drifted.read_text()) == openapi.build()


def test_the_api_serves_the_generated_openapi_document(client: TestClient) -> None:
    assert client.get("/api/v1/openapi.json").json() == openapi.build()


def test_the_builtin_catalog_names_the_schema_that_ships_beside_it() -> None:
    catalog = json.loads((CATALOG_DIR / "integrations.json").read_text())
    schema_path = (CATALOG_DIR / catalog["$schema"]).resolve()
    assert schema_path == CATALOG_DIR / document.SCHEMA_FILE_NAME
    schema = json.loads(schema_path.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {"$schema", "integrations"}
    option_kinds = schema["$defs"]["Integration"]["properties"]["authOptions"]["items"]
    assert set(option_kinds["discriminator"]["mapping"]) == {
        "OAUTH2", "PLATFORM_OAUTH2", "SECRET_TEXT", "BASIC_AUTH", "CUSTOM_AUTH"}


# -- the document says what the API does -----------------------------------------------
def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = openapi.build()["components"]["schemas"]
    return schemas


def _mint(client: TestClient, settings: Settings, **body: Any) -> Any:
    return client.post("/api/v1/connect/token", json=body,
                       headers={"Authorization": f"Bearer {settings.api_keys[0]}"})


def test_every_documented_token_request_field_is_accepted_and_others_refused(
    client: TestClient, settings: Settings
) -> None:
    schema = _components()["TokenRequest"]
    assert schema["additionalProperties"] is False
    empty = _mint(client, settings).json()
    assert empty["code"] == "VALIDATION_ERROR"
    assert {name for name, text in empty["details"]["fields"].items()
            if text == "Required."} == set(schema["required"])

    body = {name: None for name in schema["properties"]} | {
        "connectionName": "c", "externalId": "e", "workspaceId": "w"}
    assert _mint(client, settings, **body).status_code == 200
    refused = _mint(client, settings, **body, integration_name="openai").json()
    assert refused["details"]["fields"] == {"integration_name": "Unknown field."}


def test_lookup_and_poll_answer_exactly_the_documented_session_fields(
    client: TestClient, settings: Settings
) -> None:
    schema = _components()["Session"]
    minted = _mint(client, settings, integrationName="openai", connectionName="c",
                   externalId="e", workspaceId="w").json()
    assert set(minted) == set(_components()["TokenResponse"]["required"])
    looked_up = client.get(f"/api/v1/connect/session/{minted['sessionId']}",
                           headers={"Authorization": f"Bearer {settings.api_keys[0]}"}).json()
    polled = client.post("/api/v1/connect/session/poll", json={"token": minted["token"]}).json()
    assert set(looked_up["session"]) == set(schema["properties"]) == set(schema["required"])
    assert polled == looked_up["session"]
    assert polled["status"] in schema["properties"]["status"]["enum"]


def test_the_catalog_listing_uses_only_documented_fields(client: TestClient) -> None:
    schemas = _components()
    integration = schemas["Integration"]["properties"]
    option = integration["authOptions"]["items"]["properties"]
    field_keys = set(schemas["Field"]["properties"])
    for item in client.get("/api/v1/integrations").json()["integrations"]:
        assert set(item) <= set(integration)
        for auth in item["authOptions"]:
            assert set(auth) <= set(option), auth["key"]
            assert set(auth.get("oauth", {})) <= set(option["oauth"]["properties"])
            for spec in [*auth.get("fields", {}).values(), *auth.get("props", {}).values()]:
                assert set(spec) <= field_keys
                assert spec["type"] in schemas["Field"]["properties"]["type"]["enum"]
