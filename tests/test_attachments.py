"""Attachments over HTTP (DESIGN §7, §8): upload, a turn that carries them, download,
limits, other sessions' ids, delete, export/import, a crash mid-turn, and what the
``openai`` backend sends a scripted OpenAI-compatible server."""
from __future__ import annotations

import base64
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .helpers import LiveServer, fake_script, stream_events, tokens_of, wait_until

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = LiveServer(tmp_path_factory.mktemp("attach"), args=("--max-attachment-bytes", "100000")).start()
    srv.http.headers["Origin"] = srv.url("")  # same-origin, as the page's own uploads
    yield srv
    srv.stop()


def upload(server, sid, name, data: bytes, mime="application/octet-stream"):
    return server.post("/api/attachments", data={"session_id": sid}, files={"file": (name, data, mime)})


def attachment_files(server, sid=None):
    """Every file under the state dir's attachments/ (of one session, or all)."""
    root = server.state_dir / "attachments"
    if sid is not None:
        root = root / sid
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_an_attachment_travels_from_upload_to_the_turn_and_back(server):
    sid = server.new_session()
    text = "line one\nline two ünïcode\n".encode()
    r = upload(server, sid, "notes.txt", text, "text/plain")
    assert r.status_code == 200, r.text
    att = r.json()["attachment"]
    assert att["name"] == "notes.txt" and att["size"] == len(text) and att["mime"] == "text/plain"
    img = upload(server, sid, "image.png", PNG, "image/png").json()["attachment"]
    assert img["mime"] == "image/png" and img["size"] == len(PNG)

    events = stream_events(server, server.start_chat(sid, "look at these", attachments=[att["id"], img["id"]]))
    tokens = [e["data"]["text"] for e in events if e["event"] == "token"]
    assert tokens[:2] == [f"[attachment notes.txt {len(text)} text/plain] ", f"[attachment image.png {len(PNG)} image/png] "]
    assert tokens[2:] == ["echo:", " look", " at", " these"]
    user, reply = server.session(sid)["messages"]
    assert user["attachments"] == [att, img]
    assert reply["content"] == tokens_of(events)

    got = server.get("/api/attachment", params={"session_id": sid, "id": att["id"]})
    assert got.status_code == 200 and got.content == text
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Disposition"].startswith("inline") and "notes.txt" in got.headers["Content-Disposition"]
    pic = server.get("/api/attachment", params={"session_id": sid, "id": img["id"]})
    assert pic.content == PNG and pic.headers["Content-Type"] == "image/png"
    forced = server.get("/api/attachment", params={"session_id": sid, "id": img["id"], "download": "1"})
    assert forced.headers["Content-Disposition"].startswith("attachment")


def test_a_message_of_attachments_only_is_accepted(server):
    sid = server.new_session()
    att = upload(server, sid, "a.bin", b"\x00\x01").json()["attachment"]
    events = stream_events(server, server.start_chat(sid, "", attachments=[att["id"]]))
    assert tokens_of(events) == "[attachment a.bin 2 application/octet-stream] echo:"
    assert server.post("/api/chat/start", {"session_id": sid, "message": " ", "attachments": []}).status_code == 400


def test_html_svg_and_hostile_names_are_never_served_inline(server):
    sid = server.new_session()
    html = upload(server, sid, "../../../evil.html", b"<script>alert(1)</script>", "text/html").json()["attachment"]
    assert html["name"] == "evil.html"
    # Forward slashes only: how a client quotes a backslash in a multipart filename differs
    # between library versions (tests/test_security_paths.py covers backslashes with raw bytes).
    svg = upload(server, sid, "/abs/dir/pic.svg", b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
                 "image/svg+xml").json()["attachment"]
    assert svg["name"] == "pic.svg"
    for att in (html, svg):
        r = server.get("/api/attachment", params={"session_id": sid, "id": att["id"]})
        assert r.status_code == 200
        assert r.headers["Content-Disposition"].startswith("attachment")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Content-Security-Policy"] == "sandbox"
    # the cleaned name is data only: the files are stored under their ids
    assert sorted(attachment_files(server, sid)) == sorted([html["id"], html["id"] + ".json",
                                                            svg["id"], svg["id"] + ".json"])
    assert upload(server, sid, "..", b"x").json()["attachment"]["name"] == "attachment"


def test_oversize_is_413_and_nothing_is_stored(server):
    sid = server.new_session()
    r = upload(server, sid, "big.bin", b"x" * 100_001)
    assert r.status_code == 413 and "limit" in r.json()["error"] and "--max-attachment-bytes" in r.json()["error"]
    r = upload(server, sid, "huge.bin", b"x" * 400_000)   # refused from Content-Length alone
    assert r.status_code == 413 and r.json()["error"]
    assert attachment_files(server, sid) == []
    assert [p for p in attachment_files(server) if p.startswith(".incoming/")] == []
    assert upload(server, sid, "ok.bin", b"x" * 100_000).status_code == 200


def test_bad_uploads_are_400_or_404(server):
    sid = server.new_session()
    assert server.post("/api/attachments", data={"session_id": sid}).status_code == 400
    r = server.post("/api/attachments", files={"file": ("a.txt", b"x")})
    assert r.status_code == 400 and "session_id" in r.json()["error"]
    assert upload(server, "../x", "a.txt", b"x").status_code == 400
    assert upload(server, "nosuchsession", "a.txt", b"x").status_code == 404
    assert server.get("/api/attachment", params={"session_id": sid, "id": "../../etc/passwd"}).status_code == 404
    assert server.get("/api/attachment", params={"session_id": sid}).status_code == 400


def test_an_id_of_another_session_or_made_up_is_404_and_nothing_is_stored(server):
    sid, other = server.new_session(), server.new_session()
    theirs = upload(server, other, "t.txt", b"theirs").json()["attachment"]
    mine = upload(server, sid, "m.txt", b"mine").json()["attachment"]
    before = (server.sessions_dir / f"{sid}.json").read_bytes()
    for ids in ([theirs["id"]], [mine["id"], "deadbeefdeadbeef"], ["../" + mine["id"]]):
        r = server.post("/api/chat/start", {"session_id": sid, "message": "hi", "attachments": ids})
        assert r.status_code == 404, (ids, r.text)
        assert "attachment" in r.json()["error"]
    assert server.post("/api/chat/start", {"session_id": sid, "message": "hi", "attachments": "x"}).status_code == 400
    assert server.post("/api/chat/start", {"session_id": sid, "message": "hi",
                                           "attachments": [mine["id"], mine["id"]]}).status_code == 400
    assert (server.sessions_dir / f"{sid}.json").read_bytes() == before
    assert not (server.sessions_dir / f"{sid}.turn.jsonl").exists()
    assert server.get("/api/attachment", params={"session_id": sid, "id": theirs["id"]}).status_code == 404


def test_deleting_the_session_deletes_its_attachments(server):
    sid, keep = server.new_session(), server.new_session()
    att = upload(server, sid, "gone.txt", b"bye").json()["attachment"]
    kept = upload(server, keep, "kept.txt", b"stay").json()["attachment"]
    assert attachment_files(server, sid)
    assert server.post("/api/session/delete", {"session_id": sid}).status_code == 200
    assert not (server.state_dir / "attachments" / sid).exists()
    assert server.get("/api/attachment", params={"session_id": sid, "id": att["id"]}).status_code == 404
    assert server.get("/api/attachment", params={"session_id": keep, "id": kept["id"]}).content == b"stay"


def test_export_and_import_keep_the_attachments(server):
    sid = server.new_session(title="with files")
    data = bytes(range(256)) * 3
    att = upload(server, sid, "blob.dat", data).json()["attachment"]
    stream_events(server, server.start_chat(sid, "see file", attachments=[att["id"]]))
    exported = server.get("/api/session/export", params={"session_id": sid, "format": "json"})
    doc = exported.json()
    assert [a["id"] for a in doc["session"]["attachments"]] == [att["id"]]
    md = server.get("/api/session/export", params={"session_id": sid, "format": "md"}).text
    assert "blob.dat" in md

    r = server.post("/api/session/import", data=exported.content, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    new = r.json()["sessions"][0]["session_id"]
    assert new != sid
    user = server.session(new)["messages"][0]
    assert user["attachments"] == [att]
    got = server.get("/api/attachment", params={"session_id": new, "id": att["id"]})
    assert got.status_code == 200 and got.content == data
    # the copy is independent of the original
    server.post("/api/session/delete", {"session_id": sid})
    assert server.get("/api/attachment", params={"session_id": new, "id": att["id"]}).content == data
    # and it carries on: the next turn can take a new attachment
    assert upload(server, new, "more.txt", b"more").status_code == 200


def test_an_import_with_a_bad_or_oversize_attachment_writes_nothing(server):
    sid = server.new_session()
    upload(server, sid, "x.txt", b"x")
    doc = server.get("/api/session/export", params={"session_id": sid}).json()
    before = sorted(p.name for p in server.sessions_dir.iterdir())
    files_before = attachment_files(server)
    for change, status in ((lambda a: a.update(data_base64="!!notbase64"), 400),
                           (lambda a: a.update(size=99), 400),
                           (lambda a: a.update(id="../up"), 400),
                           (lambda a: a.update(data_base64=base64.b64encode(b"y" * 100_001).decode(), size=100_001), 413)):
        bad = json.loads(json.dumps(doc))
        change(bad["session"]["attachments"][0])
        r = server.post("/api/session/import", json_body=bad)
        assert r.status_code == status, r.text
        assert r.json()["error"]
    assert sorted(p.name for p in server.sessions_dir.iterdir()) == before
    assert attachment_files(server) == files_before


def test_a_crash_mid_turn_keeps_the_attachments_of_the_user_message(make_server):
    srv = make_server().start()
    srv.http.headers["Origin"] = srv.url("")
    sid = srv.new_session()
    att = upload(srv, sid, "keep.txt", b"kept through a crash").json()["attachment"]
    stream = srv.start_chat(sid, fake_script(tokens=2, hang=True), attachments=[att["id"]])
    stream_events(srv, stream, stop_after=3)
    srv.kill()
    srv.start()
    messages = srv.session(sid)["messages"]
    assert messages[0]["attachments"] == [att] and messages[0]["status"] == "interrupted"
    assert srv.get("/api/attachment", params={"session_id": sid, "id": att["id"]}).content == b"kept through a crash"


def test_retry_runs_the_turn_with_the_same_attachments(server):
    sid = server.new_session()
    att = upload(server, sid, "r.txt", b"abc").json()["attachment"]
    stream_events(server, server.start_chat(sid, "again", attachments=[att["id"]]))
    r = server.post("/api/session/retry", {"session_id": sid})
    assert r.status_code == 200, r.text
    events = stream_events(server, r.json()["stream_id"])
    assert tokens_of(events).startswith("[attachment r.txt 3 text/plain] ")
    assert server.session(sid)["messages"][0]["attachments"] == [att]


# ---------------------------------------------------------------- what a model receives


class Recorder(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that records each request and streams "ok"."""

    seen: list = []

    @classmethod
    def last_turn(cls) -> dict:
        """The newest streamed request: a turn's (a generated title's is not streamed)."""
        return [r for r in cls.seen if r.get("stream")][-1]

    def log_message(self, *args):
        pass

    def do_POST(self):
        Recorder.seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": None}]}
        self.wfile.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    srv = LiveServer(tmp_path_factory.mktemp("attach-openai"), agent="openai",
                     args=("--base-url", f"http://127.0.0.1:{httpd.server_address[1]}/v1", "--model", "vis")).start()
    srv.http.headers["Origin"] = srv.url("")
    yield srv
    srv.stop()
    httpd.shutdown()


def _docx(paragraphs: list[str]) -> bytes:
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("word/document.xml", f'<?xml version="1.0"?><w:document xmlns:w="x"><w:body>{body}</w:body></w:document>')
    return buf.getvalue()


def _pdf(text: str) -> bytes:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(200, 200)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject(
        {NameObject("/F1"): writer._add_object(font)})})
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode())
    page[NameObject("/Contents")] = writer._add_object(stream)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_the_openai_backend_sends_images_as_parts_and_files_as_text(openai_server):
    srv = openai_server
    sid = srv.new_session()
    ids = [upload(srv, sid, name, data).json()["attachment"]["id"] for name, data in (
        ("shot.png", PNG), ("notes.md", b"# Notes\nremember the milk"), ("report.pdf", _pdf("quarterly figures rose")),
        ("letter.docx", _docx(["Dear reader,", "hello from docx"])), ("blob.bin", b"\x00\xff" * 10))]
    Recorder.seen.clear()
    events = stream_events(srv, srv.start_chat(sid, "describe", attachments=ids))
    assert tokens_of(events) == "ok", events
    content = Recorder.last_turn()["messages"][-1]["content"]
    assert isinstance(content, list) and content[0]["type"] == "text"
    text = content[0]["text"]
    assert text.startswith("describe")
    assert "notes.md" in text and "remember the milk" in text
    assert "report.pdf" in text and "quarterly figures rose" in text
    assert "letter.docx" in text and "Dear reader,\nhello from docx" in text
    assert "blob.bin" in text and "not included" in text
    images = [p for p in content if p["type"] == "image_url"]
    assert images == [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}]
    # a later turn names the earlier files instead of sending them again
    stream_events(srv, srv.start_chat(sid, "and now?"))
    history = Recorder.last_turn()["messages"]
    assert history[0] == {"role": "user", "content": "describe\n[attached then: shot.png, notes.md, report.pdf, "
                                                     "letter.docx, blob.bin]"}
    assert history[-1] == {"role": "user", "content": "and now?"}


def test_a_message_without_attachments_is_sent_as_plain_text(openai_server):
    srv = openai_server
    sid = srv.new_session()
    stream_events(srv, srv.start_chat(sid, "plain"))
    assert Recorder.last_turn()["messages"][-1] == {"role": "user", "content": "plain"}


def test_a_queued_message_takes_attachments_checked_like_a_chat_start(server):
    sid, other = server.new_session(), server.new_session()
    theirs = upload(server, other, "t.txt", b"theirs").json()["attachment"]
    mine = upload(server, sid, "plan.txt", "計画 ✓".encode(), "text/plain").json()["attachment"]
    running = server.start_chat(sid, fake_script(tokens=1, hang=True))
    queue_file = server.sessions_dir / f"{sid}.queue.json"
    for ids, status in (([theirs["id"]], 404), ([mine["id"], "deadbeefdeadbeef"], 404), ("x", 400),
                        ([mine["id"], mine["id"]], 400)):
        r = server.post("/api/chat/queue", {"session_id": sid, "message": "next", "attachments": ids})
        assert r.status_code == status and r.json()["error"], (ids, r.text)
        assert not queue_file.exists()                                 # nothing queued
    r = server.post("/api/chat/queue", {"session_id": sid, "message": "", "attachments": [mine["id"]]})
    assert r.status_code == 200, r.text
    assert r.json()["queued"][0]["attachments"] == [mine]             # files alone may be queued
    waiting = fake_script(tokens=1, hang=True)
    assert server.post("/api/chat/queue", {"session_id": sid, "message": waiting,
                                           "attachments": [mine["id"]]}).status_code == 200
    # a queued message's file is not deleted from under it
    gone = server.post("/api/attachment/delete", {"session_id": sid, "id": mine["id"]})
    assert gone.status_code == 409 and gone.json()["error"]
    assert server.post("/api/chat/cancel", {"stream_id": running}).json()["cancelled"] is True
    wait_until(lambda: len(server.session(sid)["messages"]) == 4, message="the first queued message ran")
    user, reply = server.session(sid)["messages"][2:]
    assert user["attachments"] == [mine]
    assert reply["content"] == f"[attachment plan.txt {mine['size']} text/plain] echo:"
    # the second runs now (it hangs): the status names its files, as the page shows them
    status = lambda: server.get("/api/session/status", params={"session_id": sid}).json()  # noqa: E731
    wait_until(lambda: status()["pending_user_message"] == waiting, message="the second queued message started")
    assert status()["pending_attachments"] == [mine]
    assert server.post("/api/attachment/delete", {"session_id": sid, "id": mine["id"]}).status_code == 409
    assert server.post("/api/chat/cancel", {"stream_id": status()["active_stream_id"]}).json()["cancelled"] is True


def test_an_unsent_attachment_can_be_deleted_and_a_sent_one_is_kept(server):
    sid, other = server.new_session(), server.new_session()
    unsent = upload(server, sid, "oops.png", PNG, "image/png").json()["attachment"]
    sent = upload(server, sid, "keep.txt", b"keep").json()["attachment"]
    theirs = upload(server, other, "t.txt", b"theirs").json()["attachment"]
    stream_events(server, server.start_chat(sid, "here", attachments=[sent["id"]]))
    r = server.post("/api/attachment/delete", {"session_id": sid, "id": unsent["id"]})
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert unsent["id"] not in " ".join(attachment_files(server, sid))      # bytes and sidecar gone
    assert server.get("/api/attachment", params={"session_id": sid, "id": unsent["id"]}).status_code == 404
    for body, status in (({"session_id": sid, "id": unsent["id"]}, 404),      # already gone
                         ({"session_id": sid, "id": theirs["id"]}, 404),      # another chat's
                         ({"session_id": sid, "id": "../x"}, 404),
                         ({"session_id": "missing", "id": sent["id"]}, 404),
                         ({"session_id": sid, "id": sent["id"]}, 409),        # a sent message has it
                         ({"session_id": sid}, 400)):
        r = server.post("/api/attachment/delete", body)
        assert r.status_code == status and r.json()["error"], (body, r.text)
    assert server.get("/api/attachment", params={"session_id": sid, "id": sent["id"]}).content == b"keep"
    assert server.get("/api/attachment", params={"session_id": other, "id": theirs["id"]}).content == b"theirs"
