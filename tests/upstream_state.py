"""A generated state dir of the upstream web UI (nesquena/hermes-webui), for migration tests.

Every session file is written as the upstream writes it (:func:`bench.corpus.encode_upstream_session`:
its 65 metadata fields, ``messages``, then ``tool_calls``, ``anchor_activity_scenes``,
``context_messages``), plus its ``projects.json``. :func:`build_upstream_state` returns
what was written, so tests can compare.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

from bench.corpus import encode_upstream_session

T0 = 1_700_000_000.0


def chat(n: int, tag: str = "m", size: int = 40) -> list[dict]:
    """``n`` alternating user/assistant messages of about ``size`` characters."""
    pad = "x" * max(0, size - 12)
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{tag}{i} {pad}", "timestamp": T0 + i}
            for i in range(n)]


def write(sessions: Path, sid: str, messages: list[dict], *, name: str | None = None, **meta) -> bytes:
    """Write ``sessions/<sid>.json`` (or ``name``) in the upstream's layout; returns the bytes."""
    fields = {"session_id": sid, "title": f"Chat {sid}", "created_at": T0, "updated_at": T0 + 100,
              "model": "anthropic/claude-sonnet-4", "workspace": "/home/u/work", "profile": "default"}
    fields.update(meta)
    raw = encode_upstream_session(fields, messages, tool_calls=[{"name": "terminal", "snippet": "ok",
                                                                 "tid": "call_1", "assistant_msg_idx": 1}],
                                  context_messages=[{"role": "user", "content": "ctx"}])
    (sessions / (name or f"{sid}.json")).write_bytes(raw)
    return raw


def build_upstream_state(root: Path, *, big: bool = True) -> dict:
    """The upstream state dir at ``root``: returns ``{"root", "expected": {sid: messages
    our copy must hold}, "unreadable": [file], "restored": [sid], "kept_shrink": [sid]}``."""
    sessions = root / "sessions"
    sessions.mkdir(parents=True)
    (root / "settings.json").write_text(json.dumps({"theme": "dark"}))
    (root / "projects.json").write_text(json.dumps([
        {"project_id": "a1b2c3d4e5f6", "name": "Research", "color": "#3b82f6", "profile": "default",
         "created_at": T0},
        {"project_id": "0f0f0f0f0f0f", "name": "Home", "color": None, "profile": "default", "created_at": T0 + 1},
    ]))
    (sessions / "_index.json").write_text("[]")  # the upstream's own index: not a session
    expected: dict[str, list] = {}

    plain = chat(6)
    write(sessions, "plain", plain, title="Trip plan #travel #2025ideas #42", pinned=True,
          project_id="a1b2c3d4e5f6", input_tokens=120, output_tokens=300, manual_title=True)
    expected["plain"] = plain
    write(sessions, "archived", chat(2, "a"), title="Old one", archived=True, project_id="0f0f0f0f0f0f")
    expected["archived"] = chat(2, "a")
    # Tool calls the OpenAI way, reasoning, a CJK text
    tools = [{"role": "user", "content": "列出文件 please", "timestamp": T0},
             {"role": "assistant", "content": "", "reasoning": "I should list them", "timestamp": T0 + 1,
              "tool_calls": [{"id": "call_1", "type": "function",
                              "function": {"name": "terminal", "arguments": "{\"command\": \"ls\"}"}}]},
             {"role": "tool", "tool_call_id": "call_1", "content": "a.txt\nb.txt", "timestamp": T0 + 2},
             {"role": "assistant", "content": "两个文件：a.txt 和 b.txt", "timestamp": T0 + 3}]
    write(sessions, "tools", tools, title="Files")
    expected["tools"] = [tools[0],
                         {"role": "assistant", "content": "", "reasoning": "I should list them", "timestamp": T0 + 1,
                          "tool_calls": [{"id": "call_1", "name": "terminal", "args": {"command": "ls"},
                                         "result": "a.txt\nb.txt"}]},
                         tools[3]]
    # A crash left a pending prompt in the metadata and a partial reply flagged _partial
    pending = chat(2, "p") + [{"role": "assistant", "content": "half a rep", "_partial": True, "timestamp": T0 + 5}]
    write(sessions, "pending", pending, active_stream_id="deadbeef", pending_user_message="finish this please",
          pending_started_at=T0 + 4)
    expected["pending"] = chat(2, "p") + [
        {"role": "user", "content": "finish this please", "status": "interrupted", "timestamp": T0 + 4},
        {"role": "assistant", "content": "half a rep", "status": "interrupted", "timestamp": T0 + 5}]
    # A buggy version shrank this one: the .bak holds more and restores it
    write(sessions, "shrunk", chat(2, "s"))
    write(sessions, "shrunk", chat(8, "s"), name="shrunk.json.bak")
    expected["shrunk"] = chat(8, "s")
    # A deliberate undo (the upstream's uuid marker, absent from the backup): kept
    marker = uuid.uuid4().hex
    write(sessions, "undone", chat(2, "u"), intentional_shrink_generation=marker)
    write(sessions, "undone", chat(4, "u"), name="undone.json.bak")
    expected["undone"] = chat(2, "u")
    cleared = uuid.uuid4().hex
    write(sessions, "cleared", [], clear_generation=cleared)
    write(sessions, "cleared", chat(4, "c"), name="cleared.json.bak")
    expected["cleared"] = []
    # Another profile's chat
    write(sessions, "work1", chat(2, "w"), profile="work")
    # Unreadable
    (sessions / "broken.json").write_bytes(b'{"session_id": "broken", "messages": [{"role": "us')
    (sessions / "notasession.json").write_text(json.dumps({"session_id": "notasession", "hello": 1}))
    if big:
        long = chat(3000, "L", 200)
        write(sessions, "long", long, title="Three thousand")
        expected["long"] = long
        huge = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"H{i} " + "y" * 100_000,
                 "timestamp": T0 + i} for i in range(200)]  # ~20 MB
        write(sessions, "huge", huge, title="Twenty megabytes")
        expected["huge"] = huge
    return {"root": root, "expected": expected, "unreadable": ["broken.json", "notasession.json"],
            "restored": ["shrunk"], "kept_shrink": ["undone", "cleared"]}


def snapshot(root: Path) -> dict:
    """Every file under ``root`` with its bytes and mtime: to prove a run wrote nothing there."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (p.read_bytes(), st.st_mtime_ns, st.st_mode)
    return out
