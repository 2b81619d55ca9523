"""Settings come from the environment and every error names its variable."""

from __future__ import annotations

import pytest

from portal.cli import main
from portal.settings import Settings, SettingsError

GOOD_KEY = "k" * 40


def test_defaults_are_sane() -> None:
    settings = Settings.from_env({})
    assert settings.token_ttl == 30 * 60
    assert settings.redis_url is None
    assert settings.public_url == "http://127.0.0.1:8000"


def test_lists_and_origins_are_parsed() -> None:
    settings = Settings.from_env({
        "PORTAL_SECRET_KEYS": f"{GOOD_KEY}, {'j' * 40}",
        "PORTAL_API_KEYS": "a" * 20,
        "PORTAL_ALLOWED_ORIGINS": "https://App.Example.com, https://app.example.com:443, http://localhost:3000",
        "PORTAL_PUBLIC_URL": "https://connect.example.com/",
    })
    assert settings.secret_keys == (GOOD_KEY, "j" * 40)
    assert settings.allowed_origins == ("https://app.example.com", "http://localhost:3000")
    assert settings.public_url == "https://connect.example.com"
    assert settings.secure_cookies


@pytest.mark.parametrize(("env", "variable"), [
    ({"PORTAL_SECRET_KEYS": "short"}, "PORTAL_SECRET_KEYS"),
    ({"PORTAL_API_KEYS": "short"}, "PORTAL_API_KEYS"),
    ({"PORTAL_TOKEN_TTL": "20000"}, "PORTAL_TOKEN_TTL"),
    ({"PORTAL_TOKEN_TTL": "soon"}, "PORTAL_TOKEN_TTL"),
    ({"PORTAL_PUBLIC_URL": "ftp://x"}, "PORTAL_PUBLIC_URL"),
    ({"PORTAL_PUBLIC_URL": "https://u:p@x.example"}, "PORTAL_PUBLIC_URL"),
    ({"PORTAL_ALLOWED_ORIGINS": "https://a.example/path"}, "PORTAL_ALLOWED_ORIGINS"),
    ({"PORTAL_ALLOWED_ORIGINS": "a.example"}, "PORTAL_ALLOWED_ORIGINS"),
    ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
    ({"CORE_API_URL": "https://core.example"}, "CORE_API_KEY"),
    ({"PORTAL_LOG_LEVEL": "LOUD"}, "PORTAL_LOG_LEVEL"),
])
def test_invalid_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)


def test_serve_refuses_to_start_without_secret_or_api_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("PORTAL_SECRET_KEYS", "PORTAL_API_KEYS", "REDIS_URL", "CORE_API_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve"]) == 2
    assert "PORTAL_SECRET_KEYS is required" in capsys.readouterr().err
    monkeypatch.setenv("PORTAL_SECRET_KEYS", GOOD_KEY)
    assert main(["serve"]) == 2
    assert "PORTAL_API_KEYS is required" in capsys.readouterr().err
