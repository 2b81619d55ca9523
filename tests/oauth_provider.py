"""A real OAuth 2.0 / OpenID Connect provider for the tests: `oidc-provider` from npm
(installed by ./dev test into tests/oauth_server/node_modules), run by node on a free
loopback port. PKCE is required, refresh tokens are issued, `iss` is sent in every
authorization response (RFC 9207). Also: a headless walk through its sign-in pages, and
the catalog entries and platform-app file that point the portal at it."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

SERVER_DIR = Path(__file__).parent / "oauth_server"
STARTUP_DEADLINE = 20.0


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    method: str  # client_secret_basic | client_secret_post


BASIC = Client("portal-basic", "basic-secret-Zq81xTr0c2Lw9vPq4mNs7yJd3Kf6", "client_secret_basic")
POST = Client("portal-post", "post-secret-Hb5kWq0zRt8uYx2CvLm4Nj7Ps1Ed9", "client_secret_post")
CUSTOM = Client("customer-own", "custom-secret-Ax7Bc2Dw9Ee4Fr1Gt6Hy3Ju8Ki5", "client_secret_post")
CLIENTS = (BASIC, POST, CUSTOM)


@dataclass(frozen=True)
class Provider:
    issuer: str
    process: subprocess.Popen[str]


@contextmanager
def run_provider(redirect_uris: list[str]) -> Iterator[Provider]:
    """Start the provider; yields once its discovery document answers."""
    if not (SERVER_DIR / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError("oidc-provider is not installed: run ./dev test, which installs it")
    config = {
        "redirectUris": redirect_uris,
        "clients": [{"clientId": c.client_id, "clientSecret": c.client_secret,
                     "method": c.method} for c in CLIENTS],
    }
    process = subprocess.Popen(
        ["node", str(SERVER_DIR / "server.mjs"), json.dumps(config)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    try:
        try:
            line = lines.get(timeout=STARTUP_DEADLINE)
        except queue.Empty:
            raise RuntimeError("the OAuth provider did not start") from None
        issuer = line.split()[1]
        httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=5).raise_for_status()
        yield Provider(issuer=issuer, process=process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def catalog_entries(issuer: str) -> list[dict[str, Any]]:
    """One integration per client authentication method, both against the provider."""
    def entry(name: str, method: str) -> dict[str, Any]:
        return {
            "name": name, "displayName": f"Test ID {method.title()}", "category": "Testing",
            "description": "A real OpenID Connect provider on loopback.",
            "website": "https://provider.example",
            "authOptions": [{
                "key": "oauth2", "type": "OAUTH2", "displayName": "Sign in",
                "authUrl": f"{issuer}/auth", "tokenUrl": f"{issuer}/token",
                "scope": "openid offline_access", "pkce": True,
                "authorizationMethod": method, "issParameterSupported": True,
                "extraParams": {"prompt": "consent"},
            }],
        }
    return [entry("testid-basic", "HEADER"), entry("testid-post", "BODY")]


def platform_apps() -> dict[str, Any]:
    return {"apps": {
        "testid-basic": {"clientId": BASIC.client_id, "clientSecret": BASIC.client_secret},
        "testid-post": {"clientId": POST.client_id, "clientSecret": POST.client_secret},
    }}


def write_config(directory: Path, issuer: str) -> tuple[Path, Path]:
    """The catalog file and the PORTAL_OAUTH_APPS file for the provider at `issuer`."""
    catalog = directory / "testid-catalog.json"
    catalog.write_text(json.dumps({"integrations": catalog_entries(issuer)}))
    apps = directory / "oauth-apps.json"
    apps.write_text(json.dumps(platform_apps()))
    return catalog, apps


def sign_in(
    browser: httpx.Client, authorize_url: str, *, deny: bool = False, stop_at: str
) -> str:
    """Walk the provider's login and consent pages as a user would, without a browser.

    Returns the URL the provider sends the user back to (the first one under `stop_at`).
    """
    response = browser.get(authorize_url)
    for _ in range(10):
        location = response.headers.get("location")
        if location is not None:
            target = str(response.url.join(location))
            if target.startswith(stop_at):
                return target
            response = browser.get(target)
            continue
        form = re.search(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', response.text, re.S)
        assert form, response.text[:500]
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form[2]))
        if 'name="login"' in form[2]:
            fields.update(login="alice", password="any-password")
        if deny and fields.get("prompt") == "consent":
            cancel = re.search(r'<a href="([^"]+)">\[ Cancel \]</a>', response.text)
            assert cancel, response.text[:500]
            response = browser.get(str(response.url.join(cancel[1])))
            continue
        response = browser.post(str(response.url.join(form[1])), data=fields)
    raise AssertionError("the provider never sent the user back")
