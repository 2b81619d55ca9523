"""`connect-portal serve` (production) and `connect-portal demo` (everything on one machine)."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import socket
import sys
import tempfile
from dataclasses import replace

import uvicorn

from portal.catalog import CatalogError, load_catalog
from portal.logs import configure_logging
from portal.server import uvicorn_options
from portal.settings import Settings, SettingsError

# `serve` flags, each the same as its variable: where it listens, and the server limits
# (README, "Limits"). They reach the settings through the environment (see `main`).
SERVE_FLAGS = {
    "--host": "PORTAL_HOST",
    "--port": "PORTAL_PORT",
    "--workers": "PORTAL_WORKERS",
    "--max-header-bytes": "PORTAL_MAX_HEADER_BYTES",
    "--max-headers": "PORTAL_MAX_HEADERS",
    "--max-url-bytes": "PORTAL_MAX_URL_BYTES",
    "--header-timeout": "PORTAL_HEADER_TIMEOUT",
    "--keepalive-timeout": "PORTAL_KEEPALIVE_TIMEOUT",
    "--max-connections": "PORTAL_MAX_CONNECTIONS",
    "--backlog": "PORTAL_BACKLOG",
    "--max-form-body": "PORTAL_MAX_FORM_BODY",
    "--max-json-body": "PORTAL_MAX_JSON_BODY",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="connect-portal", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the portal for production (Redis required)")
    for flag, variable in SERVE_FLAGS.items():
        serve.add_argument(flag, metavar="HOST" if flag == "--host" else "N",
                           help=f"overrides {variable}")
    serve.add_argument("--fd", type=int, metavar="FD",
                       help="serve on this inherited, already bound socket instead of "
                            "--host/--port (a supervisor or a test binds it)")

    demo = commands.add_parser("demo", help="run the portal, a partner page, a core API and "
                                            "a sandbox OAuth provider")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8400,
                      help="portal port; the partner page, the core API and the sandbox "
                           "OAuth provider use the next three")
    demo.add_argument("--fds", type=_four_fds, metavar="FD,FD,FD,FD",
                      help="serve on four inherited, already bound sockets (portal, partner "
                           "page, core API, sandbox provider) instead of --host/--port")

    catalog = commands.add_parser("catalog", help="work with catalog files")
    catalog_commands = catalog.add_subparsers(dest="catalog_command", required=True)
    check = catalog_commands.add_parser(
        "check", help="validate catalog files (a file or a directory of *.json) and report"
    )
    check.add_argument("paths", nargs="+", metavar="PATH")

    args = parser.parse_args(argv)
    if args.command == "catalog":
        return check_catalog(args.paths)
    if args.command == "serve":
        # Through the environment, so that every worker process reads the same values
        # (and validates them in one place, Settings.from_env).
        for flag, variable in SERVE_FLAGS.items():
            value = getattr(args, flag.removeprefix("--").replace("-", "_"))
            if value is not None:
                os.environ[variable] = value
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "serve":
            settings.require_production_secrets()
            # Fail here, once and readably, rather than in every worker.
            load_catalog(settings.catalog_paths)
            if args.fd is None:
                require_resolvable_host(settings.host)
            return serve_portal(settings, fd=args.fd)
        return asyncio.run(run_demo(settings, host=args.host, port=args.port, fds=args.fds))
    except SettingsError as exc:
        print(f"connect-portal: configuration error: {exc}", file=sys.stderr)
        return 2
    except CatalogError as exc:
        print(f"connect-portal: catalog error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def check_catalog(paths: list[str]) -> int:
    """Validate each file on its own and say what is wrong; exit 1 if anything is."""
    from pathlib import Path

    from portal.catalog import catalog_files, check_catalog, read_catalog_file

    failed = False
    for raw_path in paths:
        try:
            files = catalog_files(Path(raw_path))
        except CatalogError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
            continue
        for file in files:
            try:
                entries, problems = check_catalog(read_catalog_file(file), source=str(file))
            except CatalogError as exc:
                problems = [str(exc)]
                entries = []
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            failed = failed or bool(problems)
            verdict = "ok" if not problems else f"{len(problems)} problem(s)"
            print(f"{verdict}: {file}: {len(entries)} valid integrations")
    return 1 if failed else 0


def _four_fds(value: str) -> list[int]:
    try:
        fds = [int(part) for part in value.split(",")]
    except ValueError:
        fds = []
    if len(fds) != 4 or min(fds) < 0:
        raise argparse.ArgumentTypeError("expected four file descriptors, e.g. 3,4,5,6")
    return fds


def require_resolvable_host(host: str) -> None:
    """A PORTAL_HOST that names no address is a configuration error, not a server crash."""
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise SettingsError(f"PORTAL_HOST: {host!r} does not resolve to an address") from None


def serve_portal(settings: Settings, *, fd: int | None = None) -> int:
    # Metrics across the workers (portal/metrics.py): each writes its values to files in
    # PROMETHEUS_MULTIPROC_DIR; without one set, a fresh directory for this run only.
    own_metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_metrics_dir = tempfile.mkdtemp(prefix="connect-portal-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir
    try:
        return _run_uvicorn(settings, fd=fd)
    finally:
        if own_metrics_dir is not None:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


def _run_uvicorn(settings: Settings, *, fd: int | None) -> int:
    uvicorn.run(
        "portal.asgi:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        fd=fd,
        workers=settings.workers,
        access_log=False,  # portal.middleware.PortalMiddleware logs without query strings
        proxy_headers=True,
        log_config=None,
        server_header=False,
        **uvicorn_options(settings),
    )
    return 0


async def run_demo(settings: Settings, *, host: str, port: int,
                   fds: list[int] | None = None) -> int:
    from portal.app import create_app
    from portal.auth.credentials import SHAPES as CREDENTIAL_SHAPES
    from portal.catalog import Catalog
    from portal.demo.core import create_core_app
    from portal.demo.mail import MailCatcher
    from portal.demo.partner import create_partner_app
    from portal.demo.provider import SANDBOX_INTEGRATION, sandbox_for_demo

    sockets = [socket.socket(fileno=fd) for fd in fds] if fds else []
    if sockets:
        host = sockets[0].getsockname()[0]
    ports = [sock.getsockname()[1] for sock in sockets] or [port + n for n in range(4)]
    portal_url = f"http://{host}:{ports[0]}"
    partner_url = f"http://{host}:{ports[1]}"
    core_url = f"http://{host}:{ports[2]}"
    generated_key = not settings.api_keys
    api_key = "demo_" + secrets.token_urlsafe(24) if generated_key else settings.api_keys[0]
    core_key = settings.core_api_key or "core_" + secrets.token_urlsafe(24)
    settings = replace(
        settings,
        public_url=portal_url,
        secret_keys=settings.secret_keys or (secrets.token_urlsafe(48),),
        api_keys=settings.api_keys or (api_key,),
        core_api_url=settings.core_api_url or core_url,
        core_api_key=core_key,
        allowed_origins=tuple(dict.fromkeys((*settings.allowed_origins, partner_url))),
        # Demo keys are made up, so checking them with real providers would refuse them.
        verify_credentials=settings.verify_credentials
        if "PORTAL_VERIFY_CREDENTIALS" in os.environ else False,
    )
    # The demo's own SMTP server on a loopback port, so invites can be sent and read.
    mail = MailCatcher()
    if settings.smtp_url is None:
        settings = replace(settings, smtp_url=await mail.start())
    catalog = load_catalog(settings.catalog_paths)
    # A sandbox OAuth provider on the fourth port, so the demo can show an OAuth sign-in.
    sandbox = sandbox_for_demo(host=host, port=ports[3], portal_url=portal_url)
    oauth_apps = {}
    if sandbox is not None:
        catalog = Catalog([*catalog, sandbox.integration])
        oauth_apps[sandbox.integration.name] = sandbox.client
        settings = replace(settings, allow_http_loopback=True)
    apps = [
        create_app(settings, catalog=catalog, oauth_apps=oauth_apps),
        create_partner_app(portal_url=portal_url, portal_api_key=api_key,
                           integrations=[item.name for item in catalog
                                         if any(option.type in CREDENTIAL_SHAPES
                                                for option in item.auth_options)
                                         or item.name == SANDBOX_INTEGRATION],
                           partner_url=partner_url, core_url=core_url, core_api_key=core_key,
                           mail=mail if mail.port else None),
        create_core_app(core_key, catalog=catalog),
    ]
    if sandbox is not None:
        apps.append(sandbox.app)
    servers = [
        uvicorn.Server(uvicorn.Config(app, host=host, port=app_port, access_log=False,
                                      log_config=None, lifespan="auto",
                                      **uvicorn_options(settings)))
        for app, app_port in zip(apps, ports, strict=False)
    ]
    # A generated key is shown so the API can be called by hand (README, "The demo");
    # a key the operator set is theirs and is never printed.
    key_line = (f"{api_key}  (generated; PORTAL_API_KEYS sets your own)" if generated_key
                else "the first of PORTAL_API_KEYS")
    print(
        "\nConnect portal demo\n"
        f"  open the partner page:  {partner_url}/\n"
        f"  portal:                 {portal_url}\n"
        f"  portal API key:         {key_line}\n"
        f"  demo core API:          {core_url}/  (connections it received)\n"
        f"  demo mailbox:           {partner_url}/mail  (invites the portal sent)\n"
        + (f"  sandbox OAuth provider: http://{host}:{ports[3]}/  (connect Sandbox ID)\n"
           if sandbox is not None else "")
        + "Press Ctrl+C to stop.\n",
        flush=True,
    )
    await asyncio.gather(*(server.serve(sockets=sockets[index:index + 1] or None)
                           for index, server in enumerate(servers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
