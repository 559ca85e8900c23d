"""Full-text search bench (issue 9): ``/api/sessions/search`` over 5,000 sessions.

Builds the reference corpus of DESIGN §9 (:mod:`bench.corpus`: 5,000 sessions, ~308 MB,
ten of ~20 MB, one of 3,000 messages / ~16 MB) plus 50 sessions that mention a rare
word, starts the real server on it with no search index, and measures:

1. how long the background thread takes to build ``search.sqlite`` from nothing
   (polling the search until it stops answering ``partial: true``), and the file's size;
2. search latency once the index is complete (median, p95) over a mix of queries: a
   word in nearly every message, a common word, a prefix, two words, a rare word, a
   title word and a miss — each timed from a keep-alive client, warm;
3. search latency right after a change, which includes the query's own catch-up:
   after a rename (one small session re-indexed) and after a turn in the 3,000-message
   session (the whole 16 MB file re-read, only the new messages re-indexed).

    python bench/bench_search.py [--quick] [--sessions 5000] [--json out.json] [--work-dir DIR]

Prints a table of figures; exits 0 whatever the figures are.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from api.codec import encode_session
from api.models import _new_meta
from bench.corpus import MB, build_corpus
from bench.harness import BenchServer, Client, Figures, fmt_ms, summary_ms

RARE = "quokka"
RARE_SESSIONS = 50
QUERIES = {                       # name → q (the corpus draws its text from ~150 words)
    "everywhere": "the",
    "common": "session",
    "prefix": "sess",
    "two words": "import json",
    "rare": RARE,
    "title": "benchmark title",
    "miss": "zyzzyva",
}
TARGET_MEDIAN_MS, TARGET_P95_MS = 30.0, 100.0


def log(msg: str) -> None:
    print(f"[bench_search] {msg}", file=sys.stderr, flush=True)


def add_rare_sessions(state_dir: Path, n: int) -> None:
    """``n`` small sessions mentioning :data:`RARE` once, one titled "Benchmark title"."""
    now = time.time()
    for i in range(n):
        sid = f"bench-rare-{i:03d}"
        meta = _new_meta(sid, "Benchmark title" if i == 0 else f"Rare chat {i}", "fake-echo", None)
        msgs = [{"role": "user", "content": f"have you ever seen a {RARE} at dawn, number {i}?", "timestamp": now},
                {"role": "assistant", "content": "Only in pictures.", "timestamp": now, "status": "complete"}]
        meta.update(message_count=2, updated_at=now - i)
        (state_dir / "sessions" / f"{sid}.json").write_bytes(encode_session(meta, msgs))


def search(client: Client, q: str, limit: int = 20) -> tuple[dict, float]:
    status, body, dt = client.get("/api/sessions/search", {"q": q, "limit": limit})
    if status != 200:
        raise RuntimeError(f"search {q!r}: HTTP {status} {body[:300]!r}")
    return json.loads(body), dt


def wait_for_index(client: Client, timeout: float) -> float:
    """Seconds until a search answers ``partial: false`` (polled every 0.2 s)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        doc, _ = search(client, RARE)
        if not doc["partial"]:
            return time.perf_counter() - t0
        time.sleep(0.2)
    raise RuntimeError(f"the search index was not complete after {timeout:.0f} s")


def time_queries(client: Client, rounds: int) -> tuple[dict, list[float], dict]:
    """Per-query summaries, all samples, and each query's result count."""
    per, every, counts = {}, [], {}
    for name, q in QUERIES.items():
        doc, _ = search(client, q)                        # warm-up
        counts[name] = len(doc["results"])
        samples = [search(client, q)[1] for _ in range(rounds)]
        per[name] = summary_ms(samples)
        every += samples
    return per, every, counts


def time_after_change(client: Client, change, rounds: int) -> list[float]:
    """Search latency right after ``change(i)``, ``rounds`` times."""
    out = []
    for i in range(rounds):
        change(i)
        doc, dt = search(client, RARE)
        if doc["partial"]:
            raise RuntimeError("a single change should be indexed inline")
        out.append(dt)
    return out


def run(args) -> Figures:
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="corpus-", dir=work))
    state = base / "state"
    try:
        kw = {"big": 2, "big_bytes": MB // 2, "huge_messages": 300, "huge_bytes": MB // 2} if args.quick else {}
        info = build_corpus(state, args.sessions, **kw)
        add_rare_sessions(state, RARE_SESSIONS)
        log(f"corpus: {info['files'] + RARE_SESSIONS} sessions, {info['bytes'] / MB:.0f} MB "
            f"in {info['seconds']:.1f} s")
        fig = Figures(f"search bench: {info['files'] + RARE_SESSIONS} sessions, {info['bytes'] / MB:.0f} MB"
                      f"{' (quick)' if args.quick else ''}")
        with BenchServer(state, base / "home") as server:
            server.start()
            client = Client(server.port)
            build_s = wait_for_index(client, timeout=3600)
            db_mb = sum(p.stat().st_size for p in state.glob("search.sqlite*")) / MB
            mem = server.memory()
            log(f"index built in {build_s:.1f} s ({db_mb:.0f} MB)")
            fig.add("build the index from nothing (background)", f"{build_s:.1f} s, {db_mb:.0f} MB on disk",
                    index_build_s=round(build_s, 2), index_mb=round(db_mb, 1))
            fig.add("server RSS after the build (peak)", f"{mem['rss']:.0f} MiB ({mem['hwm']:.0f} MiB)",
                    rss_after_build_mib=mem["rss"], rss_peak_build_mib=mem["hwm"])
            per, every, counts = time_queries(client, 8 if args.quick else 40)
            overall = summary_ms(every)
            fig.add("search, all queries (median / p95)", fmt_ms(overall),
                    f"< {TARGET_MEDIAN_MS:.0f} / {TARGET_P95_MS:.0f} ms",
                    overall["median"] < TARGET_MEDIAN_MS and overall["p95"] < TARGET_P95_MS,
                    search_ms=overall, result_counts=counts)
            for name, s in per.items():
                fig.add(f"  {name} ({QUERIES[name]!r}, {counts[name]} results)", fmt_ms(s),
                        **{f"search_{name.replace(' ', '_')}_ms": s})
            small = "bench-rare-001"
            renames = time_after_change(
                client, lambda i: client.post_json("/api/session/rename", {"session_id": small,
                                                                            "title": f"Renamed {i}"}),
                5 if args.quick else 20)
            s = summary_ms(renames)
            fig.add("search right after a rename (1 session re-indexed)", fmt_ms(s), search_after_rename_ms=s)
            if info["huge_id"]:
                turns = time_after_change(client, lambda i: _turn(client, server.port, info["huge_id"], i),
                                          3 if args.quick else 5)
                s = summary_ms(turns)
                fig.add("search right after a turn in the 3,000-message session", fmt_ms(s),
                        search_after_huge_turn_ms=s)
            fig.add("server RSS after the bench", f"{server.memory()['rss']:.0f} MiB",
                    rss_mib=server.memory()["rss"])
            client.close()
        return fig
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


def _turn(client: Client, port: int, sid: str, i: int) -> None:
    from bench.harness import run_turn_over_http
    run_turn_over_http(port, client, sid, f"one more question number {i}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=None, help="corpus size (default 5000; 500 with --quick)")
    ap.add_argument("--quick", action="store_true", help="a small corpus and few rounds, to try it out")
    ap.add_argument("--json", type=Path, help="also write the figures here as JSON")
    ap.add_argument("--work-dir", help="where to build the corpus (default a temp dir); emptied afterwards")
    args = ap.parse_args(argv)
    args.sessions = args.sessions or (500 if args.quick else 5000)
    fig = run(args)
    print(fig.table())
    if args.json:
        args.json.write_text(json.dumps(fig.to_json({"sessions": args.sessions, "quick": args.quick}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
