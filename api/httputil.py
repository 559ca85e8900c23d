"""Request parsing and JSON errors shared by every blueprint.

Every error leaves as ``{"error": "<human message>"}`` with a 4xx/5xx status
(docs/api.md); :func:`register_error_handlers` maps the store's and the turn engine's
exceptions onto those statuses so routes stay free of try/except ladders.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from .codec import clean_json
from .errors import ApiError, AppError  # noqa: F401 (ApiError is re-exported for the blueprints)

log = logging.getLogger(__name__)

# A JSON body nested deeper than this (arrays and objects) is refused with 400: no request
# of ours needs more than a handful of levels, and the recursive walks after parsing
# (clean_json, jsonify) would otherwise meet Python's recursion limit (a 500 and a traceback).
MAX_JSON_DEPTH = 64


_TOO_DEEP = object()


def error_response(message: str, status: int):
    resp = jsonify({"error": message})
    resp.status_code = status
    return resp


def register_error_handlers(app: Flask) -> None:
    """Map every error the app raises onto ``{"error": message}`` and its status: the
    app's own (:mod:`api.errors`, each carries its status), werkzeug's HTTP errors (413
    for an oversize body), input nested too deeply (400) and disk failures (500)."""
    app.register_error_handler(AppError, lambda e: error_response(e.message, e.status))

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        if e.code == 413:   # the body limit of the route (--max-body-bytes for JSON), named so a person can act
            cap = request.max_content_length
            limit = f": this server accepts at most {cap:,} bytes in one request" if cap else ""
            return error_response(f"request body too large{limit}", 413)
        return error_response(e.description or e.name, e.code or 500)

    @app.errorhandler(RecursionError)
    def _too_deep(e: RecursionError):
        # Backstop for input nested past the interpreter's limit anywhere: one log line, no traceback.
        log.warning("refused %s %r: input nested too deeply", request.method, request.path)
        return error_response("the request is nested too deeply", 400)

    @app.errorhandler(OSError)
    def _disk(e: OSError):
        log.error("I/O error while handling %s %s: %s", request.method, request.path, e)
        return error_response(f"the server could not write to disk: {e.strerror or e}", 500)


def json_depth_exceeds(value, limit: int) -> bool:
    """True if ``value`` (parsed JSON) nests arrays/objects more than ``limit`` levels
    deep (a scalar is level 0, ``[]`` level 1). Iterative: safe at any depth."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in item)
    return False


def json_body() -> dict:
    """The request's JSON object body with lone surrogates replaced.

    ApiError 400 when the body is missing, not JSON, not an object, or nested deeper
    than :data:`MAX_JSON_DEPTH` levels (logged in one line).
    """
    try:
        data = request.get_json(silent=True, force=True)
    except RecursionError:  # deeper than the parser's own limit (~1,000 levels)
        data = _TOO_DEEP
    if data is _TOO_DEEP or (data is not None and json_depth_exceeds(data, MAX_JSON_DEPTH)):
        log.warning("refused %s %r: JSON body nested deeper than %d levels", request.method, request.path,
                    MAX_JSON_DEPTH)
        raise ApiError(f"request body is nested deeper than {MAX_JSON_DEPTH} levels")
    if data is None:
        if request.content_length == 0 or not request.get_data(cache=True):
            raise ApiError("request body must be a JSON object")
        raise ApiError("request body is not valid JSON")
    if not isinstance(data, dict):
        raise ApiError("request body must be a JSON object")
    return clean_json(data)


def field(body: dict, name: str, typ, *, required: bool = True, default=None):
    """``body[name]`` checked against ``typ`` (a type or tuple); ApiError 400 if wrong."""
    if name not in body or body[name] is None:
        if required:
            raise ApiError(f"missing field {name!r}")
        return default
    value = body[name]
    if typ is int and isinstance(value, bool) or not isinstance(value, typ):
        names = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise ApiError(f"field {name!r} must be {names}")
    return value


def arg_int(name: str, default: int | None = None, *, minimum: int = 0, maximum: int | None = None) -> int | None:
    """An integer query parameter; ApiError 400 if not an integer in range."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"query parameter {name!r} must be an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ApiError(f"query parameter {name!r} must be {bound}")
    return value


def arg_bool(name: str, default: bool) -> bool:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ApiError(f"query parameter {name!r} must be 0 or 1")


def arg_str(name: str) -> str:
    value = request.args.get(name)
    if not value:
        raise ApiError(f"missing query parameter {name!r}")
    return value
