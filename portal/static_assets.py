"""Static files with content-hashed URLs, and the compression of what the portal sends.

Pages link their CSS and scripts through `static_url(name)`: `/static/form.js?v=<hash>`,
the hash being the first characters of the file's SHA-256, computed once at start. An
answer to such a URL is cached for a year as immutable; a new release changes the hash,
so the URL, and browsers fetch the new file. A plain `/static/x` (connect.js, loaded by
partner pages by that name) or an outdated `v` is cached for five minutes only.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from starlette.datastructures import QueryParams
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"
HASH_LENGTH = 16
STATIC_PREFIX = "/static/"

# Responses smaller than this go out as they are: compressing them saves too little.
COMPRESS_MINIMUM_SIZE = 1024
# No HTML is compressed (BREACH): every portal page is per-session and most carry a CSRF
# token in a hidden field next to text the requester influences (names, field values,
# error messages), which is what lets an attacker recover a secret byte by byte from the
# compressed size over TLS. Pages are small anyway; CSS, scripts and JSON are compressed.
# The JSON API is not reachable with a victim's ambient credentials (API keys and tokens
# are sent explicitly, never as cookies), so BREACH does not apply to it.
COMPRESS_EXCLUDED_TYPES = (*DEFAULT_EXCLUDED_CONTENT_TYPES, "text/html")


def file_versions(directory: Path) -> dict[str, str]:
    """Every file under `directory` (by its path relative to it, with `/`) and the first
    HASH_LENGTH hex digits of its content's SHA-256."""
    versions: dict[str, str] = {}
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = Path(root) / name
            relative = path.relative_to(directory).as_posix()
            versions[relative] = hashlib.sha256(path.read_bytes()).hexdigest()[:HASH_LENGTH]
    return versions


class StaticAssets:
    """The static directory's file versions, computed once, and the URLs made from them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.versions = file_versions(directory)

    def url(self, name: str) -> str:
        """`/static/<name>?v=<hash>`; without `v` for a name that is not a shipped file."""
        version = self.versions.get(name)
        return f"{STATIC_PREFIX}{name}?v={version}" if version else f"{STATIC_PREFIX}{name}"

    def files(self) -> StaticFiles:
        return VersionedStaticFiles(directory=self.directory, versions=self.versions)


class VersionedStaticFiles(StaticFiles):
    """StaticFiles whose answers say how long to keep them: a year (immutable) when the
    URL's `v` is the served file's current hash, five minutes otherwise."""

    def __init__(self, *, directory: Path, versions: dict[str, str]) -> None:
        super().__init__(directory=directory)
        self.versions = versions

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        name = Path(self.get_path(scope)).as_posix()
        wanted = QueryParams(scope.get("query_string", b"")).get("v")
        current = self.versions.get(name)
        fresh = wanted is not None and current is not None and wanted == current
        response.headers["cache-control"] = IMMUTABLE if fresh else SHORT
        return response
