"""One log line per request: method, path, status, milliseconds (WSGI middleware).

For a streamed response (SSE) the line is written when the stream closes, so the
milliseconds are the stream's whole life.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger("hermes_webui.access")


class RequestLogMiddleware:
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
            log.info("%s %s %s %.1fms", self._environ.get("REQUEST_METHOD"), self._environ.get("PATH_INFO"),
                     self._status[0], ms)
