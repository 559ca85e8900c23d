"""Migrating the upstream's state dir (``hermes-webui migrate``): time and peak memory.

Builds the DESIGN §9 corpus (5,000 sessions, ~308 MB: ten of ~20 MB, one of 3,000
messages) in the upstream's file layout (bench/corpus.py ``--upstream-layout``), then
runs ``python server.py migrate SRC --state-dir DST`` as a user would (its progress
lines pass through), then a second run (nothing new), and prints the figures.

    python bench/bench_migrate.py [--sessions 5000] [--quick] [--json FILE] [--work-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.corpus import MB, build_corpus  # noqa: E402


def _run(src: Path, dst: Path, home: Path) -> tuple[float, float, str]:
    """Seconds, peak RSS (MiB) of the migrate process, and its summary line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
    env["HOME"] = str(home)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "migrate", str(src), "--state-dir", str(dst)],
                            cwd=str(ROOT), env=env, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"migrate failed ({proc.returncode}):\n{out}")
    # the largest peak of any child so far: the first run's (the corpus build runs in-process)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return seconds, peak, out.splitlines()[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=5000)
    ap.add_argument("--quick", action="store_true", help="200 small sessions and small big ones")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--work-dir", type=Path, help="where the corpus goes (removed afterwards)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-migrate-", dir=args.work_dir))
    try:
        kw = dict(big=2, big_bytes=MB // 2, huge_messages=300, huge_bytes=MB // 2) if args.quick else {}
        n = 200 if args.quick else args.sessions
        info = build_corpus(work / "upstream", n, upstream=True, **kw)
        print(f"corpus: {info['files']} sessions, {info['bytes'] / MB:.0f} MB in the upstream's layout "
              f"({info['seconds']:.1f} s to build)", flush=True)
        (work / "home").mkdir()
        first_s, first_peak, first_line = _run(work / "upstream", work / "ours", work / "home")
        second_s, _, second_line = _run(work / "upstream", work / "ours", work / "home")
        rows = [
            {"work": f"migrate {info['files']} sessions / {info['bytes'] / MB:.0f} MB", "measured":
             f"{first_s:.1f} s ({info['bytes'] / MB / first_s:.0f} MB/s)", "target": "(none set)", "met": None},
            {"work": "peak RSS of the migrate process", "measured": f"{first_peak:.0f} MiB",
             "target": "(the upstream's own server peaks at 356 MiB on this corpus)", "met": None},
            {"work": "a second run (nothing new)", "measured": f"{second_s:.1f} s", "target": "(none set)",
             "met": None},
        ]
        print(f"first run:  {first_line}")
        print(f"second run: {second_line}")
        print(f"{'work':46} {'measured':24} target")
        for r in rows:
            print(f"{r['work']:46} {r['measured']:24} {r['target']}")
        if args.json:
            args.json.write_text(json.dumps({"rows": rows, "values": {
                "sessions": info["files"], "bytes": info["bytes"], "first_s": first_s, "peak_mib": first_peak,
                "second_s": second_s, "first_line": first_line, "second_line": second_line}}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
