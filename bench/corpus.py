"""Build a session corpus directly in the on-disk layout (fast: no server, no fsync).

The reference corpus of DESIGN §9: 5,000 sessions, ~308 MB — ten of ~20 MB, one of
3,000 messages / ~16 MB, the rest ~18 KB each (2–40 messages). Files are written with
:func:`api.models.encode_session`, so they are byte-for-byte what the server writes.

    python bench/corpus.py STATE_DIR [--sessions 5000] [--tiny] [--quick]
"""
from __future__ import annotations

import argparse
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


def _write(sessions_dir: Path, sid: str, text: _Text, messages: list[dict], now: float) -> int:
    rng = text.rng
    meta = _new_meta(sid, text.take(rng.randint(12, 50)).strip().capitalize(), "fake-echo", None)
    updated = now - rng.uniform(0, 365 * 86400)
    meta.update(created_at=updated - rng.uniform(0, 30 * 86400), updated_at=updated,
                pinned=rng.random() < 0.01, archived=rng.random() < 0.05, message_count=len(messages))
    data = encode_session(meta, messages)
    (sessions_dir / f"{sid}.json").write_bytes(data)
    return len(data)


def build_corpus(state_dir: Path, n: int, *, big: int = 10, big_bytes: int = 20 * MB,
                 huge_messages: int = 3000, huge_bytes: int = 16 * MB, small_bytes: int = 18_500,
                 tiny: bool = False, seed: int = 1) -> dict:
    """Write ``n`` sessions into ``state_dir/sessions`` and return what was built.

    ``tiny``: every session holds two short messages (no big or huge ones) — the
    control corpus for "listing does not depend on message size". Otherwise ``big``
    sessions of ~``big_bytes`` each (400 messages), one ``huge`` session of
    ``huge_messages`` messages / ~``huge_bytes`` (skipped if ``huge_messages`` is 0),
    and small ones of ~``small_bytes`` on average.

    Returns ``{"sessions_dir", "small_ids": [sid], "big_ids": [sid], "huge_id": sid | None,
    "files": n, "bytes": total bytes written, "seconds": build time}``.
    """
    t_start = time.perf_counter()
    sessions_dir = Path(state_dir) / "sessions"
    sessions_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    text = _Text(rng)
    now = time.time()
    total = 0
    big_ids, small_ids, huge_id = [], [], None
    if not tiny:
        for i in range(min(big, n)):
            sid = f"bench-big-{i:02d}"
            total += _write(sessions_dir, sid, text, _messages(text, 400, big_bytes // 400, now - 86400), now)
            big_ids.append(sid)
        if huge_messages and len(big_ids) < n:
            huge_id = HUGE_ID
            msgs = _messages(text, huge_messages, huge_bytes // huge_messages - 60, now - 86400)
            total += _write(sessions_dir, huge_id, text, msgs, now)
    special = len(big_ids) + (huge_id is not None)
    for i in range(n - special):
        sid = f"s{seed:02d}{i:06d}{rng.getrandbits(24):06x}"
        if tiny:
            msgs = _messages(text, 2, 40, now - 86400)
        else:
            count = rng.randint(2, 40)
            msgs = _messages(text, count, max(20, int(small_bytes / 21) - 60), now - 86400)
        total += _write(sessions_dir, sid, text, msgs, now)
        small_ids.append(sid)
    return {"sessions_dir": str(sessions_dir), "small_ids": small_ids, "big_ids": big_ids,
            "huge_id": huge_id, "files": n, "bytes": total, "seconds": time.perf_counter() - t_start}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("state_dir", type=Path)
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--tiny", action="store_true", help="two short messages per session")
    ap.add_argument("--quick", action="store_true", help="small big/huge sessions (for trying it out)")
    args = ap.parse_args(argv)
    kw = dict(big=2, big_bytes=MB // 2, huge_messages=300, huge_bytes=MB // 2) if args.quick else {}
    info = build_corpus(args.state_dir, args.sessions, tiny=args.tiny, **kw)
    print(f"{info['files']} sessions, {info['bytes'] / MB:.1f} MB in {info['seconds']:.1f} s → {info['sessions_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
