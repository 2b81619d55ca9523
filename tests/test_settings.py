"""Settings come from the environment and every error names its variable."""

from __future__ import annotations

import subprocess

import pytest

from portal.cli import main
from portal.settings import Settings, SettingsError
from tests.live_servers import CONNECT_PORTAL, process_env

GOOD_KEY = "k" * 40
# Everything `serve` requires, so that only the variable under test can stop it.
SERVE_ENV = {
    "PORTAL_SECRET_KEYS": GOOD_KEY,
    "PORTAL_API_KEYS": "a" * 20,
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "CORE_API_URL": "http://127.0.0.1:9",
    "CORE_API_KEY": "c" * 20,
}


def test_defaults_are_sane() -> None:
    settings = Settings.from_env({})
    assert settings.token_ttl == 30 * 60
    assert settings.redis_url is None
    assert settings.public_url == "http://127.0.0.1:8000"
    # Delivery: a day of retries, a 3 s wait in the request, jobs sealed with keys
    # derived from PORTAL_SECRET_KEYS.
    assert (settings.delivery_deadline, settings.delivery_inline_budget,
            settings.delivery_retry_cap, settings.outbox_keys) == (86400, 3.0, 60.0, ())


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
    ({"PORTAL_OUTBOUND_ALLOW": "0.0.0.0/0"}, "PORTAL_OUTBOUND_ALLOW"),
    ({"PORTAL_HOST": "http://0.0.0.0"}, "PORTAL_HOST"),
    ({"PORTAL_PORT": "65536"}, "PORTAL_PORT"),
    ({"PORTAL_WORKERS": "two"}, "PORTAL_WORKERS"),
    ({"PORTAL_OUTBOX_KEYS": "short"}, "PORTAL_OUTBOX_KEYS"),
    ({"PORTAL_DELIVERY_DEADLINE": "59"}, "PORTAL_DELIVERY_DEADLINE"),
    ({"PORTAL_DELIVERY_INLINE_BUDGET": "31"}, "PORTAL_DELIVERY_INLINE_BUDGET"),
    ({"PORTAL_DELIVERY_RETRY_CAP": "0"}, "PORTAL_DELIVERY_RETRY_CAP"),
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
    assert "CORE_API_URL and CORE_API_KEY are required" in capsys.readouterr().err
    monkeypatch.setenv("CORE_API_URL", "https://core.example")
    monkeypatch.setenv("CORE_API_KEY", "c" * 20)
    assert main(["serve"]) == 2
    assert "PORTAL_API_KEYS is required" in capsys.readouterr().err


def test_settings_made_in_code_are_checked_like_the_environment() -> None:
    with pytest.raises(SettingsError, match="PORTAL_OUTBOUND_ALLOW: '::/0' would allow"):
        Settings(outbound_allow="::/0")
    with pytest.raises(SettingsError, match="PORTAL_SECRET_KEYS is required"):
        Settings().require_runnable()
    with pytest.raises(SettingsError, match="CORE_API_URL and CORE_API_KEY are required"):
        Settings(secret_keys=(GOOD_KEY,), core_api_url="https://core.example"
                 ).require_runnable()


def test_where_serve_listens_comes_from_the_environment() -> None:
    default = Settings.from_env({})
    assert (default.host, default.port, default.workers) == ("0.0.0.0", 8000, 2)  # noqa: S104
    chosen = Settings.from_env({"PORTAL_HOST": "::1", "PORTAL_PORT": "9000",
                                "PORTAL_WORKERS": "4"})
    assert (chosen.host, chosen.port, chosen.workers) == ("::1", 9000, 4)
    assert Settings.from_env({"PORTAL_HOST": "portal-1.internal"}).host == "portal-1.internal"


@pytest.mark.parametrize(("variable", "value", "flags"), [
    ("PORTAL_PORT", "abc", ()),
    ("PORTAL_PORT", "70000", ()),
    ("PORTAL_PORT", "", ("--port", "-1")),
    ("PORTAL_HOST", "not a host", ()),
    ("PORTAL_HOST", "nowhere.invalid", ()),
    ("PORTAL_HOST", "", ("--host", "bad_name")),
    ("PORTAL_WORKERS", "x", ()),
    ("PORTAL_WORKERS", "0", ()),
    ("PORTAL_WORKERS", "", ("--workers", "1.5")),
])
def test_a_bad_listen_setting_stops_serve_with_exit_2_naming_the_variable(
    variable: str, value: str, flags: tuple[str, ...],
) -> None:
    env = {**SERVE_ENV, variable: value} if value else SERVE_ENV
    result = subprocess.run([CONNECT_PORTAL, "serve", *flags], env=process_env(env),
                            capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_variable_stops_the_demo_with_exit_2_naming_it() -> None:
    result = subprocess.run([CONNECT_PORTAL, "demo"],
                            env=process_env({"PORTAL_VERIFY_CREDENTIALS": "maybe"}),
                            capture_output=True, text=True, timeout=30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert "PORTAL_VERIFY_CREDENTIALS" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_secret_of_the_settings_shows_in_their_repr() -> None:
    """A Settings printed in a traceback or a debugger shows none of its secrets."""
    secrets_used = {
        "PORTAL_SECRET_KEYS": "s" * 40, "PORTAL_API_KEYS": "api-key-repr-0123456789",
        "REDIS_URL": "redis+sentinel://:primary-pass-0123@h1:26379/svc/0",
        "PORTAL_REDIS_SENTINEL_PASSWORD": "sentinel-pass-0123",
        "CORE_API_URL": "https://core.example", "CORE_API_KEY": "core-key-repr-0123456789",
        "PORTAL_WEBHOOK_URL": "https://hooks.example/in",
        "PORTAL_WEBHOOK_SECRET": "whsec_" + "A" * 44,
        "PORTAL_SMTP_URL": "smtp://mailer:smtp-pass-0123@mail.example:587",
        "PORTAL_METRICS_KEY": "metrics-key-repr-0123456789",
    }
    shown = repr(Settings.from_env(secrets_used))
    for name in ("PORTAL_SECRET_KEYS", "PORTAL_API_KEYS", "PORTAL_REDIS_SENTINEL_PASSWORD",
                 "CORE_API_KEY", "PORTAL_WEBHOOK_SECRET", "PORTAL_METRICS_KEY"):
        assert secrets_used[name] not in shown, name
    for password in ("primary-pass-0123", "smtp-pass-0123"):
        assert password not in shown
