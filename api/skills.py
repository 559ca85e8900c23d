"""Skills: ``SKILL.md`` files with YAML front matter, browsed and edited over HTTP.

Layout (hermes-agent's): ``<skills-dir>/<category>/<name>/SKILL.md``, or
``<skills-dir>/<name>/SKILL.md`` for an uncategorised skill (``category: null``). The
skills dir is the profile's (:func:`api.profiles.skills_dir`): ``<state>/skills`` by
default, ``$HERMES_HOME/skills`` with ``--agent hermes``, so skills edited here are the
agent's. A ``SKILL.md`` starts with front matter holding at least ``name`` (equal to the
folder name) and ``description`` (≤ 1,024 characters), followed by a non-empty body;
names and categories match ``[a-z0-9][a-z0-9._-]{0,63}`` in full (``"x\n"`` is refused);
a file is ≤ 100,000 characters. These are hermes-agent's own rules, so whatever is saved
here the agent loads.

Front matter is read with bounded cost: at most :data:`FRONT_MATTER_MAX_CHARS` characters
and :data:`FRONT_MATTER_MAX_DEPTH` levels of nesting, and YAML aliases (``*name``) are
refused rather than expanded (a few hundred bytes of nested aliases expand to many MB: the
"billion laughs"). Such a file is listed under ``errors`` and refused by save (400).

Endpoints (blueprint ``skills``):

- ``GET /api/skills`` → ``{skills: [{name, category, description, mtime}], errors: [{path,
  error}]}`` sorted by category then name; unreadable skills are listed in ``errors``.
- ``GET /api/skills/content?name[&category]`` → ``{skill: {name, category, description,
  front_matter, content, mtime}}`` (``content`` is the whole file). 404 unknown, 400 when
  the name is in several categories and none is given.
- ``GET /api/skills/search?q[&limit]`` → ``{results: [{name, category, description,
  snippet}]}``, case-insensitive over name, description and body; name hits first.
- ``POST /api/skills/save {name, category?, content? | description + body, expected_mtime?}``
  → ``{skill: {name, category, description, mtime}}``. Updates the skill of that name, or
  creates it (category default ``general``). 400 invalid, 409 if the name exists in another
  category or ``expected_mtime`` is stale, 413 too long.
- ``POST /api/skills/delete {name, category?}`` → ``{ok: true}``; removes the skill's folder
  (with its references, scripts…). 404 unknown.
"""
from __future__ import annotations

import copy
import functools
import json
import os
import re

import yaml
from yaml.composer import ComposerError
from flask import Blueprint, Flask, jsonify, request

from . import safepath
from .httputil import ApiError, arg_int, arg_str, field, json_body
from .profiles import skills_dir
from .safepath import PathError

skills_bp = Blueprint("skills", __name__)

SKILL_FILE = "SKILL.md"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # always .fullmatch: "$" matches before a final "\n"
DEFAULT_CATEGORY = "general"
DESCRIPTION_MAX = 1024
CONTENT_MAX_CHARS = 100_000
READ_MAX_BYTES = 1024 * 1024
SNIPPET_CHARS = 120
_CLOSE_RE = re.compile(r"\n---[ \t]*(?:\r?\n|$)")
FRONT_MATTER_MAX_CHARS = 64 * 1024
FRONT_MATTER_MAX_DEPTH = 32


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses aliases and nesting deeper than
    :data:`FRONT_MATTER_MAX_DEPTH` while composing, before anything is expanded."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise ComposerError(None, None, "YAML aliases (*name) are not allowed in front matter",
                                              self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > FRONT_MATTER_MAX_DEPTH:
                raise ComposerError(None, None, f"nested deeper than {FRONT_MATTER_MAX_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def validate_skill_name(value, what: str = "name") -> str:
    """``value`` if it is a valid skill or category name; ApiError 400 otherwise."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise ApiError(f"invalid skill {what} {str(value)[:80]!r}: use 1-64 lowercase letters, digits, "
                       "'.', '-' or '_', starting with a letter or digit")
    return value


def parse_skill(text: str) -> tuple[dict, str]:
    """``(front_matter, body)`` of a SKILL.md; ValueError with a reason if malformed, too
    large, too deeply nested, or using YAML aliases (see the module docstring).

    Parsed texts are remembered (PyYAML's pure-Python loader takes ~0.6 s for a 45 KB
    front matter, and every listing reads every skill); each caller gets its own copy."""
    front, body = _parse_skill_cached(text)
    return copy.deepcopy(front), body


@functools.lru_cache(maxsize=256)
def _parse_skill_cached(text: str) -> tuple[dict, str]:
    text = text.lstrip("\ufeff")
    if not text.startswith("---"):
        raise ValueError("SKILL.md must start with YAML front matter between '---' lines")
    end = _CLOSE_RE.search(text, 3)
    if end is None:
        raise ValueError("the front matter is not closed by a '---' line")
    if end.start() - 3 > FRONT_MATTER_MAX_CHARS:
        raise ValueError(f"the front matter is longer than {FRONT_MATTER_MAX_CHARS} characters")
    try:
        front = yaml.load(text[3:end.start()], Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"the front matter is not valid YAML: {exc}") from None
    if not isinstance(front, dict):
        raise ValueError("the front matter must be a YAML mapping (key: value lines)")
    return front, text[end.end():]


def _root() -> str:
    root = skills_dir()
    root.mkdir(parents=True, exist_ok=True)
    return str(root)


def _rel(category: str | None, name: str, leaf: str | None = SKILL_FILE) -> str:
    return "/".join(p for p in (category, name, leaf) if p)


def _read(root: str, category: str | None, name: str) -> tuple[str, float]:
    """``(text, mtime)`` of one SKILL.md, through the safe resolver."""
    fd, st = safepath.open_file(safepath.locate(root, _rel(category, name)))
    with os.fdopen(fd, "rb") as f:
        raw = f.read(READ_MAX_BYTES + 1)
    if len(raw) > READ_MAX_BYTES:
        raise ValueError("SKILL.md is larger than 1 MiB")
    return raw.decode("utf-8", "replace"), st.st_mtime


def _scan(root: str) -> tuple[list[dict], list[dict]]:
    """Every skill under ``root``: ``[{name, category, description, mtime, front, body}]``
    and ``[{path, error}]`` for the ones that could not be read."""
    found, errors = [], []

    def add(category, name):
        try:
            text, mtime = _read(root, category, name)
            front, body = parse_skill(text)
        except (ValueError, PathError, OSError) as exc:
            errors.append({"path": _rel(category, name), "error": str(exc)})
            return
        desc = front.get("description")
        found.append({"name": name, "category": category, "description": "" if desc is None else str(desc),
                      "mtime": mtime, "front": front, "body": body})

    for top in sorted(os.scandir(root), key=lambda e: e.name):
        if top.name.startswith(".") or not top.is_dir() or not NAME_RE.fullmatch(top.name):
            continue
        if os.path.lexists(os.path.join(top.path, SKILL_FILE)):
            add(None, top.name)
            continue
        for sub in sorted(os.scandir(top.path), key=lambda e: e.name):
            if NAME_RE.fullmatch(sub.name) and sub.is_dir() and os.path.lexists(os.path.join(sub.path, SKILL_FILE)):
                add(top.name, sub.name)
    found.sort(key=lambda s: (s["category"] or "", s["name"]))
    return found, errors


def _public(skill: dict) -> dict:
    return {k: skill[k] for k in ("name", "category", "description", "mtime")}


def _find(root: str, name: str, category: str | None) -> dict | None:
    """The one skill called ``name`` (in ``category`` if given); 400 if ambiguous."""
    matches = [s for s in _scan(root)[0] if s["name"] == name and (category is None or s["category"] == category)]
    if len(matches) > 1:
        raise ApiError(f"several skills are named {name!r}; pass its category")
    return matches[0] if matches else None


def _category_arg(value) -> str | None:
    return None if value in (None, "") else validate_skill_name(value, "category")


@skills_bp.get("/api/skills")
def list_skills():
    """``{skills: [{name, category, description, mtime}], errors: [{path, error}]}``."""
    found, errors = _scan(_root())
    return jsonify(skills=[_public(s) for s in found], errors=errors)


@skills_bp.get("/api/skills/content")
def skill_content():
    """``{skill: {name, category, description, front_matter, content, mtime}}``."""
    name = validate_skill_name(arg_str("name"))
    category = _category_arg(request.args.get("category"))
    root = _root()
    skill = _find(root, name, category)
    if skill is None:
        raise ApiError(f"no skill named {name!r}", 404)
    text, _ = _read(root, skill["category"], name)
    front = json.loads(json.dumps(skill["front"], default=str))  # YAML dates and bytes as strings
    return jsonify(skill=dict(_public(skill), front_matter=front, content=text))


def _snippet(text: str, q: str) -> str:
    at = text.casefold().find(q)
    if at < 0:
        return text[:SNIPPET_CHARS].strip()
    start = max(0, at - SNIPPET_CHARS // 3)
    return " ".join(text[start:start + SNIPPET_CHARS].split())


@skills_bp.get("/api/skills/search")
def search_skills():
    """``{results: [{name, category, description, snippet}]}`` for ``q``; ``limit`` ≤ 200 (default 50)."""
    q = (request.args.get("q") or "").strip().casefold()
    limit = arg_int("limit", 50, minimum=1, maximum=200)
    if not q:
        return jsonify(results=[])
    ranked = []
    for s in _scan(_root())[0]:
        fields = (s["name"], s["description"], s["body"])
        rank = next((i for i, text in enumerate(fields) if q in text.casefold()), None)
        if rank is not None:
            ranked.append((rank, s["name"], dict(_public(s), snippet=_snippet(fields[max(rank, 1)], q))))
    ranked.sort(key=lambda r: r[:2])
    return jsonify(results=[r[2] for r in ranked[:limit]])


def _content_from(body: dict, name: str) -> str:
    """The SKILL.md text to save: ``content`` as given, or front matter built from
    ``description`` + ``body``. Validated against hermes-agent's rules (ApiError 400/413)."""
    content = field(body, "content", str, required=False)
    if content is None:
        description = field(body, "description", str)
        text = field(body, "body", str)
        content = "---\n" + yaml.safe_dump({"name": name, "description": description}, sort_keys=False,
                                           allow_unicode=True) + "---\n\n" + text
    if len(content) > CONTENT_MAX_CHARS:
        raise ApiError(f"SKILL.md is longer than {CONTENT_MAX_CHARS} characters; move detail into "
                       "references/", 413)
    try:
        front, rest = parse_skill(content)
    except ValueError as exc:
        raise ApiError(str(exc)) from None
    if front.get("name") != name:
        raise ApiError(f"the front matter's name must be {name!r} (the skill's folder name)")
    desc = front.get("description")
    if not isinstance(desc, str) or not desc.strip():
        raise ApiError("the front matter needs a non-empty 'description'")
    if len(desc) > DESCRIPTION_MAX:
        raise ApiError(f"the description is longer than {DESCRIPTION_MAX} characters")
    if not rest.strip():
        raise ApiError("SKILL.md needs instructions after the front matter")
    return content


@skills_bp.post("/api/skills/save")
def save_skill():
    """Create or update a skill (see the module docstring) → ``{skill: {…}}``."""
    body = json_body()
    name = validate_skill_name(field(body, "name", str))
    category = _category_arg(field(body, "category", str, required=False))
    expected = field(body, "expected_mtime", (int, float), required=False)
    content = _content_from(body, name)
    root = _root()
    existing = _find(root, name, None) if category is None else None
    if category is not None:
        others = [s for s in _scan(root)[0] if s["name"] == name and s["category"] != category]
        if others:
            raise ApiError(f"a skill named {name!r} already exists in category "
                           f"{others[0]['category'] or '(none)'!r}", 409)
    if existing is not None:
        category = existing["category"]
    elif category is None:
        category = DEFAULT_CATEGORY
    loc = safepath.locate(root, _rel(category, name), follow_final=False)
    st = safepath.write_file(loc, content.encode("utf-8"), expected_mtime=expected, create_dirs=True)
    front, _ = parse_skill(content)
    return jsonify(skill={"name": name, "category": category, "description": front["description"],
                          "mtime": st.st_mtime})


@skills_bp.post("/api/skills/delete")
def delete_skill():
    """``{name, category?}`` → ``{ok: true}``; removes the skill's whole folder."""
    body = json_body()
    name = validate_skill_name(field(body, "name", str))
    category = _category_arg(field(body, "category", str, required=False))
    root = _root()
    skill = _find(root, name, category)
    if skill is None:
        raise ApiError(f"no skill named {name!r}", 404)
    safepath.remove(safepath.locate(root, _rel(skill["category"], name, None), follow_final=False),
                    recursive=True)
    return jsonify(ok=True)


def init_app(app: Flask) -> None:
    """Register the skills blueprint."""
    app.register_blueprint(skills_bp)
