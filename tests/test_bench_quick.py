"""The benches run end to end in their quick modes and report every figure.

These tests prove the scripts work (a real server, a real corpus, real requests); they
assert that figures are produced and sane, never how fast anything is.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

from .helpers import ROOT


def _run_bench(script: str, tmp_path, *extra: str) -> dict:
    out = tmp_path / "figures.json"
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--quick", "--json", str(out),
                           "--work-dir", str(work), *extra],
                          cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "target" in proc.stdout and "measured" in proc.stdout
    assert list(work.iterdir()) == [], "the bench left its corpus behind"
    figures = json.loads(out.read_text())
    for row in figures["rows"]:
        assert row["work"] and row["measured"]
        assert row["met"] in (True, False, None)
    return figures["values"]


def _positive_ms(summary: dict) -> None:
    assert summary["n"] > 0
    assert 0 < summary["median"] <= summary["p95"] <= summary["max"]
    assert math.isfinite(summary["max"])


def test_bench_sessions_quick_reports_every_figure(tmp_path):
    v = _run_bench("bench_sessions.py", tmp_path)
    for key in ("list_ms", "list_after_write_ms", "rename_small_ms", "rename_big_ms", "pin_small_ms",
                "pin_big_ms", "chat_first_event_ms", "chat_first_event_big_ms", "open_window_ms",
                "open_full_ms", "turn_save_small_ms", "turn_save_big_ms", "list_tiny_ms", "rename_few_ms"):
        _positive_ms(v[key])
    assert v["list_rows"] > 0 and v["list_bytes"] > 0
    assert v["startup_no_index_ms"] > 0 and v["startup_with_index_ms"] > 0
    assert 0 < v["rss_start_mib"] <= v["rss_peak_mib"]
    assert v["list_size_ratio"] > 0
    assert v["open_window_first_ms"] > 0 and v["upstream_list_bytes"] > 0
    _positive_ms(v["open_window_older_ms"])


def test_bench_sessions_quick_on_the_upstream_layout_reports_every_figure(tmp_path):
    v = _run_bench("bench_sessions.py", tmp_path, "--upstream-layout")
    for key in ("list_ms", "open_window_ms", "open_window_older_ms", "open_full_ms", "rename_small_ms",
                "chat_first_event_ms", "list_tiny_ms"):
        _positive_ms(v[key])
    assert v["open_window_first_ms"] > 0 and v["startup_with_index_ms"] > 0
    # the upstream's list for the same sessions is measured, and ours is the smaller
    assert 0 < v["list_bytes"] < v["upstream_list_bytes"]


def test_bench_turns_quick_reports_every_figure(tmp_path):
    v = _run_bench("bench_turns.py", tmp_path)
    for key in ("checkpoint_huge_ms", "checkpoint_tiny_ms", "checkpoint_huge_64k_ms", "checkpoint_tiny_64k_ms",
                "paste_start_ms", "paste_first_event_ms", "paste_open_window_ms", "paste_open_full_ms"):
        _positive_ms(v[key])
    assert v["checkpoint_size_ratio"] > 0


def test_bench_streams_quick_reports_every_figure(tmp_path):
    v = _run_bench("bench_streams.py", tmp_path)
    assert v["stream_events_per_s"] > 0 and v["direct_us_per_token"] > 0
    assert math.isfinite(v["added_us_per_token"])
    for key in ("list_idle_ms", "list_under_streams_ms", "concurrent_first_event_ms", "concurrent_end_ms"):
        _positive_ms(v[key])
    # every follower got its whole stream (the bench raises otherwise); durations cover the script
    assert v["concurrent_end_ms"]["median"] >= 50 * 20
    assert v["rss_peak_mib"] > 0


def test_bench_migrate_quick_reports_every_figure(tmp_path):
    v = _run_bench("bench_migrate.py", tmp_path)
    assert v["sessions"] == 200 and v["bytes"] > 0
    assert v["first_s"] > 0 and v["second_s"] > 0 and v["peak_mib"] > 0
    assert v["first_line"].startswith("imported 200,") and v["second_line"].startswith("imported 0, updated 0, unchanged 200")
