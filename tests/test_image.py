"""The production image, built from the Dockerfile and run by a real Docker engine: it runs
unprivileged with no build tools in it, becomes healthy by its own HEALTHCHECK, serves the
backend API and the connect page against a real Redis and delivers to a core API, stops
cleanly on SIGTERM, and compose.yaml runs it with its Redis.

`./dev test` installs and starts the engine (and makes the base image when Docker Hub is
out of reach); `./dev image` builds the same image by hand."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import (
    API_KEY,
    AUTH,
    CORE_API_KEY,
    SECRET_KEY,
    core_connections,
    mint,
    open_page,
    session_of,
    submit,
)
from tests.core_standin import core_standin_process
from tests.live_servers import (
    LOOPBACK,
    REPOSITORY,
    ServerProcess,
    delete_keys,
    free_port,
    wait_until,
)

pytestmark = pytest.mark.image

IMAGE = "connect-portal:test"
BUILD_TIMEOUT = 900  # a cold build on a slow mirror; a warm one takes seconds
START_DEADLINE = 60.0
ENGINE_MISSING = "run ./dev test, which installs and starts it (and the base image)"
SECRET_TYPED = "sk-proj-imageTest7f3kQ9zLx2VbN8mR4tY6uW1"
# What must not be on the image's PATH: compilers, make, the linker, pip.
BUILD_TOOLS = ("gcc", "cc", "c++", "make", "ld", "pip", "pip3")


def docker(*args: str, timeout: float = 120,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def extra_ca_certs() -> str:
    """The machine's own authorities (a proxy that inspects TLS), for pip in the build
    stage only, as `./dev image` passes them (Dockerfile, EXTRA_CA_CERTS)."""
    return "".join(path.read_text() for path in
                   sorted(Path("/usr/local/share/ca-certificates").glob("*.crt")))


@pytest.fixture(scope="module")
def image() -> str:
    """The image, built once for the module from the working tree."""
    if shutil.which("docker") is None:
        pytest.fail(f"no docker command: {ENGINE_MISSING}")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30,
                          check=False)
    if info.returncode != 0:
        pytest.fail(f"no Docker engine answers ({info.stderr.strip()}): {ENGINE_MISSING}")
    started = time.monotonic()
    build = subprocess.run(
        ["docker", "build", "--build-arg", f"EXTRA_CA_CERTS={extra_ca_certs()}",
         "-t", IMAGE, "."],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    if build.returncode != 0:
        pytest.fail(f"docker build failed ({build.returncode}):\n{build.stdout}\n{build.stderr}")
    print(f"docker build: {time.monotonic() - started:.1f}s")
    return IMAGE


def health_of(container: str) -> str:
    return docker("inspect", "-f", "{{.State.Health.Status}}", container).stdout.strip()


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class Container:
    name: str
    url: str
    redis_prefix: str
    core_url: str

    def logs(self) -> str:
        result = docker("logs", self.name)
        return result.stdout + result.stderr


@pytest.fixture
def container(image: str, redis_url: str, tmp_path: Path) -> Iterator[Container]:
    """The image run as an operator would (and locked down as the Kubernetes example runs
    it), with real settings: the test Redis (under a key prefix of its own) and the core
    API stand-in on this machine (host network, so both loopback servers are in reach),
    two workers, the Dockerfile's own HEALTHCHECK polled every second instead of every 15
    (`--health-interval` only: the check is the image's)."""
    name = f"connect-portal-test-{uuid.uuid4().hex[:12]}"
    prefix = f"test:image:{uuid.uuid4().hex}:"
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    core: ServerProcess = core_standin_process(tmp_path / "core.log", api_key=CORE_API_KEY)
    with core:
        settings = {
            "PORTAL_PUBLIC_URL": url, "PORTAL_PORT": str(port),
            "PORTAL_SECRET_KEYS": SECRET_KEY, "PORTAL_API_KEYS": API_KEY,
            "REDIS_URL": redis_url, "PORTAL_REDIS_PREFIX": prefix,
            "CORE_API_URL": core.url, "CORE_API_KEY": CORE_API_KEY,
            # The built-in openai entry would check the key with OpenAI, out of reach here.
            "PORTAL_VERIFY_CREDENTIALS": "false",
        }
        environment = [item for name_value in settings.items()
                       for item in ("-e", "=".join(name_value))]
        # As deploy/kubernetes.yaml runs it: a read-only root filesystem with a writable
        # /tmp, no privilege escalation, no capabilities.
        docker("run", "-d", "--name", name, "--network", "host", "--health-interval", "1s",
               "--read-only", "--tmpfs", "/tmp", "--security-opt", "no-new-privileges",
               "--cap-drop", "ALL", *environment, image)
        try:
            yield Container(name=name, url=url, redis_prefix=prefix, core_url=core.url)
        finally:
            docker("rm", "-f", name, check=False)
            delete_keys(redis_url, prefix)


def wait_ready(container: Container) -> None:
    try:
        wait_until(lambda: ready(container.url), timeout=START_DEADLINE,
                   what=f"{container.url}/readyz")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\ncontainer log:\n{container.logs()}") from None


def test_the_image_runs_unprivileged_and_carries_no_build_tools(image: str) -> None:
    config = json.loads(docker("image", "inspect", "-f", "{{json .Config}}", image).stdout)
    assert config["User"] == "portal"
    assert config["Cmd"] == ["connect-portal", "serve"]
    assert config["StopSignal"] == "SIGTERM"
    assert "/readyz" in " ".join(config["Healthcheck"]["Test"])
    script = (
        "id -u; id -g; "
        f"for tool in {' '.join(BUILD_TOOLS)}; do command -v $tool; done; "
        "find / -xdev \\( -name '*.whl' -o -name pip -o -name 'pip-*' \\) -print; "
        "dpkg-query -W -f '${Package}\\n'"
        " | grep -E '^(gcc|g\\+\\+|cpp)(-[0-9]+)?$|^(make|binutils)$|-dev$'; "
        "find /var/lib/apt/lists -mindepth 1; find /var/cache/apt -name '*.deb' -o -name '*.bin'; "
        "connect-portal --help >/dev/null && echo runs")
    lines = docker("run", "--rm", "--entrypoint", "sh", image, "-c", script).stdout.split()
    # Not root; no compiler, make or pip on PATH, no wheel or pip anywhere, no compiler
    # or -dev package installed, no apt lists or downloaded packages; the portal runs.
    assert lines == ["10001", "10001", "runs"], lines


def test_a_container_becomes_healthy_and_serves_the_api_and_the_connect_page(
    container: Container, redis_url: str
) -> None:
    wait_ready(container)
    # Docker's own verdict, from the HEALTHCHECK in the Dockerfile (not one given here).
    healthcheck = json.loads(docker("inspect", "-f", "{{json .Config.Healthcheck}}",
                                    container.name).stdout)
    assert "/readyz" in " ".join(healthcheck["Test"]) and "PORTAL_PORT" in healthcheck["Test"][1]
    wait_until(lambda: health_of(container.name) == "healthy", timeout=START_DEADLINE,
               what="Docker to report the container healthy")

    with httpx.Client(base_url=container.url, timeout=30) as client:
        # A partner backend mints a connect token and looks the session up.
        answer = mint(client)
        session_id = answer["sessionId"]
        assert answer["connectUrl"].startswith(f"{container.url}/connect")
        assert session_of(client, session_id)["status"] == "PENDING"
        # The session lives in the Redis given, under the prefix given.
        store = redis.Redis.from_url(redis_url)
        try:
            assert store.exists(f"{container.redis_prefix}session:{session_id}") == 1
        finally:
            store.close()
        # The user opens the link (templates and static files are in the image) and
        # connects; the outbox delivers the connection to the core API.
        page_path, csrf = open_page(client, answer["token"])
        assert client.get("/static/portal.css").status_code == 200
        submitted = submit(client, page_path, csrf, secret_text=SECRET_TYPED)
        # The result page when the core API answered within the inline budget, else a
        # redirect to the session's page: either way the session completes.
        assert submitted.status_code in {200, 303}, submitted.text
        wait_until(lambda: session_of(client, session_id)["status"] == "COMPLETED",
                   timeout=30, what="the session to complete")
        completed = session_of(client, session_id)
        unauthorized = client.get(f"/api/v1/connect/session/{session_id}")
        assert unauthorized.status_code == 401
    [connection] = core_connections(container.core_url, CORE_API_KEY)
    assert connection["id"] == completed["connectionId"]
    assert (connection["integrationName"], connection["externalId"]) == ("openai", "user-42")
    assert SECRET_TYPED not in container.logs()
    assert AUTH["Authorization"].removeprefix("Bearer ") not in container.logs()


def test_docker_stop_ends_the_portal_cleanly_well_within_the_grace_period(
    container: Container,
) -> None:
    wait_ready(container)
    started = time.monotonic()
    docker("stop", "--time", "30", container.name, timeout=60)
    took = time.monotonic() - started
    state = json.loads(docker("inspect", "-f", "{{json .State}}", container.name).stdout)
    log = container.logs()
    assert state["ExitCode"] == 0 and not state["OOMKilled"], log
    # SIGTERM alone did it: Docker sends SIGKILL only after the 30 s grace period.
    assert took < 10, f"docker stop took {took:.1f}s\n{log}"
    assert "Traceback" not in log and " ERROR " not in log, log
    # uvicorn's supervisor (PID 1) passed SIGTERM on to both workers, each shut its app
    # down and wrote its last lines (portal.logs.write_directly), and the supervisor
    # waited for them to exit before it stopped.
    assert "Received SIGTERM, exiting." in log, log
    assert log.count("Application shutdown complete.") == 2, log
    assert log.count("Finished server process") == 2, log
    assert log.count("Terminated child process") == 2, log
    assert log.rstrip().endswith("Stopping parent process [1]"), log


def test_compose_runs_the_portal_with_its_redis(image: str, tmp_path: Path) -> None:
    if shutil.which("docker-compose") is None:
        pytest.fail(f"no docker-compose: {ENGINE_MISSING}")
    project = f"portaltest{uuid.uuid4().hex[:10]}"
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    env = {**os.environ,
           "PORTAL_PUBLISH": f"{LOOPBACK}:{port}", "PORTAL_PUBLIC_URL": url,
           "PORTAL_SECRET_KEYS": SECRET_KEY, "PORTAL_API_KEYS": API_KEY,
           # Nothing is delivered in this test; the variable is required all the same.
           "CORE_API_URL": "http://core-api.invalid", "CORE_API_KEY": CORE_API_KEY,
           "EXTRA_CA_CERTS": extra_ca_certs()}
    compose = ["docker-compose", "-p", project, "-f", "compose.yaml",
               "-f", "tests/image/compose.test.yaml"]

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*compose, *args], cwd=REPOSITORY, env=env, text=True,
                                capture_output=True, timeout=timeout, check=False)
        assert result.returncode == 0, (f"docker-compose {' '.join(args)}:\n"
                                        f"{result.stdout}\n{result.stderr}")
        return result

    def logs() -> str:
        return run("logs", "--no-color").stdout

    try:
        run("up", "-d", "--build", timeout=BUILD_TIMEOUT)
        try:
            wait_until(lambda: ready(url), timeout=START_DEADLINE, what=f"{url}/readyz")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{logs()}") from None
        # The portal started only once Redis' healthcheck passed (depends_on).
        redis_id = run("ps", "-q", "redis").stdout.strip()
        assert health_of(redis_id) == "healthy"
        with httpx.Client(base_url=url, timeout=30) as client:
            answer = mint(client)
            assert session_of(client, answer["sessionId"])["status"] == "PENDING"
        # The session is in the compose Redis, under the portal's default prefix.
        exists = run("exec", "-T", "redis", "redis-cli", "EXISTS",
                     f"portal:session:{answer['sessionId']}").stdout.strip()
        assert exists == "1", logs()
        appendonly = run("exec", "-T", "redis", "redis-cli", "CONFIG", "GET",
                         "appendonly").stdout.split()
        assert appendonly == ["appendonly", "yes"]
        # JSON log lines, as compose.yaml asks.
        assert any(line.split("| ", 1)[-1].startswith('{"time"')
                   for line in logs().splitlines() if line.startswith("portal")), logs()
    finally:
        # Containers, network, Redis' volume and the portal image tagged for this project.
        subprocess.run([*compose, "down", "-v", "--rmi", "local", "--remove-orphans"],
                       cwd=REPOSITORY, env=env, capture_output=True, timeout=120, check=False)
