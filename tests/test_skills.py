"""Skills over HTTP (issue 7): round trips, validation, and hermes-agent's own view of them."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

SKILL = "---\nname: {name}\ndescription: {desc}\nversion: 1.0.0\n---\n\n# {name}\n\n{body}\n"


def skill_text(name="pdf-tools", desc="Work with PDF files", body="Use pdftotext to extract text."):
    return SKILL.format(name=name, desc=desc, body=body)


def names(server) -> list[tuple]:
    return [(s["category"], s["name"]) for s in server.get("/api/skills").json()["skills"]]


def test_skill_round_trip_list_content_search_update_delete(make_server):
    s = make_server().start()
    r = s.post("/api/skills/save", {"name": "pdf-tools", "category": "docs", "content": skill_text()})
    assert r.status_code == 200, r.text
    saved = r.json()["skill"]
    assert saved["category"] == "docs" and saved["description"] == "Work with PDF files"
    assert (s.state_dir / "skills" / "docs" / "pdf-tools" / "SKILL.md").read_text() == skill_text()
    s.post("/api/skills/save", {"name": "git-flow", "description": "Branching model", "body": "Rebase often."})
    assert names(s) == [("docs", "pdf-tools"), ("general", "git-flow")]

    content = s.get("/api/skills/content", params={"name": "pdf-tools"}).json()["skill"]
    assert content["content"] == skill_text() and content["front_matter"]["version"] == "1.0.0"
    assert content["mtime"] == saved["mtime"]

    hits = s.get("/api/skills/search", params={"q": "PDFTOTEXT"}).json()["results"]
    assert [h["name"] for h in hits] == ["pdf-tools"] and "pdftotext" in hits[0]["snippet"]
    assert [h["name"] for h in s.get("/api/skills/search", params={"q": "git"}).json()["results"]] == ["git-flow"]
    assert s.get("/api/skills/search", params={"q": ""}).json()["results"] == []

    update = {"name": "pdf-tools", "content": skill_text(body="Use qpdf."), "expected_mtime": saved["mtime"]}
    assert s.post("/api/skills/save", update).status_code == 200      # found in its category
    stale = s.post("/api/skills/save", dict(update, content=skill_text(body="stale")))
    assert stale.status_code == 409
    assert "qpdf" in s.get("/api/skills/content", params={"name": "pdf-tools"}).json()["skill"]["content"]

    assert s.post("/api/skills/delete", {"name": "pdf-tools"}).json() == {"ok": True}
    assert not (s.state_dir / "skills" / "docs" / "pdf-tools").exists()
    assert s.get("/api/skills/content", params={"name": "pdf-tools"}).status_code == 404
    assert s.post("/api/skills/delete", {"name": "pdf-tools"}).status_code == 404
    assert names(s) == [("general", "git-flow")]


@pytest.mark.parametrize("body,status", [
    ({"name": "../etc", "content": skill_text("x")}, 400),
    ({"name": "Bad Name", "content": skill_text("x")}, 400),
    ({"name": "", "content": skill_text("x")}, 400),
    ({"name": "ok", "category": "../up", "content": skill_text("ok")}, 400),
    ({"name": "ok", "category": "a/b", "content": skill_text("ok")}, 400),
    ({"name": "ok", "content": skill_text("other")}, 400),                        # front matter name differs
    ({"name": "ok", "content": "# no front matter\n"}, 400),
    ({"name": "ok", "content": "---\nname: ok\ndescription: [unclosed\n---\n\nbody\n"}, 400),   # bad YAML
    ({"name": "ok", "content": "---\n- a list\n---\n\nbody\n"}, 400),
    ({"name": "ok", "content": "---\nname: ok\n---\n\nbody\n"}, 400),              # no description
    ({"name": "ok", "content": "---\nname: ok\ndescription: d\n---\n\n  \n"}, 400),  # no body
    ({"name": "ok", "content": skill_text("ok", desc="d" * 1025)}, 400),
    ({"name": "ok", "content": skill_text("ok", body="x" * 100_001)}, 413),
    ({"name": "ok", "description": "only a description"}, 400),
    ({"name": 5, "content": "x"}, 400),
])
def test_invalid_skills_are_refused_and_nothing_is_written(live_server, body, status):
    before = sorted(p.relative_to(live_server.state_dir) for p in live_server.state_dir.rglob("*")
                    if "skills" in p.parts)
    r = live_server.post("/api/skills/save", body)
    assert r.status_code == status and "error" in r.json(), r.text
    after = sorted(p.relative_to(live_server.state_dir) for p in live_server.state_dir.rglob("*")
                   if "skills" in p.parts)
    assert after == before


def test_a_name_lives_in_one_category_and_lookups_validate_names(make_server):
    s = make_server().start()
    assert s.post("/api/skills/save", {"name": "one", "category": "a", "content": skill_text("one")}).status_code == 200
    r = s.post("/api/skills/save", {"name": "one", "category": "b", "content": skill_text("one")})
    assert r.status_code == 409 and not (s.state_dir / "skills" / "b").exists()
    assert s.get("/api/skills/content", params={"name": "../one"}).status_code == 400
    assert s.get("/api/skills/content", params={"name": "one", "category": ".."}).status_code == 400
    assert s.post("/api/skills/delete", {"name": "one", "category": "../../x"}).status_code == 400


def test_hand_made_and_broken_skills_are_listed_or_reported(make_server):
    s = make_server().start()
    root = s.state_dir / "skills"
    (root / "flat").mkdir(parents=True)                   # hermes-agent's uncategorised layout
    (root / "flat" / "SKILL.md").write_text(skill_text("flat"))
    (root / "misc" / "broken").mkdir(parents=True)
    (root / "misc" / "broken" / "SKILL.md").write_text("no front matter")
    outside = s.tmp / "outside.md"
    outside.write_text(skill_text("leak", desc="secret outside"))
    (root / "misc" / "leak").mkdir()
    os.symlink(outside, root / "misc" / "leak" / "SKILL.md")
    body = s.get("/api/skills").json()
    assert [(x["category"], x["name"]) for x in body["skills"]] == [(None, "flat")]
    assert {e["path"] for e in body["errors"]} == {"misc/broken/SKILL.md", "misc/leak/SKILL.md"}
    assert "secret outside" not in json.dumps(body)
    assert s.get("/api/skills/content", params={"name": "flat"}).json()["skill"]["category"] is None


HERMES = importlib.util.find_spec("run_agent") is not None


def hermes_view(hermes_home, code: str):
    """Run ``code`` with hermes-agent's own modules under ``hermes_home``; returns its JSON output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES")}
    env.update(HERMES_HOME=str(hermes_home), HOME=str(hermes_home.parent))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(hermes_home.parent),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not HERMES, reason="hermes-agent is not installed")
def test_with_the_hermes_backend_skills_are_the_agents_own(make_server, tmp_path):
    home = tmp_path / "hermes-home"
    s = make_server(agent="hermes", args=("--hermes-home", str(home))).start()
    r = s.post("/api/skills/save", {"name": "webui-made", "category": "notes", "content":
                                    skill_text("webui-made", desc="Made in the web UI", body="Say hello.")})
    assert r.status_code == 200, r.text
    assert (home / "skills" / "notes" / "webui-made" / "SKILL.md").is_file()
    assert not (s.state_dir / "skills").exists()
    seen = hermes_view(home, "import json; from tools.skills_tool import skills_list, skill_view; "
                             "print(json.dumps([json.loads(skills_list()), json.loads(skill_view('webui-made'))]))")
    listed, viewed = seen
    assert {"name": "webui-made", "description": "Made in the web UI", "category": "notes"}.items() <= \
        next(x for x in listed["skills"] if x["name"] == "webui-made").items()
    assert "Say hello." in viewed["content"]
    # ...and a skill hermes-agent's layout holds shows up here.
    (home / "skills" / "agent-made").mkdir()
    (home / "skills" / "agent-made" / "SKILL.md").write_text(skill_text("agent-made"))
    assert (None, "agent-made") in names(s)

