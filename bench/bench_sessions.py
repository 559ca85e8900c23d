"""Session-store bench (issue 3, DESIGN §9): list, writes, open, chat start, start-up, RSS.

Builds the reference corpus (5,000 sessions, ~308 MB: ten of ~20 MB, one of 3,000
messages / ~16 MB) in a temp state dir, runs the real server on it
(``python server.py --agent fake --port 0``) and times HTTP requests from a keep-alive
client. Then repeats the list and write figures on a corpus of the same size whose
sessions are tiny, to show listing does not depend on message size, and on a small
corpus, to show writes do not depend on the number of sessions. Page cache is warm
throughout (the corpus was just written).

    python bench/bench_sessions.py [--sessions 5000] [--quick] [--json out.json] [--work-dir DIR]
                                   [--upstream-layout]

``--upstream-layout`` writes every corpus in the upstream's file layout
(:func:`bench.corpus.encode_upstream_session`: pretty-printed, 67 metadata keys,
``messages`` followed by more keys), as in a migrated or shared state dir, and runs the
same rows on it.

Prints a table of figures next to the targets; exits 0 whatever the figures are.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus import MB, build_corpus  # noqa: E402
from bench.harness import (BenchServer, Client, Figures, fmt_ms, run_turn_over_http, summary_ms,  # noqa: E402
                           wait_for_background_work)


def log(msg: str) -> None:
    print(f"[bench_sessions] {msg}", file=sys.stderr, flush=True)


def _ok(status: int, body: bytes, what: str) -> None:
    if status != 200:
        raise RuntimeError(f"{what}: HTTP {status} {body[:300]!r}")


def time_get(client: Client, path: str, params: dict | None, n: int, warmup: int = 1) -> list[float]:
    """``n`` timed GETs (after ``warmup`` untimed ones); seconds each."""
    out = []
    for i in range(warmup + n):
        status, body, dt = client.get(path, params)
        _ok(status, body, path)
        if i >= warmup:
            out.append(dt)
    return out


def time_writes(client: Client, sid: str, n: int) -> dict:
    """``n`` renames and ``n`` pin toggles of ``sid``; ``{"rename": [s], "pin": [s]}``."""
    out = {"rename": [], "pin": []}
    for i in range(n):
        status, body, dt = client.post("/api/session/rename", {"session_id": sid, "title": f"Bench title {i}"})
        _ok(status, body, "rename")
        out["rename"].append(dt)
        status, body, dt = client.post("/api/session/pin", {"session_id": sid, "pinned": i % 2 == 0})
        _ok(status, body, "pin")
        out["pin"].append(dt)
    client.post("/api/session/pin", {"session_id": sid, "pinned": False})
    return out


def time_list_after_write(client: Client, sid: str, n: int) -> list[float]:
    """List right after a write, so the cached listing must be rebuilt; seconds each."""
    out = []
    for i in range(n):
        client.post("/api/session/pin", {"session_id": sid, "pinned": i % 2 == 0})
        status, body, dt = client.get("/api/sessions")
        _ok(status, body, "list")
        out.append(dt)
    client.post("/api/session/pin", {"session_id": sid, "pinned": False})
    return out


def time_chat(port: int, client: Client, sid: str, n: int) -> dict:
    """``n`` echo turns on ``sid``: ``{"first_event": [s], "start": [s], "end": [s]}``."""
    out = {"first_event": [], "start": [], "end": []}
    for i in range(n):
        r = run_turn_over_http(port, client, sid, f"bench turn {i} hello world")
        if r["events"].get("stream_end") != 1 or r["events"].get("token", 0) < 2:
            raise RuntimeError(f"turn on {sid} ended badly: {r['events']}")
        out["first_event"].append(r["first_event_s"])
        out["start"].append(r["start_s"])
        out["end"].append(r["end_s"])
    return out


def time_startups(state_dir: Path, home: Path, runs: int, with_index: bool) -> dict:
    """Start and stop (SIGTERM) ``runs`` times; the index is removed first unless ``with_index``.

    Returns ``{"start": [s to first /health 200], "listening": [s], "rss": [MiB]}``.
    """
    index = state_dir / "sessions" / "_index.json"
    out = {"start": [], "listening": [], "rss": []}
    for _ in range(runs):
        if with_index and not index.exists():
            raise RuntimeError("expected an index file after a clean shutdown")
        if not with_index:
            index.unlink(missing_ok=True)
        srv = BenchServer(state_dir, home)
        try:
            out["start"].append(srv.start())
            out["listening"].append(srv.listening_s)
            out["rss"].append(srv.memory()["rss"])
        finally:
            srv.stop()
    return out


_IMPORTS = """
import server, waitress, api.session_recovery, api.statelock, api.routes, api.ui
from api import auth, memory, openai_api, profiles, render, session_ops, skills, workspace
"""


def import_floor(runs: int, code: str = _IMPORTS) -> list[float]:
    """Seconds to start Python and run ``code`` (by default: import every module the
    server imports before it listens, feature modules included)."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), check=True)
        out.append(time.perf_counter() - t0)
    return out


def turn_save_in_process(state_dir: Path, sid: str, n: int) -> list[float]:
    """A turn's write-back as :meth:`api.turns.Turn.finish` does it (append a user/assistant
    pair, the transcript copied verbatim), timed in this process with the server stopped;
    seconds each."""
    from api.models import CLEARED_STREAM_FIELDS, SessionStore
    from api.streams import _get_session_agent_lock
    store = SessionStore(state_dir / "sessions")
    out = []
    try:
        for i in range(n):
            t0 = time.perf_counter()
            with _get_session_agent_lock(sid):  # what Turn.finish does
                store.append_messages(sid, [{"role": "user", "content": f"bench {i}", "timestamp": time.time()},
                                            {"role": "assistant", "content": f"reply {i}",
                                             "timestamp": time.time(), "status": "complete"}],
                                      CLEARED_STREAM_FIELDS)
            out.append(time.perf_counter() - t0)
    finally:
        store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=None, help="corpus size (default 5000; 200 with --quick)")
    ap.add_argument("--quick", action="store_true", help="tiny corpus and few repeats: proves the script works")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--work-dir", type=Path, help="where corpora go (default: a temp dir, removed afterwards)")
    ap.add_argument("--upstream-layout", action="store_true", help="write the corpora in the upstream's file layout")
    args = ap.parse_args(argv)
    q = args.quick
    n = args.sessions or (200 if q else 5000)
    reps = dict(starts=1 if q else 3, list=20 if q else 200, write=5 if q else 40, big_write=3 if q else 15,
                chat=5 if q else 40, big_chat=2 if q else 5, window=10 if q else 100, full=3 if q else 10)
    corpus_kw = dict(big=2, big_bytes=MB // 2, huge_messages=300, huge_bytes=MB // 2) if q else {}
    corpus_kw["upstream"] = args.upstream_layout
    work = Path(tempfile.mkdtemp(prefix="hermes-bench-", dir=args.work_dir))
    home = work / "home"
    load = os.getloadavg()
    layout = "the upstream's file layout" if args.upstream_layout else "our file layout"
    fig = Figures(f"bench_sessions: {n} sessions in {layout}{' (QUICK mode: not the reference corpus)' if q else ''}; "
                  f"load average at start {load[0]:.2f} on {os.cpu_count()} CPUs")
    try:
        _run(fig, work, home, n, reps, corpus_kw, q)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(fig.table())
    if args.json:
        args.json.write_text(json.dumps(fig.to_json({"sessions": n, "quick": q, "reps": reps,
                                                             "upstream_layout": args.upstream_layout,
                                                             "loadavg": [load, os.getloadavg()]}), indent=2))
    return 0


def _run(fig: Figures, work: Path, home: Path, n: int, reps: dict, corpus_kw: dict, q: bool) -> None:
    full_dir = work / "full"
    log(f"building {n} sessions in {full_dir}")
    info = build_corpus(full_dir, n, **corpus_kw)
    fig.add("corpus", f"{n} sessions, {info['bytes'] / MB:.0f} MB (built in {info['seconds']:.1f} s)",
            corpus_mb=round(info["bytes"] / MB, 1))
    _startup_phase(fig, full_dir, home, reps)
    srv = BenchServer(full_dir, home)
    srv.start()
    try:
        c = Client(srv.port)
        rss_start = srv.memory()["rss"]
        waited = wait_for_background_work(c)
        if waited > 1:
            fig.add("  (waited for the background search index first)", f"{waited:.1f} s", background_wait_s=waited)
        _list_phase(fig, c, n, info, reps)
        _open_phase(fig, srv, c, full_dir, info, reps, rss_start)
        _write_and_chat_phase(fig, srv, c, full_dir, info, reps)
        c.close()
    finally:
        srv.stop()
    log("a turn's save, in process")
    big, small = info["big_ids"][0], info["small_ids"][0]
    big_mb = (full_dir / "sessions" / f"{big}.json").stat().st_size / MB
    ts = summary_ms(turn_save_in_process(full_dir, small, reps["write"]))
    tb = summary_ms(turn_save_in_process(full_dir, big, reps["big_write"]))
    fig.add("a turn's save (load + append + save), small", fmt_ms(ts), "< 15 ms", ts["p95"] < 15, turn_save_small_ms=ts)
    fig.add(f"a turn's save, {big_mb:.0f} MB session", fmt_ms(tb), "< 15 ms", tb["p95"] < 15, turn_save_big_ms=tb)
    shutil.rmtree(full_dir, ignore_errors=True)
    _control_phase(fig, work, home, n, reps, corpus_kw["upstream"])


def _startup_phase(fig: Figures, state_dir: Path, home: Path, reps: dict) -> None:
    log("start-up without / with index")
    floor = import_floor(reps["starts"])
    bare = import_floor(reps["starts"], "pass")
    cold = time_startups(state_dir, home, reps["starts"], with_index=False)
    warm = time_startups(state_dir, home, reps["starts"], with_index=True)
    s_cold, s_warm, s_floor = summary_ms(cold["start"]), summary_ms(warm["start"]), summary_ms(floor)
    fig.add("start-up, no index (spawn → /health 200)", f"{s_cold['median']:.0f} ms", "< 1000 ms",
            s_cold["median"] < 1000, startup_no_index_ms=s_cold["median"])
    fig.add("start-up, with index", f"{s_warm['median']:.0f} ms", "< 200 ms", s_warm["median"] < 200,
            startup_with_index_ms=s_warm["median"])
    fig.add("  of which: python + imports alone", f"{s_floor['median']:.0f} ms", "", None,
            import_floor_ms=s_floor["median"])
    fig.add("  of which: python -c pass", f"{summary_ms(bare)['median']:.0f} ms", "", None,
            python_floor_ms=summary_ms(bare)["median"])
    fig.values["rss_startup_runs_mib"] = {"no_index": statistics.median(cold["rss"]),
                                          "with_index": statistics.median(warm["rss"])}


def _list_phase(fig: Figures, c: Client, n: int, info: dict, reps: dict) -> None:
    log("list")
    lst = summary_ms(time_get(c, "/api/sessions", None, reps["list"]))
    body = c.get("/api/sessions")[1]
    rows = len(json.loads(body)["sessions"])
    fig.add(f"list {n} sessions, warm (median / p95)", fmt_ms(lst), "< 30 / 60 ms",
            lst["median"] < 30 and lst["p95"] < 60, list_ms=lst, list_rows=rows, list_bytes=len(body))
    lw = summary_ms(time_list_after_write(c, info["small_ids"][0], reps["write"]))
    fig.add("list right after a write (cache rebuilt)", fmt_ms(lw), "< 30 / 60 ms",
            lw["median"] < 30 and lw["p95"] < 60, list_after_write_ms=lw)
    up = info["upstream_list_bytes"]
    fig.add("list payload: ours / the upstream's for the same sessions", f"{len(body) / 1024:.0f} / {up / 1024:.0f} KiB",
            "no larger", len(body) <= up, upstream_list_bytes=up)


def _open_phase(fig: Figures, srv: BenchServer, c: Client, state_dir: Path, info: dict, reps: dict,
                rss_start: float) -> None:
    log("open")
    huge = info["huge_id"]
    huge_count = json.loads(c.get("/api/session", {"session_id": huge, "messages": 0})[1])["session"]["message_count"]
    huge_mb = (state_dir / "sessions" / f"{huge}.json").stat().st_size / MB
    first = time_get(c, "/api/session", {"session_id": huge, "msg_limit": 30}, 1, warmup=0)
    w = summary_ms(time_get(c, "/api/session", {"session_id": huge, "msg_limit": 30}, reps["window"]))
    fig.add(f"open newest 30 of {huge_count} messages", fmt_ms(w), "< 10 ms", w["p95"] < 10, open_window_ms=w)
    fig.add("  the first request after start-up (another layout: builds the message index)",
            f"{first[0] * 1000:.1f} ms", "", None, open_window_first_ms=round(first[0] * 1000, 3))
    older = summary_ms(time_get(c, "/api/session", {"session_id": huge, "msg_limit": 30, "msg_before": huge_count // 2},
                                reps["window"]))
    fig.add(f"  30 older ones (before message {huge_count // 2})", fmt_ms(older), "< 10 ms", older["p95"] < 10,
            open_window_older_ms=older)
    f = summary_ms(time_get(c, "/api/session", {"session_id": huge}, reps["full"]))
    fig.add(f"open the whole {huge_mb:.0f} MB session", fmt_ms(f), "< 200 ms", f["p95"] < 200, open_full_ms=f)
    for sid in info["big_ids"]:
        time_get(c, "/api/session", {"session_id": sid}, 1, warmup=0)
    mem = srv.memory()
    fig.add("RSS after start", f"{rss_start:.0f} MiB", "< 60 MiB", rss_start < 60, rss_start_mib=rss_start)
    fig.add(f"RSS after opening the {len(info['big_ids']) + 1} big sessions in full (now / peak)",
            f"{mem['rss']:.0f} / {mem['hwm']:.0f} MiB", "< 150 MiB", mem["hwm"] < 150,
            rss_after_open_mib=mem["rss"], rss_peak_mib=mem["hwm"])


def _write_and_chat_phase(fig: Figures, srv: BenchServer, c: Client, state_dir: Path, info: dict,
                          reps: dict) -> None:
    log("writes")
    big, small = info["big_ids"][0], info["small_ids"][0]
    big_mb = (state_dir / "sessions" / f"{big}.json").stat().st_size / MB
    ws, wb = time_writes(c, small, reps["write"]), time_writes(c, big, reps["big_write"])
    for what in ("rename", "pin"):
        s, b = summary_ms(ws[what]), summary_ms(wb[what])
        fig.add(f"{what} a small session", fmt_ms(s), "< 15 ms", s["p95"] < 15, **{f"{what}_small_ms": s})
        fig.add(f"{what} a {big_mb:.0f} MB session", fmt_ms(b), "< 15 ms", b["p95"] < 15, **{f"{what}_big_ms": b})
    log("chat")
    ch = time_chat(srv.port, c, small, reps["chat"])
    chb = time_chat(srv.port, c, big, reps["big_chat"])
    fe, fb = summary_ms(ch["first_event"]), summary_ms(chb["first_event"])
    fig.add("chat start → first event, small session", fmt_ms(fe), "< 20 ms", fe["p95"] < 20,
            chat_first_event_ms=fe, chat_start_post_ms=summary_ms(ch["start"]), chat_turn_end_ms=summary_ms(ch["end"]))
    fig.add(f"chat start → first event, {big_mb:.0f} MB session", fmt_ms(fb), "< 20 ms", fb["p95"] < 20,
            chat_first_event_big_ms=fb, chat_turn_end_big_ms=summary_ms(chb["end"]))
    fig.add("  whole echo turn (start → stream_end), small / big",
            f"{summary_ms(ch['end'])['median']:.1f} / {summary_ms(chb['end'])['median']:.1f} ms")
    mem = srv.memory()
    fig.add("  RSS at the end (after writes and turns on big sessions too)",
            f"{mem['rss']:.0f} / {mem['hwm']:.0f} MiB", "", None, rss_end_mib=mem["rss"], rss_end_peak_mib=mem["hwm"])


def _control_phase(fig: Figures, work: Path, home: Path, n: int, reps: dict, upstream: bool) -> None:
    lst = fig.values["list_ms"]
    for label, count in (("tiny", n), ("few", max(20, n // 25))):
        cdir = work / label
        log(f"control corpus: {count} tiny sessions")
        cinfo = build_corpus(cdir, count, tiny=True, seed=2, upstream=upstream)
        srv = BenchServer(cdir, home)
        srv.start()
        try:
            c = Client(srv.port)
            wait_for_background_work(c)
            l2 = summary_ms(time_get(c, "/api/sessions", None, reps["list"]))
            r2 = summary_ms(time_writes(c, cinfo["small_ids"][0], reps["write"])["rename"])
            c.close()
        finally:
            srv.stop()
        mb = cinfo["bytes"] / MB
        fig.add(f"list {count} tiny sessions ({mb:.1f} MB), warm", fmt_ms(l2), "", None, **{f"list_{label}_ms": l2})
        fig.add(f"rename with {count} tiny sessions", fmt_ms(r2), "< 15 ms", r2["p95"] < 15,
                **{f"rename_{label}_ms": r2})
        shutil.rmtree(cdir, ignore_errors=True)
    ratio = lst["median"] / fig.values["list_tiny_ms"]["median"]
    fig.add("list time, big-message corpus ÷ tiny corpus (median)", f"{ratio:.2f}×", "≈ 1×", 0.67 < ratio < 1.5,
            list_size_ratio=round(ratio, 3))

if __name__ == "__main__":
    sys.exit(main())
