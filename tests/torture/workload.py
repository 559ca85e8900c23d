"""The client side of the server crash harness: a mixed workload and a model of what
the server acknowledged.

Each worker thread owns its sessions and drives them one request at a time (so at most
one request per session is in flight when the server dies), while reader threads follow
the SSE streams of its turns. Operations: new session, scripted streaming turn, echo
turn, rename, pin, delete, cancel, read, and the session operations undo, edit, retry,
clear and duplicate (each sent with ``expected_message_count`` taken from a fresh read,
so its effect on the transcript is known exactly when it is acknowledged).

:class:`Tracked` holds, per session, the user messages acknowledged and not deliberately
removed (in order), the replies whose ``done`` arrived, the texts the user removed (they
must never come back), title, pin and delete state, and the alternative outcome of an
operation that was in flight at the kill.
"""
from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field

import requests

DELAYS_MS = (20, 50)
OPS = ("new", "stream", "echo", "rename", "pin", "delete", "cancel", "get",
       "undo", "edit", "retry", "clear", "duplicate")
SESSION_OPS = ("undo", "edit", "retry", "clear", "duplicate")


@dataclass
class Tracked:
    """What the server acknowledged about one session."""

    sid: str
    owner: int
    acked_users: list = field(default_factory=list)   # user messages acknowledged and not removed, in order
    done_replies: dict = field(default_factory=dict)  # user message -> reply whose `done` arrived
    removed: set = field(default_factory=set)         # user messages removed by an acknowledged undo/edit/clear
    in_flight: tuple | None = None                    # (users, removed, restarted) of an op cut off by the kill
    title: str | None = None                          # None: never renamed (auto title)
    title_pending: str | None = None
    pinned: bool = False
    pinned_pending: bool | None = None
    deleted: bool = False
    delete_pending: bool = False
    checked_deleted: bool = False
    messages_seen: int = 0


@dataclass
class Watch:
    """One streamed turn, seen from the client."""

    sid: str
    message: str
    expected: str
    delay_ms: int
    stream_id: str = ""
    tokens: int = 0
    text: str = ""
    done: bool = False
    ended: bool = False
    cancelled: bool = False


_PIECES = ("ERROR at line 42: \"quoted\" \\ path\n", "中文日本語한국어 ", "שלום مرحبا ", "😀👩‍👩‍👧 ", "\t{json: [1, 2]}\n")


def big_text(rng: random.Random, lo: int, hi: int) -> str:
    """About ``lo`` to ``hi`` UTF-8 bytes of log-like text in several scripts."""
    size = rng.randint(lo, hi)
    pattern = "".join(rng.choice(_PIECES) for _ in range(12))
    raw = (pattern * (size // len(pattern.encode()) + 1)).encode()[:size]
    return raw.decode("utf-8", "ignore")


def expected_reply(message: str) -> tuple[str, int]:
    """The fake backend's reply to ``message`` (DESIGN §8) and its token delay in ms."""
    try:
        script = json.loads(message)["fake"]
    except (ValueError, KeyError, TypeError):
        return "echo:" + "".join(" " + w for w in message.split()), 0
    return "".join(f"t{i} " for i in range(int(script.get("tokens", 5)))), int(script.get("delay_ms", 0))


def users_of(messages: list[dict]) -> list[str]:
    return [m.get("content") for m in messages if m.get("role") == "user"]


def missing_from(needles: list, hay: list) -> list:
    """The needles missing from ``hay`` when matched in order (a subsequence test)."""
    missing, i = [], 0
    for n in needles:
        j = i
        while j < len(hay) and hay[j] != n:
            j += 1
        if j == len(hay):
            missing.append(n)
        else:
            i = j + 1
    return missing


class Workload:
    """Mixed into the harness: needs ``server``, ``model``, ``model_lock``, ``figures``,
    ``_stop``, ``_watches``, ``_threads``, ``uid()``, ``violation()`` and ``_lose()``."""

    def _request(self, http: requests.Session, method: str, path: str, **kw):
        """The response, or None if the server died under the request (after the stop flag)."""
        kw.setdefault("timeout", 20)
        try:
            resp = http.request(method, self.server.url(path), **kw)
        except requests.RequestException as exc:
            if not self._stop.is_set():
                self.violation(f"{method} {path} failed while the server was up: {exc!r}")
            return None
        if resp.status_code >= 500:
            self.violation(f"{method} {path} -> {resp.status_code} {resp.text[:200]}")
        return resp

    def _worker(self, wid: int, rng: random.Random) -> None:
        http = requests.Session()
        running: dict[str, Watch] = {}
        while not self._stop.is_set():
            running = {sid: w for sid, w in running.items() if not w.ended}
            with self.model_lock:
                mine = [t for t in self.model.values() if t.owner == wid and not t.deleted and not t.delete_pending]
            free = [t for t in mine if t.sid not in running]
            op = rng.choices(OPS, weights=(10 if len(mine) < 4 else 0, 30, 8, 12, 8, 5 if len(mine) > 2 else 0,
                                           2 if running else 0, 6, 4, 3, 3, 1, 2 if len(mine) < 5 else 0))[0]
            if op == "new" or not mine:
                self._op_new(http, wid)
            elif op in ("stream", "echo", *SESSION_OPS) and free:
                t = rng.choice(free)
                w = self._op_turn(http, rng, t, op) if op in ("stream", "echo") else self._op_session(http, rng, t, op)
                if w is not None:
                    running[w.sid] = w
            elif op == "rename":
                self._op_rename(http, rng.choice(mine))
            elif op == "pin":
                self._op_pin(http, rng.choice(mine))
            elif op == "delete":
                victim = max(mine, key=lambda t: t.messages_seen) if rng.random() < 0.5 else rng.choice(mine)
                self._op_delete(http, victim)
                running.pop(victim.sid, None)
            elif op == "cancel" and running:
                self._op_cancel(http, rng.choice(list(running.values())))
            elif op == "get":
                self._request(http, "GET", "/api/session", params={"session_id": rng.choice(mine).sid, "msg_limit": 10})
            self._stop.wait(rng.uniform(0, 0.03))

    # -- operations -----------------------------------------------------------------

    def _op_new(self, http, wid: int) -> None:
        resp = self._request(http, "POST", "/api/session/new", json={})
        if resp is not None and resp.status_code == 200:
            sid = resp.json()["session"]["session_id"]
            with self.model_lock:
                self.model[sid] = Tracked(sid, wid)
            self.figures.count("new")

    def _script(self, rng) -> str:
        """A fake-backend script; about one turn in six carries 100–600 KB of content
        (a pasted log in the message, or a tool result), as real users' turns do."""
        n, delay = rng.randint(20, 120), rng.choice(DELAYS_MS)
        script = {"tokens": n, "delay_ms": delay}
        doc = {"fake": script, "nonce": self.uid()}
        roll = rng.random()
        if roll < 0.08:
            doc["paste"] = big_text(rng, 100_000, 400_000)
        elif roll < 0.17:
            script["tools"] = [{"name": "terminal", "args": {"command": "cat build.log"},
                                "result": big_text(rng, 100_000, 600_000)}]
        if roll < 0.17:
            self.figures.count("large")
        return json.dumps(doc, ensure_ascii=False)

    def _op_turn(self, http, rng, t: Tracked, kind: str) -> Watch | None:
        if kind == "stream":
            message = self._script(rng)
        elif rng.random() < 0.12:  # a pasted log, echoed back word by word
            message = f"hello {self.uid()}\n" + big_text(rng, 100_000, 300_000)
            self.figures.count("large")
        else:
            message = f"hello {self.uid()}"
        resp = self._request(http, "POST", "/api/chat/start", json={"session_id": t.sid, "message": message})
        if not self._accepted(resp, t, "chat/start"):
            return None
        with self.model_lock:
            t.acked_users.append(message)
            self.figures.acked_messages += 1
        self.figures.count(kind)
        return self._follow(t, message, resp.json()["stream_id"])

    def _accepted(self, resp, t: Tracked, what: str) -> bool:
        if resp is None:
            return False
        if resp.status_code == 409:
            self.violation(f"{what} on {t.sid} answered 409 though nothing of ours was running: {resp.text}")
        elif resp.status_code != 200:
            self.violation(f"{what} on {t.sid} answered {resp.status_code}: {resp.text[:200]}")
        return resp.status_code == 200

    def _follow(self, t: Tracked, message: str, stream_id: str) -> Watch:
        expected, delay = expected_reply(message)
        w = Watch(t.sid, message, expected, delay, stream_id)
        with self.model_lock:
            self._watches.append(w)
        th = threading.Thread(target=self._read_stream, args=(w, t), daemon=True)
        th.start()
        self._threads.append(th)
        return w

    def _read_stream(self, w: Watch, t: Tracked) -> None:
        try:
            with requests.get(self.server.url("/api/chat/stream"), params={"stream_id": w.stream_id},
                              stream=True, timeout=20) as resp:
                if resp.status_code != 200:
                    self.violation(f"stream {w.stream_id} answered {resp.status_code}")
                    return
                event = None
                for line in resp.iter_lines(decode_unicode=True):
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event is not None:
                        data = json.loads(line[5:])
                        if event == "token":
                            w.text += data["text"]
                            w.tokens += 1
                        elif event == "done":
                            with self.model_lock:
                                t.done_replies[w.message] = w.expected
                                self.figures.acked_messages += 1
                            w.done = True
                        elif event == "apperror":
                            self.violation(f"apperror in {w.sid}: {data}")
                        elif event == "stream_end":
                            w.ended = True
                            return
        except (requests.RequestException, ValueError):
            pass
        finally:
            w.ended = True
        if not self._stop.is_set() and not w.cancelled:
            self.violation(f"stream of {w.sid} ended without stream_end while the server was up")

    def _op_session(self, http, rng, t: Tracked, op: str) -> Watch | None:
        """undo / edit / retry / clear / duplicate, against a transcript read just before."""
        resp = self._request(http, "GET", "/api/session", params={"session_id": t.sid})
        if resp is None or resp.status_code != 200:
            return None
        messages = resp.json()["session"]["messages"]
        users = users_of(messages)
        lost = missing_from(t.acked_users, users)
        if lost:
            self.violation(f"{t.sid}: acknowledged messages missing without any crash")
            self._lose(t, lost)
        positions = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        body = {"session_id": t.sid, "expected_message_count": len(messages)}
        if op in ("undo", "retry", "edit") and not positions:
            return None
        if op == "undo":
            new_users, removed = users[:-1], users[-1:]
        elif op == "retry":
            new_users, removed = users, []
        elif op == "edit":
            j = rng.randrange(len(positions))
            content = self._script(rng)
            body.update(message_index=positions[j], content=content)
            new_users, removed = users[:j] + [content], users[j:]
        elif op == "clear":
            new_users, removed = [], users
        else:
            new_users, removed = users, []
        restarts = op in ("edit", "retry")
        if op != "duplicate":
            t.in_flight = (new_users, removed, restarts)
        resp = self._request(http, "POST", f"/api/session/{op}", json=body)
        if not self._accepted(resp, t, op):
            if resp is not None:
                t.in_flight = None
            return None
        self.figures.count(op)
        if op == "duplicate":
            copy = Tracked(resp.json()["session"]["session_id"], t.owner, acked_users=list(users),
                           done_replies={u: r for u, r in t.done_replies.items() if u in users})
            with self.model_lock:
                self.model[copy.sid] = copy
            return None
        self.apply(t, new_users, removed, restarts)
        if restarts:
            self.figures.acked_messages += op == "edit"
            return self._follow(t, new_users[-1], resp.json()["stream_id"])
        return None

    @staticmethod
    def apply(t: Tracked, new_users: list, removed: list, restarted: bool) -> None:
        """Record an undo/edit/retry/clear that took effect (``restarted``: edit/retry,
        whose last user message gets a new reply)."""
        t.acked_users = list(new_users)
        for text in removed:
            t.done_replies.pop(text, None)
            if text not in new_users:
                t.removed.add(text)
        if restarted:
            t.done_replies.pop(new_users[-1], None)
        t.in_flight = None

    def _op_rename(self, http, t: Tracked) -> None:
        title = f"renamed {self.uid()}"
        t.title_pending = title
        resp = self._request(http, "POST", "/api/session/rename", json={"session_id": t.sid, "title": title})
        if resp is not None and resp.status_code == 200:
            t.title, t.title_pending = title, None
            self.figures.count("rename")

    def _op_pin(self, http, t: Tracked) -> None:
        want = not t.pinned
        t.pinned_pending = want
        resp = self._request(http, "POST", "/api/session/pin", json={"session_id": t.sid, "pinned": want})
        if resp is not None and resp.status_code == 200:
            t.pinned, t.pinned_pending = want, None
            self.figures.count("pin")

    def _op_delete(self, http, t: Tracked) -> None:
        t.delete_pending = True
        resp = self._request(http, "POST", "/api/session/delete", json={"session_id": t.sid})
        if resp is not None and resp.status_code == 200:
            t.deleted, t.delete_pending = True, False
            self.figures.count("delete")

    def _op_cancel(self, http, w: Watch) -> None:
        w.cancelled = True
        resp = self._request(http, "POST", "/api/chat/cancel", json={"stream_id": w.stream_id})
        if resp is not None and resp.status_code == 200:
            self.figures.count("cancel")
