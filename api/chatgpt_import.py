"""The importer: turn an uploaded document into new sessions, validating everything first.

Two formats are understood (:func:`parse_import` tells them apart):

* **ours** — what ``GET /api/session/export?format=json`` writes,
  ``{"hermes_webui_export": 1, "session": {…metadata, "messages": [...]}}`` (or
  ``"sessions": [...]``), or a bare session object ``{…, "messages": [...]}`` such as a
  file from ``sessions/``. A session object may carry ``"attachments": [{id, name, size,
  mime, data_base64}]``, its attached files (:func:`_own_attachments`).
* **ChatGPT** — ``conversations.json`` from a ChatGPT data export: a list of
  conversations, each ``{title, create_time, update_time, mapping, current_node, …}``
  where ``mapping`` is a tree ``{node_id: {message, parent, children}}``. The branch
  the user last saw is the path from the root to ``current_node``; it is taken in order
  and is the version shown; every other branch is kept as another version where it parts
  from it (:mod:`api.versions`; :func:`chatgpt_versions`). System, visually hidden and
  empty messages and tool messages are skipped. Each conversation becomes one session.

Titles are cleaned as the store cleans them (:func:`api.models.clean_title`: one line,
at most 200 characters, lone surrogates replaced); other metadata strings (model, ids)
longer than :data:`META_STRING_MAX_BYTES` are left out, so no import can make a
session's metadata part large. Message text is kept whole.

Nothing here touches the disk: the caller writes the sessions only once the whole
document has been parsed, so a malformed file imports nothing. Never imports Flask.
"""
from __future__ import annotations

import time

from . import versions
from .codec import clean_json, clean_text
from .import_formats import ImportFormatError, ImportTooLarge
from .models import META_STRING_MAX_BYTES, clean_title

EXPORT_VERSION = 1
IMPORTED_TITLE = "Imported chat"
_KEPT_META = ("title", "manual_title", "created_at", "updated_at", "model", "workspace", "pinned", "archived",
              "imported_from", "source_id", "project_id", "tags")


def parse_import(doc) -> list[dict]:
    """Sessions to create from a parsed JSON document (:func:`parse_document` without
    the list of conversations it skipped)."""
    return parse_document(doc)[0]


def parse_document(doc, over_limit=None) -> tuple[list[dict], list[dict]]:
    """Sessions to create from a parsed JSON document, and the conversations skipped.

    Returns ``([{"meta": {…}, "messages": [...], "skipped": n}], [{"title", "reason"}])``
    where ``meta`` holds only metadata keys a new session may take (no id, no stream
    fields) and ``skipped`` counts messages left out. In another app's export (ChatGPT,
    Claude, Open WebUI) a conversation that is broken or empty is skipped and named, the
    others are imported; so is one for which ``over_limit(item)`` (the server's size
    limits) returns a reason. Our own export is all or nothing (its limits are the
    caller's to check). Raises :class:`ImportFormatError` for an unknown format or when
    no conversation is left, :class:`ImportTooLarge` when the only ones left out for
    another reason than their size are none.
    """
    from . import import_formats as other
    if isinstance(doc, dict) and "mapping" in doc:
        doc = [doc]
    if isinstance(doc, list) and any(isinstance(c, dict) and "mapping" in c for c in doc):
        return _each(doc, _chatgpt_conversation, over_limit)
    if other.is_claude(doc):
        return _each(doc, other.claude_conversation, over_limit)
    if other.is_open_webui(doc):
        return _each(doc, other.open_webui_conversation, over_limit)
    return _parse_own(doc), []


def _each(conversations: list, convert, over_limit=None) -> tuple[list[dict], list[dict]]:
    """``convert`` every conversation; the ones it refuses, or that ``over_limit`` names
    a reason for, are skipped and named."""
    from .import_formats import conversation_title
    items, skipped, too_large = [], [], 0
    for n, conv in enumerate(conversations, 1):
        try:
            item = convert(conv)
        except ImportFormatError as exc:
            skipped.append({"title": conversation_title(conv, n), "reason": str(exc)})
            continue
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a shape no rule foresaw
            skipped.append({"title": conversation_title(conv, n), "reason": f"malformed ({exc})"})
            continue
        reason = over_limit(item) if over_limit is not None else None
        if reason:
            too_large += 1
            skipped.append({"title": conversation_title(conv, n), "reason": reason})
        else:
            items.append(item)
    if not items:
        detail = "; ".join(f"{s['title']}: {s['reason']}" for s in skipped[:5])
        error = ImportTooLarge if too_large and too_large == len(skipped) else ImportFormatError
        raise error(f"no conversation in the file could be imported ({detail})")
    return items, skipped


def _parse_own(doc) -> list[dict]:
    if isinstance(doc, dict) and "hermes_webui_export" in doc:
        if doc.get("hermes_webui_export") != EXPORT_VERSION:
            raise ImportFormatError(f"unsupported export version {doc.get('hermes_webui_export')!r}")
        items = doc["sessions"] if "sessions" in doc else [doc.get("session")]
        if not isinstance(items, list) or not items:
            raise ImportFormatError("the export holds no sessions")
        return [own_session(s, f"session {i + 1}") for i, s in enumerate(items)]
    if isinstance(doc, dict) and "messages" in doc:
        return [own_session(doc, "session")]
    if isinstance(doc, list) and not doc:
        raise ImportFormatError("the file holds an empty list: no conversations to import")
    from .import_formats import describe_unknown
    raise ImportFormatError(describe_unknown(doc))


# ---------------------------------------------------------------- our own format


def own_session(obj, where: str) -> dict:
    """Validate one session object of our export; see :func:`parse_import`."""
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise ImportFormatError(f"{where}: not a session object with a \"messages\" list")
    obj = clean_json(obj)
    messages = [_own_message(msg, f"{where}, message {i}") for i, msg in enumerate(obj["messages"])]
    meta = {k: obj[k] for k in _KEPT_META if k in obj}
    try:  # the other versions of the conversation, checked like its messages
        kept = versions.check(obj.get("versions"), len(messages), _own_message, where)
    except ValueError as exc:
        raise ImportFormatError(str(exc)) from None
    if kept:
        meta["versions"] = kept
    if not isinstance(meta.get("title"), str):
        meta.pop("title", None)
    for key in ("created_at", "updated_at"):
        if not _is_number(meta.get(key)):
            meta.pop(key, None)
    for key in ("model", "workspace", "imported_from", "source_id"):
        if not _short_string(meta.get(key)):
            meta.pop(key, None)
    for key in ("pinned", "archived", "manual_title"):
        meta[key] = meta.get(key) is True
    if not (isinstance(meta.get("project_id"), str) and _short_string(meta["project_id"])):
        meta.pop("project_id", None)
    if "tags" in meta:
        tags = meta["tags"] if isinstance(meta["tags"], list) else []
        meta["tags"] = [clean_text(t)[:64] for t in tags if isinstance(t, str) and t.strip()][:32]
    meta["title"] = clean_title(meta.get("title") or "") or IMPORTED_TITLE
    return {"meta": meta, "messages": messages, "skipped": 0,
            "attachments": _own_attachments(obj.get("attachments"), where)}


def _own_message(msg, where: str) -> dict:
    """One message of our export, checked; a missing or malformed timestamp is left out
    (not the time of the import: the page shows no time rather than a wrong one)."""
    if not isinstance(msg, dict):
        raise ImportFormatError(f"{where}: not a message object")
    from .import_formats import settle_role
    settle_role(msg)  # no role or an unknown one: kept as an assistant message with its source_role
    if not isinstance(msg.get("content"), (str, list, type(None))):
        raise ImportFormatError(f"{where}: \"content\" must be a string or a list")
    if "timestamp" in msg and not _is_number(msg["timestamp"]):
        del msg["timestamp"]
    return msg


def _own_attachments(raw, where: str) -> list[dict]:
    """The embedded attachments of an exported session, decoded and checked:
    ``[{id, name, mime, data: bytes}]``. Each entry of the export is ``{id, name, size,
    mime, data_base64}``; a malformed entry, a repeated id or a size that does not
    match the decoded bytes is an :class:`ImportFormatError`."""
    import base64
    import binascii

    from .attachment_store import guess_mime, valid_id
    from .errors import PathError
    from .safepath import upload_name

    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ImportFormatError(f"{where}: \"attachments\" must be a list")
    out, seen = [], set()
    for i, att in enumerate(raw):
        here = f"{where}, attachment {i + 1}"
        if not isinstance(att, dict) or not valid_id(att.get("id")) or att["id"] in seen:
            raise ImportFormatError(f"{here}: needs an \"id\" of letters, digits, - or _ (once per session)")
        try:
            name = upload_name(att.get("name") or "attachment")
            data = base64.b64decode(att.get("data_base64") or "", validate=True)
        except (ValueError, binascii.Error, TypeError, PathError) as exc:
            raise ImportFormatError(f"{here}: {getattr(exc, 'message', exc)}") from None
        if att.get("size") is not None and att.get("size") != len(data):
            raise ImportFormatError(f"{here}: \"size\" is {att.get('size')!r} but the data holds {len(data)} bytes")
        seen.add(att["id"])
        out.append({"id": att["id"], "name": name, "data": data,
                    "mime": guess_mime(name, data[:64], att.get("mime") if isinstance(att.get("mime"), str) else None)})
    return out


def _short_string(value) -> bool:
    """Whether ``value`` is a string that may go into a session's metadata (at most
    :data:`META_STRING_MAX_BYTES` UTF-8 bytes; longer ones are left out of the import)."""
    return isinstance(value, str) and len(value.encode("utf-8", "replace")) <= META_STRING_MAX_BYTES


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


# ---------------------------------------------------------------- ChatGPT


def _chatgpt_conversation(conv) -> dict:
    """One session from a ChatGPT conversation; ImportFormatError if broken or empty."""
    if not isinstance(conv, dict):
        raise ImportFormatError("not an object")
    messages, skipped = chatgpt_branch(conv, "the conversation")
    if not messages:
        raise ImportFormatError("no message to import")
    meta = _chatgpt_meta(conv, messages)
    other = chatgpt_versions(conv)
    if other:
        meta["versions"] = other
    return {"meta": meta, "messages": messages, "skipped": skipped}


def parse_chatgpt_export(conversations: list) -> list[dict]:
    """Sessions from a ChatGPT ``conversations.json`` list; see :func:`parse_import`.

    Conversations with no visible message are left out. Raises
    :class:`ImportFormatError` naming the conversation (1-based) and node at fault.
    """
    out = []
    for i, conv in enumerate(conversations):
        where = f"conversation {i + 1}"
        if not isinstance(conv, dict):
            raise ImportFormatError(f"{where}: not an object")
        if isinstance(conv.get("title"), str) and conv["title"].strip():
            where += f" ({conv['title'].strip()[:60]!r})"
        messages, skipped = chatgpt_branch(conv, where)
        if messages:
            out.append({"meta": _chatgpt_meta(conv, messages), "messages": messages, "skipped": skipped})
    if not out:
        raise ImportFormatError("no conversation in the file has a message to import")
    return out


def _chatgpt_meta(conv: dict, messages: list) -> dict:
    times = [m["timestamp"] for m in messages if "timestamp" in m] or [time.time()]
    created = conv.get("create_time") if _is_number(conv.get("create_time")) else times[0]
    updated = conv.get("update_time") if _is_number(conv.get("update_time")) else times[-1]
    title = clean_title(conv["title"]) if isinstance(conv.get("title"), str) else ""
    meta = {"title": title or IMPORTED_TITLE, "manual_title": bool(title), "created_at": float(created),
            "updated_at": float(max(updated, created)), "pinned": False, "archived": False,
            "imported_from": "chatgpt"}
    if _short_string(conv.get("default_model_slug")):
        meta["model"] = clean_text(conv["default_model_slug"])
    source = conv.get("conversation_id") or conv.get("id")
    if _short_string(source):
        meta["source_id"] = clean_text(source)
    return meta


def chatgpt_branch(conv: dict, where: str) -> tuple[list[dict], int]:
    """The messages on the path root → ``current_node``, in order, and how many were skipped."""
    chain = _chain(conv, where)
    messages, skipped = [], 0
    fallback_ts = conv.get("create_time") if _is_number(conv.get("create_time")) else None
    for node in chain:
        raw = node.get("message")
        if raw is None:
            continue                  # the structural root
        if not isinstance(raw, dict):
            raise ImportFormatError(f"{where}: node {str(node.get('id'))[:80]!r} has a malformed message")
        msg = _chatgpt_message(raw, fallback_ts)
        if msg is None:
            skipped += 1
            continue
        fallback_ts = msg.get("timestamp", fallback_ts)
        messages.append(msg)
    return messages, skipped


def _chain(conv: dict, where: str) -> list[dict]:
    """The nodes on the path root → ``current_node``, root first; ImportFormatError if
    the mapping or the path is broken."""
    mapping = conv.get("mapping")
    if not isinstance(mapping, dict) or not mapping:
        raise ImportFormatError(f"{where}: \"mapping\" must be a non-empty object")
    node_id = conv.get("current_node")
    if node_id is None:  # some exports leave it out: the newest leaf is the branch last seen
        leaves = [k for k, n in mapping.items() if isinstance(n, dict) and not n.get("children")]
        node_id = max(leaves, key=lambda k: _node_time(mapping[k]), default=None)
    if not isinstance(node_id, str) or node_id not in mapping:
        raise ImportFormatError(f"{where}: \"current_node\" {str(node_id)[:80]!r} is not a node of its mapping")
    chain, seen = [], set()
    while node_id is not None:
        if node_id in seen:
            raise ImportFormatError(f"{where}: the parent links of node {node_id[:80]!r} form a cycle")
        seen.add(node_id)
        node = mapping.get(node_id)
        if not isinstance(node, dict):
            raise ImportFormatError(f"{where}: node {str(node_id)[:80]!r} is missing from the mapping")
        chain.append(node)
        node_id = node.get("parent")
        if node_id is not None and not isinstance(node_id, str):
            raise ImportFormatError(f"{where}: node {str(chain[-1].get('id'))[:80]!r} has an invalid parent")
    chain.reverse()
    return chain


def chatgpt_versions(conv: dict) -> dict:
    """The other branches of a ChatGPT conversation's ``mapping`` tree as versions
    (:mod:`api.versions`) of the branch :func:`chatgpt_branch` takes.

    Where a node of that branch has other children, each child's subtree becomes a
    version starting at the index the branch has reached there (its ``current`` is the
    branch shown, in the order of ``children``). Inside a subtree the last child is the
    one followed and the others nest as its versions. Subtrees with no message to import
    are left out; a malformed node ends its subtree (the shown branch was checked already).
    """
    mapping = conv["mapping"]
    chain = _chain(conv, "the conversation")
    path = {id(node) for node in chain}
    after = {id(a): b for a, b in zip(chain, chain[1:])}
    fallback = conv.get("create_time") if _is_number(conv.get("create_time")) else None
    seen = {nid for nid, node in mapping.items() if id(node) in path}
    out: dict = {}
    count = 0
    for node in chain:
        raw = node.get("message")
        msg = _chatgpt_message(raw, fallback) if isinstance(raw, dict) else None
        if msg is not None:
            count, fallback = count + 1, msg.get("timestamp", fallback)
        nxt = after.get(id(node))
        if nxt is None:
            break
        kids = [k for k in _children(node, mapping) if id(mapping[k]) in path or k not in seen]
        if len(kids) < 2:
            continue
        shown_at = next((i for i, k in enumerate(kids) if id(mapping[k]) in path), len(kids))
        tails = []
        for i, kid in enumerate(kids):
            if i == shown_at:
                tails.append(None)
            elif id(mapping[kid]) not in path:
                tail = _subtree(mapping, kid, count, seen, fallback, 1)
                if tail is not None:
                    tails.append(tail)
        if shown_at == len(kids):
            tails.append(None)
        entry = out.get(str(count))
        if entry is not None:  # a skipped node branched at the same index: one point
            tails = [t for t in entry["tails"] if t is not None] + tails
        if len(tails) >= 2:
            out[str(count)] = {"current": tails.index(None), "tails": tails}
    return {k: v for k, v in out.items() if int(k) < count}


def _children(node: dict, mapping: dict) -> list[str]:
    kids = node.get("children")
    return [k for k in kids if isinstance(k, str) and isinstance(mapping.get(k), dict)] if isinstance(kids, list) else []


def _subtree(mapping: dict, node_id: str, base: int, seen: set, fallback: float, depth: int) -> dict | None:
    """The messages of the subtree at ``node_id`` (the last child followed at each node)
    as a tail of :mod:`api.versions` starting at index ``base``, or None if it has none."""
    messages: list = []
    inner: dict = {}
    while node_id is not None and node_id not in seen:
        seen.add(node_id)
        node = mapping[node_id]
        raw = node.get("message")
        msg = _chatgpt_message(raw, fallback) if isinstance(raw, dict) else None
        if msg is not None:
            messages.append(msg)
            fallback = msg.get("timestamp", fallback)
        kids = [k for k in _children(node, mapping) if k not in seen]
        node_id = kids[-1] if kids else None
        if len(kids) > 1 and depth < versions.MAX_DEPTH:
            at = base + len(messages)
            tails = [t for t in (_subtree(mapping, k, at, seen, fallback, depth + 1) for k in kids[:-1]) if t]
            if tails:
                inner[str(at)] = {"current": len(tails), "tails": tails + [None]}
    if not messages:
        return None
    tail = {"messages": messages}
    inner = {k: v for k, v in inner.items() if int(k) < base + len(messages)}
    if inner:
        tail["versions"] = inner
    return tail


def _node_time(node: dict) -> float:
    msg = node.get("message") if isinstance(node.get("message"), dict) else {}
    return msg.get("create_time") if _is_number(msg.get("create_time")) else 0.0


def _chatgpt_message(raw: dict, fallback_ts: float | None) -> dict | None:
    """One of our messages from a ChatGPT message node, or None to skip it. Without a
    ``create_time`` it takes ``fallback_ts`` (the message before it, else the
    conversation's), and no timestamp at all when that is None too."""
    author = raw.get("author") if isinstance(raw.get("author"), dict) else {}
    role = author.get("role")
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    if role not in ("user", "assistant") or meta.get("is_visually_hidden_from_conversation"):
        return None
    text = clean_json(_chatgpt_text(raw.get("content")))
    if not text.strip():
        return None
    ts = raw.get("create_time")
    msg = {"role": role, "content": text}
    if _is_number(ts) or fallback_ts is not None:
        msg["timestamp"] = float(ts) if _is_number(ts) else fallback_ts
    if role == "assistant":
        msg["status"] = "complete"
        if _short_string(meta.get("model_slug")):
            msg["model"] = clean_text(meta["model_slug"])
    return msg


def _chatgpt_text(content) -> str:
    """The visible text of a ChatGPT ``content`` object (text, multimodal text or code)."""
    if not isinstance(content, dict):
        return ""
    ctype = content.get("content_type")
    if ctype in ("user_editable_context", "thoughts", "reasoning_recap", "model_editable_context"):
        return ""
    if ctype == "code" and isinstance(content.get("text"), str):
        return f"```\n{content['text']}\n```"
    parts = content.get("parts")
    if isinstance(parts, list):
        return "\n".join(p for p in parts if isinstance(p, str))
    text = content.get("text")
    return text if isinstance(text, str) else ""
