"""Logging that cannot be forged: one line per request, one line per record.

:class:`RequestLogMiddleware` writes ``METHOD path status milliseconds`` for every
request (WSGI middleware). For a streamed response (SSE) the line is written when the
stream closes, so the milliseconds are the stream's whole life.

Request data reaches the log in many places (the path here, a client address or a
path in a warning elsewhere), and a path may hold any byte (``GET /x%0aFORGED``).
:func:`escape_for_log` turns every control character into a visible escape, and
:class:`OneLineFormatter` (installed by ``server.py`` on the root logger) applies it to
every record's message, so a value can never start a line of its own; a traceback keeps
its lines, each indented, so no line of it can pass for a record.
"""
from __future__ import annotations

import logging
import re
import time

log = logging.getLogger("hermes_webui.access")

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_for_log(value) -> str:
    """``str(value)`` with each control character as ``\\n``, ``\\r``, ``\\t`` or
    ``\\xNN`` / ``\\uNNNN``. Idempotent (backslashes are left alone), so a value escaped
    here and again by :class:`OneLineFormatter` reads the same."""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                                             else f"\\u{ord(m.group()):04x}"), text)


class OneLineFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose record message is always one line
    (:func:`escape_for_log`); exception and stack text follows on lines indented by
    four spaces, with other control characters escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_for_log(record.message)
        return super().formatMessage(record)

    def formatException(self, ei) -> str:
        return self._indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return self._indented(super().formatStack(stack_info))

    @staticmethod
    def _indented(text: str) -> str:
        return "\n".join("    " + escape_for_log(line) for line in text.splitlines())


class RequestLogMiddleware:
    """WSGI: log ``METHOD path status ms`` (escaped) for each request at INFO level."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        status_holder = ["-"]

        def _start_response(status, headers, exc_info=None):
            status_holder[0] = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info)

        result = self.app(environ, _start_response)
        return _LoggedIterable(result, environ, status_holder, started)


class _LoggedIterable:
    def __init__(self, result, environ, status_holder, started):
        self._result = result
        self._environ = environ
        self._status = status_holder
        self._started = started

    def __iter__(self):
        return iter(self._result)

    def close(self):
        try:
            if hasattr(self._result, "close"):
                self._result.close()
        finally:
            ms = (time.perf_counter() - self._started) * 1000
            log.info("%s %s %s %.1fms", escape_for_log(self._environ.get("REQUEST_METHOD", "-")),
                     escape_for_log(_wsgi_text(self._environ.get("PATH_INFO", ""))),
                     escape_for_log(self._status[0]), ms)


def _wsgi_text(value: str) -> str:
    """A WSGI string (bytes decoded as latin-1, PEP 3333) as the UTF-8 text it was."""
    try:
        return value.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return value
