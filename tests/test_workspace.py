"""Workspace files over HTTP (issue 7): hostile paths, round trips, big uploads."""
from __future__ import annotations

import hashlib
import os
import stat
import secrets
import shutil
import threading
import time
from pathlib import Path

import pytest
import requests

from .helpers import LiveServer

SECRET = b"top secret, outside the workspace\n"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A server, one session, and a rebuildable tree around its workspace root."""
    server = LiveServer(tmp_path_factory.mktemp("ws")).start()
    server.http.headers["Origin"] = server.url("")  # same-origin, as the page's own uploads
    server.sid = server.new_session()
    server.root = server.state_dir / "workspace"
    yield server
    server.stop()


def build_tree(server) -> dict:
    """Fresh root + outside neighbours; returns the paths a case may need.

    root/real.txt, root/sub/inner.txt, root/link_in -> real.txt, root/dir_in -> sub,
    root/link_out -> ../../outside, root/file_out -> outside/secret.txt,
    root/dangling_out -> outside/made-by-escape.txt, root/to_sibling -> <state>/workspace2
    (a sibling whose name starts with the root's), root/loop -> loop.
    """
    root, outside, sibling = server.root, server.tmp / "outside", server.state_dir / "workspace2"
    for d in (root, outside, sibling):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    (outside / "secret.txt").write_bytes(SECRET)
    (sibling / "secret.txt").write_bytes(SECRET)
    (root / "real.txt").write_text("real\n")
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_text("inner\n")
    os.symlink("real.txt", root / "link_in")
    os.symlink("sub", root / "dir_in")
    os.symlink(os.path.relpath(outside, root), root / "link_out")
    os.symlink(outside / "secret.txt", root / "file_out")
    os.symlink(outside / "made-by-escape.txt", root / "dangling_out")
    os.symlink(sibling, root / "to_sibling")
    os.symlink("loop", root / "loop")
    return {"root": root, "outside": outside, "sibling": sibling}


def snapshot(*dirs: Path) -> dict:
    """Every entry under ``dirs`` (links not followed): kind, size, mtime, content hash."""
    out = {}
    for top in dirs:
        if not top.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            for name in dirnames + filenames:
                p = Path(dirpath, name)
                st = p.lstat()
                if p.is_symlink():
                    out[str(p)] = ("link", os.readlink(p))
                elif p.is_dir():
                    out[str(p)] = ("dir",)
                else:
                    out[str(p)] = ("file", st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


# -- the operations, through HTTP ------------------------------------------------


def op_list(s, path):
    return s.get("/api/list", params={"session_id": s.sid, "path": path})


def op_read(s, path):
    return s.get("/api/file", params={"session_id": s.sid, "path": path})


def op_raw(s, path):
    return s.get("/api/file/raw", params={"session_id": s.sid, "path": path})


def op_read_encoded(s, encoded):
    """A query string sent exactly as written (percent-encoding decoded by the server)."""
    return requests.get(s.url(f"/api/file?session_id={s.sid}&path={encoded}"), timeout=30)


def op_save(s, path):
    return s.post("/api/file/save", {"session_id": s.sid, "path": path, "content": "pwned"})


def op_create(s, path):
    return s.post("/api/file/create", {"session_id": s.sid, "path": path, "content": "pwned"})


def op_delete(s, path):
    return s.post("/api/file/delete", {"session_id": s.sid, "path": path, "recursive": True})


def op_rename(s, path, new_path):
    return s.post("/api/file/rename", {"session_id": s.sid, "path": path, "new_path": new_path})


def op_upload(s, folder, filename, **extra):
    data = {"session_id": s.sid, "path": folder, **extra}
    return s.post("/api/upload", data=data, files={"file": (filename, b"pwned")})


ESCAPE_TMP = f"/tmp/hermes-escape-{secrets.token_hex(4)}"

REFUSED = [
    ("list-dotdot", op_list, ("..",)),
    ("list-absolute", op_list, ("/etc",)),
    ("list-dotdot-inside-path", op_list, ("sub/../..",)),
    ("list-symlink-out", op_list, ("link_out",)),
    ("list-sibling-prefix", op_list, ("to_sibling",)),
    ("list-symlink-loop", op_list, ("loop",)),
    ("read-traversal", op_read, ("../../outside/secret.txt",)),
    ("read-absolute", op_read, ("/etc/passwd",)),
    ("read-url-encoded-traversal", op_read_encoded, ("%2e%2e%2f%2e%2e%2foutside%2fsecret.txt",)),
    ("read-url-encoded-absolute", op_read_encoded, ("%2fetc%2fpasswd",)),
    ("read-double-encoded", op_read_encoded, ("%252e%252e%252foutside",)),
    ("read-backslash", op_read, ("sub\\..\\..\\outside\\secret.txt",)),
    ("read-nul", op_read_encoded, ("real.txt%00.png",)),
    ("read-symlink-dir-out", op_read, ("link_out/secret.txt",)),
    ("read-symlink-file-out", op_read, ("file_out",)),
    ("read-sibling-prefix", op_read, ("to_sibling/secret.txt",)),
    ("raw-symlink-file-out", op_raw, ("file_out",)),
    ("raw-empty-name", op_raw, ("sub//inner.txt",)),
    ("save-traversal", op_save, ("../evil.txt",)),
    ("save-absolute", op_save, (ESCAPE_TMP,)),
    ("save-through-symlink-dir", op_save, ("link_out/evil.txt",)),
    ("save-dangling-symlink-out", op_save, ("dangling_out",)),
    ("save-over-symlink-file-out", op_save, ("file_out",)),
    ("save-sibling-prefix", op_save, ("to_sibling/evil.txt",)),
    ("save-backslash", op_save, ("sub\\evil.txt",)),
    ("save-dot", op_save, ("./real.txt",)),
    ("create-dangling-symlink-out", op_create, ("dangling_out",)),
    ("create-through-symlink-dir", op_create, ("link_out/new.txt",)),
    ("delete-through-symlink-dir", op_delete, ("link_out/secret.txt",)),
    ("delete-traversal", op_delete, ("../../outside",)),
    ("delete-root", op_delete, ("",)),
    ("rename-to-traversal", op_rename, ("real.txt", "../moved.txt")),
    ("rename-into-symlink-dir", op_rename, ("real.txt", "link_out/moved.txt")),
    ("rename-outside-file-in", op_rename, ("link_out/secret.txt", "stolen.txt")),
    ("rename-absolute", op_rename, ("real.txt", ESCAPE_TMP)),
    # A path in an upload's file name is reduced to its last name inside the folder
    # (tests/test_security_paths.py, with hand-built multipart bodies); what is refused:
    ("upload-name-empty", op_upload, ("", "")),
    ("upload-name-dot", op_upload, ("", "..")),
    ("upload-folder-traversal", op_upload, ("..", "x")),
    ("upload-folder-symlink-out", op_upload, ("link_out", "x")),
    ("upload-onto-dangling-symlink", op_upload, ("", "dangling_out")),
    ("upload-overwrite-dangling-symlink", lambda s, f, n: op_upload(s, f, n, overwrite="1"), ("", "dangling_out")),
]


@pytest.mark.parametrize("name,op,args", REFUSED, ids=[c[0] for c in REFUSED])
def test_hostile_path_is_refused_and_nothing_changes(ws, name, op, args):
    paths = build_tree(ws)
    before = snapshot(paths["root"], paths["outside"], paths["sibling"])
    resp = op(ws, *args)
    assert resp.status_code in (400, 403, 404, 409), (resp.status_code, resp.text)
    assert "error" in resp.json()
    assert SECRET not in resp.content
    assert snapshot(paths["root"], paths["outside"], paths["sibling"]) == before
    assert not os.path.lexists(ESCAPE_TMP)
    assert not (paths["outside"] / "made-by-escape.txt").exists()


# -- legitimate paths, symlinks that stay inside included -------------------------


def test_symlinks_that_stay_inside_work_and_outside_ones_are_marked(ws):
    paths = build_tree(ws)
    outside_before = snapshot(paths["outside"], paths["sibling"])
    entries = {e["name"]: e for e in op_list(ws, "").json()["entries"]}
    assert entries["sub"]["type"] == "dir" and entries["real.txt"]["type"] == "file"
    assert entries["dir_in"]["type"] == "dir" and entries["dir_in"]["symlink"] is True
    assert entries["link_in"]["type"] == "file"
    for bad in ("link_out", "file_out", "dangling_out", "to_sibling", "loop"):
        assert entries[bad]["type"] == "link", bad
    assert op_read(ws, "link_in").json()["content"] == "real\n"
    assert [e["name"] for e in op_list(ws, "dir_in").json()["entries"]] == ["inner.txt"]
    assert op_save(ws, "dir_in/new.txt").status_code == 200
    assert (paths["root"] / "sub" / "new.txt").read_text() == "pwned"
    assert op_save(ws, "link_in").status_code == 200          # writes the target, keeps the link
    assert os.path.islink(paths["root"] / "link_in") and (paths["root"] / "real.txt").read_text() == "pwned"
    assert op_upload(ws, "dir_in", "up.bin").status_code == 200
    assert (paths["root"] / "sub" / "up.bin").read_bytes() == b"pwned"
    # Deleting or renaming a link that points out acts on the link, never on its target.
    assert op_rename(ws, "link_out", "renamed_link").status_code == 200
    assert op_delete(ws, "renamed_link").json()["kind"] == "link"
    assert op_delete(ws, "file_out").json()["kind"] == "link"
    assert snapshot(paths["outside"], paths["sibling"]) == outside_before


def test_file_round_trip_preview_raw_and_conflicts(ws):
    build_tree(ws)
    r = ws.post("/api/file/create", {"session_id": ws.sid, "path": "notes", "kind": "dir"})
    assert r.status_code == 200
    assert ws.post("/api/file/create", {"session_id": ws.sid, "path": "notes", "kind": "dir"}).status_code == 409
    r = ws.post("/api/file/create", {"session_id": ws.sid, "path": "notes/a.md", "content": "# A\nline 2\nλ"})
    assert r.status_code == 200, r.text
    preview = op_read(ws, "notes/a.md").json()
    assert preview["content"] == "# A\nline 2\nλ" and preview["lines"] == 3 and preview["binary"] is False
    assert preview["size"] == len("# A\nline 2\nλ".encode())
    saved = ws.post("/api/file/save", {"session_id": ws.sid, "path": "notes/a.md", "content": "v2\n",
                                       "expected_mtime": preview["mtime"]}).json()
    stale = ws.post("/api/file/save", {"session_id": ws.sid, "path": "notes/a.md", "content": "v3\n",
                                       "expected_mtime": preview["mtime"]})
    assert stale.status_code == 409 and op_read(ws, "notes/a.md").json()["content"] == "v2\n"
    assert saved["size"] == 3
    assert op_rename(ws, "notes/a.md", "notes/b.md").json() == {"ok": True, "path": "notes/b.md",
                                                               "old_path": "notes/a.md", "new_path": "notes/b.md"}
    assert op_rename(ws, "real.txt", "notes/b.md").status_code == 409
    assert op_read(ws, "notes/a.md").status_code == 404
    assert ws.post("/api/file/delete", {"session_id": ws.sid, "path": "notes"}).status_code == 409
    assert ws.post("/api/file/delete", {"session_id": ws.sid, "path": "notes", "recursive": True}).status_code == 200
    assert not (ws.root / "notes").exists()


def test_binary_preview_points_to_raw_and_risky_types_download(ws):
    build_tree(ws)
    (ws.root / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00rest")
    (ws.root / "page.html").write_text("<script>alert(1)</script>")
    (ws.root / "img.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>")
    preview = op_read(ws, "pic.png").json()
    assert preview["binary"] is True and preview["image"] is True and preview["content"] is None
    raw = ws.get(preview["raw_url"])
    assert raw.status_code == 200 and raw.content.startswith(b"\x89PNG")
    assert raw.headers["Content-Type"] == "image/png"
    assert not raw.headers["Content-Disposition"].startswith("attachment")
    for name in ("page.html", "img.svg"):
        raw = op_raw(ws, name)
        assert raw.headers["Content-Disposition"].startswith("attachment"), name
        assert raw.headers["X-Content-Type-Options"] == "nosniff"
    assert op_raw(ws, "sub").status_code == 400
    assert op_read(ws, "missing.txt").status_code == 404


def test_large_text_preview_is_capped_but_counts_every_line(ws):
    build_tree(ws)
    (ws.root / "big.log").write_text("x" * 99 + "\n" * 1 + ("line\n" * 100_000))
    preview = op_read(ws, "big.log").json()
    assert preview["truncated"] is True and len(preview["content"].encode()) <= 256 * 1024
    assert preview["lines"] == 100_001


def test_unknown_session_and_bad_input_are_json_errors(ws):
    assert ws.get("/api/list", params={"session_id": "nope", "path": ""}).status_code == 404
    assert ws.get("/api/list", params={"session_id": "../x", "path": ""}).status_code == 400
    assert ws.post("/api/file/save", {"session_id": ws.sid, "path": "a.txt"}).status_code == 400
    r = ws.post("/api/upload", data={"session_id": ws.sid})
    assert r.status_code == 400 and "file" in r.json()["error"]


def test_a_session_cannot_name_an_unconfigured_workspace(ws):
    sid = ws.new_session(workspace="/etc")
    r = ws.get("/api/list", params={"session_id": sid, "path": ""})
    assert r.status_code == 403 and "error" in r.json()


def test_configured_extra_root_is_picked_by_the_sessions_workspace(make_server, tmp_path):
    extra = tmp_path / "projects"
    (extra / "repo").mkdir(parents=True)
    (extra / "repo" / "README").write_text("hello")
    server = make_server(args=("--workspace-roots", str(extra))).start()
    assert [r["name"] for r in server.get("/api/workspaces").json()["roots"]] == ["default", "projects"]
    for choice in ("projects", str(extra)):
        sid = server.new_session(workspace=choice)
        listing = server.get("/api/list", params={"session_id": sid, "path": "repo"}).json()
        assert listing["root"] == "projects" and [e["name"] for e in listing["entries"]] == ["README"]


# -- uploads --------------------------------------------------------------------


def test_upload_within_cap_lands_whole(ws):
    build_tree(ws)
    blob = secrets.token_bytes(3 * 1024 * 1024 + 7)
    r = ws.post("/api/upload", data={"session_id": ws.sid, "path": "sub"}, files={"file": ("blob.bin", blob)})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "sub/blob.bin" and (ws.root / "sub" / "blob.bin").read_bytes() == blob
    again = ws.post("/api/upload", data={"session_id": ws.sid, "path": "sub"}, files={"file": ("blob.bin", b"x")})
    assert again.status_code == 409
    over = ws.post("/api/upload", data={"session_id": ws.sid, "path": "sub", "overwrite": "1"},
                   files={"file": ("blob.bin", b"x")})
    assert over.status_code == 200 and (ws.root / "sub" / "blob.bin").read_bytes() == b"x"


def test_upload_into_a_folder_that_does_not_exist_makes_it_like_the_upstream(ws):
    r = ws.post("/api/upload", data={"session_id": ws.sid, "path": "notes/2024 日記"}, files={"file": ("a.txt", b"hi")})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "notes/2024 日記/a.txt" and (ws.root / "notes" / "2024 日記" / "a.txt").read_bytes() == b"hi"
    # a file where a folder should be: said so, nothing written
    (ws.root / "plain").write_bytes(b"file")
    r = ws.post("/api/upload", data={"session_id": ws.sid, "path": "plain/sub"}, files={"file": ("b.txt", b"x")})
    assert r.status_code == 400 and "is not a folder" in r.json()["error"], r.text
    assert (ws.root / "plain").read_bytes() == b"file"


def _vm(pid: int, key: str) -> int:
    """A /proc/<pid>/status figure in KiB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(key)


class _MultipartBody:
    """A multipart body of ``size`` bytes of file data, produced on demand (never in memory).

    With ``sized`` it has a length, so requests sends Content-Length; otherwise iterate it
    (a generator body: chunked). Once half the data is out, ``on_half()`` runs.
    """

    CHUNK = 1024 * 1024

    def __init__(self, sid: str, size: int, on_half):
        self.boundary = "hermes" + secrets.token_hex(8)
        self.head = (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"session_id\"\r\n\r\n{sid}\r\n"
                     f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.bin\"\r\n"
                     "Content-Type: application/octet-stream\r\n\r\n").encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.size, self.on_half, self.sent, self.halfway_done = size, on_half, 0, False
        self._pending = self.head
        self.content_type = f"multipart/form-data; boundary={self.boundary}"

    def __len__(self):
        return len(self.head) + self.size + len(self.tail)

    def _next(self) -> bytes:
        if self._pending:
            out, self._pending = self._pending, b""
            return out
        if self.sent < self.size:
            n = min(self.CHUNK, self.size - self.sent)
            self.sent += n
            if not self.halfway_done and self.sent >= self.size // 2:
                self.halfway_done = True
                self.on_half()
            return b"\xa5" * n
        out, self.tail = self.tail, b""
        return out

    def read(self, n: int = -1) -> bytes:
        return self._next()

    def __iter__(self):
        while chunk := self._next():
            yield chunk


@pytest.mark.parametrize("mode", ["content-length", "chunked"])
def test_200mb_upload_is_refused_with_413_json_and_bounded_memory(ws, mode):
    build_tree(ws)
    pid = ws.proc.pid
    ws.get("/api/list", params={"session_id": ws.sid, "path": ""})
    hwm_before = _vm(pid, "VmHWM")
    side = requests.Session()
    mid_upload = []

    def on_half():  # another client, while the upload is still being sent
        t0 = time.monotonic()
        r = side.get(ws.url("/api/list"), params={"session_id": ws.sid, "path": ""}, timeout=30)
        mid_upload.append((r.status_code, time.monotonic() - t0))

    body = _MultipartBody(ws.sid, 200 * 1024 * 1024, on_half)
    payload = body if mode == "content-length" else iter(body)
    resp = requests.post(ws.url("/api/upload"), data=payload, timeout=300,
                         headers={"Content-Type": body.content_type, "Origin": ws.url("")})
    assert resp.status_code == 413, resp.text
    assert "limit" in resp.json()["error"]
    assert mid_upload and mid_upload[0][0] == 200 and mid_upload[0][1] < 5, mid_upload
    grown_mib = (_vm(pid, "VmHWM") - hwm_before) / 1024
    print(f"\n[{mode}] server peak RSS grew {grown_mib:.1f} MiB for a 200 MiB upload; "
          f"a request mid-upload took {mid_upload[0][1] * 1000:.0f} ms")
    assert grown_mib < 40
    assert not [p for p in ws.root.rglob("*") if "huge" in p.name or ".tmp." in p.name]
    assert ws.get("/health").status_code == 200


def test_swapping_a_folder_for_a_symlink_mid_request_never_escapes(ws):
    """A local attacker flips root/swap between a real folder and a link to outside while
    a client saves into it: every write lands inside or is refused, none lands outside."""
    paths = build_tree(ws)
    outside_before = snapshot(paths["outside"], paths["sibling"])
    root = paths["root"]
    (root / "swapdir").mkdir()
    os.symlink(paths["outside"], root / "swaplink")
    stop = threading.Event()

    def flipper():
        while not stop.is_set():
            for src in ("swapdir", "swaplink"):
                try:
                    os.rename(root / src, root / "swap")
                    os.rename(root / "swap", root / src)
                except OSError:
                    pass

    thread = threading.Thread(target=flipper, daemon=True)
    thread.start()
    statuses = set()
    try:
        for i in range(300):
            statuses.add(op_save(ws, f"swap/f{i}.txt").status_code)
    finally:
        stop.set()
        thread.join()
    assert statuses <= {200, 400, 403, 404, 409}, statuses
    assert snapshot(paths["outside"], paths["sibling"]) == outside_before


# -- the panels, in the real page --------------------------------------------------

CHROMIUM = os.environ.get("HERMES_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.mark.browser
def test_the_four_panels_work_in_the_real_page_under_its_csp(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    server = LiveServer(tmp_path).start()
    try:
        sid = server.new_session(title="panels")
        root = server.state_dir / "workspace"
        root.mkdir(parents=True, exist_ok=True)
        (root / "hello.txt").write_text("hello from disk\n")
        server.post("/api/skills/save", {"name": "demo", "description": "A demo skill", "body": "Do the demo."})
        errors = []
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url("/"))
            page.evaluate("""async (sid) => {
              const link = document.createElement('link');
              link.rel = 'stylesheet'; link.href = '/static/panels/panels.css'; document.head.append(link);
              for (const name of ['workspace', 'skills', 'memory', 'profiles']) {
                const el = document.createElement('div'); el.id = 'test-' + name; document.body.append(el);
                const m = await import(`/static/panels/${name}.js`);
                m.mount(el, { sessionId: () => sid, onSwitch: (n) => { window.switched = n; } });
              }
            }""", sid)
            ws = "#test-workspace"
            page.click(f"{ws} .hp-entry:has-text('hello.txt')")
            assert page.inner_text(f"{ws} .hp-code") == "hello from disk\n"
            page.click(f"{ws} button:has-text('Edit')")
            page.fill(f"{ws} .hp-editor", "edited in the browser")
            page.click(f"{ws} button:has-text('Save')")
            page.wait_for_selector(f"{ws} .hp-code:has-text('edited in the browser')")
            assert (root / "hello.txt").read_text() == "edited in the browser"
            page.set_input_files(f"{ws} input[type=file]",
                                 files=[{"name": "up.txt", "mimeType": "text/plain", "buffer": b"uploaded"}])
            page.wait_for_selector(f"{ws} .hp-entry:has-text('up.txt')")
            assert (root / "up.txt").read_bytes() == b"uploaded"
            page.click("#test-skills .hp-skill:has-text('demo')")
            assert "description: A demo skill" in page.input_value("#test-skills .hp-editor")
            page.fill("#test-memory #hp-mem-MEMORY-md", "remember this")
            page.click("#test-memory button:has-text('Save') >> nth=0")
            page.wait_for_selector("#test-memory .hp-status:has-text('Saved')")
            assert (server.state_dir / "memory" / "MEMORY.md").read_text() == "remember this"
            page.fill("#test-profiles input[type=text]", "work")
            page.click("#test-profiles button:has-text('Create')")
            page.wait_for_function("() => window.switched === 'work'")
            browser.close()
        assert errors == []
        assert "work" in [p["name"] for p in server.get("/api/profiles").json()["profiles"]]
    finally:
        server.stop()


def test_a_saved_file_keeps_its_permission_bits(ws):
    """The server runs with umask 077; a script saved from the editor stays executable
    and a shared file stays readable by the group."""
    build_tree(ws)
    for name, mode in (("run.sh", 0o755), ("shared.txt", 0o664), ("private.txt", 0o600)):
        path = ws.root / name
        path.write_text("old\n")
        os.chmod(path, mode)
        r = ws.post("/api/file/save", {"session_id": ws.sid, "path": name, "content": "new\n"})
        assert r.status_code == 200, r.text
        assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == mode, name
