"""The errors the app raises, Flask-free, each with the HTTP status it answers with.

Every layer raises these; :func:`api.httputil.register_error_handlers` is the one place
that turns them into ``{"error": "<human message>"}`` responses with ``status``. The
message is a sentence a person can act on.
"""
from __future__ import annotations


class AppError(Exception):
    """Base class: ``message`` and the HTTP ``status`` it answers with (500 by default)."""

    status = 500

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class ApiError(AppError):
    """Bad input or a refused request, raised by routes: 400 unless ``status`` says otherwise."""

    status = 400


class PathError(ApiError):
    """A workspace, skill or memory path that is refused, or an operation on it that failed."""


class SessionError(AppError):
    """Base class of the session store's errors."""


class InvalidSessionId(SessionError, ValueError):
    """The id does not fullmatch ``[A-Za-z0-9_-]{1,64}`` (checked before any path is built): 400."""

    status = 400


class SessionNotFound(SessionError, LookupError):
    """No file for this session id: 404."""

    status = 404


class SessionUnreadable(SessionError):
    """The file exists but is not a readable session (truncated, wrong shape, bad UTF-8): 500."""

    status = 500


class TooLarge(AppError):
    """Content over one of the limits (a message, a tool result, an upload, a body): 413."""

    status = 413


class TurnConflict(AppError):
    """The session cannot take a new turn or change now (a live stream owns it, or the
    client's view is stale): 409."""

    status = 409
