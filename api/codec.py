"""The session file codec (DESIGN §2–3): the on-disk layout and its fast readers.

A session lives in ``sessions/<sid>.json``, written in this layout::

    {"session_id":"…","title":"…",…,"message_count":3,
    "messages":[
    {"role":"user",…},
    {"role":"assistant",…}
    ]}

Metadata keys come first and ``messages`` last, one message per line. Any JSON object
with a ``messages`` list is readable (hand-edited files, other layouts); the layout only
makes two things fast: :func:`read_header` parses just the prefix before ``"messages"``
and :func:`tail_messages` reads the newest messages from the end of the file without
parsing the rest. The metadata part is small (DESIGN §3 invariant 8), but the parser is
right for a prefix of any size: a prefix that fails to parse means "read more", and
only a parse of the whole file can call it malformed.

Pure functions on bytes and text; no I/O of its own beyond the buffer it is handed.
"""
from __future__ import annotations

import json
import re

# Keys written first, in this order; unknown keys follow, then "messages".
METADATA_KEYS = (
    "session_id", "title", "manual_title", "created_at", "updated_at", "model", "workspace",
    "pinned", "archived", "message_count", "active_stream_id", "generation",
    "intentional_shrink_generation",
)
HEAD_CHUNK = 16 * 1024  # read_header's first read; it grows ×4 until the header is whole


def clean_text(value: str) -> str:
    """Replace lone surrogates (which JSON ``\\ud800`` escapes can produce) by U+FFFD."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def clean_json(value):
    """:func:`clean_text` applied to every string in a JSON value (keys too)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k): clean_json(v) for k, v in value.items()}
    return value


def ordered_metadata(meta: dict) -> dict:
    """Metadata in file order: ``METADATA_KEYS`` first, unknown keys after, never messages."""
    ordered = {k: meta[k] for k in METADATA_KEYS if k in meta}
    ordered.update((k, v) for k, v in meta.items() if k not in ordered and k != "messages")
    return ordered


def dumps_json(value) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # a lone surrogate slipped past clean_json: escape it
        return json.dumps(value, ensure_ascii=True)


def encode_session(meta: dict, messages: list) -> bytes:
    """Serialise to the on-disk layout described in the module docstring."""
    ordered = ordered_metadata(meta)
    head = dumps_json(ordered)[:-1]
    sep = "," if ordered else ""
    body = ",\n".join(dumps_json(m) for m in messages)
    return (f'{head}{sep}\n"messages":[\n{body}\n]}}\n').encode("utf-8")


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class Incomplete(Exception):
    """A prefix that ends before the header does: read more."""


def parse_header(text: str, complete: bool) -> tuple[dict, int]:
    """Parse the metadata keys of a session object up to its ``"messages"`` key.

    ``text`` is the file's start (all of it when ``complete``). Returns ``(metadata,
    index of the "messages" key in text)``. When ``complete`` is False any failure means
    the cut came too early — a string, number, literal or escape may be cut at the read
    boundary — and raises :class:`Incomplete` ("read more"); only a parse of the whole
    file decides that it is not a session object (``ValueError``).
    """
    try:
        return _parse_header(text)
    except ValueError:
        if not complete:
            raise Incomplete() from None
        raise


def _parse_header(text: str) -> tuple[dict, int]:
    def ws(i):
        return _WS.match(text, i).end()

    pos = ws(0)
    if text[pos:pos + 1] != "{":
        raise ValueError("not a JSON object")
    pos += 1
    meta: dict = {}
    while True:
        pos = ws(pos)
        ch = text[pos:pos + 1]
        if ch != '"':
            raise ValueError("no \"messages\" list" if ch == "}" else f"malformed JSON at character {pos}")
        key_at = pos
        try:
            key, pos = json.decoder.scanstring(text, pos + 1)
            pos = ws(pos)
            if text[pos:pos + 1] != ":":
                raise ValueError(f"malformed JSON at character {pos}")
            pos = ws(pos + 1)
            if key == "messages":
                if text[pos:pos + 1] != "[":
                    raise ValueError("\"messages\" is not a list")
                return meta, key_at
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ValueError(f"malformed JSON: {exc.msg} at character {exc.pos}") from None
        meta[key] = value
        pos = ws(pos)
        ch = text[pos:pos + 1]
        if ch == ",":
            pos += 1
        else:
            raise ValueError("no \"messages\" list" if ch == "}" else f"malformed JSON at character {pos}")


def _fast_header(text: str) -> tuple[dict, int] | None:
    """Our own layout puts ``\n"messages":[`` right after the metadata object; a raw
    newline cannot occur inside a JSON string, so that marker is unambiguous and the
    prefix parses with one C-speed ``json.loads``. None when the layout differs."""
    i = text.find('\n"messages":[')
    if i < 1 or text[i - 1] != ",":
        return None
    try:
        meta = json.loads(text[:i - 1] + "}")
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    return meta, len(text[:i + 1].encode("utf-8"))


def read_header(buf, size: int) -> tuple[dict, int]:
    """Parse the metadata prefix of a session file held in ``buf`` (bytes or mmap).

    Returns ``(metadata, byte offset of the "messages" key)``; reads as little of
    ``buf`` as it can. Raises ``ValueError`` (incl. UnicodeDecodeError) when unreadable.
    """
    n = HEAD_CHUNK
    while True:
        complete = n >= size
        chunk = bytes(buf[: min(n, size)])
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            if complete or exc.start < len(chunk) - 3:
                raise ValueError(f"invalid UTF-8 at byte {exc.start}") from None
            text = chunk[: exc.start].decode("utf-8")
        fast = _fast_header(text)
        if fast is not None:
            return fast
        try:
            meta, key_at = parse_header(text, complete)
        except Incomplete:
            n *= 4
            continue
        return meta, len(text[:key_at].encode("utf-8"))


def tail_messages(mm, key_at: int, total: int, start: int, end: int) -> list | None:
    """Messages ``[start, end)`` read backwards from the end of a file in our layout.

    Returns None when the file is not in that layout, so the caller parses it in full.
    """
    open_at = mm.find(b"[", key_at)
    if open_at < 0 or mm[open_at + 1:open_at + 2] != b"\n":
        return None
    close_at = mm.rfind(b"\n]}")
    if close_at < open_at or mm[close_at + 3:].strip():
        return None
    if total == 0:
        return [] if close_at == open_at + 2 else None
    out = []
    cur = close_at
    for i in range(total - 1, start - 1, -1):
        nl = mm.rfind(b"\n", open_at + 1, cur)
        if nl < open_at + 1:
            return None
        if i < end:
            line = mm[nl + 1:cur].rstrip()
            if line.endswith(b","):
                line = line[:-1]
            try:
                msg = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return None
            if not isinstance(msg, dict):
                return None
            out.append(msg)
        cur = nl
    if start == 0 and cur != open_at + 1:
        return None
    out.reverse()
    return out
