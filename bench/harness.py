"""Shared bench plumbing: the server subprocess (the tests' :class:`tests.helpers.LiveServer`),
a keep-alive HTTP client, an SSE reader, percentiles, and the figures table.

Nothing here asserts speed: benches print figures next to DESIGN §9's targets and
optionally write them as JSON (``--json``).
"""
from __future__ import annotations

import http.client
import json
import os
import statistics
import time
import urllib.parse
from pathlib import Path

from tests.helpers import LiveServer


# ---------------------------------------------------------------- statistics


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]; ``nan`` for no samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def summary_ms(samples_s: list[float]) -> dict:
    """``{median, p95, max, n}`` in milliseconds of samples given in seconds."""
    ms = [s * 1000 for s in samples_s]
    return {"median": round(statistics.median(ms), 3) if ms else float("nan"),
            "p95": round(percentile(ms, 95), 3), "max": round(max(ms), 3) if ms else float("nan"),
            "n": len(ms)}


# ---------------------------------------------------------------- process memory


def rss_mib(pid: int) -> dict:
    """``{"rss": VmRSS, "hwm": VmHWM}`` of a live process, in MiB (from /proc/<pid>/status)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key = "rss" if line.startswith("VmRSS") else "hwm"
                out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the server


class BenchServer(LiveServer):
    """``python server.py --agent fake --port 0 --state-dir DIR``: the tests' server harness
    (:class:`tests.helpers.LiveServer`, which waits for the server's ``--port-file``) with
    what benches add.

    :meth:`start` returns seconds from spawn to the first 200 on ``/health``
    (``listening_s``: to the port file). The child gets a private HOME (``home``) and no
    ``HERMES_*`` variables; its log goes to ``<state_dir>/../server-<n>.log`` so a chatty
    log costs no memory.
    """

    _count = 0

    def __init__(self, state_dir: Path, home: Path, extra_args: tuple = ()):
        state_dir = Path(state_dir)
        super().__init__(state_dir.parent, agent="fake", args=tuple(extra_args), state_dir=state_dir,
                         home=home, heartbeat_seconds=None)

    def start(self, timeout: float = 120.0) -> float:
        """Spawn and wait until ``/health`` answers 200; returns seconds since spawn."""
        BenchServer._count += 1
        self.log_path = self.state_dir.parent / f"server-{BenchServer._count}.log"
        deadline = time.monotonic() + timeout
        super().start(timeout)
        while True:
            try:
                status, _body, _dt = Client(self.port).get("/health")
                if status == 200:
                    return time.perf_counter() - self.spawned_at
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("server never answered /health")
            time.sleep(0.002)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def memory(self) -> dict:
        """RSS and peak RSS in MiB (see :func:`rss_mib`)."""
        return rss_mib(self.proc.pid)

    def cpu(self) -> float:
        """CPU seconds the server has used so far (see :func:`cpu_seconds`)."""
        return cpu_seconds(self.proc.pid)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (the index is flushed on the way out) and wait; returns the exit code."""
        return super().stop(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill() if exc[0] else self.stop()


# ---------------------------------------------------------------- HTTP


class Client:
    """A keep-alive HTTP/1.1 connection to 127.0.0.1:``port`` (lower overhead than requests).

    Each call returns ``(status, body bytes, seconds from sending to the last body byte)``.
    """

    def __init__(self, port: int, timeout: float = 120.0):
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (0, 1):
            t0 = time.perf_counter()
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                dt = time.perf_counter() - t0
                if resp.will_close:
                    self.conn.close()
                return resp.status, data, dt
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str, params: dict | None = None) -> tuple[int, bytes, float]:
        if params:
            path += "?" + urllib.parse.urlencode(params)
        return self._request("GET", path)

    def post(self, path: str, obj: dict) -> tuple[int, bytes, float]:
        return self._request("POST", path, json.dumps(obj).encode("utf-8"))

    def post_json(self, path: str, obj: dict) -> dict:
        """POST and return the decoded JSON body; raises RuntimeError on a non-200."""
        status, body, _ = self.post(path, obj)
        if status != 200:
            raise RuntimeError(f"POST {path} -> {status}: {body[:300]!r}")
        return json.loads(body)

    def close(self) -> None:
        self.conn.close()


def wait_for_background_work(client: Client, timeout: float = 900.0) -> float:
    """Wait until the server's background catch-up (the search index, when it exists) is
    done, so it does not compete with what is measured; returns the seconds waited.

    Polls ``/api/sessions/search`` every 0.2 s until it stops answering ``partial: true``;
    a server without that field returns at once.
    """
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        status, body, _ = client.get("/api/sessions/search", {"q": "the", "limit": 1})
        if status != 200 or not json.loads(body).get("partial"):
            break
        time.sleep(0.2)
    return time.perf_counter() - t0


class SSEReader:
    """Reads one ``/api/chat/stream`` response on its own connection, cheaply.

    :meth:`next_event` returns ``(event_name, data_bytes)`` or None at EOF; heartbeat
    comments and the ``retry:`` line are skipped. Data is left undecoded so the reader
    costs the client as little CPU as possible.
    """

    def __init__(self, port: int, stream_id: str, after_seq: int | None = None, timeout: float = 300.0):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        path = "/api/chat/stream?" + urllib.parse.urlencode(
            {"stream_id": stream_id, **({"after_seq": after_seq} if after_seq is not None else {})})
        self.conn.request("GET", path)
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise RuntimeError(f"stream {stream_id}: HTTP {self.resp.status} {self.resp.read()[:300]!r}")
        self._buf = b""
        self._blocks: list[bytes] = []

    def next_event(self) -> tuple[str, bytes] | None:
        while True:
            while self._blocks:
                block = self._blocks.pop()
                name, data = "", b""
                for line in block.split(b"\n"):
                    if line.startswith(b"event: "):
                        name = line[7:].decode()
                    elif line.startswith(b"data: "):
                        data = line[6:]
                if name:
                    return name, data
            chunk = self.resp.read1(65536)
            if not chunk:
                return None
            self._buf += chunk
            parts = self._buf.split(b"\n\n")
            self._buf = parts.pop()
            parts.reverse()
            self._blocks = parts

    def close(self) -> None:
        self.conn.close()


def run_turn_over_http(port: int, client: Client, session_id: str, message: str) -> dict:
    """Start a chat turn, follow its stream to ``stream_end``.

    Returns ``{"start_s": POST latency, "first_event_s": send → first event,
    "end_s": send → stream_end, "events": {name: count}, "tokens": [token data bytes]}``.
    """
    t0 = time.perf_counter()
    out = client.post_json("/api/chat/start", {"session_id": session_id, "message": message})
    start_s = time.perf_counter() - t0
    reader = SSEReader(port, out["stream_id"])
    first = None
    counts: dict[str, int] = {}
    tokens: list[bytes] = []
    try:
        while True:
            ev = reader.next_event()
            if ev is None:
                break
            if first is None:
                first = time.perf_counter() - t0
            counts[ev[0]] = counts.get(ev[0], 0) + 1
            if ev[0] == "token":
                tokens.append(ev[1])
            if ev[0] == "stream_end":
                break
    finally:
        reader.close()
    return {"start_s": start_s, "first_event_s": first, "end_s": time.perf_counter() - t0,
            "events": counts, "tokens": tokens}


# ---------------------------------------------------------------- the table


class Figures:
    """Rows of ``(work, measured text, target text, met: bool | None)`` plus raw values."""

    def __init__(self, title: str):
        self.title = title
        self.rows: list[dict] = []
        self.values: dict = {}

    def add(self, work: str, measured: str, target: str = "", met: bool | None = None, **values) -> None:
        self.rows.append({"work": work, "measured": measured, "target": target, "met": met})
        self.values.update(values)

    def table(self) -> str:
        w1 = max([len(r["work"]) for r in self.rows] + [4])
        w2 = max([len(r["measured"]) for r in self.rows] + [8])
        w3 = max([len(r["target"]) for r in self.rows] + [6])
        mark = {True: "met", False: "MISSED", None: ""}
        lines = [self.title, "", f"{'work':<{w1}}  {'measured':<{w2}}  {'target':<{w3}}  ",
                 f"{'-' * w1}  {'-' * w2}  {'-' * w3}  ------"]
        lines += [f"{r['work']:<{w1}}  {r['measured']:<{w2}}  {r['target']:<{w3}}  {mark[r['met']]}"
                  for r in self.rows]
        return "\n".join(lines)

    def to_json(self, meta: dict) -> dict:
        return {"title": self.title, "meta": meta, "rows": self.rows, "values": self.values}


def fmt_ms(s: dict) -> str:
    """``"12.3 / 20.1 ms"`` (median / p95) from :func:`summary_ms`."""
    return f"{s['median']:.1f} / {s['p95']:.1f} ms"
