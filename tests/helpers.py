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
    """``python server.py`` on a free port (``--port 0``) with its own state dir and HOME:
    the one server harness of the tests and the benches (``bench/harness.py``).

    The server says it is ready by writing ``--port-file`` (JSON ``{"host", "port", "pid",
    "url"}``, atomically) once it listens; :meth:`start` waits for that file, never for a
    log line. ``url``, ``get``, ``post`` talk HTTP to it; ``stop`` sends SIGTERM, ``kill``
    SIGKILL, ``start`` (re)starts it on the same state dir. Its log (stdout and stderr) is
    kept line by line in ``output``, or written to ``log_path`` when one is given (a
    long benchmark's log then costs no memory).
    """

    def __init__(self, tmp: Path, agent: str = "fake", args: tuple = (), env: dict | None = None, *,
                 state_dir: Path | None = None, home: Path | None = None, log_path: Path | None = None,
                 heartbeat_seconds: float | None = 1, cwd: Path | None = None):
        self.tmp = Path(tmp)
        self.state_dir = Path(state_dir) if state_dir is not None else self.tmp / "state"
        self.home = Path(home) if home is not None else self.tmp / "home"
        self.agent = agent
        self.args = list(args)
        self.extra_env = env or {}
        self.log_path = Path(log_path) if log_path is not None else None
        self.heartbeat_seconds = heartbeat_seconds
        self.cwd = Path(cwd) if cwd is not None else ROOT
        self.port_file = self.tmp / f"{self.state_dir.name}.port.json"
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.spawned_at: float | None = None   # time.perf_counter() when the process was started
        self.listening_s: float | None = None  # seconds from spawn to the port file
        self.output: list[str] = []
        self._pump: threading.Thread | None = None
        self.http = requests.Session()

    @property
    def sessions_dir(self) -> Path:
        return self.state_dir / "sessions"

    def command(self) -> list[str]:
        cmd = [sys.executable, str(SERVER), "--port", "0", "--port-file", str(self.port_file),
               "--state-dir", str(self.state_dir), "--agent", self.agent]
        if self.heartbeat_seconds is not None:
            cmd += ["--heartbeat-seconds", str(self.heartbeat_seconds)]
        return cmd + self.args

    def start(self, timeout: float = 30.0) -> "LiveServer":
        """Spawn the server and wait until it has written its port file. Raises
        RuntimeError with the server's log if it exits or the timeout passes first."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.port_file.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
        env.update(HOME=str(self.home), HERMES_HOME=str(self.home / ".hermes"), PYTHONUNBUFFERED="1")
        env.update(self.extra_env)
        self.port = None
        self.spawned_at = time.perf_counter()
        if self.log_path is not None:
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self.command(), cwd=str(self.cwd), env=env, stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT)
            self._pump = None
        else:
            self.proc = subprocess.Popen(self.command(), cwd=str(self.cwd), env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
            self._pump = threading.Thread(target=self._read_output, args=(self.proc,), daemon=True)
            self._pump.start()
        deadline = time.monotonic() + timeout
        while True:
            info = self._read_port_file()
            if info is not None:
                self.port = int(info["port"])
                self.listening_s = time.perf_counter() - self.spawned_at
                if self._pump is not None:
                    # The port file is the signal; this only lets ``output`` catch up with
                    # what the server logged before it (its start-up lines), so a test that
                    # notes len(output) now counts only what comes after.
                    wait_until(lambda: any(f":{self.port}/" in line for line in self.output),
                               timeout=max(1.0, deadline - time.monotonic()), message="the start-up log")
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                if self._pump is not None:
                    self._pump.join(5)   # the whole log, for the message and for the caller
                raise RuntimeError(f"server did not start (exit code {self.proc.returncode}):\n{self.log_text()}")
            time.sleep(0.01)

    def _read_output(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.output.append(line)

    def _read_port_file(self) -> dict | None:
        try:
            return json.loads(self.port_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        if self.log_path is not None:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        return "".join(self.output)

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
