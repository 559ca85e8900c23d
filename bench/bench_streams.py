"""Streaming bench (issue 4, DESIGN §9): one SSE stream's throughput, the latency the
server adds per token, and list latency while 100 streams run.

1. ``FakeBackend().run_turn`` called directly with a no-op ``emit``: the floor.
2. One stream of ``{"fake": {"tokens": 50000}}`` through the real server, followed over
   SSE: events/s end to end (POST ``/api/chat/start`` → ``stream_end``), and the time per
   token above the direct call.
3. 100 concurrent streams of ``{"fake": {"tokens": 200, "delay_ms": 20}}`` (followed by a
   separate client process, so the list timer never waits for the followers' GIL) while
   this process lists the sessions in a loop; list p95 over the window when every
   stream is live. The server runs with ``--threads 256`` on a corpus of 5,000 sessions.

    python bench/bench_streams.py [--quick] [--json out.json] [--streams 100] [--tokens 50000]

Prints a table of figures next to the targets; exits 0 whatever the figures are.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus import MB, build_corpus  # noqa: E402
from bench.harness import (BenchServer, Client, Figures, fmt_ms, run_turn_over_http, summary_ms,  # noqa: E402
                           wait_for_background_work)


def log(msg: str) -> None:
    print(f"[bench_streams] {msg}", file=sys.stderr, flush=True)


def script(**kw) -> str:
    return json.dumps({"fake": kw})


def direct_seconds_per_token(tokens: int, runs: int) -> float:
    """Best-of-``runs`` seconds per token of ``FakeBackend().run_turn`` with a no-op emit."""
    from api.agents.fake import FakeBackend
    backend, msg, best = FakeBackend(), script(tokens=tokens), float("inf")
    for _ in range(runs):
        sink: list = []
        emit = lambda e, d: sink.append(d)  # noqa: E731
        t0 = time.perf_counter()
        backend.run_turn([], msg, emit, threading.Event())
        best = min(best, time.perf_counter() - t0)
        assert len(sink) == tokens
    return best / tokens


def one_stream(port: int, client: Client, tokens: int) -> dict:
    """One ``tokens``-token turn on a new session; ``{"events", "seconds", "first_event_s"}``."""
    sid = client.post_json("/api/session/new", {"title": "bench stream"})["session"]["session_id"]
    r = run_turn_over_http(port, client, sid, script(tokens=tokens))
    if r["events"].get("token") != tokens or r["events"].get("stream_end") != 1:
        raise RuntimeError(f"stream lost events: {r['events']}")
    expected = "".join(f"t{i} " for i in range(tokens))
    if "".join(json.loads(t)["text"] for t in r["tokens"]) != expected:
        raise RuntimeError("streamed tokens differ from the script")
    return {"events": sum(r["events"].values()), "seconds": r["end_s"], "first_event_s": r["first_event_s"]}


def _follower(port: int, sids: list[str], message: str, ready, go, results) -> None:
    """Child process: one thread per session starts a turn at ``go`` and follows it;
    ``ready`` is set once every thread is waiting on ``go``."""
    out = [None] * len(sids)

    def run(i: int, sid: str) -> None:
        c = Client(port)
        try:
            go.wait()
            t_start = time.monotonic()
            r = run_turn_over_http(port, c, sid, message)
            out[i] = {"t_start": t_start, "t_first": t_start + r["first_event_s"], "t_end": t_start + r["end_s"],
                      "first_event_s": r["first_event_s"], "end_s": r["end_s"], "events": r["events"]}
        except Exception as exc:  # reported to the parent, never swallowed
            out[i] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(i, s), daemon=True) for i, s in enumerate(sids)]
    for t in threads:
        t.start()
    ready.set()
    for t in threads:
        t.join()
    results.put(out)


def concurrent_streams(srv: BenchServer, n_streams: int, tokens: int, delay_ms: int) -> dict:
    """``n_streams`` turns at once while this process lists sessions in a loop.

    Returns ``{"streams": [per-stream dict], "list_all": [s], "list_live": [s],
    "window_s": seconds all were live, "rss_peak": highest RSS sampled during the run in MiB,
    "rss_after": MiB, "server_cpu_s": CPU seconds the server used, "wall_s": seconds the run took}``.
    """
    c = Client(srv.port)
    sids = [c.post_json("/api/session/new", {"title": f"bench concurrent {i}"})["session"]["session_id"]
            for i in range(n_streams)]
    ctx = mp.get_context("spawn")
    ready, go, results = ctx.Event(), ctx.Event(), ctx.Queue()
    child = ctx.Process(target=_follower, args=(srv.port, sids, script(tokens=tokens, delay_ms=delay_ms),
                                                ready, go, results))
    child.start()
    if not ready.wait(120):
        child.kill()
        raise RuntimeError("the follower process never became ready")
    samples: list[tuple[float, float]] = []
    rss_peak = 0.0
    cpu0, t0 = srv.cpu(), time.monotonic()
    go.set()
    streams = None
    while streams is None:
        t = time.monotonic()
        status, body, dt = c.get("/api/sessions")
        if status != 200:
            raise RuntimeError(f"list under load: HTTP {status}")
        samples.append((t, dt))
        rss_peak = max(rss_peak, srv.memory()["rss"])
        try:
            streams = results.get_nowait()
        except Exception:
            pass
    cpu, wall = srv.cpu() - cpu0, time.monotonic() - t0
    child.join(30)
    bad = [s for s in streams if "error" in s or s["events"].get("token") != tokens
           or s["events"].get("stream_end") != 1]
    if bad:
        raise RuntimeError(f"{len(bad)} of {n_streams} streams failed, e.g. {bad[0]}")
    lo = max(s["t_first"] for s in streams)
    hi = min(s["t_end"] for s in streams)
    live = [dt for t, dt in samples if lo <= t and t + dt <= hi]
    c.close()
    return {"streams": streams, "list_all": [dt for _, dt in samples], "list_live": live,
            "window_s": max(0.0, hi - lo), "rss_peak": rss_peak, "rss_after": srv.memory()["rss"],
            "server_cpu_s": cpu, "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small figures: proves the script works")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--work-dir", type=Path, help="where the corpus goes (default: a temp dir, removed afterwards)")
    ap.add_argument("--sessions", type=int, default=None, help="corpus size (default 5000; 200 with --quick)")
    ap.add_argument("--streams", type=int, default=None, help="concurrent streams (default 100; 10 with --quick)")
    ap.add_argument("--tokens", type=int, default=None, help="tokens in the throughput stream (default 50000)")
    args = ap.parse_args(argv)
    q = args.quick
    n = args.sessions or (200 if q else 5000)
    n_streams = args.streams or (10 if q else 100)
    tokens = args.tokens or (2000 if q else 50000)
    runs = 1 if q else 3
    work = Path(tempfile.mkdtemp(prefix="hermes-bench-", dir=args.work_dir))
    load = os.getloadavg()
    fig = Figures(f"bench_streams: {n} sessions, {n_streams} concurrent streams{' (QUICK mode)' if q else ''}; "
                  f"load average at start {load[0]:.2f} on {os.cpu_count()} CPUs")
    try:
        _run(fig, work, n, n_streams, tokens, runs, q)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(fig.table())
    if args.json:
        meta = {"sessions": n, "streams": n_streams, "tokens": tokens, "quick": q, "loadavg": [load, os.getloadavg()]}
        args.json.write_text(json.dumps(fig.to_json(meta), indent=2))
    return 0


def _run(fig: Figures, work: Path, n: int, n_streams: int, tokens: int, runs: int, q: bool) -> None:
    stream_tokens = 50 if q else 200
    log(f"building {n} sessions")
    info = build_corpus(work / "state", n, big=0, huge_messages=0)
    fig.add("corpus", f"{n} sessions, {info['bytes'] / MB:.0f} MB")
    direct = direct_seconds_per_token(tokens, runs)
    fig.add("FakeBackend.run_turn direct (no-op emit)", f"{direct * 1e6:.2f} µs/token ({1 / direct:,.0f}/s)",
            direct_us_per_token=round(direct * 1e6, 3))
    srv = BenchServer(work / "state", work / "home", ("--threads", "256"))
    srv.start()
    try:
        c = Client(srv.port)
        wait_for_background_work(c)
        log(f"one stream of {tokens} tokens")
        cpu0 = srv.cpu()
        one = [one_stream(srv.port, c, tokens) for _ in range(runs)]
        cpu_per_event_us = (srv.cpu() - cpu0) / sum(r["events"] for r in one) * 1e6
        secs = statistics.median(r["seconds"] for r in one)
        ev = one[0]["events"]
        rate = ev / secs
        added_us = (secs / tokens - direct) * 1e6
        fig.add(f"one SSE stream, {tokens} tokens (start → stream_end)", f"{rate:,.0f} events/s",
                "≥ 20,000 events/s", rate >= 20000, stream_events_per_s=round(rate), stream_seconds=round(secs, 3))
        fig.add("added per token vs direct run_turn", f"{added_us:.1f} µs", "< 1000 µs", added_us < 1000,
                added_us_per_token=round(added_us, 2))
        fig.add("  server CPU per streamed event", f"{cpu_per_event_us:.1f} µs", "", None,
                server_cpu_us_per_event=round(cpu_per_event_us, 2))
        idle = summary_ms([c.get("/api/sessions")[2] for _ in range(30 if not q else 10)])
        fig.add(f"list {n + runs} sessions, idle (median / p95)", fmt_ms(idle), "", None, list_idle_ms=idle)
        c.close()
        log(f"{n_streams} concurrent streams")
        rss_before = srv.memory()["rss"]
        cs = concurrent_streams(srv, n_streams, stream_tokens, 20)
        live = summary_ms(cs["list_live"] or cs["list_all"])
        every = summary_ms(cs["list_all"])
        fig.add(f"list while {n_streams} streams run (median / p95)", fmt_ms(live), "p95 < 200 ms",
                live["p95"] < 200, list_under_streams_ms=live, window_s=round(cs["window_s"], 2))
        fig.add("  same, whole run incl. starts and ends", fmt_ms(every), "", None, list_whole_run_ms=every)
        fe = summary_ms([s["first_event_s"] for s in cs["streams"]])
        end = summary_ms([s["end_s"] for s in cs["streams"]])
        fig.add(f"  chat start → first event, {n_streams} starting at once", fmt_ms(fe), "", None,
                concurrent_first_event_ms=fe)
        fig.add(f"  stream duration (ideal {stream_tokens} × 20 ms = {stream_tokens * 20:,} ms)", fmt_ms(end),
                "", None, concurrent_end_ms=end)
        fig.add("  server CPU during the run (of 2 cores × wall)", f"{cs['server_cpu_s']:.1f} s of "
                f"{cs['wall_s']:.1f} s wall", "", None, concurrent_server_cpu_s=round(cs["server_cpu_s"], 2),
                concurrent_wall_s=round(cs["wall_s"], 2))
        fig.add(f"RSS idle / peak with {n_streams} streams / after", f"{rss_before:.0f} / {cs['rss_peak']:.0f} / "
                f"{cs['rss_after']:.0f} MiB", "< 150 MiB", cs["rss_peak"] < 150,
                rss_idle_mib=rss_before, rss_peak_mib=cs["rss_peak"], rss_after_mib=cs["rss_after"])
    finally:
        srv.stop()


if __name__ == "__main__":
    sys.exit(main())
