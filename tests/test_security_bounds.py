"""What one request may cost (issue 14 item 5): YAML alias bombs in SKILL.md, markdown
renders that explode, and JSON bodies nested past the interpreter's recursion limit."""
from __future__ import annotations

import json
import time

import pytest
import requests

from api import render

from .helpers import LiveServer, wait_until

# 348 bytes of front matter; expanded, the last alias is 9**9 strings (6.7 MB at one level less).
ALIAS_BOMB = """---
name: bomb
description: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
---

Body.
"""
DEEP_YAML = "---\nname: deep\ndescription: d\nx: " + "[" * 5000 + "]" * 5000 + "\n---\n\nBody.\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = LiveServer(tmp_path_factory.mktemp("bounds")).start()
    yield s
    s.stop()


def timed(fn):
    t0 = time.monotonic()
    result = fn()
    return result, time.monotonic() - t0


# -- SKILL.md front matter ----------------------------------------------------------------


def test_a_yaml_alias_bomb_in_a_skill_is_refused_not_expanded(server):
    for name, text in (("bomb", ALIAS_BOMB), ("deep", DEEP_YAML)):
        folder = server.state_dir / "skills" / "general" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "SKILL.md").write_text(text)
    (server.state_dir / "skills" / "general" / "fine").mkdir(exist_ok=True)
    (server.state_dir / "skills" / "general" / "fine" / "SKILL.md").write_text(
        "---\nname: fine\ndescription: ok\n---\n\nDo it.\n")
    resp, took = timed(lambda: server.get("/api/skills"))
    assert resp.status_code == 200 and took < 2, took
    assert len(resp.content) < 20_000
    listing = resp.json()
    assert [s["name"] for s in listing["skills"]] == ["fine"]
    errors = {e["path"]: e["error"] for e in listing["errors"]}
    assert "alias" in errors["general/bomb/SKILL.md"]
    assert "nested" in errors["general/deep/SKILL.md"]
    for query in ({"name": "bomb"}, {"name": "deep"}):
        assert server.get("/api/skills/content", params=query).status_code == 404
    assert server.get("/api/skills/search", params={"q": "lol"}).json()["results"] == []
    saved, took = timed(lambda: server.post("/api/skills/save", {"name": "bomb2", "content": ALIAS_BOMB.replace(
        "name: bomb", "name: bomb2")}))
    assert saved.status_code == 400 and "alias" in saved.json()["error"] and took < 2
    assert not (server.state_dir / "skills" / "general" / "bomb2").exists()


def test_ordinary_yaml_front_matter_still_loads(server):
    text = ("---\nname: rich\ndescription: \"A skill: with punctuation\"\nmetadata:\n  tags: [a, b]\n"
            "  hermes:\n    requires: {python: '3.11'}\nversion: 1.2\n---\n\nSteps.\n")
    r = server.post("/api/skills/save", {"name": "rich", "content": text})
    assert r.status_code == 200, r.text
    skill = server.get("/api/skills/content", params={"name": "rich"}).json()["skill"]
    assert skill["front_matter"]["metadata"] == {"tags": ["a", "b"], "hermes": {"requires": {"python": "3.11"}}}


# -- POST /api/render ---------------------------------------------------------------------

WIDE_TABLE = "| " * 256 + "|\n" + "|-" * 256 + "|\n" + "|\n" * 250  # ~1.5 KB, 64,000 cells once padded


@pytest.mark.parametrize("label,text", [
    ("wide-table", WIDE_TABLE),
    ("bracket-flood-1MiB", "[" * (1 << 20)),
    ("image-bracket-flood", "![" * 60_000),
    ("emphasis-flood", "_a" * 60_000),
    ("too-long", "word " * 50_000),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "")
def test_costly_markdown_comes_back_as_plain_text_fast(server, label, text):
    resp, took = timed(lambda: server.post("/api/render", {"text": text}))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["plain"] is True, label
    assert took < 1.5, (label, took)
    assert len(body["html"]) < 2 * len(text) + 100               # no blow-up of the output
    assert body["html"].startswith('<pre class="plain-text">')
    assert "<table" not in body["html"] and "<script" not in body["html"]


def test_ordinary_markdown_still_renders_and_says_so(server):
    text = "# Title\n\n| a | b |\n|---|:-:|\n| 1 | 2 |\n\nSee [docs](https://example.com) and *this*.\n"
    body = server.post("/api/render", {"text": text}).json()
    assert body["plain"] is False and "<table>" in body["html"] and "<em>this</em>" in body["html"]
    batch = server.post("/api/render", {"texts": [text, WIDE_TABLE, "<script>x</script>"]}).json()
    assert batch["plain"] == [False, True, False]
    assert "<table>" in batch["html"][0] and "&lt;script&gt;" in batch["html"][2]
    assert "&lt;script&gt;" in server.post("/api/render", {"text": "<script>x</script>" * 50_000}).json()["html"]


def test_a_batch_past_its_time_budget_renders_the_rest_plain():
    texts = ["*a*", "*b*", "*c*"]
    html, plain = render.render_bounded(texts, budget_seconds=0)
    assert plain == [True, True, True] and html[0] == '<pre class="plain-text">*a*</pre>'
    html, plain = render.render_bounded(texts, budget_seconds=60)
    assert plain == [False, False, False] and "<em>b</em>" in html[1]


def test_table_cell_estimate_is_an_upper_bound():
    assert render.table_cells(WIDE_TABLE) >= 256 * 250
    assert render.table_cells("| a | b |\n|---|---|\n| 1 | 2 |\n\nafter\n") == 2 * 2
    assert render.table_cells("> | a |\n> |---|\n> | 1 |\n") == 2
    assert render.table_cells("no tables - here | at all\n") == 0


# -- deeply nested JSON bodies ------------------------------------------------------------


def nested(levels: int) -> str:
    return '{"password": ' + "[" * levels + "]" * levels + "}"


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory):
    s = LiveServer(tmp_path_factory.mktemp("nested"), args=("--password", "correct horse")).start()
    yield s
    s.stop()


@pytest.mark.parametrize("levels", [900, 100_000])
def test_deeply_nested_json_is_a_400_with_one_log_line_even_before_login(locked_server, levels):
    s = locked_server
    start, refused = len(s.output), 0
    for path in ("/api/auth/login", "/api/render"):
        r = requests.post(s.url(path), data=nested(levels), timeout=30,
                          headers={"Content-Type": "application/json", "Origin": s.url("")})
        if path == "/api/render" and r.status_code == 401:
            continue  # not logged in: refused before the body is read, which is fine too
        assert r.status_code == 400, (path, r.status_code, r.text[:300])
        assert "nested" in r.json()["error"]
        refused += 1
    wait_until(lambda: len([ln for ln in s.output[start:] if "nested" in ln]) >= refused, timeout=5,
               message="one log line per refusal")
    logged = "".join(s.output[start:])
    assert "Traceback" not in logged and len(logged) < 3_000, logged[:3_000]
    assert len([ln for ln in s.output[start:] if "nested" in ln]) == refused
    ok = requests.post(s.url("/api/auth/login"), json={"password": "correct horse"}, timeout=30,
                       headers={"Origin": s.url("")})
    assert ok.status_code == 200, ok.text


def test_nested_json_in_every_json_route_is_refused_and_nothing_is_created(server):
    before = sorted(p.name for p in server.sessions_dir.iterdir())
    body = json.dumps({"title": json.loads("[" * 100 + "]" * 100)})
    r = requests.post(server.url("/api/session/new"), data=body, timeout=30,
                      headers={"Content-Type": "application/json", "Origin": server.url("")})
    assert r.status_code == 400 and "nested" in r.json()["error"]
    assert sorted(p.name for p in server.sessions_dir.iterdir()) == before
