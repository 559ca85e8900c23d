"""Issue 10's crash harness against the real server (fake backend): SIGKILL under a mixed
workload at random moments, restart, check every invariant (see ``server_crash.py``).

The quick mode runs in CI; together with the 100 kills of ``test_store_crash.py`` it
makes well over 100 kill points. The long mode (``-m slow``; ``HERMES_TORTURE_KILLS``
sets the count, default 1000) is also ``python bench/torture.py --kills 1000``.
"""
from __future__ import annotations

import os

import pytest

from .server_crash import ServerCrashHarness

QUICK_KILLS = 35
GOAL_LOST_SECONDS = 2.0  # issue 10: seconds of streamed text a kill may destroy


def _run(tmp_path, kills: int, seed: int):
    harness = ServerCrashHarness(tmp_path / "srv", seed=seed)
    try:
        figures = harness.run(kills)
    finally:
        harness.close()
    print("\n" + figures.summary())
    return figures


def _assert_no_damage(figures):
    assert figures.violations == [], "\n".join(figures.violations[:20])
    assert figures.lost_messages == 0
    assert figures.unparseable_files == 0
    assert max(figures.lost_seconds, default=0) <= GOAL_LOST_SECONDS, figures.loss_summary()


def test_server_killed_mid_workload_loses_no_acknowledged_message(tmp_path):
    figures = _run(tmp_path, QUICK_KILLS, seed=11)
    _assert_no_damage(figures)
    assert figures.kills == QUICK_KILLS
    # the run exercised what it claims to (bounds loose enough for a loaded 2-core machine):
    # acknowledged turns, streams cut by kills, checkpoints of partial replies
    assert figures.acked_messages > 3 * QUICK_KILLS, figures.summary()
    assert figures.streams_cut >= QUICK_KILLS // 2, figures.summary()
    assert figures.streams_with_checkpoint > 0, figures.summary()
    for op in ("new", "stream", "echo", "rename", "pin", "delete"):
        assert figures.ops.get(op, 0) > 0, f"the workload never acknowledged a {op}: {figures.summary()}"


@pytest.mark.slow
def test_server_killed_1000_times(tmp_path):
    figures = _run(tmp_path, int(os.environ.get("HERMES_TORTURE_KILLS", "1000")), seed=12)
    _assert_no_damage(figures)
