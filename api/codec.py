"""The session file codec (docs/architecture.md §2–3): the on-disk layout and its fast readers.

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
parsing the rest. The metadata part is small (docs/architecture.md §3 invariant 8), but the parser is
right for a prefix of any size: a prefix that fails to parse means "read more", and
only a parse of the whole file can call it malformed.

Pure functions on bytes and text; no I/O of its own beyond the buffer it is handed.
"""
from __future__ import annotations

import codecs
import json
import re

# Keys written first, in this order; unknown keys follow, then "messages".
METADATA_KEYS = (
    "session_id", "title", "manual_title", "created_at", "updated_at", "model", "workspace",
    "pinned", "archived", "message_count", "active_stream_id", "generation",
    "intentional_shrink_generation",
)
HEAD_CHUNK = 16 * 1024  # read_header's first read; it grows ×4 until the header is whole
# Keys written after "messages", each on one line, so they never weigh on the metadata
# prefix: the stored versions of a conversation (api.versions), which can be as large as
# the transcript. The tail reader steps over them (:func:`array_close`).
TRAILING_KEYS = ("versions",)


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
    ordered.update((k, v) for k, v in meta.items()
                   if k not in ordered and k != "messages" and k not in TRAILING_KEYS)
    return ordered


def dumps_json(value) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # a lone surrogate slipped past clean_json: escape it
        return json.dumps(value, ensure_ascii=True)


def encode_session(meta: dict, messages: list) -> bytes:
    """Serialise to the on-disk layout described in the module docstring; a non-empty
    :data:`TRAILING_KEYS` value follows the array, ``,\n"versions":{…}`` on one line."""
    ordered = ordered_metadata(meta)
    head = dumps_json(ordered)[:-1]
    sep = "," if ordered else ""
    body = ",\n".join(dumps_json(m) for m in messages)
    trailing = "".join(f',\n{dumps_json(k)}:{dumps_json(meta[k])}' for k in TRAILING_KEYS if meta.get(k))
    return (f'{head}{sep}\n"messages":[\n{body}\n]{trailing}}}\n').encode("utf-8")


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


_MESSAGES_KEY = re.compile(r',[ \t\n\r]*"messages"[ \t\n\r]*:[ \t\n\r]*\[')


def _any_layout_header(text: str) -> tuple[dict, int] | None:
    """Other layouts (the upstream's pretty-printed files): the first ``, "messages": [``
    whose prefix parses as an object once closed. A successful parse proves that comma
    is at the object's top level, outside any string, so the key is the top-level
    ``messages``; one C-speed ``json.loads`` instead of a loop over ~70 keys. None when
    that candidate does not fit (the caller's general parser decides)."""
    m = _MESSAGES_KEY.search(text)
    if m is None:
        return None
    try:
        meta = json.loads(text[:m.start()] + "}")
    except ValueError:
        return None
    if not isinstance(meta, dict) or "messages" in meta:
        return None
    key_at = text.index('"', m.start())
    return meta, len(text[:key_at].encode("utf-8"))


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
        fast = _fast_header(text) or _any_layout_header(text)
        if fast is not None:
            return fast
        try:
            meta, key_at = parse_header(text, complete)
        except Incomplete:
            n *= 4
            continue
        return meta, len(text[:key_at].encode("utf-8"))


def own_layout_close(buf, size: int) -> int:
    """Offset of the ``\n]}`` that ends a file in our layout (only whitespace after
    it), or -1. Looks at the file's last bytes only: a file in another layout must not
    cost a search through all of it."""
    tail = bytes(buf[max(0, size - 4096):size])
    body = tail.rstrip(b" \t\n\r")
    if not body and size > len(tail):  # more than 4 KiB of trailing whitespace: search
        return buf.rfind(b"\n]}")
    return size - len(tail) + len(body) - 3 if body.endswith(b"\n]}") else -1


def array_close(buf, size: int) -> int:
    """Offset of the ``\n]`` that closes the ``messages`` array of a file in our layout:
    one that ends with ``\n]}`` or, when it has :data:`TRAILING_KEYS`, with one line
    ``,\n"versions":{…}}`` after the array (only whitespace after either); -1 otherwise.
    The trailing line is not parsed here (a full read does that); finding its start costs
    one backwards search for a newline, which no JSON line holds."""
    close_at = own_layout_close(buf, size)
    if close_at >= 0:
        return close_at if not bytes(buf[close_at + 3:size]).strip() else -1
    tail = bytes(buf[max(0, size - 4096):size])
    body = tail.rstrip(b" \t\n\r")
    if not body.endswith(b"}"):
        return -1
    nl = buf.rfind(b"\n", 0, size - len(tail) + len(body))
    if nl < 3 or bytes(buf[nl - 3:nl + 1]) != b"\n],\n":
        return -1
    line = bytes(buf[nl + 1:nl + 64])
    return nl - 3 if any(line.startswith(b'"%s":' % k.encode()) for k in TRAILING_KEYS) else -1


def tail_messages(mm, key_at: int, total: int, start: int, end: int) -> list | None:
    """Messages ``[start, end)`` read backwards from the end of a file in our layout.

    Returns None when the file is not in that layout, so the caller parses it in full.
    """
    open_at = mm.find(b"[", key_at)
    if open_at < 0 or mm[open_at + 1:open_at + 2] != b"\n":
        return None
    close_at = array_close(mm, len(mm))
    if close_at < open_at:
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


# ---------------------------------------------------------------- any other layout

# The upstream system writes ``json.dumps(session, ensure_ascii=False, indent=2)``: its
# metadata first, then ``messages``, then more keys (``tool_calls``,
# ``anchor_activity_scenes``, ``context_messages``), so its array does not end the file
# and its messages span many lines. Where a message starts or ends cannot be known
# without reading every byte before it (any string may hold brackets), so the exact way
# to a window is one pass of the JSON parser over the array, remembered: an index of
# the byte range of each message, kept per file version. Later windows parse only their
# own messages.

INDEX_CACHE_MIN_BYTES = 64 * 1024  # smaller files: a full parse costs no more than the index
_ARRAY_WS = re.compile(r"[ \t\n\r]*")


class MessageIndex:
    """Byte ranges of the messages of one version of one session file.

    ``open_at``/``close_at``: the offsets of the array's ``[`` and ``]``; ``starts[i]``
    and ``ends[i]``: message ``i`` is ``buf[starts[i]:ends[i]]``. Built by
    :func:`index_messages`, read by :func:`indexed_window`.
    """

    __slots__ = ("key_at", "open_at", "close_at", "starts", "ends")

    def __init__(self, key_at: int, open_at: int, close_at: int, starts: list[int], ends: list[int]):
        import array
        self.key_at, self.open_at, self.close_at = key_at, open_at, close_at
        self.starts, self.ends = array.array("q", starts), array.array("q", ends)

    def __len__(self) -> int:
        return len(self.starts)


def index_messages(buf, key_at: int, size: int) -> MessageIndex | None:
    """Index the ``messages`` array whose key starts at byte ``key_at`` of ``buf``.

    Exact for any layout: the array is run through the JSON parser, each message with
    ``raw_decode`` on the bytes read as Latin-1 (every JSON delimiter is ASCII and no
    byte of a multibyte UTF-8 sequence is, so parsing is the same and a character
    offset is a byte offset); the array is also checked to be valid UTF-8. None when
    the array is not a list of objects or not valid UTF-8: the caller's full parse then
    reports what is wrong.
    """
    with memoryview(buf) as whole:
        check = codecs.getincrementaldecoder("utf-8")()
        try:  # the rest of the file must be UTF-8, as for a full parse (checked 1 MiB at a time)
            for at in range(key_at, size, 1 << 20):
                check.decode(whole[at:min(size, at + (1 << 20))], final=at + (1 << 20) >= size)
        except UnicodeDecodeError:
            return None
        text = str(whole[:size], "latin-1")
    try:
        _key, pos = json.decoder.scanstring(text, key_at + 1)
        pos = _ARRAY_WS.match(text, pos).end()
        if text[pos:pos + 1] != ":":
            return None
        open_at = _ARRAY_WS.match(text, pos + 1).end()
        if text[open_at:open_at + 1] != "[":
            return None
        starts, ends = [], []
        pos = _ARRAY_WS.match(text, open_at + 1).end()
        if text[pos:pos + 1] != "]":
            while True:
                value, end = _DECODER.raw_decode(text, pos)
                if not isinstance(value, dict):
                    return None
                starts.append(pos)
                ends.append(end)
                pos = _ARRAY_WS.match(text, end).end()
                if text[pos:pos + 1] == "]":
                    break
                if text[pos:pos + 1] != ",":
                    return None
                pos = _ARRAY_WS.match(text, pos + 1).end()
    except (ValueError, IndexError):
        return None
    return MessageIndex(key_at, open_at, pos, starts, ends)


def _only_ws(buf, lo: int, hi: int, middle: bytes = b"") -> bool:
    return bytes(buf[lo:hi]).strip(b" \t\n\r") == middle


def indexed_window(buf, index: MessageIndex, start: int, end: int) -> list | None:
    """Messages ``[start, end)`` parsed from their byte ranges in ``index``.

    Each range is checked before it is trusted — it must parse as one object and sit
    between the array's delimiters — so an index that no longer fits the file gives
    None (the caller rebuilds it or parses the file), never wrong messages.
    """
    if bytes(buf[index.open_at:index.open_at + 1]) != b"[" or bytes(buf[index.close_at:index.close_at + 1]) != b"]":
        return None
    out = []
    for i in range(start, end):
        lo, hi = index.starts[i], index.ends[i]
        before = index.open_at + 1 if i == 0 else index.ends[i - 1]
        if not _only_ws(buf, before, lo, b"" if i == 0 else b","):
            return None
        try:
            msg = json.loads(bytes(buf[lo:hi]).decode("utf-8"))
        except ValueError:
            return None
        if not isinstance(msg, dict):
            return None
        out.append(msg)
    if end == len(index) and end > start and not _only_ws(buf, index.ends[end - 1], index.close_at):
        return None
    return out


def trailing_members(buf, index: MessageIndex, size: int) -> dict | None:
    """The keys after the ``messages`` array (the upstream's ``tool_calls`` and the
    like), parsed from its ``]`` to the end of the file; ``{}`` when it ends the object.
    None when what follows is not the rest of one JSON object, or names ``messages``
    again (a full parse would take that later list: the caller must parse in full).
    """
    try:
        text = bytes(buf[index.close_at + 1:size]).decode("utf-8")
    except UnicodeDecodeError:
        return None
    out: dict = {}
    pos = _ARRAY_WS.match(text, 0).end()
    try:
        while text[pos:pos + 1] == ",":
            pos = _ARRAY_WS.match(text, pos + 1).end()
            if text[pos:pos + 1] != '"':
                return None
            key, pos = json.decoder.scanstring(text, pos + 1)
            pos = _ARRAY_WS.match(text, pos).end()
            if text[pos:pos + 1] != ":" or key == "messages":
                return None
            out[key], pos = _DECODER.raw_decode(text, _ARRAY_WS.match(text, pos + 1).end())
            pos = _ARRAY_WS.match(text, pos).end()
    except ValueError:
        return None
    if text[pos:pos + 1] != "}" or text[pos + 1:].strip(" \t\n\r"):
        return None
    return out


class MessageIndexCache:
    """The indexes of the last few large files read, keyed by file version.

    A version is ``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)``: every save
    replaces the file (a new inode), and an edit in place changes its ctime, which no
    program can set back. Bounded by entry count and by messages held (16 bytes each).
    """

    def __init__(self, max_entries: int = 64, max_messages: int = 1_000_000):
        import threading
        from collections import OrderedDict
        self._lock = threading.Lock()
        self._entries: "OrderedDict[tuple, MessageIndex]" = OrderedDict()
        self._messages = 0
        self.max_entries, self.max_messages = max_entries, max_messages
        self.builds = 0  # how many indexes were built (the tests count them)

    @staticmethod
    def version(st) -> tuple:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def get(self, version: tuple) -> MessageIndex | None:
        with self._lock:
            found = self._entries.get(version)
            if found is not None:
                self._entries.move_to_end(version)
            return found

    def drop(self, version: tuple) -> None:
        with self._lock:
            gone = self._entries.pop(version, None)
            self._messages -= len(gone) if gone is not None else 0

    def put(self, version: tuple, index: MessageIndex) -> None:
        with self._lock:
            self.builds += 1
            if version[2] < INDEX_CACHE_MIN_BYTES or len(index) > self.max_messages:
                return
            old = self._entries.pop(version, None)
            self._messages += len(index) - (len(old) if old is not None else 0)
            self._entries[version] = index
            while self._entries and (len(self._entries) > self.max_entries or self._messages > self.max_messages):
                _v, gone = self._entries.popitem(last=False)
                self._messages -= len(gone)


MESSAGE_INDEXES = MessageIndexCache()


def window_any_layout(buf, key_at: int, size: int, st, limit: int | None,
                      before: int | None) -> tuple[dict, list, int, int, tuple[int, int]] | None:
    """A window of messages from a file in any layout (the upstream's, hand-edited, …).

    ``st``: the file's ``os.stat_result``. Returns ``(keys after the array, messages
    [start, end), start, message count, (offset of the array's "[", of its "]"))`` where ``end`` is ``before`` clamped to the
    count (the count if None) and ``start`` is ``end - limit`` clamped to 0 (0 if
    ``limit`` is None); or None when the file must be parsed in full. The first read of
    a file version costs one parse of its array; later ones only their window.
    """
    version = MESSAGE_INDEXES.version(st)
    index = MESSAGE_INDEXES.get(version)
    fresh = index is None or index.key_at != key_at
    while True:
        if fresh:
            index = index_messages(buf, key_at, size)
            if index is None:
                return None
            MESSAGE_INDEXES.put(version, index)
        total = len(index)
        end = total if before is None else max(0, min(before, total))
        start = 0 if limit is None else max(0, end - limit)
        window = indexed_window(buf, index, start, end)
        extra = trailing_members(buf, index, size) if window is not None else None
        if extra is not None:
            return extra, window, start, total, (index.open_at, index.close_at)
        MESSAGE_INDEXES.drop(version)
        if fresh:
            return None
        fresh = True  # a remembered index that no longer fits: build it again
