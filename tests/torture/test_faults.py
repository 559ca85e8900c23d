"""Fault injection in the save path: every open, write, copy_file_range, fsync and
replace that :mod:`api.atomic` makes while the store saves fails in turn, with ENOSPC
and with EIO.

For each save path of :class:`api.models.SessionStore` (create, a growing save, a
shrinking save that snapshots a backup first, a metadata patch, a turn's append) and
each such call: the error reaches the caller with its errno, the session file is
byte-identical to what it was, its backup is either untouched or a copy of the previous
file, no temp file is left, the index still describes what is on disk, and the same
save succeeds once the fault is gone. A failure of the directory open/fsync, which
:mod:`api.atomic` swallows by design (best effort after the rename), must instead leave
the new content fully in place.
"""
from __future__ import annotations

import errno
import os

import pytest

import api.atomic

from .faults import (
    PATHS,
    FaultyOs,
    fault_cases,
    make_message,
    run_fault_case,
    seed_store,
)

CASES = fault_cases()


def test_every_save_path_makes_the_disk_calls_the_matrix_fails():
    """The fault matrix below is only as good as the calls it finds."""
    ops_seen = {(c[0], c[1]) for c in CASES}
    for path in PATHS:
        for op in ("open", "fsync", "replace"):
            assert (path, op) in ops_seen, f"{path} made no {op} call"
        assert (path, "write") in ops_seen or (path, "copy_file_range") in ops_seen, f"{path} wrote nothing"
    for path in ("patch", "append"):  # the transcript is copied in the kernel, not re-encoded
        assert (path, "copy_file_range") in ops_seen
    shrink_fsyncs = max(c[2] for c in CASES if c[:2] == ("shrink", "fsync"))
    assert shrink_fsyncs >= 4, "a shrinking save writes the backup and the file, each fsynced"


@pytest.mark.parametrize("path,op,nth,err", [pytest.param(*c, id=f"{c[0]}-{c[1]}{c[2]}-{errno.errorcode[c[3]]}")
                                              for c in CASES])
def test_a_failing_disk_call_leaves_the_previous_file_intact_and_the_next_save_works(tmp_path, path, op, nth, err):
    assert run_fault_case(tmp_path, path, op, nth, err) in ("raised", "swallowed")


def test_short_writes_still_produce_the_whole_file(tmp_path, monkeypatch):
    store, sid = seed_store(tmp_path)
    session = store.load(sid)
    session.messages += [make_message(i) for i in range(200, 230)]
    faulty = FaultyOs()
    monkeypatch.setattr(api.atomic, "os", faulty)
    session.save()
    monkeypatch.setattr(api.atomic, "os", os)
    assert faulty.calls["write"] > 5, "the file was written in one call; short writes were not exercised"
    assert store.load(sid).messages == session.messages
    store.close()
