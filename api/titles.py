"""A chat's automatic title: first the first line of its first message, then one the model writes.

1. :func:`auto_title`, when the first message is sent (:func:`api.turns.start_turn`): the
   first non-empty line, white space folded, at most :data:`AUTO_TITLE_CHARS` whole
   characters (never inside an accent, a modifier or a ZWJ sequence).
2. :func:`after_first_reply`, when the first reply is saved complete (or cut at the length
   limit): if the profile's
   setting ``generate_titles`` is on (the default) and the backend can answer a plain
   completion (``complete(messages, *, max_tokens, timeout, model)``; the ``fake``
   backend never does), a daemon thread asks the model for a short title and, under the
   session lock, replaces the automatic one, unless the title was set by hand or
   changed meanwhile. The request thread never waits for it; the model gets
   :data:`GENERATE_TIMEOUT` seconds; any failure leaves the first-line title and is logged.
   The change reaches the open tabs as ``sessions_changed {reason: "renamed"}``
   (:mod:`api.session_events`).
"""
from __future__ import annotations

import logging
import re
import threading
import unicodedata
from pathlib import Path

from .codec import clean_text
from .models import DEFAULT_TITLE

log = logging.getLogger(__name__)
AUTO_TITLE_CHARS = 60
GENERATE_TIMEOUT = 20.0     # seconds the model gets to write a title
GENERATE_MAX_TOKENS = 24
EXCERPT_CHARS = 1000        # of the first message, sent to the model
MAX_WORDS = 10              # an answer longer than this is not a title
# Examples, so that a small model (the embedded 135M one) answers with a title rather than
# an answer; a large one needs only the first line.
TITLE_PROMPT = [
    {"role": "system", "content": "You name conversations. Reply with a short title of 2 to 6 words for the "
                                  "user's request, in its language. Reply with the title only."},
    {"role": "user", "content": "Request: How do I change a flat tyre on my bike?"},
    {"role": "assistant", "content": "Fixing a flat bike tyre"},
    {"role": "user", "content": "Request: Explique-moi la photosynthèse simplement"},
    {"role": "assistant", "content": "La photosynthèse expliquée"},
    {"role": "user", "content": "Request: what should I pack for a week of hiking in Norway"},
    {"role": "assistant", "content": "Packing for hiking in Norway"},
]
_WORD = re.compile(r"\w+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_PREFIX = re.compile(r"^(title|titre|titel|título|标题)\s*[:：]\s*", re.I)


def _extends(ch: str) -> bool:
    """True for a code point that belongs to the character before it: a combining mark,
    a joiner, a variation selector, a skin-tone modifier or an emoji tag."""
    cp = ord(ch)
    return bool(unicodedata.combining(ch)) or ch in "\u200d\ufe0e\ufe0f" or 0x1F3FB <= cp <= 0x1F3FF \
        or 0xE0020 <= cp <= 0xE007F


def _cut_whole(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` code points, never inside a character a person
    sees as one (an accent with its letter, an emoji with its modifier or ZWJ sequence)."""
    if len(text) <= limit:
        return text
    end = limit
    while end > 0 and (_extends(text[end]) or text[end - 1] == "\u200d"):
        end -= 1
    return text[:end]


def _fit(line: str) -> str:
    title = " ".join(line.split())
    if len(title) > AUTO_TITLE_CHARS:
        title = _cut_whole(title, AUTO_TITLE_CHARS - 1).rstrip() + "…"
    return title


_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_MARKS = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s*)+")


def _first_line(text: str) -> str:
    """The first non-empty line of prose in ``text``, its Markdown heading or quote marks
    dropped; lines inside a code fence count only when there is no prose at all."""
    in_code, first_code = False, ""
    for line in text.splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        if not line.strip():
            continue
        if in_code:
            first_code = first_code or line
            continue
        prose = _MARKS.sub("", line).strip()
        if prose:
            return prose
    return first_code


def auto_title(text: str) -> str:
    """A sidebar title from the first user message: its first non-empty line of prose
    (a code fence's lines only when there is nothing else; a leading ``#`` or ``>``
    dropped), white space folded, at most 60 characters (whole characters, with "…"
    when cut)."""
    return _fit(_first_line(clean_text(text))) or DEFAULT_TITLE


def first_message_title(meta: dict, text: str) -> dict:
    """The metadata changes when ``text`` becomes a chat's first message (a new chat, or a
    retry or edit of its first message), its title not set by hand: the first-line title
    (:func:`auto_title`), unless the model's title was written for that same first line
    (a retry keeps it); ``{}`` when nothing changes."""
    first = auto_title(text)
    if meta.get("title_generated_from"):
        if meta["title_generated_from"] == first:
            return {}
        return {"title": first, "title_generated_from": None}   # a new first line: named again
    return {"title": first}


def clean_generated(text) -> str | None:
    """The title in a model's answer: reasoning (``<think>…</think>``) dropped, the first
    non-empty line, without a ``Title:`` prefix, quotes, Markdown marks or a final full
    stop, cut like :func:`auto_title`. None when nothing usable is left."""
    if not isinstance(text, str):
        return None
    text = _THINK.sub("", clean_text(text))
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = _PREFIX.sub("", line.strip().lstrip("#*-> ").strip())
    line = line.strip(" \t*_`\"'“”‘’«»「」").rstrip(" .。!！:：;")
    line = line.strip(" \t*_`\"'“”‘’«»「」")
    if len(line) > AUTO_TITLE_CHARS or len(line.split()) > MAX_WORDS:
        return None   # a sentence or a paragraph: the model answered instead of naming
    return _fit(line) or None


def plausible(title: str, user_text: str) -> bool:
    """True if ``title`` shares a word (one a prefix of the other, 3+ letters) or a CJK
    character with the user's message: a small model that copies an example or drifts to
    another subject is not believed."""
    words = {w.lower() for w in _WORD.findall(clean_text(user_text or "")[:EXCERPT_CHARS * 4]) if len(w) >= 3}
    for w in (w.lower() for w in _WORD.findall(title) if len(w) >= 3):
        if any(m.startswith(w) or w.startswith(m) for m in words):
            return True
    return bool(set(_CJK.findall(title)) & set(_CJK.findall(user_text or "")))


def title_messages(user_text: str) -> list[dict]:
    """The chat-completion messages that ask for a title of a chat that starts with
    ``user_text`` (its first :data:`EXCERPT_CHARS` characters)."""
    text = clean_text(user_text or "").strip()
    if len(text) > EXCERPT_CHARS:
        text = _cut_whole(text, EXCERPT_CHARS) + "…"
    return TITLE_PROMPT + [{"role": "user", "content": f"Request: {text}"}]


def can_generate(backend) -> bool:
    """True if ``backend`` can write titles: it has ``complete`` and is not ``fake``."""
    return getattr(backend, "name", None) != "fake" and callable(getattr(backend, "complete", None))


def generation_enabled(profile_dir: Path) -> bool:
    """The profile's ``generate_titles`` setting (default on). A damaged settings file
    reads as off: nothing is sent to the model that the user may have turned off."""
    from . import settings
    try:
        values = settings.profile_settings(Path(profile_dir)) if hasattr(settings, "profile_settings") else {}
    except Exception as exc:  # SettingsUnreadable, OSError: the setting cannot be known
        log.warning("title generation skipped: the settings of %s cannot be read: %s", profile_dir, exc)
        return False
    return values.get("generate_titles", True) is not False


def generate_title(backend, user_text: str, *, model: str | None = None,
                   timeout: float = GENERATE_TIMEOUT) -> str | None:
    """Ask ``backend`` for a title of a chat that starts with ``user_text``; None if it
    cannot, fails, answers nothing usable (:func:`clean_generated`, :func:`plausible`) or
    takes longer than ``timeout`` seconds (its call is then abandoned on a daemon thread
    and its late answer ignored)."""
    if not can_generate(backend):
        return None
    answer: list = []

    def call():
        try:
            answer.append(backend.complete(title_messages(user_text), max_tokens=GENERATE_MAX_TOKENS,
                                           timeout=timeout, model=model))
        except Exception as exc:  # any backend failure: the first-line title stays
            log.info("title generation failed: %s: %s", type(exc).__name__, exc)

    worker = threading.Thread(target=call, name="title-call", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive() or not answer:
        return None
    title = clean_generated(answer[0])
    return title if title and plausible(title, user_text) else None


def store_generated(store, session_id: str, expected_title: str, title: str) -> bool:
    """Replace ``expected_title`` by ``title`` under the session lock, unless the title was
    set by hand or is no longer ``expected_title``; records the first-line title it
    replaced as ``title_generated_from`` (a retry or an edit that keeps that first line
    keeps the model's title: :func:`first_message_title`); ``updated_at`` is not touched.
    Returns True if it wrote."""
    from .errors import SessionError
    from .streams import session_lock

    with session_lock(session_id):
        try:
            meta = store.load_metadata_only(session_id).meta
        except (SessionError, OSError):
            return False   # deleted or unreadable meanwhile
        if meta.get("manual_title") or meta.get("title") != expected_title or title == expected_title:
            return False
        store.patch_metadata(session_id, {"title": title, "title_generated_from": expected_title}, touch=False)
    return True


def after_first_reply(store, backend, session_id: str, saved_meta: dict, user_text: str, reply_text: str, *,
                      model: str | None = None) -> threading.Thread | None:
    """Start generating a title for a chat whose first reply has just been saved
    (``saved_meta``: its metadata after the save). Returns the thread, or None when
    nothing is to be done: a title set by hand or already written by the model
    (``title_generated_from``, so a retry of the first reply does not ask again), not the
    first exchange, an empty reply, a backend that cannot, or the profile's
    ``generate_titles`` off."""
    if saved_meta.get("manual_title") or saved_meta.get("title_generated_from") \
            or saved_meta.get("message_count") != 2 or not (reply_text or "").strip():
        return None   # a retry of the first reply keeps the title the model already wrote
    if not can_generate(backend) or not generation_enabled(store.dir.parent):
        return None
    expected = saved_meta.get("title")

    def run():
        try:
            title = generate_title(backend, user_text, model=model)
            if not title:
                log.info("no generated title for %s; the first line stays", session_id)
            elif store_generated(store, session_id, expected, title):
                log.info("titled %s by the model", session_id)
            else:
                log.info("the generated title of %s was dropped: its title changed meanwhile", session_id)
        except Exception:  # never let a title break anything
            log.exception("could not store the generated title of %s", session_id)

    thread = threading.Thread(target=run, name=f"title-{session_id}", daemon=True)
    thread.start()
    return thread
