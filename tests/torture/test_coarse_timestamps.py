"""The index after a crash on a filesystem whose timestamps are coarse.

The sidebar index trusts its on-disk cache for a session file whose ``(mtime_ns, size)``
is unchanged, except for "racy" files modified within 2 s of the cache itself. Where timestamps have 1–2 s granularity (ext2/3 or
ext4 with 128-byte inodes, FAT/exFAT sticks, HFS+, many SMB/NFS mounts; on ext4 with
kernels before 6.13 the granularity is one jiffy, 1–10 ms), a save that follows the
index flush within the same tick and keeps the file's size leaves the same key: after a
crash a stale cached row would win without that rule. The test builds such a filesystem in a loop file
(root only; skipped otherwise).
"""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from api.session_index import FLUSH_DELAY

from ..helpers import LiveServer, wait_until


@pytest.fixture
def coarse_fs_server(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a loop filesystem needs root")
    srv = tmp_path / "srv"
    state = srv / "state"
    state.mkdir(parents=True)
    image = tmp_path / "fs.img"
    try:
        with open(image, "wb") as f:
            f.truncate(32 << 20)
        subprocess.run(["mke2fs", "-q", "-F", "-I", "128", str(image)], check=True, capture_output=True, timeout=60)
        subprocess.run(["mount", "-o", "loop", str(image), str(state)], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount an ext2 loop filesystem here: {exc}")
    server = LiveServer(srv)
    try:
        yield server.start()
    finally:
        server.kill()
        if subprocess.run(["umount", str(state)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(state)], capture_output=True, check=False)


def _cached_row(server, sid, title=None):
    """The index cache's row for ``sid`` once it was flushed with the file's current stat
    (and with ``title``, if given)."""
    try:
        row = json.loads((server.sessions_dir / "_index.json").read_bytes())["entries"].get(sid)
    except (OSError, ValueError):
        return None
    if row is None or (title is not None and row["meta"].get("title") != title):
        return None
    st = os.stat(server.sessions_dir / f"{sid}.json")
    return row if row and row["stat"] == [st.st_mtime_ns, st.st_size] else None


def _at_clock(fraction_lo: float, fraction_hi: float) -> None:
    """Wait for a moment whose fractional second is in [lo, hi)."""
    wait_until(lambda: fraction_lo <= time.time() % 1 < fraction_hi, timeout=2, interval=0.002,
               message="the moment in the second")


def test_after_a_crash_the_listing_shows_the_title_the_file_holds(coarse_fs_server):
    server = coarse_fs_server
    other = server.new_session(title="other")
    sid = server.new_session(title="title-0000")
    for attempt in range(5):
        wait_until(lambda: _cached_row(server, sid), timeout=FLUSH_DELAY + 10, message="the index to settle")
        # a change elsewhere arms the index's debounced flush; our save lands just before that
        # flush, in the same second, and the next one just after it
        _at_clock(0.45, 0.5)
        armed = time.time()
        assert server.post("/api/session/pin", {"session_id": other, "pinned": attempt % 2 == 0}).status_code == 200
        wait_until(lambda at=armed + FLUSH_DELAY - 0.25: time.time() >= at, timeout=FLUSH_DELAY + 2,
                   interval=0.002, message="just before the flush")
        title_a = f"title-a{attempt:03}"
        assert server.post("/api/session/rename", {"session_id": sid, "title": title_a}).status_code == 200
        flushed = wait_until(lambda t=title_a: _cached_row(server, sid, t), timeout=10, interval=0.002,
                             message="the flush")
        assert server.post("/api/session/rename", {"session_id": sid, "title": f"title-b{attempt:03}"}).status_code == 200
        server.kill()  # long before the next flush
        st = os.stat(server.sessions_dir / f"{sid}.json")
        server.start()
        if flushed["stat"] == [st.st_mtime_ns, st.st_size]:
            break
    else:
        pytest.skip("could not land both saves in one timestamp tick")
    assert server.session(sid)["title"] == f"title-b{attempt:03}"  # the file, the truth
    rows = {r["session_id"]: r["title"] for r in server.get("/api/sessions").json()["sessions"]}
    assert rows[sid] == f"title-b{attempt:03}", "the index contradicts the session file after a crash"
