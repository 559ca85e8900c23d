"""Hostile names and racing writers (issue 13's upload contract, issue 14 items 3 and 4).

- An upload's file name is reduced to its last component inside the target folder
  (``api.safepath.upload_name``); nothing the client sends builds a path. The multipart
  bodies are built byte by byte, so the test does not depend on how a client library
  quotes a file name.
- A rename or an exclusive create never replaces a file, even when two requests reach
  the same free name at once: forced interleavings in-process, and real concurrent
  requests against a server.
- Names and ids that end in a newline are refused (Python's ``$`` matches before a final
  ``\\n``; every check uses ``fullmatch``).
"""
from __future__ import annotations

import secrets
import shutil
import threading

import pytest
import requests

from api import safepath
from api.safepath import PathError

from .helpers import LiveServer, wait_until
from .test_workspace import snapshot

PAYLOAD = b"uploaded bytes\n"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("secpaths")).start()
    server.sid = server.new_session()
    server.root = server.state_dir / "workspace"
    server.outside = server.tmp / "outside"
    yield server
    server.stop()


def raw_upload(server, file_disposition: bytes, folder: str = "sub") -> requests.Response:
    """POST /api/upload with a multipart body written by hand; ``file_disposition`` is the
    rest of the file part's ``Content-Disposition`` line after ``name="file"; ``."""
    b = b"b" + secrets.token_hex(12).encode()
    body = b"".join([
        b"--", b, b'\r\nContent-Disposition: form-data; name="session_id"\r\n\r\n', server.sid.encode(), b"\r\n",
        b"--", b, b'\r\nContent-Disposition: form-data; name="path"\r\n\r\n', folder.encode(), b"\r\n",
        b"--", b, b'\r\nContent-Disposition: form-data; name="file"; ', file_disposition,
        b"\r\nContent-Type: application/octet-stream\r\n\r\n", PAYLOAD, b"\r\n",
        b"--", b, b"--\r\n",
    ])
    return requests.post(server.url("/api/upload"), data=body, timeout=30,
                         headers={"Content-Type": f"multipart/form-data; boundary={b.decode()}",
                                  "Origin": server.url("")})  # same-origin, as a page's upload


# (id, the Content-Disposition tail, the names the file may get in "sub"; None: refused 400)
UPLOAD_NAMES = [
    ("escaped-backslashes", rb'filename="..\\..\\x"', {"x"}),
    # What requests >= 2.33 sends for "..\..\x". In a quoted-string "\." is a quoted pair
    # (RFC 9110 5.6.4), so a parser that honours it reads "....x", one that does not "..\..\x"
    # and we keep "x": either way one plain name in the target folder.
    ("raw-backslashes", rb'filename="..\..\x"', {"x", "....x"}),
    ("windows-path", rb'filename="C:\\Users\\me\\report.txt"', {"report.txt"}),
    ("slash-traversal", b'filename="../../x"', {"x"}),
    ("absolute", b'filename="/etc/passwd"', {"passwd"}),
    ("rfc5987-encoded-traversal", b"filename*=UTF-8''..%2F..%2Fx", {"x"}),
    ("rfc5987-encoded-backslashes", b"filename*=UTF-8''..%5C..%5Cy", {"y"}),
    ("dotdot", b'filename=".."', None),
    ("path-ending-in-dotdot", b'filename="a/.."', None),
    ("only-dots", b'filename="...."', None),
    ("empty-after-cleaning", b'filename="../"', None),
    ("encoded-nul", b"filename*=UTF-8''a%00b", None),
    ("encoded-newline", b"filename*=UTF-8''evil%0A", None),
    ("encoded-newline-inside", b"filename*=UTF-8''ev%0Ail", None),
]


@pytest.mark.parametrize("disposition,allowed", [c[1:] for c in UPLOAD_NAMES], ids=[c[0] for c in UPLOAD_NAMES])
def test_upload_name_is_reduced_to_one_name_in_the_target_folder(ws, disposition, allowed):
    for d in (ws.root, ws.outside):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    (ws.root / "sub").mkdir()
    (ws.outside / "keep.txt").write_text("outside\n")
    before_outside = snapshot(ws.outside, ws.state_dir / "sessions")
    resp = raw_upload(ws, disposition)
    assert snapshot(ws.outside, ws.state_dir / "sessions") == before_outside
    created = sorted(str(p.relative_to(ws.root)) for p in ws.root.rglob("*") if p != ws.root / "sub")
    if allowed is None:
        assert resp.status_code == 400, resp.text
        assert "error" in resp.json()
        assert created == []
        return
    assert resp.status_code == 200, resp.text
    assert len(created) == 1, created
    name = created[0].split("/", 1)[1]
    assert created[0] == f"sub/{name}" and name in allowed, created
    assert resp.json()["path"] == f"sub/{name}"
    assert (ws.root / "sub" / name).read_bytes() == PAYLOAD


def test_upload_name_rules_directly():
    assert safepath.upload_name("report.pdf") == "report.pdf"
    assert safepath.upload_name("..\\..\\x") == "x"
    assert safepath.upload_name("dir/sub/ünïcode name.txt") == "ünïcode name.txt"
    assert safepath.upload_name(".hidden") == ".hidden"
    # bidi overrides/isolates only disguise a name ("invoice\u202efdp.exe" shows as "invoiceexe.pdf")
    assert safepath.upload_name("invoice\u202efdp.exe") == "invoicefdp.exe"
    assert safepath.upload_name("\u2067שלום\u2069 notes.txt") == "שלום notes.txt"
    for bad in ("", ".", "..", "...", "a/", "a\\", "x\x00y", "evil\n", "\r", "x" * 256, "\u202e", None):
        with pytest.raises(PathError) as info:
            safepath.upload_name(bad)
        assert info.value.status == 400, bad


# -- renames and exclusive creates never replace a file ------------------------------------


class Interleave:
    """Stops ``owner`` right after safepath looks up ``name`` (its "does it exist?" check)
    until :meth:`release`; the test runs a competitor in that window."""

    def __init__(self, name: str):
        self.name, self.owner = name, None
        self.checked, self._go = threading.Event(), threading.Event()

    def release(self):
        self._go.set()


@pytest.fixture
def interleave(monkeypatch):
    made = []
    real = safepath._lstat_at

    def hooked(dir_fd, name):
        result = real(dir_fd, name)
        for il in made:
            if name == il.name and threading.current_thread() is il.owner and not il.checked.is_set():
                il.checked.set()
                il._go.wait(10)
        return result

    monkeypatch.setattr(safepath, "_lstat_at", hooked)

    def make(name):
        made.append(Interleave(name))
        return made[-1]

    yield make
    for il in made:
        il.release()


def outcome(fn) -> int:
    try:
        fn()
        return 200
    except PathError as exc:
        return exc.status


def race(il: Interleave, first, second) -> tuple[int, int]:
    """Run ``first`` in a thread, paused after its check on ``il.name`` (if it makes one),
    then ``second`` to completion, then let ``first`` go on. Returns both statuses."""
    results = {}
    thread = threading.Thread(target=lambda: results.__setitem__("first", outcome(first)))
    il.owner = thread
    thread.start()
    wait_until(lambda: il.checked.is_set() or not thread.is_alive(), timeout=10, message="the first check")
    results["second"] = outcome(second)
    il.release()
    thread.join(10)
    return results["first"], results["second"]


def at(root, name):
    return safepath.locate(root, name, follow_final=False)


def test_two_renames_onto_one_free_name_exactly_one_wins(tmp_path, interleave):
    (tmp_path / "a.txt").write_text("A")
    (tmp_path / "b.txt").write_text("B")
    statuses = race(interleave("c.txt"),
                    lambda: safepath.rename(at(tmp_path, "a.txt"), at(tmp_path, "c.txt")),
                    lambda: safepath.rename(at(tmp_path, "b.txt"), at(tmp_path, "c.txt")))
    assert sorted(statuses) == [200, 409], statuses
    contents = sorted(p.read_text() for p in tmp_path.iterdir())
    assert contents == ["A", "B"], contents                  # no file destroyed
    assert (tmp_path / "c.txt").read_text() == ("A" if statuses[0] == 200 else "B")


def test_an_exclusive_create_never_replaces_a_file_renamed_onto_its_name(tmp_path, interleave):
    (tmp_path / "b.txt").write_text("B")
    statuses = race(interleave("c.txt"),
                    lambda: safepath.write_file(at(tmp_path, "c.txt"), b"created", exclusive=True),
                    lambda: safepath.rename(at(tmp_path, "b.txt"), at(tmp_path, "c.txt")))
    assert sorted(statuses) == [200, 409], statuses
    assert (tmp_path / "c.txt").read_bytes() in (b"B", b"created")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["c.txt"] if statuses[1] == 200 else ["b.txt", "c.txt"])
    if statuses[1] == 200:
        assert (tmp_path / "c.txt").read_text() == "B"       # the renamed file survived


def test_a_write_that_must_find_no_file_never_replaces_one(tmp_path, interleave):
    (tmp_path / "b.txt").write_text("B")
    statuses = race(interleave("c.txt"),
                    lambda: safepath.write_file(at(tmp_path, "c.txt"), b"new", expected_mtime=0),
                    lambda: safepath.rename(at(tmp_path, "b.txt"), at(tmp_path, "c.txt")))
    assert sorted(statuses) == [200, 409], statuses
    expected = {"c.txt": b"new", "b.txt": b"B"} if statuses[0] == 200 else {"c.txt": b"B"}
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == expected


def test_a_folder_rename_onto_a_taken_name_is_refused(tmp_path):
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    (tmp_path / "d2" / "keep").write_text("k")
    with pytest.raises(PathError) as info:
        safepath.rename(at(tmp_path, "d1"), at(tmp_path, "d2"))
    assert info.value.status == 409 and (tmp_path / "d2" / "keep").read_text() == "k"
    assert (tmp_path / "d1").is_dir()


def test_concurrent_renames_over_http_never_destroy_a_file(ws):
    """Many rounds of two real requests racing onto one free name: exactly one 200 each time."""
    ws.root.mkdir(parents=True, exist_ok=True)
    jars = [requests.Session(), requests.Session()]
    for round_no in range(25):
        target = f"target{round_no}.txt"
        for i in range(2):
            (ws.root / f"src{round_no}-{i}.txt").write_text(f"{round_no}-{i}")
        barrier = threading.Barrier(2)
        statuses = [None, None]

        def go(i):
            barrier.wait(10)
            statuses[i] = jars[i].post(ws.url("/api/file/rename"), timeout=30, json={
                "session_id": ws.sid, "path": f"src{round_no}-{i}.txt", "new_path": target}).status_code

        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(statuses) == [200, 409], (round_no, statuses)
        files = [ws.root / target] + [ws.root / f"src{round_no}-{i}.txt" for i in range(2)]
        left = sorted(p.read_text() for p in files if p.exists())
        assert left == [f"{round_no}-0", f"{round_no}-1"], (round_no, left)


# -- names ending in a newline ------------------------------------------------------------


def test_names_and_ids_ending_in_a_newline_are_refused(ws):
    profiles = ws.state_dir / "profiles"
    before = sorted(p.name for p in profiles.iterdir()) if profiles.exists() else []
    r = ws.post("/api/profile/create", {"name": "evil\n"})
    assert r.status_code == 400 and "error" in r.json()
    assert (sorted(p.name for p in profiles.iterdir()) if profiles.exists() else []) == before
    assert ws.post("/api/profile/switch", {"name": "default\n"}).status_code == 400
    assert ws.post("/api/profile/delete", {"name": "evil\n"}).status_code == 400
    # A session id with a final newline is not the session without it.
    r = ws.get("/api/session", params={"session_id": ws.sid + "\n"})
    assert r.status_code == 400, r.text
    assert ws.get("/api/list", params={"session_id": ws.sid + "\n", "path": ""}).status_code == 400
    r = requests.get(ws.url(f"/api/session?session_id={ws.sid}%0A"), timeout=30)
    assert r.status_code == 400, r.text
    # Skills: name and category.
    skill = {"description": "d", "body": "b"}
    skills = ws.state_dir / "skills"
    before = sorted(str(p) for p in skills.rglob("*")) if skills.exists() else []
    assert ws.post("/api/skills/save", dict(skill, name="evil\n")).status_code == 400
    assert ws.post("/api/skills/save", dict(skill, name="ok", category="cat\n")).status_code == 400
    assert ws.get("/api/skills/content", params={"name": "evil\n"}).status_code == 400
    assert (sorted(str(p) for p in skills.rglob("*")) if skills.exists() else []) == before
    # Memory files and workspace paths.
    assert ws.post("/api/memory/write", {"file": "MEMORY.md\n", "content": "x"}).status_code == 400
    assert ws.post("/api/file/save", {"session_id": ws.sid, "path": "a.txt\n", "content": "x"}).status_code == 400
    assert not (ws.root / "a.txt\n").exists()
