"""The upstream's settings and workspaces list, brought over by ``hermes-webui migrate``
(Flask-free; :func:`api.migrate.migrate` calls :func:`migrate_settings`).

What carries over, into the default profile (the upstream's settings are global):

* ``settings.json``: ``theme`` (``light | dark | system``; the upstream's old theme names
  such as ``slate`` or ``nord`` were dark ones: ``dark``), ``send_key`` (``enter``,
  ``ctrl+enter`` → ``ctrl-enter``) and ``notifications_enabled`` (→ ``notify_on_reply``,
  when this server has that setting), each only if not set here already, so a second run
  changes nothing and never overrides a choice made here. The rest is named in the
  report with the reason: ``password_hash`` (the upstream's PBKDF2 hash is not a format
  this server verifies, and a password is better set again, with ``--password-file`` or
  in Settings), ``default_model`` (the upstream names models of its own providers, which
  may not be one of this server's; pick it in Settings), ``shift+enter`` (not offered
  here); the upstream's many display toggles have no counterpart and are not listed.
* ``workspaces.json`` (``[{path, name}]``): each folder becomes a workspace root of the
  default profile (:mod:`api.workspace_roots`), unless it is refused there (not a folder
  on this machine, the home folder or above, or holding the state dir).

The source is only read; a damaged settings file here is left alone (fail closed) and
named in the report.
"""
from __future__ import annotations

import json
from pathlib import Path

LEGACY_DARK_THEMES = {"slate", "solarized", "monokai", "nord", "oled"}
SEND_KEYS = {"enter": "enter", "ctrl+enter": "ctrl-enter"}


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def map_settings(upstream: dict) -> tuple[dict, list]:
    """``({our name: value}, [{name, reason}] left behind)`` for the upstream's settings."""
    ours, left = {}, []
    theme = upstream.get("theme")
    if theme in ("light", "dark", "system"):
        ours["theme"] = theme
    elif isinstance(theme, str) and theme.strip().lower() in LEGACY_DARK_THEMES:
        ours["theme"] = "dark"
    send_key = upstream.get("send_key")
    if send_key in SEND_KEYS:
        ours["send_key"] = SEND_KEYS[send_key]
    elif send_key is not None:
        left.append({"name": "send_key", "reason": f"{str(send_key)[:40]!r} is not offered here (enter or ctrl+enter)"})
    if isinstance(upstream.get("notifications_enabled"), bool):
        ours["notify_on_reply"] = upstream["notifications_enabled"]
    if upstream.get("password_hash"):
        left.append({"name": "password_hash", "reason": "not carried: set a password again with --password-file "
                     "or in Settings (the upstream's hash format is not one this server verifies)"})
    if upstream.get("default_model"):
        left.append({"name": "default_model", "reason": "not carried: the upstream's model may not be one this "
                     "server lists; choose it in Settings"})
    return ours, left


def migrate_settings(src: Path, dst: Path, *, dry_run: bool = False) -> dict:
    """Bring the upstream's settings and workspaces list from ``src`` into ``dst``.

    Returns ``{settings: {name: value} carried, settings_left: [{name, reason}],
    workspaces: [path] added, workspaces_skipped: [{path, reason}]}``. With ``dry_run``
    nothing is written.
    """
    from . import settings as our_settings
    from .workspace_roots import add_extra_roots

    out = {"settings": {}, "settings_left": [], "workspaces": [], "workspaces_skipped": []}
    upstream = _read_json(Path(src) / "settings.json")
    if isinstance(upstream, dict):
        mapped, left = map_settings(upstream)
        out["settings_left"] = left
        fields = getattr(our_settings, "FIELDS", {})
        wanted = {}
        for name, value in mapped.items():
            if name not in fields:
                out["settings_left"].append({"name": name, "reason": "this server has no such setting"})
                continue
            wanted[name] = value
        try:
            path = Path(dst) / our_settings.SETTINGS_FILE
            have = (our_settings.read_settings_file(path).get("ui") or {})
            carried = {k: v for k, v in wanted.items() if k not in have}
            if carried and not dry_run:
                def change(data: dict) -> None:
                    ui = dict(data.get("ui") or {})
                    for k, v in carried.items():
                        ui.setdefault(k, v)
                    data["ui"] = ui
                our_settings.SettingsStore(Path(dst)).update(change)
            out["settings"] = carried
        except our_settings.SettingsUnreadable as exc:
            out["settings_left"].append({"name": "settings.json", "reason": f"ours is damaged; left as it is ({exc})"})
    workspaces = _read_json(Path(src) / "workspaces.json")
    if isinstance(workspaces, list):
        out["workspaces"], out["workspaces_skipped"] = add_extra_roots(Path(dst), Path(dst), workspaces,
                                                                       dry_run=dry_run)
    return out
