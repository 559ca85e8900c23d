"""Export and import of sessions: one session as JSON or Markdown, and our JSON export
or a ChatGPT ``conversations.json`` (or its .zip) read back as new sessions.

Routes (blueprint ``session_export``):

- ``GET /api/session/export?session_id&format=json|md`` — a download (below);
- ``POST /api/session/import`` — multipart ``file`` or the document as the body, up to
  ``--max-import-bytes`` (200 MiB); every conversation becomes a new session with a fresh id.

A JSON export embeds the session's attachments (base64, ``session.attachments``), so one
file carries the whole conversation; an import restores them under the new session.

An import is parsed and validated whole (:mod:`api.chatgpt_import`, the limits of
docs/architecture.md §3) before the first file is written, and the files already written are removed
if a later write fails (:meth:`api.models.SessionStore.create_many`).
"""
from __future__ import annotations

import base64
import html
import io
import json
import re
import time
import zipfile
from datetime import UTC, datetime
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, request

from . import search, versions
from .app import app_state
from .chatgpt_import import EXPORT_VERSION, ImportFormatError, parse_document
from .import_formats import ImportTooLarge
from .codec import clean_json, clean_text
from .httputil import ApiError, arg_str
from .models import DEFAULT_TITLE, PRIVATE_KEYS, message_text, validate_session_id
from .profiles import current_store
from .streams import session_lock
from .turns import settle_stale_stream

bp = Blueprint("session_export", __name__)


@bp.get("/api/session/export")
def export():
    """Download one session: query ``session_id``, ``format=json`` (default) or ``md``.

    ``json``: ``{"hermes_webui_export": 1, "exported_at", "session": {…metadata,
    "messages": [...], "versions": {…}, "attachments": [{id, name, size, mime,
    data_base64}]}}`` (``versions``: the other versions of the conversation, as stored,
    :mod:`api.versions`; the session's attached files, embedded; each is left out when
    there are none), UTF-8, every message whole (lone surrogates, which a
    hand-edited file may hold, become U+FFFD), which ``/api/session/import`` reads back
    unchanged. ``md``: a readable transcript (:func:`render_markdown`). Sent with
    ``Content-Disposition: attachment``. Only saved messages are exported (not a reply
    still streaming). 400 bad id or format; 404 unknown; 500 unreadable.
    """
    sid = validate_session_id(arg_str("session_id"))
    fmt = request.args.get("format") or "json"
    if fmt not in ("json", "md"):
        raise ApiError("query parameter 'format' must be 'json' or 'md'")
    store = current_store()
    settle_stale_stream(store.load_metadata_only(sid))
    session = store.load(sid)
    meta = {k: v for k, v in session.meta.items() if k not in PRIVATE_KEYS and k != "active_stream_id"}
    if fmt == "json":
        exported = clean_json(dict(meta, messages=session.messages))
        files = store.attachments.list_session(sid)
        if files:
            exported["attachments"] = [dict(f.record(), data_base64=base64.b64encode(f.path.read_bytes())
                                            .decode("ascii")) for f in files]
        doc = {"hermes_webui_export": EXPORT_VERSION, "exported_at": time.time(), "session": exported}
        body, mimetype = json.dumps(doc, ensure_ascii=False, indent=1), "application/json"
    else:
        body, mimetype = clean_text(render_markdown(meta, session.messages)), "text/markdown"
    resp = Response(body.encode("utf-8"), mimetype=mimetype)
    resp.headers["Content-Disposition"] = _attachment(meta.get("title") or sid, fmt)
    return resp


def _attachment(title: str, ext: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact UTF-8 ``filename*`` (RFC 6266)."""
    base = " ".join(str(title).split())[:80] or "session"
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in " ._-") else "_" for c in base).strip() or "session"
    return f"attachment; filename=\"{ascii_name}.{ext}\"; filename*=UTF-8''{quote(base + '.' + ext, safe='')}"


def _when(ts) -> str:
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


MD_TOOL_TEXT_MAX = 100_000   # characters of one tool result / arguments kept in a Markdown export
_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_BACKTICKS = re.compile(r"`+")


def close_open_fences(text: str) -> str:
    """``text`` with a closing fence appended when it ends inside a fenced code block
    (CommonMark: an opening run of 3+ backticks or tildes, closed by a run of the same
    character at least as long with nothing after it), so the next part of a document
    is not swallowed by a reply that was cut mid-block."""
    fence: tuple[str, int] | None = None
    for line in text.splitlines():
        m = _FENCE_LINE.match(line)
        if not m:
            continue
        run, rest = m.group(1), m.group(2)
        if fence is None:
            if not (run[0] == "`" and "`" in rest):
                fence = (run[0], len(run))
        elif run[0] == fence[0] and len(run) >= fence[1] and not rest.strip():
            fence = None
    if fence is None:
        return text
    return text + ("" if text.endswith("\n") else "\n") + fence[0] * fence[1]


def code_block(text: str, info: str = "") -> list[str]:
    """``text`` as a fenced code block whose fence (backticks) is longer than any run of
    backticks inside it, so no content can close it early."""
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text.rstrip("\n"), fence]


def _clip(text: str, what: str) -> str:
    if len(text) <= MD_TOOL_TEXT_MAX:
        return text
    return (text[:MD_TOOL_TEXT_MAX] + f"\n… ({len(text) - MD_TOOL_TEXT_MAX:,} more characters of this {what}"
            " are in the JSON export)")


def _tool_lines(call: dict) -> list[str]:
    name = str(call.get("name") or (call.get("function") or {}).get("name") or "tool")
    args = call.get("args", (call.get("function") or {}).get("arguments"))
    args_text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False, indent=1)
    state = "failed" if call.get("is_error") else ("done" if "result" in call else "not finished")
    summary = f"Tool <code>{html.escape(' '.join(name.split())[:200])}</code> · {state}"
    lines = [f"<details><summary>{summary}</summary>", "", "Arguments:", ""]
    lines += code_block(_clip(args_text, "tool call's arguments"), "json" if not isinstance(args, str) else "")
    if "result" in call:
        result = call["result"]
        result_text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, indent=1)
        lines += ["", "Result:", ""] + code_block(_clip(result_text, "tool result"))
    return lines + ["", "</details>", ""]


def render_markdown(meta: dict, messages: list[dict]) -> str:
    """A session as a Markdown transcript (CommonMark with HTML ``<details>``).

    A heading per message; its text as written (a fence left open by a reply that was
    cut off is closed, so it cannot swallow what follows); reasoning whole, folded in
    ``<details>``; each tool call folded in ``<details>`` with its arguments and result
    in code blocks fenced longer than any backtick run inside them, each cut at
    :data:`MD_TOOL_TEXT_MAX` characters with a note (the JSON export keeps everything).
    A message where versions part ways says which one is shown ("version 2 of 3"); the
    other versions follow the transcript under "Other versions", each from where it starts.
    """
    # The title is text, not markup: a title of "<b>x</b>" or "*x*" must read as typed.
    title = " ".join(str(meta.get("title") or DEFAULT_TITLE).split())
    lines = ["# " + re.sub(r"([\\`*_{}\[\]<>#!|~&])", r"\\\1", title), ""]
    facts = [f"Created {_when(meta.get('created_at'))}" if meta.get("created_at") else "",
             f"model {meta['model']}" if meta.get("model") else "", f"{len(messages)} messages"]
    lines += ["_" + " · ".join(f for f in facts if f) + "_", ""]
    shown = versions.points(meta.get("versions"))   # {"<i>": [count, current]}
    for i, msg in enumerate(messages):
        count, current = shown.get(str(i), (0, 0))
        lines += _message_lines(msg, "##", f" · version {current + 1} of {count}" if count else "")
    return "\n".join(lines + _versions_lines(meta.get("versions")))


def _versions_lines(stored) -> list[str]:
    """The other versions of a conversation (:func:`api.versions.all_tails`) after its
    transcript: a heading naming where each starts, then its messages."""
    lines = []
    for at, n, count, tail in versions.all_tails(stored):
        if not lines:
            lines = ["---", "", "## Other versions", ""]
        lines += [f"### From message {at + 1}: version {n + 1} of {count}", ""]
        for msg in tail["messages"]:
            lines += _message_lines(msg, "####")
    return lines


def _message_lines(msg: dict, level: str, note: str = "") -> list[str]:
    """One message of a Markdown transcript under a heading of ``level``."""
    lines = []
    role = str(msg.get("role") or "message").capitalize()
    status = msg.get("status")
    heading = f"{level} {role}"
    if _when(msg.get("timestamp")):
        heading += f" · {_when(msg.get('timestamp'))}"
    if status and status != "complete":
        heading += f" ({status})"
    lines += [heading + note, ""]
    if msg.get("reasoning"):
        reasoning = close_open_fences(str(msg["reasoning"]))
        lines += ["<details><summary>Reasoning</summary>", "", reasoning, "", "</details>", ""]
    for call in msg.get("tool_calls") or []:
        if isinstance(call, dict):
            lines += _tool_lines(call)
    for att in msg.get("attachments") or []:
        if isinstance(att, dict):
            lines += [f"_Attached: {' '.join(str(att.get('name')).split())} ({att.get('mime')}, "
                      f"{att.get('size')} bytes)_", ""]
    lines += [close_open_fences(message_text(msg)), ""]
    return lines


# ---------------------------------------------------------------- import


@bp.post("/api/session/import")
def import_sessions():
    """Import our JSON export or backup (``hermes-webui export --all``), or another app's
    export: ChatGPT's ``conversations.json`` or its .zip (also split in
    ``conversations-NNN.json`` parts), Claude's or Open WebUI's JSON.

    Input: multipart with the file in the part named ``file``, or the document as the
    request body. Up to ``--max-import-bytes`` (200 MiB by default, room for a few
    embedded attachments; 413 beyond, also inside a .zip). Attachments embedded
    in our export are restored under the new session (an attachment over
    ``--max-attachment-bytes`` → 413, nothing written). Output: ``{sessions:
    [compact], imported: n, skipped_messages: n, skipped_conversations: [{title, reason}]}``;
    every conversation becomes a new session with a fresh id; in another app's export a
    broken or empty conversation is skipped and named, never half imported. 400 with the
    reason (and nothing written) for a file that is not UTF-8 JSON in a known format (the
    message names what it looks like), or when no conversation can be imported; 413 (nothing
    written) when a user message is over ``--max-message-bytes`` or a tool result,
    tool arguments or reasoning over ``--max-tool-result-bytes`` (docs/architecture.md §3 limits)
    in our own export, or in every conversation of another app's export (there a
    conversation over a limit is skipped and named like a broken one, the others imported).
    """
    doc = _upload_doc()
    try:
        items, skipped = parse_document(doc, over_limit=lambda item: _limit_problem(item, None))
    except ImportTooLarge as exc:
        raise ApiError(f"cannot import this file: {exc}", 413) from None
    except ImportFormatError as exc:
        raise ApiError(f"cannot import this file: {exc}") from None
    _check_import_limits(items)
    store = current_store()
    sessions = store.create_many(items, keep_times=True)
    _restore_attachments(store, sessions, items)
    if isinstance(doc, dict) and isinstance(doc.get("projects"), list):  # a backup (api.backup): its projects
        from .profiles import profile_dir
        from .projects import ProjectStore
        projects = ProjectStore(profile_dir())
        for p in doc["projects"]:
            if isinstance(p, dict) and isinstance(p.get("project_id"), str) and isinstance(p.get("name"), str):
                projects.adopt(p["project_id"], p["name"], color=p.get("color"), workspace=p.get("workspace"),
                               instructions=p.get("instructions"), created_at=p.get("created_at"))
    return jsonify(sessions=[s.compact() for s in sessions], imported=len(sessions),
                   skipped_messages=sum(item.get("skipped", 0) for item in items), skipped_conversations=skipped)


def _restore_attachments(store, sessions, items) -> None:
    """Write each imported session's embedded attachments; on a failure every session of
    this import is deleted again (with what was written) and the error raised."""
    try:
        for session, item in zip(sessions, items):
            with session_lock(session.session_id):
                for att in item.get("attachments") or []:
                    store.attachments.add_bytes(session.session_id, att["data"], att["name"], att["mime"], att["id"])
    except BaseException:
        for session in sessions:
            with session_lock(session.session_id):
                store.delete(session.session_id)
        raise


def _utf8_size(value) -> int:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return len(text.encode("utf-8", "replace"))


def _limit_problem(item: dict, n: int | None) -> str | None:
    """Why the conversation ``item`` (number ``n``, or None when it is named elsewhere)
    is over one of this server's limits, naming the message; None if it is not."""
    config = app_state().config
    conv = f"conversation {n} ({item['meta'].get('title') or DEFAULT_TITLE!r}), " if n is not None else ""
    for att in item.get("attachments") or []:
        if len(att["data"]) > config.max_attachment_bytes:
            return (f"{conv or 'it '}has an attachment ({att['name']!r}) over this server's limit of "
                    f"{config.max_attachment_bytes:,} bytes")
    stored = [(f"version {k + 1} of {count} from message {at + 1}, message {i + 1}", m)
              for at, k, count, tail in versions.all_tails(item["meta"].get("versions"))
              for i, m in enumerate(tail["messages"])]
    for label, msg in [(f"message {i + 1}", m) for i, m in enumerate(item["messages"])] + stored:
        where = f"{conv}{label}"
        if msg.get("role") == "user" and _utf8_size(message_text(msg)) > config.max_message_bytes:
            return f"{where} is over this server's limit of {config.max_message_bytes:,} bytes for one message"
        blocks = [msg.get("reasoning")] + [v for call in (msg.get("tool_calls") or []) if isinstance(call, dict)
                                           for v in (call.get("result"), call.get("args"))]
        if any(b is not None and _utf8_size(b) > config.max_tool_result_bytes for b in blocks):
            return (f"{where} has a tool result or reasoning over this server's limit of "
                    f"{config.max_tool_result_bytes:,} bytes")
    return None


def _check_import_limits(items: list[dict]) -> None:
    """ApiError 413 naming the first message of ``items`` that is over a limit."""
    for n, item in enumerate(items, 1):
        problem = _limit_problem(item, n)
        if problem:
            raise ApiError(f"cannot import this file: {problem}", 413)


@bp.url_value_preprocessor
def _per_route_limits(endpoint, values):
    # Runs before every before_request hook, so no hook can read the body under the
    # app-wide 2 MiB limit first.
    if endpoint == "session_export.import_sessions":
        request.max_content_length = _import_max()


def _import_max() -> int:
    return app_state().config.max_import_bytes


def _upload_bytes() -> bytes:
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ApiError("missing the file: send it in the multipart part named 'file'")
        raw = upload.read(_import_max() + 1)
    else:
        raw = request.get_data(cache=False)
    if len(raw) > _import_max():
        raise ApiError(f"the file is larger than {_import_max() / 1048576:g} MiB (--max-import-bytes)", 413)
    if not raw.strip():
        raise ApiError("the file is empty")
    return raw


def _upload_doc():
    """The uploaded document, parsed: a JSON file, or the conversations of a zip archive."""
    raw = _upload_bytes()
    return _from_zip(raw) if raw[:4] == b"PK\x03\x04" else _decode(raw)


_CONVERSATION_FILE = re.compile(r"conversations(-\d+)?\.json")


def _from_zip(raw: bytes):
    """The conversations of a zip archive: ``conversations.json``, or every
    ``conversations-NNN.json`` (a ChatGPT export split in parts) joined in order, or the
    only .json file; a hermes-webui backup (``hermes_webui_backup.json``) as it is.
    The bytes read are capped at ``--max-import-bytes`` in all."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".json") and not n.endswith("/")]
            base = {n: n.rsplit("/", 1)[-1] for n in names}
            if "hermes_webui_backup.json" in names:
                from .backup import read_backup
                try:
                    return read_backup(archive, _import_max())
                except (ValueError, UnicodeDecodeError) as exc:
                    raise ApiError(f"cannot read this backup: {exc}") from None
            chosen = sorted((n for n in names if _CONVERSATION_FILE.fullmatch(base[n])), key=_part_number) \
                or (names if len(names) == 1 else [])
            if not chosen:
                raise ApiError("the zip archive has no conversations.json (nor conversations-NNN.json parts)")
            budget, docs = _import_max(), []
            for name in chosen:
                with archive.open(name) as member:
                    data = member.read(budget + 1)
                budget -= len(data)
                if budget < 0:
                    raise ApiError(f"the conversations in the archive are larger than {_import_max() / 1048576:g} MiB "
                                   "(--max-import-bytes)", 413)
                docs.append(_decode(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError) as exc:
        raise ApiError(f"cannot read the zip archive: {exc}") from None
    if len(docs) == 1:
        return docs[0]
    if not all(isinstance(d, list) for d in docs):
        raise ApiError("the conversations-NNN.json parts of the archive must each hold a list")
    return [conv for d in docs for conv in d]


def _part_number(name: str) -> int:
    m = re.search(r"-(\d+)\.json$", name)
    return int(m.group(1)) if m else -1


def _decode(raw: bytes):
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ApiError(f"the file is not UTF-8 text (bad byte at offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ApiError(f"the file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise ApiError("the file is not valid JSON: nested too deeply") from None


def init_app(app) -> None:
    """Register the blueprint and open the full-text search index (:mod:`api.search`)."""
    app.register_blueprint(bp)
    search.init_app(app)
