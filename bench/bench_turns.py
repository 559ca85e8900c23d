"""Turn bench (issue 13, DESIGN §9): a checkpoint's cost, and a 1 MiB paste.

1. A checkpoint during a turn, in this process: a real turn (``api.turns.start_turn``)
   on the 3,000-message / ~16 MB session and on a two-message one, with a backend this
   bench drives, so each timed :meth:`api.turns.Turn.checkpoint` appends a known amount
   of new text (a second of tokens, ~200 B; and 64 KiB) to the turn's journal.
   Target < 5 ms, independent of the session's size (invariant 8: O(new text)).
2. A 1 MiB pasted message over HTTP (the real server, fake backend): chat start (POST
   latency, and to the first event), then opening the session (newest 30 messages, as
   the page does, and the whole session). Each repeat uses a fresh session holding a
   few earlier turns. Targets < 50 ms / < 50 ms.

    python bench/bench_turns.py [--quick] [--json out.json] [--work-dir DIR]

Prints a table of figures next to the targets; exits 0 whatever the figures are.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus import MB, build_corpus  # noqa: E402
from bench.harness import BenchServer, Client, Figures, fmt_ms, run_turn_over_http, summary_ms  # noqa: E402

PASTE_BYTES = 1024 * 1024


def log(msg: str) -> None:
    print(f"[bench_turns] {msg}", file=sys.stderr, flush=True)


class DrivenBackend:
    """A backend that emits what the bench tells it to, then waits for more."""

    name = "driven"
    model = "driven"

    def __init__(self):
        self.orders: queue.Queue = queue.Queue()
        self.done = queue.Queue()

    def run_turn(self, history, user_message, emit, cancel_event, **_context):
        while True:
            order = self.orders.get()
            if order is None or cancel_event.is_set():
                return None
            for text in order:
                emit("token", {"text": text})
            self.done.put(True)

    def send(self, tokens: list[str]) -> None:
        self.orders.put(tokens)
        self.done.get(timeout=60)


def checkpoint_costs(sessions_dir: Path, sid: str, n: int, tokens: list[str]) -> list[float]:
    """``n`` checkpoints of a running turn on ``sid``, each after ``tokens`` streamed;
    seconds each."""
    from api import streams
    from api.models import SessionStore
    from api.turns import start_turn

    class _Config:
        checkpoint_seconds = 3600.0  # the bench calls checkpoint itself; no timer in between

    store = SessionStore(sessions_dir)
    backend = DrivenBackend()
    out = []
    stream_id = start_turn(store, backend, sid, "bench: checkpoint cost", config=_Config())
    try:
        turn = streams.get_stream(stream_id).turn
        for _ in range(n):
            backend.send(tokens)
            t0 = time.perf_counter()
            wrote = turn.checkpoint()
            out.append(time.perf_counter() - t0)
            if not wrote:
                raise RuntimeError("a checkpoint with new text wrote nothing")
    finally:
        backend.orders.put(None)
        deadline = time.monotonic() + 60
        while streams.is_alive(stream_id) and time.monotonic() < deadline:
            time.sleep(0.01)
        store.close()
    return out


def paste_message(size: int) -> str:
    """A ``size``-byte message: a pasted log carried in a fake-backend script (so the
    reply stays a few tokens and the figures are the paste's own)."""
    line = "2026-05-01T12:00:00Z worker[42] INFO request handled path=/api/session ms=3 ü → 中\\n"
    head, tail = '{"fake": {"tokens": 5}, "paste": "', '"}'
    room = size - len(head) - len(tail)
    body = (line * (room // len(line.encode()) + 1)).encode()[:room].decode("utf-8", "ignore")
    body = body.rstrip("\\")
    body += "x" * (room - len(body.encode()))
    msg = head + body + tail
    assert len(msg.encode()) == size, len(msg.encode())
    return msg


def paste_figures(port: int, c: Client, n: int) -> dict:
    """``n`` fresh sessions, each with two short turns, then a 1 MiB paste; seconds."""
    msg = paste_message(PASTE_BYTES)
    out = {"start": [], "first_event": [], "open_window": [], "open_full": []}
    for i in range(n):
        sid = c.post_json("/api/session/new", {"title": f"paste {i}"})["session"]["session_id"]
        for k in range(2):
            run_turn_over_http(port, c, sid, f"warm up {k}")
        r = run_turn_over_http(port, c, sid, msg)
        if r["events"].get("stream_end") != 1:
            raise RuntimeError(f"paste turn ended badly: {r['events']}")
        out["start"].append(r["start_s"])
        out["first_event"].append(r["first_event_s"])
        for key, params in (("open_window", {"session_id": sid, "msg_limit": 30}), ("open_full", {"session_id": sid})):
            status, body, dt = c.get("/api/session", params)
            if status != 200:
                raise RuntimeError(f"open after paste: HTTP {status}")
            got = json.loads(body)["session"]["messages"]
            if not any(m.get("content") == msg for m in got):
                raise RuntimeError("the paste is not in the opened session")
            out[key].append(dt)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sessions and few repeats: proves the script works")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--work-dir", type=Path, help="where the sessions go (default: a temp dir, removed afterwards)")
    args = ap.parse_args(argv)
    q = args.quick
    reps = dict(checkpoints=10 if q else 200, pastes=2 if q else 15)
    work = Path(tempfile.mkdtemp(prefix="hermes-bench-", dir=args.work_dir))
    load = os.getloadavg()
    fig = Figures(f"bench_turns{' (QUICK mode: small sessions)' if q else ''}; "
                  f"load average at start {load[0]:.2f} on {os.cpu_count()} CPUs")
    try:
        _checkpoint_phase(fig, work, reps, q)
        _paste_phase(fig, work, reps)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(fig.table())
    if args.json:
        args.json.write_text(json.dumps(fig.to_json({"quick": q, "reps": reps,
                                                     "loadavg": [load, os.getloadavg()]}), indent=2))
    return 0


def _checkpoint_phase(fig: Figures, work: Path, reps: dict, q: bool) -> None:
    state = work / "checkpoint"
    kw = dict(big=0, huge_messages=300, huge_bytes=MB // 2) if q else dict(big=0)
    info = build_corpus(state, 2, **kw)
    sessions_dir = Path(info["sessions_dir"])
    huge, tiny = info["huge_id"], info["small_ids"][0]
    huge_mb = (sessions_dir / f"{huge}.json").stat().st_size / MB
    second = [f" tok{i}" for i in range(30)]  # about a second of tokens: ~200 bytes
    big_chunk = ["y" * 1024] * 64                # 64 KiB since the last checkpoint
    rows = {}
    for label, sid in (("huge", huge), ("tiny", tiny)):
        log(f"checkpoints on the {label} session")
        rows[label] = summary_ms(checkpoint_costs(sessions_dir, sid, reps["checkpoints"], second))
        rows[label + "_64k"] = summary_ms(checkpoint_costs(sessions_dir, sid, max(3, reps["checkpoints"] // 4),
                                                           big_chunk))
    h, t = rows["huge"], rows["tiny"]
    fig.add(f"checkpoint, {huge_mb:.0f} MB session, ~200 B new (median / p95)", fmt_ms(h), "< 5 ms", h["p95"] < 5,
            checkpoint_huge_ms=h)
    fig.add("checkpoint, two-message session, ~200 B new", fmt_ms(t), "< 5 ms", t["p95"] < 5, checkpoint_tiny_ms=t)
    fig.add(f"checkpoint, {huge_mb:.0f} MB / two-message session, 64 KiB new",
            f"{fmt_ms(rows['huge_64k'])}, {fmt_ms(rows['tiny_64k'])}", "< 5 ms",
            max(rows["huge_64k"]["p95"], rows["tiny_64k"]["p95"]) < 5,
            checkpoint_huge_64k_ms=rows["huge_64k"], checkpoint_tiny_64k_ms=rows["tiny_64k"])
    ratio = h["median"] / t["median"]
    fig.add(f"checkpoint time, {huge_mb:.0f} MB ÷ two-message session (median)", f"{ratio:.2f}×", "≈ 1×", 0.67 < ratio < 1.5,
            checkpoint_size_ratio=round(ratio, 3))


def _paste_phase(fig: Figures, work: Path, reps: dict) -> None:
    state = work / "paste"
    (state / "sessions").mkdir(parents=True)
    srv = BenchServer(state, work / "home")
    srv.start()
    try:
        c = Client(srv.port)
        log("1 MiB pastes")
        p = paste_figures(srv.port, c, reps["pastes"])
        c.close()
    finally:
        srv.stop()
    s, fe = summary_ms(p["start"]), summary_ms(p["first_event"])
    ow, of = summary_ms(p["open_window"]), summary_ms(p["open_full"])
    fig.add("chat start with a 1 MiB paste (POST)", fmt_ms(s), "< 50 ms", s["p95"] < 50, paste_start_ms=s)
    fig.add("  … to the first event", fmt_ms(fe), "", None, paste_first_event_ms=fe)
    fig.add("open the session afterwards, newest 30", fmt_ms(ow), "< 50 ms", ow["p95"] < 50, paste_open_window_ms=ow)
    fig.add("open the session afterwards, whole", fmt_ms(of), "< 50 ms", of["p95"] < 50, paste_open_full_ms=of)


if __name__ == "__main__":
    sys.exit(main())
