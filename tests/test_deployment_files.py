"""The deployment files say what the portal does: every variable they set is one the
portal reads, their probes ask routes that exist with the meaning the docs give them, the
image runs unprivileged and checks readiness, and Redis keeps its data."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from starlette.routing import Route

from portal.app import create_app
from portal.settings import Settings

REPOSITORY = Path(__file__).resolve().parent.parent
# The portal's own variables: every name portal/ reads from the environment.
SOURCES = "\n".join(path.read_text(encoding="utf-8")
                    for path in (REPOSITORY / "portal").rglob("*.py"))


def read(name: str) -> list[Any]:
    return [item for item in yaml.safe_load_all((REPOSITORY / name).read_text()) if item]


def routes() -> set[str]:
    app = create_app(Settings(secret_keys=("k" * 40,), core_api_url="http://core.test",
                              core_api_key="core-key-0123456789"))
    return {route.path for route in app.routes if isinstance(route, Route)}


def assert_read_by_the_portal(names: list[str]) -> None:
    for name in names:
        assert f'"{name}"' in SOURCES, f"{name} is set but the portal never reads it"


def test_compose_sets_only_variables_the_portal_reads_and_redis_keeps_its_data() -> None:
    [compose] = read("compose.yaml")
    portal = compose["services"]["portal"]
    assert_read_by_the_portal(list(portal["environment"]))
    assert portal["environment"]["REDIS_URL"].startswith("redis://redis:")
    redis = compose["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"


def test_the_kubernetes_example_probes_readiness_and_liveness_on_real_routes() -> None:
    deployment, service = read("deploy/kubernetes.yaml")
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert_read_by_the_portal([item["name"] for item in container["env"]])
    probes = {container["readinessProbe"]["httpGet"]["path"],
              container["livenessProbe"]["httpGet"]["path"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes <= routes()
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] >= 10


def test_the_image_runs_unprivileged_and_checks_readiness() -> None:
    dockerfile = (REPOSITORY / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER portal$", final_stage, re.MULTILINE)
    assert "/readyz" in final_stage.split("HEALTHCHECK", 1)[1].split("\n\n")[0]
    # Build tools stay in the build stage: the final one installs Debian's python3 (and the
    # system's authorities) and copies the environment built there, nothing else.
    installed = re.search(r"apt-get install -y --no-install-recommends \\\n\s+([^\\]+)\\",
                          final_stage)
    assert installed and installed.group(1).split() == ["python3", "ca-certificates"]
    assert "pip " not in final_stage and "COPY --from=build /opt/portal " in final_stage
    assert '"/readyz"' in str(sorted(routes())).replace("'", '"')


@pytest.mark.parametrize("version", ["1.31", kubernetes_validate.latest_version()])
def test_the_kubernetes_example_is_valid_against_kubernetes_own_schemas(version: str) -> None:
    """No cluster runs here: the manifests are checked against the API schemas of
    Kubernetes itself (strict: an unknown or misspelt field is an error), from the
    oldest release still supported upstream to the newest the validator knows."""
    documents = read("deploy/kubernetes.yaml")
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)
    # The check is real: the same Deployment with a misspelt probe field fails it.
    broken = copy.deepcopy(documents[0])
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGett"] = container["readinessProbe"].pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)
