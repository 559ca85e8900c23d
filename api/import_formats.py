"""Other apps' chat exports (Flask-free; :func:`api.chatgpt_import.parse_document` calls these).

* **Claude** (claude.ai → Settings → Export data, ``conversations.json``): a list of
  ``{uuid, name, created_at, updated_at, chat_messages: [{sender: human|assistant,
  text, content: [{type: text|tool_use|tool_result|thinking, …}], created_at}]}``,
  times as ISO 8601.
* **Open WebUI** (Settings → Chats → Export, ``chat-export-*.json``): a list of
  ``{id, title, chat: {title, messages: [...], history: {messages: {id: {id, parentId,
  role, content, timestamp, model}}, currentId}}, created_at, updated_at, pinned,
  archived, meta: {tags}}``, times in epoch seconds; the branch the user last saw is
  the path from the root to ``history.currentId``.

Each conversation is converted whole or raises :class:`ImportFormatError` (its caller
skips it and names it), so no conversation is ever half imported.
"""
from __future__ import annotations

import json
import time
from datetime import datetime

from .codec import clean_json, clean_text
from .models import META_STRING_MAX_BYTES, clean_title

IMPORTED_TITLE = "Imported chat"


class ImportFormatError(ValueError):
    """The document (or one conversation) cannot be imported; the message says why."""


class ImportTooLarge(ImportFormatError):
    """Every conversation that could be read is over one of this server's limits (413)."""


def _when(value, fallback: float | None) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value / 1000 if value > 1e11 else value)  # milliseconds → seconds
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return fallback


def _short(value) -> str | None:
    return clean_text(value) if isinstance(value, str) and value and \
        len(value.encode("utf-8", "replace")) <= META_STRING_MAX_BYTES else None


def _meta(title, created: float, updated: float, source: str, source_id, **more) -> dict:
    title = clean_title(title) if isinstance(title, str) else ""
    meta = {"title": title or IMPORTED_TITLE, "manual_title": bool(title), "created_at": created,
            "updated_at": max(created, updated), "pinned": False, "archived": False, "imported_from": source}
    if _short(source_id):
        meta["source_id"] = _short(source_id)
    meta.update({k: v for k, v in more.items() if v is not None})
    return meta


# ---------------------------------------------------------------- roles

ROLES = ("user", "assistant", "system", "tool")
ROLE_ALIASES = {"human": "user", "ai": "assistant", "bot": "assistant", "model": "assistant",
                "developer": "system", "function": "tool"}


def settle_role(msg: dict) -> dict:
    """``msg`` (changed in place and returned) with a role the page shows: one of
    :data:`ROLES` as it is (any case), a known alias (``human`` → ``user``, ``model``/
    ``ai``/``bot`` → ``assistant``, ``developer`` → ``system``, ``function`` → ``tool``);
    a tool answer (``tool_call_id``) becomes ``tool``; anything else (no role,
    ``narrator``, a number) becomes ``assistant`` with the role it had kept as
    ``source_role`` (at most 40 characters; ``"none"`` when it had none)."""
    raw = msg.get("role")
    role = raw.strip().lower() if isinstance(raw, str) else ""
    role = ROLE_ALIASES.get(role, role)
    if role in ROLES:
        msg["role"] = role
        return msg
    if msg.get("tool_call_id") and not msg.get("tool_calls"):
        msg["role"] = "tool"
        return msg
    msg["role"] = "assistant"
    shown = clean_text(str(raw)).strip()[:40] if raw is not None and not isinstance(raw, (dict, list)) else ""
    msg["source_role"] = shown or "none"
    return msg


# ---------------------------------------------------------------- Claude


def is_claude(doc) -> bool:
    return isinstance(doc, list) and any(isinstance(c, dict) and "chat_messages" in c for c in doc)


def claude_conversation(conv) -> dict:
    """One session from a Claude conversation; ImportFormatError if it is malformed or empty."""
    if not isinstance(conv, dict) or not isinstance(conv.get("chat_messages"), list):
        raise ImportFormatError("no \"chat_messages\" list")
    now = time.time()
    created = _when(conv.get("created_at"), now)
    messages = []
    by_id: dict = {}     # tool_use id → its card, over the whole conversation
    unanswered = []      # cards without a result yet, in order (for results that carry no id)
    for i, raw in enumerate(conv["chat_messages"]):
        if not isinstance(raw, dict):
            raise ImportFormatError(f"message {i + 1} is not an object")
        msg = settle_role({"role": raw.get("sender"), "content": ""})  # human → user; unknown: source_role
        role = msg["role"]
        when = _when(raw.get("created_at"), None)
        if when is not None:  # none given: none stored (the page shows no time rather than a wrong one)
            msg["timestamp"] = when
        texts, reasoning, tools = [], [], []
        for part in raw.get("content") if isinstance(raw.get("content"), list) else []:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "thinking" and isinstance(part.get("thinking"), str):
                reasoning.append(part["thinking"])
            elif kind == "tool_use":
                card = {"id": str(part.get("id") or len(tools)), "name": str(part.get("name") or "tool"),
                        "args": part.get("input")}
                tools.append(card)
                unanswered.append(card)
                if isinstance(part.get("id"), str) and part["id"]:
                    by_id[part["id"]] = card
            elif kind == "tool_result":
                _attach_result(part, by_id, unanswered)
        if not texts and isinstance(raw.get("text"), str):
            texts.append(raw["text"])
        for att in raw.get("attachments") if isinstance(raw.get("attachments"), list) else []:
            if isinstance(att, dict) and isinstance(att.get("extracted_content"), str):
                texts.append(f"[{att.get('file_name') or 'attachment'}]\n{att['extracted_content']}")
        msg["content"] = "\n\n".join(t for t in texts if t)
        if reasoning:
            msg["reasoning"] = "\n\n".join(reasoning)
        if tools:
            msg["tool_calls"] = tools
        if role == "assistant":
            msg["status"] = "complete"
        if msg["content"].strip() or tools:
            messages.append(msg)
    if not messages:
        raise ImportFormatError("no message to import")
    last = next((m["timestamp"] for m in reversed(messages) if "timestamp" in m), created)
    meta = _meta(conv.get("name"), created, _when(conv.get("updated_at"), last), "claude", conv.get("uuid"))
    return {"meta": meta, "messages": clean_json(messages), "skipped": 0}


def tool_result_text(content) -> str:
    """A Claude ``tool_result``'s ``content`` as readable text: a string as it is; a list
    of blocks with its ``text`` blocks joined by newlines and every other block as a short
    note (``[image]``, ``[document: name]``); anything else as compact JSON."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        content = [content]
    pieces = []
    for block in content:
        if isinstance(block, str):
            pieces.append(block)
        elif isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            pieces.append(block["text"])
        elif isinstance(block, dict):
            kind = str(block.get("type") or "block")[:40]
            label = block.get("title") or block.get("name") or block.get("file_name")
            pieces.append(f"[{kind}: {str(label)[:80]}]" if isinstance(label, str) and label else f"[{kind}]")
        else:
            pieces.append(json.dumps(block, ensure_ascii=False))
    return "\n".join(pieces)


def _attach_result(part: dict, by_id: dict, unanswered: list) -> None:
    """Put a ``tool_result`` block on the card of the ``tool_use`` its ``tool_use_id``
    names; only a result without an id goes to the oldest call still without one (the
    order they were made in). A result whose id names no call, or a call answered
    already, is dropped."""
    ident = part.get("tool_use_id")
    if isinstance(ident, str) and ident:
        card = by_id.get(ident)
    else:
        card = unanswered[0] if unanswered else None
    if card is None or "result" in card:
        return
    card["result"] = tool_result_text(part.get("content"))
    if part.get("is_error") is True:
        card["is_error"] = True
    unanswered.remove(card)


# ---------------------------------------------------------------- Open WebUI


def is_open_webui(doc) -> bool:
    return isinstance(doc, list) and any(
        isinstance(c, dict) and isinstance(c.get("chat"), dict)
        and ("history" in c["chat"] or "messages" in c["chat"]) for c in doc)


def _owui_branch(chat: dict) -> list[dict]:
    history = chat.get("history") if isinstance(chat.get("history"), dict) else {}
    nodes = history.get("messages") if isinstance(history.get("messages"), dict) else None
    current = history.get("currentId")
    if nodes and isinstance(current, str) and current in nodes:
        chain, seen = [], set()
        while current is not None:
            if current in seen or not isinstance(nodes.get(current), dict):
                raise ImportFormatError("the message links of its history are broken")
            seen.add(current)
            chain.append(nodes[current])
            current = nodes[current].get("parentId")
        return list(reversed(chain))
    listed = chat.get("messages")
    if isinstance(listed, list):
        return listed
    raise ImportFormatError("no messages and no history")


def open_webui_conversation(conv) -> dict:
    """One session from an Open WebUI chat; ImportFormatError if malformed or empty."""
    if not isinstance(conv, dict) or not isinstance(conv.get("chat"), dict):
        raise ImportFormatError("no \"chat\" object")
    chat = conv["chat"]
    created = _when(conv.get("created_at"), _when(chat.get("timestamp"), time.time()))
    messages = []
    for i, raw in enumerate(_owui_branch(chat)):
        if not isinstance(raw, dict):
            raise ImportFormatError(f"message {i + 1} is not an object")
        if raw.get("role") == "system" or not isinstance(raw.get("content"), str):
            continue  # its system prompt is not part of the transcript
        if not raw["content"].strip():
            continue
        msg = settle_role({"role": raw.get("role"), "content": raw["content"]})  # unknown: source_role
        when = _when(raw.get("timestamp"), None)
        if when is not None:  # none given: none stored, not the time of the import
            msg["timestamp"] = when
        if msg["role"] == "assistant":
            msg["status"] = "complete"
            if _short(raw.get("model")):
                msg["model"] = _short(raw["model"])
        messages.append(msg)
    if not messages:
        raise ImportFormatError("no message to import")
    tags = (conv.get("meta") or {}).get("tags") if isinstance(conv.get("meta"), dict) else None
    tags = [t for t in tags if isinstance(t, str) and t.strip()][:32] if isinstance(tags, list) else None
    models = chat.get("models") if isinstance(chat.get("models"), list) else []
    meta = _meta(conv.get("title") or chat.get("title"), created,
                 _when(conv.get("updated_at"), next((m["timestamp"] for m in reversed(messages)
                                                     if "timestamp" in m), created)), "open-webui", conv.get("id"),
                 tags=[clean_text(t.strip().lstrip("#"))[:64] for t in tags] if tags else None,
                 model=_short(models[0]) if models else None)
    meta["pinned"] = conv.get("pinned") is True
    meta["archived"] = conv.get("archived") is True
    return {"meta": meta, "messages": clean_json(messages), "skipped": 0}


def conversation_title(conv, n: int) -> str:
    """How a skipped conversation is named to the user: its title, else its number."""
    if isinstance(conv, dict):
        for key in ("title", "name"):
            if isinstance(conv.get(key), str) and conv[key].strip():
                return clean_title(conv[key])[:80]
        if isinstance(conv.get("chat"), dict) and isinstance(conv["chat"].get("title"), str):
            return clean_title(conv["chat"]["title"])[:80] or f"conversation {n}"
    return f"conversation {n}"


def describe_unknown(doc) -> str:
    """The 400's message for a document in no format we read: what it looks like."""
    if isinstance(doc, list):
        keys = sorted({k for c in doc[:50] if isinstance(c, dict) for k in c})[:8]
        what = f"a list of objects with keys {', '.join(keys)}" if keys else "a list of non-objects"
    elif isinstance(doc, dict):
        what = f"an object with keys {', '.join(sorted(doc)[:8])}"
    else:
        what = f"a JSON {type(doc).__name__}"
    return (f"unsupported format ({what}): import reads a hermes-webui export or session file, "
            "a ChatGPT export (conversations.json, or its .zip with conversations-NNN.json files), "
            "a Claude export (conversations.json with chat_messages) or an Open WebUI chat export")
