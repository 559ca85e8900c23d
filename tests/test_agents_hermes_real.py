"""The real hermes-agent (issue 15): every host-changing tool call (a shell command, a file
write) asks through our approval events first, in the chat's workspace, its own
dangerous-command prompt never asks a second time, its clarify tool goes through our
clarify events, and each profile's turns run in that profile's own ``HERMES_HOME`` (a
worker process per profile), two at once without a leak; ``GET /api/models`` lists each
profile's own config.yaml.

The model is a scripted OpenAI-compatible server, one for the module: it answers each
chat request with the tool call or text a small function decides from the request.
"""
from __future__ import annotations

import importlib.util
import os
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from .helpers import LiveServer, read_sse, stream_events, tokens_of, wait_until

# find_spec, not import: importing hermes-agent here would create and read the real ~/.hermes
if importlib.util.find_spec("run_agent") is None:
    pytest.skip("the hermes backend needs: pip install 'hermes-webui[hermes]'", allow_module_level=True)

# tirith (hermes-agent's optional command scanner) would be downloaded on first use: off
NO_DOWNLOADS = {"TIRITH_ENABLED": "false"}
SECRET = {"HERMES_WEBUI_MAX_UPLOAD_BYTES": "20971529"}    # any HERMES_WEBUI_* (e.g. the password)


def tool_call(name: str, args: dict, call_id: str = "call_1") -> dict:
    return {"tool_calls": [{"id": call_id, "type": "function",
                            "function": {"name": name, "arguments": json.dumps(args)}}]}


def tool_results(body: dict) -> list[str]:
    return [str(m.get("content")) for m in body["messages"] if m.get("role") == "tool"]


def last_user(body: dict) -> str:
    text = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    return text if isinstance(text, str) else json.dumps(text)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self._json(404, {"error": "not found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not self.path.endswith("/chat/completions"):      # Hermes probes for other server kinds
            return self._json(404, {"error": "not found"})
        llm = self.server.llm
        with llm.lock:
            llm.requests.append(body)
        reply = llm.reply(body)
        finish = "tool_calls" if "tool_calls" in reply else "stop"
        message = {"role": "assistant", "content": reply.get("content"), **reply}
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if not body.get("stream"):
            return self._json(200, {"id": "c", "object": "chat.completion", "created": 0, "model": "scripted",
                                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                                    "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        if finish == "tool_calls":
            delta = {"role": "assistant", "tool_calls": [{"index": i, **c} for i, c in enumerate(reply["tool_calls"])]}
        else:
            delta = {"role": "assistant", "content": reply["content"]}
        for chunk in ({"delta": delta, "finish_reason": None}, {"delta": {}, "finish_reason": finish}):
            data = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "scripted",
                    "choices": [{"index": 0, **chunk}], **({"usage": usage} if chunk["finish_reason"] else {})}
            self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")

    def _json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ScriptedModel:
    """An OpenAI-compatible endpoint on a free port: ``reply(request body) -> {"content"}
    or {"tool_calls"}``; every request is kept in ``requests``."""

    def __init__(self, reply):
        self.reply = reply
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.llm = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(body: dict) -> dict:
    """What the scripted model answers, by the conversation's latest user message:

    - ``delete PATH``: a ``terminal`` call ``rm -r PATH`` (Hermes flags it as dangerous),
      then "tool said: <the tool's result>";
    - ``run COMMAND``: a ``terminal`` call of COMMAND, then the same;
    - ``together run COMMAND``: the same, but the first request of each such turn waits
      until another one's has arrived too (two turns of one profile in flight at once);
    - ``write PATH``: a ``write_file`` of "hello 世界" to PATH, then the same;
    - ``paint``: a ``clarify`` call (Which colour? red / blue), then "you picked <answer>";
    - ``remember WORD``: a ``memory`` add of "favourite word: WORD" (the first such
      request of each profile waits until the other's has arrived too), then "saved";
    - anything else: "I recall " and the favourite words in its system prompt.
    """
    ask, results = last_user(body), tool_results(body)
    if ask.startswith("together run ") and not results:
        TOGETHER.wait()
        ask = ask[len("together "):]
    elif ask.startswith("together run "):
        ask = ask[len("together "):]
    if ask.startswith("delete "):
        if not results:
            return tool_call("terminal", {"command": f"rm -r {ask[len('delete '):]}"})
        return {"content": "tool said: " + results[-1][:200]}
    if ask.startswith("run "):
        if not results:
            return tool_call("terminal", {"command": ask[len("run "):]})
        return {"content": "tool said: " + results[-1][:200]}
    if ask.startswith("write "):
        if not results:
            return tool_call("write_file", {"path": ask[len("write "):], "content": "hello 世界\n"})
        return {"content": "tool said: " + results[-1][:200]}
    if ask.startswith("paint"):
        if not results:
            return tool_call("clarify", {"question": "Which colour?", "choices": ["red", "blue"]})
        return {"content": "you picked " + json.loads(results[-1])["user_response"]}
    if ask.startswith("remember "):
        if not results:
            BOTH_WAITING.wait()
            OVERLAPPED.append(ask)
            return tool_call("memory", {"action": "add", "target": "memory",
                                        "content": f"favourite word: {ask.split()[-1]}"})
        return {"content": "saved"}
    first = body["messages"][0]
    system = str(first.get("content")) if first["role"] == "system" else ""
    return {"content": "I recall " + ",".join(w for w in ("ALPHA", "BETA") if f"favourite word: {w}" in system)}


BOTH_WAITING = threading.Barrier(2, timeout=30)
TOGETHER = threading.Barrier(2, timeout=30)
OVERLAPPED: list[str] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One hermes server for the module: the scripted model, toolsets terminal, file, clarify
    and memory, and a second workspace root ``other`` (``srv.other``)."""
    llm = ScriptedModel(reply)
    other = tmp_path_factory.mktemp("other")
    srv = LiveServer(tmp_path_factory.mktemp("hermes-real"), agent="hermes", env={**NO_DOWNLOADS, **SECRET},
                     args=("--base-url", llm.url, "--model", "scripted", "--workspace-roots", str(other),
                           "--toolsets", "terminal,file,clarify,memory")).start()
    srv.other = other
    srv.llm = llm
    yield srv
    srv.stop()
    llm.close()


def open_approval(server, sid) -> dict:
    def pending():
        return server.get("/api/approval/pending", params={"session_id": sid}).json()["approvals"]
    return wait_until(lambda: (pending() or [None])[0], timeout=30, message="hermes-agent's approval request")


def workspace_of(server, jar=None) -> Path:
    """The default workspace root of the request's profile (where a new chat works)."""
    r = (jar or server.http).get(server.url("/api/workspaces"))
    return Path(next(root["path"] for root in r.json()["roots"] if root["name"] == "default"))


def answer(server, stream_id, approval, choice):
    r = server.post("/api/approval/respond", {"stream_id": stream_id, "approval_id": approval["approval_id"],
                                              "choice": choice})
    assert r.json() == {"ok": True}, r.text


# ---------------------------------------------------------------- approvals


def test_a_dangerous_command_waits_for_approval_and_runs_once_allowed(server, tmp_path):
    victim = tmp_path / "victim dir"
    victim.mkdir()
    (victim / "f.txt").write_text("x")
    sid = server.new_session()
    stream_id = server.start_chat(sid, f"delete '{victim}'")
    asked = open_approval(server, sid)
    assert asked["tool"] == "terminal" and asked["command"] == f"rm -r '{victim}'"
    assert "delete" in asked["description"]
    assert victim.exists()                               # nothing ran before the answer
    answer(server, stream_id, asked, "once")
    events = stream_events(server, stream_id)
    names = [e["event"] for e in events]
    assert "apperror" not in names, events
    assert names.index("approval") < names.index("approval_answered") < names.index("tool_complete")
    assert names.count("approval") == 1            # hermes-agent's own prompt was answered by the grant
    assert not victim.exists()
    done = next(e["data"] for e in events if e["event"] == "tool_complete")
    assert done["name"] == "terminal" and done["is_error"] is False
    reply = server.session(sid)["messages"][-1]
    assert reply["status"] == "complete" and reply["tool_calls"][0]["name"] == "terminal"


def test_a_denied_command_does_not_run_and_the_transcript_says_so(server, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    sid = server.new_session()
    stream_id = server.start_chat(sid, f"delete {victim}")
    answer(server, stream_id, open_approval(server, sid), "deny")
    events = stream_events(server, stream_id)
    assert victim.exists()
    done = next(e["data"] for e in events if e["event"] == "tool_complete")
    assert "BLOCKED: User denied" in done["result"]
    assert done["is_error"] is True                                    # the card shows it failed, not "Done"
    told = [r for body in server.llm.requests if last_user(body) == f"delete {victim}" for r in tool_results(body)]
    assert told and "User denied" in told[-1]                          # what the model was told
    saved = server.session(sid)["messages"][-1]
    assert saved["status"] == "complete" and "User denied" in saved["tool_calls"][0]["result"]
    assert saved["tool_calls"][0]["is_error"] is True
    assert "tool said:" in saved["content"] and "BLOCKED: User denied" in tokens_of(events)


def test_allow_for_this_chat_is_our_rule_and_not_hermes_own(server, tmp_path):
    victim = tmp_path / "v"
    victim.mkdir()
    sid = server.new_session()
    first = server.start_chat(sid, f"delete {victim}")
    answer(server, first, open_approval(server, sid), "session")
    stream_events(server, first)
    assert not victim.exists()
    victim.mkdir()
    events = stream_events(server, server.start_chat(sid, f"delete {victim}"))   # same chat: not asked
    assert "approval" not in [e["event"] for e in events] and not victim.exists()
    victim.mkdir()
    other = server.new_session()                  # another chat is asked (hermes-agent kept no grant)
    stream_id = server.start_chat(other, f"delete {victim}")
    answer(server, stream_id, open_approval(server, other), "deny")
    stream_events(server, stream_id)
    assert victim.exists()


def test_cancelling_during_an_approval_closes_it_and_the_command_never_runs(server, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    sid = server.new_session()
    stream_id = server.start_chat(sid, f"delete {victim}")
    open_approval(server, sid)
    assert server.post("/api/chat/cancel", {"stream_id": stream_id}).json()["cancelled"] is True
    events = stream_events(server, stream_id)
    assert [e["event"] for e in events][-2:] == ["cancel", "stream_end"]
    assert server.get("/api/approval/pending", params={"session_id": sid}).json()["approvals"] == []
    assert server.session(sid)["messages"][-1]["status"] == "cancelled"
    # the same chat goes on: the next turn is asked afresh, and denied it does not run either
    again = server.start_chat(sid, f"delete {victim}")
    answer(server, again, open_approval(server, sid), "deny")
    assert "BLOCKED: User denied" in tokens_of(stream_events(server, again))
    assert victim.exists()


def test_a_plain_command_asks_first_and_runs_in_the_chats_workspace_once_allowed(server):
    sid = server.new_session()
    workspace = workspace_of(server)
    made = workspace / "made here.txt"
    stream_id = server.start_chat(sid, "run echo made > 'made here.txt'")
    asked = open_approval(server, sid)
    assert asked["tool"] == "terminal" and asked["command"] == "echo made > 'made here.txt'"
    assert str(workspace) in asked["description"]
    assert not made.exists()                             # nothing ran before the answer
    answer(server, stream_id, asked, "once")
    events = stream_events(server, stream_id)
    names = [e["event"] for e in events]
    assert "apperror" not in names and names.count("approval") == 1, events
    assert made.read_text().strip() == "made"            # the relative path landed in the chat's workspace
    done = next(e["data"] for e in events if e["event"] == "tool_complete")
    assert done["name"] == "terminal" and done["is_error"] is False


def test_two_turns_at_once_in_one_profile_each_work_in_their_own_chats_workspace(server):
    mine, theirs = server.new_session(), server.new_session(workspace=server.other.name)
    streams = {sid: server.start_chat(sid, "together run pwd > where.txt") for sid in (mine, theirs)}
    for sid, stream_id in streams.items():                # both turns are in the worker now
        answer(server, stream_id, open_approval(server, sid), "once")
    for stream_id in streams.values():
        assert "apperror" not in [e["event"] for e in stream_events(server, stream_id)]
    default = workspace_of(server)
    assert os.path.realpath((default / "where.txt").read_text().strip()) == os.path.realpath(default)
    assert os.path.realpath((server.other / "where.txt").read_text().strip()) == os.path.realpath(server.other)


def test_the_agents_shell_never_sees_the_servers_settings(server):
    sid = server.new_session()
    stream_id = server.start_chat(sid, "run echo seen-$HERMES_WEBUI_MAX_UPLOAD_BYTES-end")
    answer(server, stream_id, open_approval(server, sid), "once")
    events = stream_events(server, stream_id)
    result = next(e["data"] for e in events if e["event"] == "tool_complete")["result"]
    assert "seen--end" in result and "20971529" not in result


def test_a_file_write_asks_with_its_path_and_a_denied_one_creates_nothing(server):
    sid = server.new_session()
    target = workspace_of(server) / "notes" / "plan.md"
    stream_id = server.start_chat(sid, "write notes/plan.md")
    asked = open_approval(server, sid)
    assert asked["tool"] == "write_file" and asked["command"] == os.path.realpath(target)
    assert "create the file with 1 line" in asked["description"] and "hello 世界" in asked["description"]
    answer(server, stream_id, asked, "deny")
    events = stream_events(server, stream_id)
    assert not target.exists() and not target.parent.exists()
    done = next(e["data"] for e in events if e["event"] == "tool_complete")
    assert done["name"] == "write_file" and "User denied" in done["result"]
    # allowed once, the same write lands in the workspace
    again = server.start_chat(sid, "write notes/plan.md")
    answer(server, again, open_approval(server, sid), "once")
    assert "apperror" not in [e["event"] for e in stream_events(server, again)]
    assert target.read_text(encoding="utf-8") == "hello 世界\n"


def test_allow_for_this_chat_spares_the_same_command_later_in_that_chat_only(server):
    log = workspace_of(server) / "chat-log.txt"
    sid = server.new_session()
    first = server.start_chat(sid, "run echo again >> chat-log.txt")
    answer(server, first, open_approval(server, sid), "session")
    stream_events(server, first)
    events = stream_events(server, server.start_chat(sid, "run echo again >> chat-log.txt"))
    assert "approval" not in [e["event"] for e in events], events
    assert log.read_text().split() == ["again", "again"]
    other = server.new_session()                       # another chat is asked, and denied nothing runs
    stream_id = server.start_chat(other, "run echo again >> chat-log.txt")
    answer(server, stream_id, open_approval(server, other), "deny")
    stream_events(server, stream_id)
    assert log.read_text().split() == ["again", "again"]


# ---------------------------------------------------------------- clarify


def test_hermes_clarify_question_is_answered_from_the_page(server):
    sid = server.new_session()
    stream_id = server.start_chat(sid, "paint it")
    with requests.get(server.url("/api/chat/stream"), params={"stream_id": stream_id}, stream=True,
                      timeout=30) as resp:
        events = []
        while not any(e["event"] == "clarify" for e in events):
            got = read_sse(resp, stop_after=1)
            assert got and got[-1]["event"] != "stream_end", events
            events += got
        question = events[-1]["data"]
        assert question["question"] == "Which colour?" and question["choices"] == ["red", "blue"]
        r = server.post("/api/clarify/respond", {"stream_id": stream_id, "clarify_id": question["clarify_id"],
                                                 "answer": "blue, 青 🎨"})
        assert r.json() == {"ok": True}
        events += read_sse(resp)
    assert tokens_of(events).strip() == "you picked blue, 青 🎨"
    assert server.session(sid)["messages"][-1]["content"].strip() == "you picked blue, 青 🎨"


# ---------------------------------------------------------------- per-profile homes


def test_two_profiles_at_once_each_keep_their_own_memory(server):
    alpha, beta = requests.Session(), requests.Session()
    assert beta.post(server.url("/api/profile/create"), json={"name": "beta"}).status_code == 200
    assert beta.post(server.url("/api/profile/switch"), json={"name": "beta"}).status_code == 200

    def chat(jar, text) -> str:
        sid = jar.post(server.url("/api/session/new"), json={}).json()["session"]["session_id"]
        r = jar.post(server.url("/api/chat/start"), json={"session_id": sid, "message": text})
        assert r.status_code == 200, r.text
        return r.json()["stream_id"]

    # the model holds each first request until the other profile's has arrived: both run at once
    for stream_id in [chat(alpha, "remember ALPHA"), chat(beta, "remember BETA")]:
        events = stream_events(server, stream_id)
        assert "apperror" not in [e["event"] for e in events], events
        assert tokens_of(events).strip() == "saved"
    assert sorted(OVERLAPPED) == ["remember ALPHA", "remember BETA"]

    home = server.home / ".hermes"
    mine, theirs = home / "memories" / "MEMORY.md", home / "profiles" / "beta" / "memories" / "MEMORY.md"
    assert "ALPHA" in mine.read_text() and "BETA" not in mine.read_text()
    assert "BETA" in theirs.read_text() and "ALPHA" not in theirs.read_text()
    # a later turn in each profile reads its own memory (hermes-agent puts it in the system
    # prompt), and beta's custom instructions are added to beta's system prompt only
    assert beta.post(server.url("/api/settings"), json={"settings": {"custom_instructions": "Talk like a pirate."}}).ok
    recalls = [tokens_of(stream_events(server, chat(jar, "what do you recall?"))).strip() for jar in (alpha, beta)]
    assert recalls == ["I recall ALPHA", "I recall BETA"]
    systems = [str(b["messages"][0]["content"]) for b in server.llm.requests if last_user(b) == "what do you recall?"]
    assert [("pirate" in s, "BETA" in s) for s in systems] == [(False, False), (True, True)]


def test_each_profile_lists_the_models_of_its_own_config_yaml(server):
    jars = {}
    for name, model in (("gamma", "gamma-model"), ("delta", "delta-model")):
        jar = jars[name] = requests.Session()
        assert jar.post(server.url("/api/profile/create"), json={"name": name}).status_code == 200
        assert jar.post(server.url("/api/profile/switch"), json={"name": name}).status_code == 200
        home = server.home / ".hermes" / "profiles" / name
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.yaml").write_text(f"model:\n  default: {model}\n  provider: lab-{name}\n")
    listed = {name: jar.get(server.url("/api/models")).json() for name, jar in jars.items()}
    assert [m["id"] for m in listed["gamma"]["models"]] == ["scripted", "gamma-model"]
    assert [m["id"] for m in listed["delta"]["models"]] == ["scripted", "delta-model"]
    assert listed["delta"]["models"][1]["provider"] == "lab-delta" and listed["delta"]["default"] == "scripted"
    # a turn's model is checked against its own profile's list
    sid = jars["gamma"].post(server.url("/api/session/new"), json={}).json()["session"]["session_id"]
    r = jars["gamma"].post(server.url("/api/session/model"), json={"session_id": sid, "model": "delta-model"})
    assert r.status_code == 400 and "gamma-model" in r.json()["error"]
    r = jars["gamma"].post(server.url("/api/session/model"), json={"session_id": sid, "model": "gamma-model"})
    assert r.status_code == 200 and r.json()["session"]["model"] == "gamma-model"


def _workers_of(pid: int) -> list[int]:
    """The hermes worker processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat = open(f"/proc/{entry}/stat").read()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"hermes_worker" in cmdline:
            found.append(int(entry))
    return found


def _gone(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table from /proc (Linux)")
def test_a_killed_server_never_lets_an_open_approval_run(make_server, tmp_path):
    llm = ScriptedModel(reply)
    try:
        srv = make_server(agent="hermes", env=NO_DOWNLOADS,
                          args=("--base-url", llm.url, "--model", "scripted", "--toolsets", "terminal")).start()
        victim = tmp_path / "victim"
        victim.mkdir()
        sid = srv.new_session()
        srv.start_chat(sid, f"delete {victim}")
        open_approval(srv, sid)
        workers = _workers_of(srv.proc.pid)
        assert len(workers) == 1
        srv.kill()                                   # kill -9 while the approval is open
        wait_until(lambda: _gone(workers[0]), timeout=10, message="the worker to exit with its server")
        assert victim.exists()
        srv.start()
        assert srv.get("/api/approval/pending", params={"session_id": sid}).json()["approvals"] == []
        assert srv.session(sid)["messages"][-1]["status"] == "interrupted"
        assert victim.exists()
    finally:
        llm.close()
