"""Test helpers: a real server in a subprocess, an SSE reader, polling with a deadline."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "server.py"


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class LiveServer:
    """``python server.py`` on a free port (``--port 0``) with its own state dir and HOME.

    ``url``, ``get``, ``post`` talk HTTP to it; ``stop`` sends SIGTERM, ``kill`` SIGKILL,
    ``start`` (re)starts it on the same state dir.
    """

    def __init__(self, tmp: Path, agent: str = "fake", args: tuple = (), env: dict | None = None):
        self.tmp = Path(tmp)
        self.state_dir = self.tmp / "state"
        self.home = self.tmp / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.agent = agent
        self.args = list(args)
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.output: list[str] = []
        self.http = requests.Session()

    @property
    def sessions_dir(self) -> Path:
        return self.state_dir / "sessions"

    def start(self, timeout: float = 30.0) -> "LiveServer":
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
        env.update(HOME=str(self.home), HERMES_HOME=str(self.home / ".hermes"), PYTHONUNBUFFERED="1")
        env.update(self.extra_env)
        cmd = [sys.executable, str(SERVER), "--port", "0", "--state-dir", str(self.state_dir),
               "--agent", self.agent, "--heartbeat-seconds", "1"] + self.args
        self.proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        started = threading.Event()
        port_box: list[int] = []

        def pump(proc=self.proc):
            for line in proc.stdout:
                self.output.append(line)
                if "listening on http://" in line and not port_box:
                    port_box.append(int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1]))
                    started.set()
            started.set()

        threading.Thread(target=pump, daemon=True).start()
        if not started.wait(timeout) or not port_box:
            self.proc.kill()
            raise RuntimeError("server did not start:\n" + "".join(self.output))
        self.port = port_box[0]
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return self.http.get(self.url(path), **kw)

    def post(self, path: str, json_body=None, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        if json_body is not None:
            kw["json"] = json_body
        return self.http.post(self.url(path), **kw)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else 0

    def kill(self) -> None:
        """SIGKILL: no clean-up runs, as in a crash or power loss."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    # -- conveniences ------------------------------------------------------

    def new_session(self, **body) -> str:
        r = self.post("/api/session/new", body)
        assert r.status_code == 200, r.text
        return r.json()["session"]["session_id"]

    def start_chat(self, sid: str, message: str, **extra) -> str:
        r = self.post("/api/chat/start", dict(session_id=sid, message=message, **extra))
        assert r.status_code == 200, r.text
        return r.json()["stream_id"]

    def session(self, sid: str, **params) -> dict:
        r = self.get("/api/session", params=dict(session_id=sid, **params))
        assert r.status_code == 200, r.text
        return r.json()["session"]


def fake_script(**script) -> str:
    """A chat message that makes the ``fake`` backend run ``script`` (DESIGN §8)."""
    return json.dumps({"fake": script})


def read_sse(resp: requests.Response, stop_after: int | None = None) -> list[dict]:
    """Parse an SSE response into ``[{id, event, data}]`` until ``stream_end``
    (or until ``stop_after`` events). Comments (heartbeats) are counted in ``.pings``."""
    events: list[dict] = []
    cur: dict = {}
    lines = getattr(resp, "_sse_lines", None)
    if lines is None:  # one line iterator per response, so a second call resumes where the first stopped
        lines = resp._sse_lines = resp.iter_lines(decode_unicode=True)
    for raw in lines:
        line = raw if raw is not None else ""
        if line.startswith(":"):
            continue
        if line == "":
            if "event" in cur:
                cur["data"] = json.loads(cur.get("data", "null"))
                events.append(cur)
                if cur["event"] == "stream_end" or (stop_after and len(events) >= stop_after):
                    break
            cur = {}
            continue
        key, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if key == "id":
            cur["id"] = int(value)
        elif key in ("event", "data"):
            cur[key] = value
    return events


def stream_events(server: LiveServer, stream_id: str, *, after: int | None = None,
                  last_event_id: int | None = None, stop_after: int | None = None) -> list[dict]:
    params = {"stream_id": stream_id}
    if after is not None:
        params["after_seq"] = after
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    with requests.get(server.url("/api/chat/stream"), params=params, headers=headers, stream=True,
                      timeout=30) as resp:
        assert resp.status_code == 200, resp.text
        return read_sse(resp, stop_after=stop_after)


def tokens_of(events: list[dict]) -> str:
    return "".join(e["data"]["text"] for e in events if e["event"] == "token")
