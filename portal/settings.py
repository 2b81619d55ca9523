"""Everything configurable, read from the environment and validated at start.

Every error names the variable it is about, so an operator can fix the deployment
from the message alone.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from limits import parse as parse_limit

from portal.outbound import OutboundPolicy
from portal.ssrf import LABEL

DEFAULT_TOKEN_TTL = 30 * 60
MAX_TOKEN_TTL = 4 * 60 * 60
MIN_TOKEN_TTL = 60
MIN_SECRET_KEY_LENGTH = 32
WEBHOOK_SECRET_PREFIX = "whsec_"
MIN_WEBHOOK_SECRET_BYTES = 24


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelUrl:
    """REDIS_URL of the form
    `redis+sentinel://[:password@]host1:port1,host2:port2/<service-name>[/<db>]`: Redis
    Sentinel at each host:port (26379 when the port is left out) watching the primary
    named `service-name`; the password (if any) is the Redis primary's, the sentinels
    are asked without one; `db` is 0 unless given."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelUrl:
    """`url` (REDIS_URL) as a `SentinelUrl`, or a SettingsError saying what is wrong."""
    form = ("REDIS_URL must be redis+sentinel://[:password@]host:port[,host:port...]"
            "/<service-name>[/<db>]")
    rest = url.removeprefix(f"{SENTINEL_SCHEME}://")
    if rest == url or "?" in rest or "#" in rest:
        raise SettingsError(form)
    netloc, _, path = rest.partition("/")
    password: str | None = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        password = unquote(userinfo.partition(":")[2]) or None
    sentinels = []
    for node in netloc.split(","):
        host, colon, port = node.rpartition(":") if ":" in node else (node, "", "")
        if not host or (colon and not port.isdigit()) or not 0 < int(port or 1) < 65536:
            raise SettingsError(f"{form} (bad sentinel address {node!r})")
        sentinels.append((host.strip("[]"), int(port) if port else DEFAULT_SENTINEL_PORT))
    parts = [unquote(part) for part in path.split("/")] if path else []
    if not parts or not parts[0] or len(parts) > 2 or (
            len(parts) == 2 and not parts[1].isdigit()):
        raise SettingsError(f"{form} (the service name, then an optional db number)")
    return SentinelUrl(sentinels=tuple(sentinels), service=parts[0],
                       db=int(parts[1]) if len(parts) == 2 else 0, password=password)


CLUSTER_SCHEME = "redis+cluster"
DEFAULT_CLUSTER_PORT = 6379
# Outbox shards (portal/store/outbox.py) on a Redis Cluster unless PORTAL_OUTBOX_SHARDS
# says otherwise; one Redis or Sentinel keeps one (the key names of before shards).
DEFAULT_CLUSTER_SHARDS = 16
MAX_OUTBOX_SHARDS = 1024


@dataclass(frozen=True)
class ClusterUrl:
    """REDIS_URL of the form `redis+cluster://[[user]:password@]host1:port1[,host2:port2...][/]`:
    seed nodes of a Redis Cluster (6379 when the port is left out); the client learns
    every other node from them. The password (if any) is the cluster's."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None


def parse_cluster_url(url: str) -> ClusterUrl:
    """`url` (REDIS_URL) as a `ClusterUrl`, or a SettingsError saying what is wrong."""
    form = "REDIS_URL must be redis+cluster://[[user]:password@]host:port[,host:port...]"
    rest = url.removeprefix(f"{CLUSTER_SCHEME}://")
    netloc, _, path = rest.partition("/")
    if rest == url or "?" in rest or "#" in rest or path:
        raise SettingsError(f"{form} (no database number or options: a cluster has db 0 only)")
    username: str | None = None
    password: str | None = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    nodes = []
    for node in netloc.split(","):
        host, colon, port = node.rpartition(":") if ":" in node else (node, "", "")
        if not host or (colon and not port.isdigit()) or not 0 < int(port or 1) < 65536:
            raise SettingsError(f"{form} (bad node address {node!r})")
        nodes.append((host.strip("[]"), int(port) if port else DEFAULT_CLUSTER_PORT))
    return ClusterUrl(nodes=tuple(nodes), username=username, password=password)


@dataclass(frozen=True, kw_only=True)
class Settings:
    public_url: str = "http://127.0.0.1:8000"
    # Secrets (and URLs that may carry a password) stay out of repr(): a Settings printed
    # in a traceback or a debugger shows none of them.
    secret_keys: tuple[str, ...] = field(default=(), repr=False)
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    redis_url: str | None = field(default=None, repr=False)
    # The sentinels' own password (their `requirepass`), for a redis+sentinel:// REDIS_URL.
    redis_sentinel_password: str | None = field(default=None, repr=False)
    redis_prefix: str = "portal:"
    # Outbox shards (docs/operations.md, "Redis Cluster"); None: 1 on one Redis or
    # Sentinel (the key names of before), DEFAULT_CLUSTER_SHARDS on a cluster.
    outbox_shards: int | None = None
    core_api_url: str | None = None
    core_api_key: str | None = field(default=None, repr=False)
    core_api_timeout: float = 10.0
    allowed_origins: tuple[str, ...] = ()
    token_ttl: int = DEFAULT_TOKEN_TTL
    log_level: str = "INFO"
    # "text" lines (the default) or one JSON object per line (portal/logs.py).
    log_format: str = "text"
    catalog_paths: tuple[str, ...] = field(default=())
    # Credential checks against the provider before saving (the catalog's verification).
    verify_credentials: bool = True
    verification_timeout: float = 5.0
    # Tests and development only: lets the SSRF guard accept plain http to loopback.
    allow_http_loopback: bool = False
    # Private networks, addresses and host names outbound requests may reach besides
    # public addresses (an identity provider inside the operator's network); docs/outbound.md.
    outbound_allow: str = ""
    # The platform's own OAuth apps (client id and secret per integration); docs/oauth.md.
    oauth_apps_file: str | None = None
    oauth_timeout: float = 10.0
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    # Delivery through the outbox (portal/delivery.py, docs/delivery.md): keys that seal
    # its jobs (empty: derived from secret_keys), how long a job is retried, how long the
    # submitting request waits for the first attempt, and the longest pause between tries.
    outbox_keys: tuple[str, ...] = field(default=(), repr=False)
    delivery_deadline: int = 24 * 60 * 60
    delivery_inline_budget: float = 3.0
    delivery_retry_cap: float = 60.0
    # End-user links and invites (portal/end_users/, docs/end-users.md): the SMTP server
    # invites go through (unset: invites answer 501), their sender, the name pages and
    # emails give the platform, and invites per end user per hour.
    smtp_url: str | None = field(default=None, repr=False)
    smtp_from: str = "Connect portal <no-reply@localhost>"
    brand_name: str = "the app"
    # The hosted pages' defaults when a token names no partner (portal/brand.py): an https
    # logo (PNG, JPEG, WebP or GIF, fetched and served by the portal) and a #rrggbb accent.
    brand_logo_url: str | None = None
    brand_accent: str | None = None
    invite_limit: int = 5
    # Abuse limits (portal/rate_limits.py), in the `limits` library's notation: per client
    # IP on the hosted pages and on the poll, per API key on minting, per session on form
    # submits; and the proxies whose X-Forwarded-For names the client (none by default).
    rate_limit_pages: str = "300/minute"
    rate_limit_poll: str = "600/minute"
    rate_limit_mint: str = "600/minute"
    rate_limit_submits: str = "10/10 minutes"
    trusted_proxies: tuple[str, ...] = ()
    # Origins allowed to show the portal in a frame; empty means no one ('none').
    frame_ancestors: tuple[str, ...] = ()
    # Server limits (portal/server.py, portal/middleware.py; the README's "Limits" table).
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    max_url_bytes: int = 8 * 1024
    header_timeout: float = 10.0
    keepalive_timeout: int = 5
    max_connections: int = 1000
    backlog: int = 2048
    max_form_body: int = 64 * 1024
    # A poll body holds one token; this leaves room for any token, so that even an absurd
    # one gets its INVALID_TOKEN answer rather than a size error.
    max_json_body: int = 1536 * 1024
    # Where `serve` listens (the demo has flags of its own).
    host: str = "0.0.0.0"  # noqa: S104
    port: int = 8000
    workers: int = 2
    # The bearer key GET /metrics asks for; unset, /metrics answers 404 (portal/metrics.py).
    metrics_key: str | None = field(default=None, repr=False)
    # PORTAL_OUTBOUND_ALLOW read into the policy every outbound request is checked against;
    # built with the rest, so a bad entry stops the start however the settings were made.
    outbound_policy: OutboundPolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            policy = OutboundPolicy.from_setting(self.outbound_allow,
                                                 allow_http_loopback=self.allow_http_loopback)
        except ValueError as exc:
            raise SettingsError(f"PORTAL_OUTBOUND_ALLOW: {exc}") from None
        object.__setattr__(self, "outbound_policy", policy)

    @property
    def public_origin(self) -> str:
        return origin_of(self.public_url)

    @property
    def secure_cookies(self) -> bool:
        # The Secure flag can only be used when the portal is served over HTTPS.
        return self.public_url.startswith("https://")

    def require_runnable(self) -> None:
        """What every portal needs to run (`create_app` asks); `serve` asks for more."""
        if not self.secret_keys:
            raise SettingsError("PORTAL_SECRET_KEYS is required: a comma-separated list of keys")
        if not self.core_api_url or not self.core_api_key:
            raise SettingsError("CORE_API_URL and CORE_API_KEY are required")

    def require_production_secrets(self) -> None:
        """`serve` refuses to run with anything a production portal cannot do without."""
        self.require_runnable()
        if not self.api_keys:
            raise SettingsError("PORTAL_API_KEYS is required: a comma-separated list of keys")
        if not self.redis_url:
            raise SettingsError(
                "REDIS_URL is required for `serve` (several workers share sessions through Redis)"
            )
        if self.allow_http_loopback:
            raise SettingsError(
                "PORTAL_ALLOW_HTTP_LOOPBACK is for tests and development only; unset it for `serve`"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        public_url = _url(env, "PORTAL_PUBLIC_URL", cls.public_url).rstrip("/")
        core_api_url = _optional(env, "CORE_API_URL")
        if core_api_url is not None:
            core_api_url = _url(env, "CORE_API_URL", core_api_url).rstrip("/")
        core_api_key = _optional(env, "CORE_API_KEY")
        if core_api_url and not core_api_key:
            raise SettingsError("CORE_API_KEY is required when CORE_API_URL is set")
        webhook_url = _optional(env, "PORTAL_WEBHOOK_URL")
        if webhook_url is not None:
            webhook_url = _url(env, "PORTAL_WEBHOOK_URL", webhook_url)
        webhook_secret = _webhook_secret(env)
        if webhook_url and not webhook_secret:
            raise SettingsError("PORTAL_WEBHOOK_SECRET is required when PORTAL_WEBHOOK_URL is set")
        redis_url = _optional(env, "REDIS_URL")
        if redis_url is not None and urlsplit(redis_url).scheme == SENTINEL_SCHEME:
            parse_sentinel_url(redis_url)  # raises, naming REDIS_URL, when malformed
        elif redis_url is not None and urlsplit(redis_url).scheme == CLUSTER_SCHEME:
            parse_cluster_url(redis_url)
        elif redis_url is not None and urlsplit(redis_url).scheme not in {
                "redis", "rediss", "unix"}:
            raise SettingsError("REDIS_URL must start with redis://, rediss://, unix://, "
                                "redis+sentinel:// or redis+cluster://")
        redis_sentinel_password = _optional(env, "PORTAL_REDIS_SENTINEL_PASSWORD")
        if redis_sentinel_password is not None and (
                redis_url is None or urlsplit(redis_url).scheme != SENTINEL_SCHEME):
            raise SettingsError("PORTAL_REDIS_SENTINEL_PASSWORD is for a REDIS_URL of "
                                "redis+sentinel://…; the password of one Redis or a cluster "
                                "goes in REDIS_URL")
        outbox_shards = (_integer(env, "PORTAL_OUTBOX_SHARDS", 1, 1, MAX_OUTBOX_SHARDS)
                         if env.get("PORTAL_OUTBOX_SHARDS", "").strip() else None)
        return cls(
            public_url=public_url,
            secret_keys=_secret_keys(env),
            api_keys=_api_keys(env),
            redis_url=redis_url,
            redis_sentinel_password=redis_sentinel_password,
            redis_prefix=env.get("PORTAL_REDIS_PREFIX", cls.redis_prefix) or cls.redis_prefix,
            outbox_shards=outbox_shards,
            core_api_url=core_api_url,
            core_api_key=core_api_key,
            core_api_timeout=_number(env, "CORE_API_TIMEOUT", cls.core_api_timeout, 0.5, 120),
            allowed_origins=_origins(env, "PORTAL_ALLOWED_ORIGINS"),
            token_ttl=int(_number(env, "PORTAL_TOKEN_TTL", DEFAULT_TOKEN_TTL,
                                  MIN_TOKEN_TTL, MAX_TOKEN_TTL)),
            log_level=_log_level(env),
            log_format=_log_format(env),
            catalog_paths=tuple(_split(env.get("PORTAL_CATALOG", ""))),
            verify_credentials=_flag(env, "PORTAL_VERIFY_CREDENTIALS", default=True),
            verification_timeout=_number(env, "PORTAL_VERIFY_TIMEOUT", cls.verification_timeout,
                                         0.5, 30),
            allow_http_loopback=_flag(env, "PORTAL_ALLOW_HTTP_LOOPBACK", default=False),
            outbound_allow=env.get("PORTAL_OUTBOUND_ALLOW", "").strip(),
            oauth_apps_file=_optional(env, "PORTAL_OAUTH_APPS"),
            oauth_timeout=_number(env, "PORTAL_OAUTH_TIMEOUT", cls.oauth_timeout, 0.5, 60),
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            outbox_keys=_secret_keys(env, "PORTAL_OUTBOX_KEYS"),
            delivery_deadline=_integer(env, "PORTAL_DELIVERY_DEADLINE", cls.delivery_deadline,
                                       60, 7 * 24 * 60 * 60),
            delivery_inline_budget=_number(env, "PORTAL_DELIVERY_INLINE_BUDGET",
                                           cls.delivery_inline_budget, 0, 30),
            delivery_retry_cap=_number(env, "PORTAL_DELIVERY_RETRY_CAP", cls.delivery_retry_cap,
                                       1, 3600),
            smtp_url=_smtp_url(env),
            smtp_from=env.get("PORTAL_SMTP_FROM", "").strip() or cls.smtp_from,
            brand_name=(env.get("PORTAL_BRAND_NAME", "").strip() or cls.brand_name)[:80],
            brand_logo_url=_brand_logo_url(env),
            brand_accent=_brand_accent(env),
            invite_limit=_integer(env, "PORTAL_INVITE_LIMIT", cls.invite_limit, 1, 1000),
            rate_limit_pages=_rate_limit(env, "PORTAL_RATE_LIMIT_PAGES", cls.rate_limit_pages),
            rate_limit_poll=_rate_limit(env, "PORTAL_RATE_LIMIT_POLL", cls.rate_limit_poll),
            rate_limit_mint=_rate_limit(env, "PORTAL_RATE_LIMIT_MINT", cls.rate_limit_mint),
            rate_limit_submits=_rate_limit(env, "PORTAL_RATE_LIMIT_SUBMITS",
                                           cls.rate_limit_submits),
            trusted_proxies=_networks(env, "PORTAL_TRUSTED_PROXIES"),
            frame_ancestors=_origins(env, "PORTAL_FRAME_ANCESTORS"),
            max_header_bytes=_integer(env, "PORTAL_MAX_HEADER_BYTES", cls.max_header_bytes,
                                      1024, 1024 * 1024),
            max_headers=_integer(env, "PORTAL_MAX_HEADERS", cls.max_headers, 8, 1000),
            max_url_bytes=_integer(env, "PORTAL_MAX_URL_BYTES", cls.max_url_bytes,
                                   256, 1024 * 1024),
            header_timeout=_number(env, "PORTAL_HEADER_TIMEOUT", cls.header_timeout, 0.5, 300),
            keepalive_timeout=_integer(env, "PORTAL_KEEPALIVE_TIMEOUT", cls.keepalive_timeout,
                                       1, 300),
            max_connections=_integer(env, "PORTAL_MAX_CONNECTIONS", cls.max_connections,
                                     2, 100_000),
            backlog=_integer(env, "PORTAL_BACKLOG", cls.backlog, 1, 65535),
            max_form_body=_integer(env, "PORTAL_MAX_FORM_BODY", cls.max_form_body,
                                   1024, 16 * 1024 * 1024),
            max_json_body=_integer(env, "PORTAL_MAX_JSON_BODY", cls.max_json_body,
                                   1024, 64 * 1024 * 1024),
            host=_host(env, "PORTAL_HOST", cls.host),
            port=_integer(env, "PORTAL_PORT", cls.port, 0, 65535),
            workers=_integer(env, "PORTAL_WORKERS", cls.workers, 1, 256),
            metrics_key=_metrics_key(env),
        )


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-cased, with default ports dropped."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in {("http", 80), ("https", 443)}:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _brand_logo_url(env: Mapping[str, str]) -> str | None:
    value = _optional(env, "PORTAL_BRAND_LOGO_URL")
    if value is not None and (not value.startswith("https://") or len(value) > 2000
                              or any(c.isspace() for c in value)):
        raise SettingsError("PORTAL_BRAND_LOGO_URL must be an https URL of at most 2000 "
                         "characters")
    return value


def _brand_accent(env: Mapping[str, str]) -> str | None:
    value = _optional(env, "PORTAL_BRAND_ACCENT")
    if value is not None and re.fullmatch(r"#[0-9A-Fa-f]{6}", value) is None:
        raise SettingsError("PORTAL_BRAND_ACCENT must be a colour like #1a73e8")
    return value.lower() if value else None


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingsError(f"{name} must be an absolute http(s) URL, got {value!r}")
    if parts.username or parts.password:
        raise SettingsError(f"{name} must not contain a user name or password")
    if parts.query or parts.fragment:
        raise SettingsError(f"{name} must not contain a query or fragment")
    return value


def _secret_keys(env: Mapping[str, str], name: str = "PORTAL_SECRET_KEYS") -> tuple[str, ...]:
    keys = _split(env.get(name, ""))
    for index, key in enumerate(keys, start=1):
        if len(key) < MIN_SECRET_KEY_LENGTH:
            raise SettingsError(
                f"{name}: key {index} is {len(key)} characters long; "
                f"use at least {MIN_SECRET_KEY_LENGTH} random characters"
            )
    return tuple(keys)


def _smtp_url(env: Mapping[str, str]) -> str | None:
    value = _optional(env, "PORTAL_SMTP_URL")
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise SettingsError("PORTAL_SMTP_URL must be smtp://[user:password@]host[:port] "
                            "(STARTTLS when the server offers it) or smtps://… (TLS)")
    return value


def _api_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    keys = _split(env.get("PORTAL_API_KEYS", ""))
    for index, key in enumerate(keys, start=1):
        if len(key) < 16:
            raise SettingsError(
                f"PORTAL_API_KEYS: key {index} is {len(key)} characters long; use at least 16"
            )
    return tuple(keys)


def _metrics_key(env: Mapping[str, str]) -> str | None:
    key = env.get("PORTAL_METRICS_KEY", "").strip() or None
    if key is not None and len(key) < 16:
        raise SettingsError(
            f"PORTAL_METRICS_KEY is {len(key)} characters long; use at least 16")
    return key


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    origins = []
    for value in _split(env.get(name, "")):
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise SettingsError(
                f"{name}: {value!r} is not an origin like https://app.example.com"
            )
        if parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username:
            raise SettingsError(
                f"{name}: {value!r} must be an origin only (scheme, host and port; no path)"
            )
        origins.append(origin_of(value))
    return tuple(dict.fromkeys(origins))


def _host(env: Mapping[str, str], name: str, default: str) -> str:
    """An address to listen on: an IP address or a host name, as uvicorn takes it."""
    value = env.get(name, "").strip() or default
    try:
        ipaddress.ip_address(value)
    except ValueError:
        labels = value.lower().removesuffix(".").split(".")
        if len(value) > 253 or not all(LABEL.fullmatch(label) for label in labels):
            raise SettingsError(
                f"{name} must be an IP address or a host name, got {value[:100]!r}"
            ) from None
    return value


def _webhook_secret(env: Mapping[str, str]) -> str | None:
    """A Standard Webhooks secret: `whsec_` and base64 of at least 24 random bytes."""
    value = _optional(env, "PORTAL_WEBHOOK_SECRET")
    if value is None:
        return None
    if not value.startswith(WEBHOOK_SECRET_PREFIX):
        raise SettingsError("PORTAL_WEBHOOK_SECRET must look like whsec_<base64>")
    try:
        key = base64.b64decode(value[len(WEBHOOK_SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(
            "PORTAL_WEBHOOK_SECRET: the part after whsec_ is not valid base64"
        ) from None
    if len(key) < MIN_WEBHOOK_SECRET_BYTES:
        raise SettingsError(
            f"PORTAL_WEBHOOK_SECRET must hold at least {MIN_WEBHOOK_SECRET_BYTES} random bytes "
            f"(it holds {len(key)})"
        )
    return value


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {raw}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise SettingsError(f"{name} must be a whole number, got {raw!r}")
    if len(raw) > 18 or not low <= int(raw) <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {raw[:20]}")
    return int(raw)


def _rate_limit(env: Mapping[str, str], name: str, default: str) -> str:
    """A limit in the `limits` notation: `300/minute`, `10 per 10 minutes`."""
    raw = env.get(name, "").strip() or default
    try:
        item = parse_limit(raw)
    except ValueError:
        raise SettingsError(
            f"{name} must be a limit like 300/minute or 10 per 10 minutes, got {raw[:60]!r}"
        ) from None
    if item.amount < 1:
        raise SettingsError(f"{name} must allow at least 1 request, got {raw[:60]!r}")
    return raw


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma list of IP addresses and networks (CIDR), normalised."""
    networks = []
    for value in _split(env.get(name, "")):
        try:
            networks.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            raise SettingsError(
                f"{name}: {value[:60]!r} is not an IP address or network like 10.0.0.0/8"
            ) from None
    return tuple(dict.fromkeys(networks))


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _log_format(env: Mapping[str, str]) -> str:
    log_format = env.get("PORTAL_LOG_FORMAT", "text").strip().lower() or "text"
    if log_format not in {"text", "json"}:
        raise SettingsError(f"PORTAL_LOG_FORMAT must be text or json, got {log_format!r}")
    return log_format


def _log_level(env: Mapping[str, str]) -> str:
    level = env.get("PORTAL_LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError(
            f"PORTAL_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {level!r}"
        )
    return level
