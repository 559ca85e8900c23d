"""Crash, fault and concurrency torture, long mode: prints the figures for TESTING.md.

    python bench/torture.py --kills 1000            # 1000 server kills + 1000 writer kills + fault matrix
    python bench/torture.py --kills 50 --store-kills 0 --no-faults

Three parts, each the long form of a quick test in ``tests/torture/``:

1. the store crash test (issue 3): a process saving sessions through ``SessionStore``
   is SIGKILLed at random moments; after each kill every file must parse and hold its
   acknowledged or its in-flight content, and self-heal must leave no temp file;
2. the server crash harness (issue 10): the real server under a mixed workload, SIGKILLed
   and restarted; acknowledged messages, parseable files, no temp litter, no live stream,
   index = files, deletes stay deleted; plus the streamed text lost per kill;
3. the fault matrix: every open/write/fsync/replace of every save path fails with ENOSPC
   and EIO in turn.

Everything runs in a temporary directory (``--dir`` to keep it) with a temporary HOME.
Exit status 1 if any invariant broke.
"""
from __future__ import annotations

import argparse
import errno
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.torture.faults import fault_cases, run_fault_case
from tests.torture.server_crash import ServerCrashHarness
from tests.torture.store_crash import StoreCrashHarness


def _store_part(work: Path, kills: int, seed: int) -> list[str]:
    print(f"== store crash test: {kills} SIGKILLs of a writer process", flush=True)
    harness = StoreCrashHarness(work / "store" / "state", work / "home", seed=seed)
    t0 = time.monotonic()
    try:
        for i in range(kills):
            harness.round()
            if (i + 1) % 100 == 0:
                print(f"   {i + 1} kills, {harness.figures.acked_writes} acknowledged writes, "
                      f"{len(harness.figures.violations)} violations, {time.monotonic() - t0:.0f} s", flush=True)
    finally:
        harness.close()
    print("   " + harness.figures.summary(), flush=True)
    return harness.figures.violations


def _server_part(work: Path, kills: int, seed: int) -> tuple[list[str], object]:
    print(f"== server crash harness: {kills} SIGKILLs of the real server (fake backend)", flush=True)
    harness = ServerCrashHarness(work / "server", seed=seed)
    t0 = time.monotonic()

    def progress(h):
        f = h.figures
        if f.kills % 50 == 0:
            print(f"   {f.kills} kills, {f.acked_messages} acknowledged, {f.lost_messages} lost, "
                  f"{len(f.violations)} violations, {time.monotonic() - t0:.0f} s", flush=True)

    try:
        figures = harness.run(kills, progress=progress)
    finally:
        harness.close()
    print("   " + figures.summary().replace("\n", "\n   "), flush=True)
    return figures.violations, figures


def _fault_part(work: Path) -> tuple[list[str], dict]:
    cases = fault_cases()
    print(f"== fault matrix: {len(cases)} injected faults (ENOSPC, EIO)", flush=True)
    counts = {"raised": 0, "swallowed": 0, "injected": len(cases)}
    failures = []
    for i, (path, op, nth, err) in enumerate(cases):
        name = f"{path}-{op}{nth}-{errno.errorcode[err]}"
        try:
            counts[run_fault_case(work / "faults" / str(i), path, op, nth, err)] += 1
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    survived = counts["raised"] + counts["swallowed"]
    print(f"   {len(cases)} injected, {survived} survived ({counts['raised']} surfaced as an error with the "
          f"previous file byte-identical and the retry succeeding; {counts['swallowed']} directory "
          f"open/fsync faults swallowed after a complete save), {len(failures)} failed", flush=True)
    return failures, counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=1000, help="server kills (default 1000)")
    parser.add_argument("--store-kills", type=int, default=None, help="writer-process kills (default: --kills)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-faults", action="store_true", help="skip the fault matrix")
    parser.add_argument("--dir", type=Path, default=None, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args(argv)
    store_kills = args.kills if args.store_kills is None else args.store_kills
    logging.basicConfig(level=logging.ERROR)  # self-heal's restore warnings are expected here

    tmp = None
    if args.dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="hermes-torture-")
        work = Path(tmp.name)
    else:
        work = args.dir
        work.mkdir(parents=True, exist_ok=True)
    (work / "home").mkdir(exist_ok=True)
    t0 = time.monotonic()
    violations: list[str] = []
    try:
        if store_kills:
            violations += _store_part(work, store_kills, args.seed)
        server = None
        if args.kills:
            v, server = _server_part(work, args.kills, args.seed)
            violations += v
        faults = None
        if not args.no_faults:
            v, faults = _fault_part(work)
            violations += v
    finally:
        if tmp is not None:
            tmp.cleanup()

    print("\n== figures")
    print(f"kill points tried:            {store_kills + args.kills} ({store_kills} writer process, "
          f"{args.kills} server)")
    if server is not None:
        print(f"messages acknowledged:        {server.acked_messages}")
        print(f"messages lost:                {server.lost_messages}")
        print(f"files unparseable:            {server.unparseable_files} (of {server.files_checked} checks)")
        print(f"streamed text lost:           {server.loss_summary()}")
    if faults is not None:
        print(f"faults injected / survived:   {faults['injected']} / {faults['raised'] + faults['swallowed']}")
    print(f"violations:                   {len(violations)}")
    for v in violations[:50]:
        print("  " + v)
    print(f"wall time: {time.monotonic() - t0:.0f} s")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
