"""Per-profile settings over HTTP (issue 17 item 4), custom instructions reaching the
model, the model list's extra sources and the model retry/edit run on (issue 15)."""
from __future__ import annotations

import importlib.util
import json
import threading
from http.server import ThreadingHTTPServer

import pytest
import requests

from .helpers import LiveServer, stream_events, tokens_of, wait_until
from .test_openai_backend import ScriptedOpenAI

PASSWORD = "correct horse battery staple"
INSTRUCTIONS = "Réponds en français. 日本語の質問にも。 Keep it short 🙂\nשלום"


def profile_client(server, name: str | None = None) -> requests.Session:
    """A browser (cookie jar) whose active profile is ``name`` (created first), or default."""
    jar = requests.Session()
    if name:
        assert jar.post(server.url("/api/profile/create"), json={"name": name}, timeout=30).status_code == 200
        assert jar.post(server.url("/api/profile/switch"), json={"name": name}, timeout=30).status_code == 200
    return jar


def post(jar: requests.Session, server, path: str, body: dict, **kw) -> requests.Response:
    return jar.post(server.url(path), json=body, timeout=30, **kw)


# ---------------------------------------------------------------- fields


@pytest.mark.parametrize("name,value", [
    ("theme", "dark"), ("theme", "light"), ("theme", "system"),
    ("custom_instructions", INSTRUCTIONS), ("custom_instructions", "x" * 20_000),
    ("default_model", "fake-echo-2"),
    ("send_key", "ctrl-enter"), ("send_key", "enter"),
])
def test_each_setting_is_stored_read_back_and_reset_with_null(make_server, name, value):
    server = make_server().start()
    r = server.post("/api/settings", {"settings": {name: value}})
    assert r.status_code == 200, r.text
    assert r.json()["settings"] == {name: value}
    assert server.get("/api/settings").json()["settings"] == {name: value}
    assert json.loads((server.state_dir / "settings.json").read_text())["ui"] == {name: value}
    server.stop()
    server.start()      # survives a restart
    assert server.get("/api/settings").json()["settings"] == {name: value}
    r = server.post("/api/settings", {"settings": {name: None}})
    assert r.status_code == 200 and r.json()["settings"] == {}
    assert {k: r.json()["defaults"][k] for k in ("theme", "custom_instructions", "default_model", "send_key")} == {
        "theme": "system", "custom_instructions": "", "default_model": None, "send_key": "enter"}


@pytest.mark.parametrize("body", [
    {"settings": {"colour": "dark"}},                        # unknown setting
    {"settings": {"theme": "blue"}},
    {"settings": {"theme": ["dark"]}},
    {"settings": {"send_key": "space"}},
    {"settings": {"custom_instructions": 42}},
    {"settings": {"custom_instructions": "x" * 20_001}},
    {"settings": {"default_model": "no-such-model"}},
    {"settings": {"default_model": ""}},
    {"settings": {"theme": "dark", "send_key": "shift"}},    # one bad value: nothing of it is kept
    {"settings": ["theme", "dark"]},
    {"colour": "dark"},                                      # unknown top-level field (a flat "theme" is
                                                             # the upstream's shape: test_upstream_compat.py)
    {"settings": {"theme": "dark"}, "password": "short"},
])
def test_an_unknown_setting_or_a_bad_value_is_refused_and_nothing_changes(live_server, body):
    live_server.post("/api/settings", {"settings": {"theme": "light", "send_key": "enter"}})
    path = live_server.state_dir / "settings.json"
    before = path.read_bytes()
    r = live_server.post("/api/settings", body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] and path.read_bytes() == before
    assert live_server.get("/api/settings").json()["settings"] == {"theme": "light", "send_key": "enter"}


def test_settings_are_per_profile_and_the_password_is_not(make_server):
    server = make_server().start()
    home, work = profile_client(server), profile_client(server, "work")
    assert post(work, server, "/api/settings", {"settings": {"theme": "dark", "send_key": "ctrl-enter",
                                                             "custom_instructions": "work rules"}}).ok
    assert post(home, server, "/api/settings", {"settings": {"theme": "light"}}).ok
    assert work.get(server.url("/api/settings")).json()["settings"] == {
        "theme": "dark", "send_key": "ctrl-enter", "custom_instructions": "work rules"}
    assert work.get(server.url("/api/settings")).json()["profile"] == "work"
    assert home.get(server.url("/api/settings")).json()["settings"] == {"theme": "light"}
    assert json.loads((server.state_dir / "profiles" / "work" / "settings.json").read_text())["ui"]["theme"] == "dark"
    # one password for the whole server, kept in the state dir's own file only
    r = post(work, server, "/api/settings", {"password": PASSWORD})
    assert r.status_code == 200 and r.json()["settings"]["theme"] == "dark"
    assert "password_hash" in json.loads((server.state_dir / "settings.json").read_text())
    assert "password_hash" not in json.loads((server.state_dir / "profiles" / "work" / "settings.json").read_text())
    assert home.get(server.url("/api/settings")).status_code == 401       # the home browser must log in now


def test_a_damaged_profile_settings_file_answers_500_and_is_left_alone(make_server):
    server = make_server().start()
    work = profile_client(server, "work")
    path = server.state_dir / "profiles" / "work" / "settings.json"
    path.write_bytes(b'{"ui": {"theme": "da')
    r = work.get(server.url("/api/settings"))
    assert r.status_code == 500 and "damaged" in r.json()["error"]
    r = post(work, server, "/api/settings", {"settings": {"theme": "dark"}})
    assert r.status_code == 500 and path.read_bytes() == b'{"ui": {"theme": "da'
    sid = post(work, server, "/api/session/new", {}).json()["session"]["session_id"]
    r = post(work, server, "/api/chat/start", {"session_id": sid, "message": "hi"})   # fails closed
    assert r.status_code == 500 and "custom instructions" in r.json()["error"]


# ---------------------------------------------------------------- removing the password


def test_removing_the_password_needs_the_current_one(make_server):
    server = make_server().start()
    owner = requests.Session()
    token = post(owner, server, "/api/settings", {"password": PASSWORD}).json()["csrf_token"]
    headers = {"X-CSRF-Token": token}
    path = server.state_dir / "settings.json"
    before = path.read_bytes()
    assert requests.post(server.url("/api/settings"), json={"remove_password": True,
                                                            "current_password": PASSWORD}).status_code == 401
    r = post(owner, server, "/api/settings", {"remove_password": True}, headers=headers)
    assert r.status_code == 400 and "current_password" in r.json()["error"] and path.read_bytes() == before
    r = post(owner, server, "/api/settings", {"remove_password": True, "current_password": "wrong one!"},
             headers=headers)
    assert r.status_code == 403 and path.read_bytes() == before
    r = post(owner, server, "/api/settings", {"remove_password": True, "current_password": PASSWORD},
             headers=headers)
    assert r.status_code == 200 and r.json()["password_set"] is False and r.json()["password_source"] is None
    assert "password_hash" not in json.loads(path.read_text())
    assert requests.get(server.url("/api/sessions"), timeout=30).status_code == 200   # open again
    r = server.post("/api/settings", {"remove_password": True, "current_password": PASSWORD})
    assert r.status_code == 400                                                     # nothing to remove


def test_a_password_from_the_environment_cannot_be_removed(make_server):
    server = make_server(env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    http = requests.Session()
    token = post(http, server, "/api/auth/login", {"password": PASSWORD}).json()["csrf_token"]
    r = post(http, server, "/api/settings", {"remove_password": True, "current_password": PASSWORD},
             headers={"X-CSRF-Token": token})
    assert r.status_code == 409 and "HERMES_WEBUI_PASSWORD" in r.json()["error"]


# ---------------------------------------------------------------- custom instructions reach the model


@pytest.fixture(scope="module")
def scripted():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedOpenAI)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def _sent_for(message: str) -> dict:
    return next(r for r in reversed(ScriptedOpenAI.requests_seen)
                if r.get("stream") and r["messages"][-1]["content"] == message)


def test_custom_instructions_and_the_projects_go_to_the_model_as_the_system_message(make_server, scripted):
    server = make_server(agent="openai", args=("--base-url", scripted, "--model", "scripted")).start()
    sid = server.new_session()
    assert tokens_of(stream_events(server, server.start_chat(sid, "ok"))) == "Hello, world"
    assert [m["role"] for m in _sent_for("ok")["messages"]] == ["user"]          # nothing set: no system message
    assert server.post("/api/settings", {"settings": {"custom_instructions": INSTRUCTIONS}}).ok
    stream_events(server, server.start_chat(sid, "ok"))
    sent = ScriptedOpenAI.last_turn()
    assert sent["messages"][0] == {"role": "system", "content": INSTRUCTIONS.strip()}
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    project = server.post("/api/projects/create", {"name": "Thesis", "instructions": "Cite sources."}).json()["project"]
    assert server.post("/api/session/move", {"session_id": sid, "project_id": project["project_id"]}).ok
    stream_events(server, server.start_chat(sid, "ok"))
    assert ScriptedOpenAI.last_turn()["messages"][0] == {
        "role": "system", "content": INSTRUCTIONS.strip() + "\n\nCite sources."}
    # a retry runs with them too
    r = server.post("/api/session/retry", {"session_id": sid})
    assert r.status_code == 200, r.text
    stream_events(server, r.json()["stream_id"])
    assert ScriptedOpenAI.last_turn()["messages"][0]["content"].endswith("Cite sources.")


def test_instructions_of_one_profile_never_reach_another(make_server, scripted):
    server = make_server(agent="openai", args=("--base-url", scripted, "--model", "scripted")).start()
    work = profile_client(server, "work")
    assert post(work, server, "/api/settings", {"settings": {"custom_instructions": "only at work"}}).ok
    home_sid = server.new_session()
    stream_events(server, server.start_chat(home_sid, "ok"))
    assert all(m["role"] != "system" for m in ScriptedOpenAI.last_turn()["messages"])
    work_sid = post(work, server, "/api/session/new", {}).json()["session"]["session_id"]
    stream_id = post(work, server, "/api/chat/start", {"session_id": work_sid, "message": "ok"}).json()["stream_id"]
    stream_events(server, stream_id)
    assert ScriptedOpenAI.last_turn()["messages"][0] == {"role": "system", "content": "only at work"}


# ---------------------------------------------------------------- the model list


def test_local_backend_lists_the_gguf_files_of_the_models_folder(make_server):
    server = make_server(agent="local")
    models = server.state_dir / "models"
    models.mkdir(parents=True)
    (models / "qwen2.5-0.5b-instruct-q4_k_m.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    (models / "tiny-日本.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    (models / "README.txt").write_text("not a model")
    (models / "folder.gguf").mkdir()
    server.start()
    listing = server.get("/api/models").json()
    ids = [m["id"] for m in listing["models"]]
    assert ids[0] == listing["default"]                    # the bundled (or --model-path) model first
    assert ids[1:] == ["qwen2.5-0.5b-instruct-q4_k_m", "tiny-日本"]
    assert all(m["backend"] == "local" and m["context_length"] == 4096 for m in listing["models"])
    sid = server.new_session()
    assert server.post("/api/session/model", {"session_id": sid, "model": "tiny-日本"}).status_code == 200
    r = server.post("/api/chat/start", {"session_id": sid, "message": "hi", "model": "README"})
    assert r.status_code == 400


HERMES_CONFIG = """\
model:
  default: anthropic/claude-sonnet-4
  provider: openrouter
  context_length: 200000
  supports_vision: true
providers:
  lab:
    api: http://lab.internal:8000/v1
    default_model: qwen3-32b
    context_length: 32768
    models:
      qwen3-32b: {}
      qwen3-vl: {supports_vision: true, context_length: 65536}
custom_providers:
  - name: ollama
    base_url: http://localhost:11434/v1
    models: [llama3.2, "qwen2.5:7b", anthropic/claude-sonnet-4]
"""


# find_spec, not import: importing hermes-agent would create and read the real ~/.hermes.
# Without it (the minimum-versions job installs no [hermes]) the backend is the amber
# "not installed" one, which lists nothing; the full job installs it and runs this.
needs_hermes = pytest.mark.skipif(importlib.util.find_spec("run_agent") is None,
                                  reason="the hermes backend needs: pip install 'hermes-webui[hermes]'")


@needs_hermes
def test_hermes_backend_lists_the_providers_and_models_of_its_config_yaml(make_server):
    server = make_server(agent="hermes")
    hermes_home = server.home / ".hermes"
    hermes_home.mkdir(parents=True)
    (hermes_home / "config.yaml").write_text(HERMES_CONFIG)
    server.start()
    listing = server.get("/api/models").json()["models"]
    by_id = {m["id"]: m for m in listing}
    assert [m["id"] for m in listing] == ["anthropic/claude-sonnet-4", "qwen3-32b", "qwen3-vl", "llama3.2",
                                          "qwen2.5:7b"]
    assert by_id["anthropic/claude-sonnet-4"] == {
        "id": "anthropic/claude-sonnet-4", "label": "anthropic/claude-sonnet-4 (openrouter)", "backend": "hermes",
        "vision": True, "context_length": 200000, "provider": "openrouter"}
    assert by_id["qwen3-32b"]["context_length"] == 32768 and by_id["qwen3-32b"]["provider"] == "lab"
    assert by_id["qwen3-vl"]["vision"] is True and by_id["qwen3-vl"]["context_length"] == 65536
    assert by_id["qwen2.5:7b"]["provider"] == "ollama" and "context_length" not in by_id["qwen2.5:7b"]


@needs_hermes
def test_hermes_config_that_is_not_yaml_lists_no_models_from_it(make_server):
    server = make_server(agent="hermes")
    hermes_home = server.home / ".hermes"
    hermes_home.mkdir(parents=True)
    (hermes_home / "config.yaml").write_text("model: [unclosed\n  !!python/object:os.system {}")
    server.start()
    r = server.get("/api/models")
    assert r.status_code == 200 and r.json()["models"] == []


# ---------------------------------------------------------------- retry and edit run on the session's model


def test_retry_and_edit_run_on_the_sessions_default_model(live_server):
    s = live_server
    sid = s.new_session()
    assert s.post("/api/session/model", {"session_id": sid, "model": "fake-echo-2"}).status_code == 200
    stream_events(s, s.start_chat(sid, "first"))
    assert s.session(sid)["messages"][-1]["model"] == "fake-echo-2"
    r = s.post("/api/session/retry", {"session_id": sid})
    assert r.status_code == 200, r.text
    stream_events(s, r.json()["stream_id"])
    wait_until(lambda: s.session(sid)["message_count"] == 2, message="the retried reply to be saved")
    assert s.session(sid)["messages"][-1]["model"] == "fake-echo-2"
    r = s.post("/api/session/edit", {"session_id": sid, "message_index": 0, "content": "second"})
    assert r.status_code == 200, r.text
    stream_events(s, r.json()["stream_id"])
    wait_until(lambda: s.session(sid)["messages"][-1].get("content") == "echo: second", message="the edit's reply")
    assert s.session(sid)["messages"][-1]["model"] == "fake-echo-2"
    r = s.post("/api/session/retry", {"session_id": sid, "model": "fake-echo"})      # a one-off choice
    stream_events(s, r.json()["stream_id"])
    wait_until(lambda: s.session(sid)["messages"][-1].get("model") == "fake-echo", message="the one-off model")
    assert s.session(sid, messages=0)["model"] == "fake-echo-2"                      # the default is unchanged
    assert s.post("/api/session/retry", {"session_id": sid, "model": "nope"}).status_code == 400


def test_a_new_chat_starts_on_the_profiles_default_model(make_server):
    server = make_server().start()
    work = profile_client(server, "work")
    assert server.post("/api/settings", {"settings": {"default_model": "fake-echo-2"}}).ok
    sid = server.new_session()
    assert server.session(sid, messages=0)["model"] == "fake-echo-2"
    stream_events(server, server.start_chat(sid, "hi"))
    assert server.session(sid)["messages"][-1]["model"] == "fake-echo-2"
    assert server.session(server.new_session(model="fake-echo"), messages=0)["model"] == "fake-echo"   # asked for
    other = post(work, server, "/api/session/new", {}).json()["session"]                               # not set there
    assert other["model"] in (None, "")
