"""Logging set-up shared by `serve` workers and the demo.

One record is one line: a line that starts at column 0 is always a record of the portal's
own. Values a client chooses (a path, an app id, a provider's error text) reach log
messages, so the formatter escapes every character that could end a line, move the
cursor or reorder text in a terminal; a traceback keeps its lines, each indented.
"""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# C0 controls and DEL, C1 controls (U+0085 ends a line for many readers), the Unicode line
# and paragraph separators, and the bidirectional overrides and isolates.
_ESCAPED = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029,
            *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}
_ESCAPES = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    for code in _ESCAPED
}


def escape_controls(text: str) -> str:
    """`text` on one line, with control characters written as backslash escapes."""
    return text.translate(_ESCAPES)


class OneLineFormatter(logging.Formatter):
    """Escapes control characters in the record line; indents the traceback under it."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("    " + escape_controls(line) for line in text.split("\n"))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    # httpx logs every request URL at INFO and httpcore logs headers at DEBUG
    # (Authorization included): keep both to warnings.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # python-multipart logs at DEBUG for every field it skips: one line per "&" of a body.
    for name in ("multipart", "python_multipart"):
        logging.getLogger(name).setLevel(logging.WARNING)
