"""Issue 3's crash test: a process saving sessions in a loop, SIGKILLed at random moments.

After every kill each session file parses and holds either its last acknowledged bytes
or the content of the write that was in flight; backups hold content the session once
had; start-up self-heal leaves no temp file and is idempotent.
"""
from __future__ import annotations

import os

import pytest

from .store_crash import run_store_crash

QUICK_KILLS = 100


def _assert_clean(figures):
    assert figures.violations == [], "\n".join(figures.violations[:20])
    assert figures.unparseable == 0
    assert figures.torn_or_lost == 0
    assert figures.temp_left_after_recovery == 0


def test_writer_killed_at_100_random_moments_never_tears_or_loses_a_session(tmp_path):
    figures = run_store_crash(tmp_path / "state", tmp_path / "home", kills=QUICK_KILLS, seed=1)
    print(figures.summary())
    _assert_clean(figures)
    assert figures.kills >= 100
    # the test is only meaningful if kills really land inside writes
    assert figures.acked_writes > figures.kills
    assert figures.temp_files_at_kill > 0, "no kill caught a write half-way; the test proves nothing"


@pytest.mark.slow
def test_writer_killed_at_1000_random_moments(tmp_path):
    kills = int(os.environ.get("HERMES_TORTURE_STORE_KILLS", "1000"))
    figures = run_store_crash(tmp_path / "state", tmp_path / "home", kills=kills, seed=7)
    print(figures.summary())
    _assert_clean(figures)
