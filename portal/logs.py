"""Logging set-up shared by `serve` workers and the demo.

One record is one line: a line that starts at column 0 is always a record of the portal's
own. Values a client chooses (a path, an app id, a provider's error text) reach log
messages, so the formatter escapes every character that could end a line, move the
cursor or reorder text in a terminal; a traceback keeps its lines, each indented.

With PORTAL_LOG_FORMAT=json a record is one JSON object per line instead, carrying the
id of the request it was logged in (portal.middleware) and no attribute but the message
and an allow-list (JSON_FIELDS). Records reach stderr through a queue and a listener
thread, so a request never waits on the write.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import re
import secrets
import sys
import time
from contextvars import ContextVar
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LOG_FORMATS = ("text", "json")

# The id of the request being served (portal.middleware sets it), for every record logged
# while it is served, in its task and in the tasks it starts.
request_id_var: ContextVar[str | None] = ContextVar("portal_request_id", default=None)
REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 64
_SANE_REQUEST_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_REQUEST_ID_LENGTH}}}")

# The only record attributes besides the message that reach a JSON line (`extra=` of a
# log call). Anything else a caller attaches is dropped: a secret cannot reach the log by
# being passed along, only by being written into a message.
JSON_FIELDS = frozenset({
    "method", "path", "status", "duration_ms",
    "session_id", "integration", "code", "attempt",
})

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


def request_id_from(value: str | None) -> str:
    """An incoming X-Request-ID when it is a sane token (1-64 of [A-Za-z0-9._-]), else a
    new one: a client's id is kept for tracing, never a value that could forge a line."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return secrets.token_hex(16)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (the id of the request being served, or None) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id when there is
    one, the allow-listed extra fields (JSON_FIELDS), and the traceback as `exception`.
    JSON escapes every control and line-separator character, so a line is one record."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        for name in JSON_FIELDS.intersection(record.__dict__):
            value = record.__dict__[name]
            if value is None or isinstance(value, bool | int | float | str):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=True, default=str)


def _iso_time(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


class _RequestQueueHandler(logging.handlers.QueueHandler):
    """Hands a record to the listener thread: the caller only freezes the message (its
    arguments may change after the call) and puts the record on an in-process queue;
    formatting and the write happen in the listener."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        message = record.getMessage()
        record.msg, record.args = message, None
        return record


class _PollingQueueListener(logging.handlers.QueueListener):
    """A QueueListener that looks at its queue every `interval` seconds and writes what has
    gathered, instead of blocking on it: a blocked reader would be woken by every record
    put, a thread switch (and the GIL handed over) per request. A record waits at most
    `interval` before it is written; `stop` writes out everything queued before it."""

    interval = 0.05

    def __init__(self, records: queue.SimpleQueue[logging.LogRecord],
                 handler: logging.Handler) -> None:
        super().__init__(records, handler)
        self._records = records

    def dequeue(self, block: bool) -> logging.LogRecord:
        while True:
            try:
                return self._records.get_nowait()
            except queue.Empty:
                if not block:
                    raise
                time.sleep(self.interval)


_installed: list[logging.Handler] = []
_listener: logging.handlers.QueueListener | None = None


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return OneLineFormatter(LOG_FORMAT)


def configure_logging(level: str, log_format: str = "text", *, queued: bool = True) -> None:
    """Records to stderr, as text lines (OneLineFormatter) or JSON lines (JsonFormatter),
    each with the id of the request it was logged in.

    `queued` (the default): the request's task only puts the record on a queue and a
    listener thread formats and writes it, so a request never waits on the log write
    (a slow disk or a full pipe to a log collector). The listener is stopped, after it
    has written everything queued, when the process exits. Configuring again replaces
    the earlier set-up; a root logger with handlers of someone else's is left alone."""
    global _listener
    stop_listener()
    # No record carries where it was logged from, nor the thread's, process' or task's
    # name (neither format shows them): gathering them is most of a record's cost, paid on
    # every request's access line (logging's documented optimisations).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if sys.version_info >= (3, 12):
        logging.logAsyncioTasks = False
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
    _installed.clear()
    if not root.handlers:
        output = logging.StreamHandler(sys.stderr)
        output.setFormatter(make_formatter(log_format))
        handler: logging.Handler = output
        if queued:
            records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
            handler = _RequestQueueHandler(records)
            _listener = _PollingQueueListener(records, output)
            _listener.start()
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
        root.setLevel(level)
        _installed.append(handler)
    # httpx logs every request URL at INFO and httpcore logs headers at DEBUG
    # (Authorization included): keep both to warnings.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # python-multipart logs at DEBUG for every field it skips: one line per "&" of a body.
    for name in ("multipart", "python_multipart"):
        logging.getLogger(name).setLevel(logging.WARNING)


def write_directly() -> None:
    """Write out what is queued, then have every later record written by the thread that
    logs it. For a process that is ending: a `serve` worker, once its app has shut down,
    logs a last line or two and is then ended by the SIGTERM uvicorn re-raises, which
    runs no exit handler (so `stop_listener` never would)."""
    if _listener is None:
        return
    [output] = _listener.handlers  # what the listener wrote to
    stop_listener()
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
    _installed.clear()
    output.addFilter(RequestIdFilter())
    root.addHandler(output)
    _installed.append(output)


def stop_listener() -> None:
    """Write out what is queued and stop the listener thread (at exit, or to reconfigure)."""
    global _listener
    listener, _listener = _listener, None
    if listener is not None:
        listener.stop()


atexit.register(stop_listener)
