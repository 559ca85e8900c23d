"""Build a session corpus directly in the on-disk layout (fast: no server, no fsync).

The reference corpus of DESIGN §9: 5,000 sessions, ~308 MB — ten of ~20 MB, one of
3,000 messages / ~16 MB, the rest ~18 KB each (2–40 messages). Files are written with
:func:`api.models.encode_session`, so they are byte-for-byte what the server writes.

    python bench/corpus.py STATE_DIR [--sessions 5000] [--tiny] [--quick] [--upstream-layout]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from api.codec import encode_session  # noqa: E402
from api.models import _new_meta  # noqa: E402

MB = 1024 * 1024
HUGE_ID = "bench-huge"
_WORDS = ("the of and to in is that for it as with was on be at by this had not are but from or have an "
          "they which one you were all we when there can been has more if will no would who so what out "
          "up into do than then them these its time could only new some two may first any like now my "
          "such make over our even most me state after also made many did must before back see through "
          "way where get much go well your know should down work year because come people just say each "
          "those take day good how long little use very great world own under last right thing def class "
          "return import self None True False print lambda yield async await json session stream token").split()


class _Text:
    """Deterministic filler text: slices of one ~1 MB pool of random words."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        words = [rng.choice(_WORDS) for _ in range(200_000)]
        self.pool = " ".join(words)

    def take(self, n: int) -> str:
        n = max(1, n)
        out = []
        while n > 0:
            k = min(n, len(self.pool) - 1)
            at = self.rng.randrange(0, len(self.pool) - k)
            out.append(self.pool[at:at + k])
            n -= k
        return "".join(out)


def _messages(text: _Text, count: int, each: int, t0: float) -> list[dict]:
    msgs = []
    for i in range(count):
        role = "user" if i % 2 == 0 else "assistant"
        size = max(8, int(each * text.rng.uniform(0.5, 1.5)))
        msg = {"role": role, "content": text.take(size), "timestamp": t0 + i * 7.0}
        if role == "assistant":
            msg["status"] = "complete"
        msgs.append(msg)
    return msgs


# The upstream's session file (nesquena/hermes-webui, api/models.py ``Session.save``):
# ``json.dumps({...}, ensure_ascii=False, indent=2)``, no trailing newline, with these
# keys in this order, every one present (None as null): its metadata fields, then
# ``message_count`` and ``anchor_scene_index``, then ``messages``, ``tool_calls``,
# ``anchor_activity_scenes``, then its other attributes (``context_messages``).
UPSTREAM_METADATA_FIELDS = (
    "session_id", "title", "workspace", "created_workspace", "model", "model_provider",
    "model_explicit_pick_signature", "created_at", "updated_at", "pinned", "archived", "project_id", "profile",
    "input_tokens", "output_tokens", "estimated_cost", "cache_read_tokens", "cache_write_tokens",
    "personality", "active_stream_id", "pending_user_message", "pending_attachments", "pending_started_at",
    "pending_user_source", "compression_anchor_visible_idx", "compression_anchor_message_key",
    "compression_anchor_summary", "pre_compression_snapshot", "context_engine", "compression_anchor_engine",
    "compression_anchor_mode", "compression_anchor_details", "context_engine_state", "context_length",
    "threshold_tokens", "last_prompt_tokens", "post_compression_context_tokens_estimate",
    "compression_recovery", "recommended_recovery_action", "compression_recovery_source_session_id",
    "compression_recovery_action", "truncation_watermark", "truncation_boundary", "clear_generation",
    "intentional_shrink_generation", "gateway_routing", "gateway_routing_history", "llm_title_generated",
    "manual_title", "parent_session_id", "worktree_path", "worktree_branch", "worktree_repo_root",
    "worktree_created_at", "is_cli_session", "source_tag", "raw_source", "session_source", "source_label",
    "read_only", "enabled_toolsets", "composer_draft", "process_wakeup_pause", "share_token", "share_created_at",
)
_UPSTREAM_DEFAULTS = {
    "title": "Untitled", "workspace": "/root/workspace", "pinned": False, "archived": False, "input_tokens": 0,
    "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "pending_attachments": [],
    "pre_compression_snapshot": False, "compression_anchor_details": {}, "context_engine_state": {},
    "compression_recovery": {}, "gateway_routing_history": [], "llm_title_generated": False,
    "manual_title": False, "is_cli_session": False, "read_only": False, "composer_draft": {},
    "process_wakeup_pause": {},
}


def encode_upstream_session(meta: dict, messages: list, *, tool_calls: list | None = None,
                            scenes: dict | None = None, context_messages: list | None = None,
                            extra: dict | None = None) -> bytes:
    """A session file as the upstream writes it (see ``UPSTREAM_METADATA_FIELDS``):
    ``meta`` supplies the fields it has, the others take the upstream's defaults;
    ``extra`` keys go last, as the upstream's other attributes do."""
    obj = {k: meta[k] if meta.get(k) is not None else _UPSTREAM_DEFAULTS.get(k) for k in UPSTREAM_METADATA_FIELDS}
    obj["message_count"] = len(messages)
    obj["anchor_scene_index"] = {k: float(v.get("updated_at") or 0) for k, v in (scenes or {}).items()}
    obj.update(messages=messages, tool_calls=tool_calls or [], anchor_activity_scenes=scenes or {},
               context_messages=context_messages or [], **(extra or {}))
    try:
        return json.dumps(obj, ensure_ascii=False, indent=2).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the upstream could not write it raw either
        return json.dumps(obj, ensure_ascii=True, indent=2).encode("utf-8")


def upstream_list_row(meta: dict, messages: list) -> dict:
    """The row the upstream's ``GET /api/sessions`` sends for a session (its
    ``Session.compact()``, for a session with no fork, worktree or recovery): what our
    list is compared with (DESIGN §9: ours no larger)."""
    up = json.loads(encode_upstream_session(meta, []))
    row = {k: up[k] for k in ("session_id", "title", "workspace", "model", "model_provider")}
    row["message_count"] = len(messages)
    row.update({k: up[k] for k in ("created_at", "updated_at")})
    row["last_message_at"] = max((m.get("timestamp") or 0 for m in messages), default=None) or up["updated_at"]
    for k in ("pinned", "archived", "project_id", "profile", "input_tokens", "output_tokens", "estimated_cost",
              "cache_read_tokens", "cache_write_tokens"):
        row[k] = up[k]
    row["cache_hit_percent"] = None
    for k in ("personality", "compression_anchor_visible_idx", "compression_anchor_message_key",
              "compression_anchor_summary", "pre_compression_snapshot", "context_engine",
              "compression_anchor_engine", "compression_anchor_mode", "compression_anchor_details",
              "context_engine_state", "context_length", "threshold_tokens", "last_prompt_tokens",
              "post_compression_context_tokens_estimate", "compression_recovery", "recommended_recovery_action",
              "gateway_routing", "gateway_routing_history", "manual_title"):
        row[k] = up[k]
    row["created_workspace"] = up["created_workspace"] or up["workspace"]
    row["user_message_count"] = sum(1 for m in messages if m.get("role") == "user")
    row.update(active_stream_id=up["active_stream_id"], pending_user_message=up["pending_user_message"],
               has_pending_user_message=bool(up["pending_user_message"]))
    for k in ("is_cli_session", "source_tag", "raw_source", "session_source", "source_label", "read_only",
              "enabled_toolsets", "composer_draft", "process_wakeup_pause", "share_token", "share_created_at"):
        row[k] = up[k]
    row["is_streaming"] = False
    return row


def _write(sessions_dir: Path, sid: str, text: _Text, messages: list[dict], now: float,
           upstream: bool = False, rows: list | None = None) -> int:
    rng = text.rng
    meta = _new_meta(sid, text.take(rng.randint(12, 50)).strip().capitalize(), "fake-echo", None)
    updated = now - rng.uniform(0, 365 * 86400)
    meta.update(created_at=updated - rng.uniform(0, 30 * 86400), updated_at=updated,
                pinned=rng.random() < 0.01, archived=rng.random() < 0.05, message_count=len(messages))
    data = encode_upstream_session(meta, messages) if upstream else encode_session(meta, messages)
    if rows is not None:
        rows.append(upstream_list_row(meta, messages))
    (sessions_dir / f"{sid}.json").write_bytes(data)
    return len(data)


def build_corpus(state_dir: Path, n: int, *, big: int = 10, big_bytes: int = 20 * MB,
                 huge_messages: int = 3000, huge_bytes: int = 16 * MB, small_bytes: int = 18_500,
                 tiny: bool = False, seed: int = 1, upstream: bool = False) -> dict:
    """Write ``n`` sessions into ``state_dir/sessions`` and return what was built.

    ``tiny``: every session holds two short messages (no big or huge ones) — the
    control corpus for "listing does not depend on message size". Otherwise ``big``
    sessions of ~``big_bytes`` each (400 messages), one ``huge`` session of
    ``huge_messages`` messages / ~``huge_bytes`` (skipped if ``huge_messages`` is 0),
    and small ones of ~``small_bytes`` on average. ``upstream``: the same sessions in the
    upstream's file layout (:func:`encode_upstream_session`), as in a migrated or shared
    state dir.

    Returns ``{"sessions_dir", "small_ids": [sid], "big_ids": [sid], "huge_id": sid | None,
    "files": n, "bytes": total bytes written, "seconds": build time, "upstream_list_bytes":
    the size of the upstream's list response for these sessions}``.
    """
    t_start = time.perf_counter()
    sessions_dir = Path(state_dir) / "sessions"
    sessions_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    text = _Text(rng)
    now = time.time()
    total = 0
    big_ids, small_ids, huge_id = [], [], None
    rows: list[dict] = []
    if not tiny:
        for i in range(min(big, n)):
            sid = f"bench-big-{i:02d}"
            total += _write(sessions_dir, sid, text, _messages(text, 400, big_bytes // 400, now - 86400), now, upstream, rows)
            big_ids.append(sid)
        if huge_messages and len(big_ids) < n:
            huge_id = HUGE_ID
            msgs = _messages(text, huge_messages, huge_bytes // huge_messages - 60, now - 86400)
            total += _write(sessions_dir, huge_id, text, msgs, now, upstream, rows)
    special = len(big_ids) + (huge_id is not None)
    for i in range(n - special):
        sid = f"s{seed:02d}{i:06d}{rng.getrandbits(24):06x}"
        if tiny:
            msgs = _messages(text, 2, 40, now - 86400)
        else:
            count = rng.randint(2, 40)
            msgs = _messages(text, count, max(20, int(small_bytes / 21) - 60), now - 86400)
        total += _write(sessions_dir, sid, text, msgs, now, upstream, rows)
        small_ids.append(sid)
    return {"sessions_dir": str(sessions_dir), "small_ids": small_ids, "big_ids": big_ids,
            "huge_id": huge_id, "files": n, "bytes": total, "seconds": time.perf_counter() - t_start,
            "upstream_list_bytes": len(json.dumps({"sessions": rows}, ensure_ascii=False).encode("utf-8"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("state_dir", type=Path)
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--tiny", action="store_true", help="two short messages per session")
    ap.add_argument("--quick", action="store_true", help="small big/huge sessions (for trying it out)")
    ap.add_argument("--upstream-layout", action="store_true", help="write the files as the upstream does")
    args = ap.parse_args(argv)
    kw = dict(big=2, big_bytes=MB // 2, huge_messages=300, huge_bytes=MB // 2) if args.quick else {}
    info = build_corpus(args.state_dir, args.sessions, tiny=args.tiny, upstream=args.upstream_layout, **kw)
    print(f"{info['files']} sessions, {info['bytes'] / MB:.1f} MB in {info['seconds']:.1f} s → {info['sessions_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
