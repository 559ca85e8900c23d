"""``GET /api/settings`` and ``POST /api/settings`` (docs/api.md "Auth and settings").

The settings are per profile (the browser's active one, :func:`api.profiles.current_profile`),
in its own settings.json (:mod:`api.settings`); the password is server-wide, in the state
dir's settings.json. Routes parse and answer; the file logic is :mod:`api.settings`.
"""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from . import compat, model_catalog, settings
from .app import app_state, auth_state
from .httputil import ApiError, error_response, field, json_body
from .profiles import DEFAULT, agent_home, current_profile, profile_dir
from .settings import (MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, SettingsUnreadable, checked_changes,
                       hash_password)

settings_bp = Blueprint("settings", __name__)
BODY_FIELDS = {"password", "remove_password", "current_password", "settings"}


def _store():
    """The request's profile's SettingsStore (the state dir's own for ``default``)."""
    name = current_profile()
    if name == DEFAULT:
        return auth_state().settings
    return settings.store_for(profile_dir(name))


def _damaged(exc: Exception) -> ApiError:
    current_app.logger.error("%s", exc)
    return ApiError("settings.json is damaged; nothing was changed (see the server log)", 500)


def _public_view(data: dict) -> dict:
    auth = auth_state()
    stored = settings.stored_values(data)
    return {"settings": stored, "defaults": settings.defaults(),
            "profile": current_profile(), "password_set": auth.enabled, "password_source": auth.password_source,
            **compat.upstream_settings_view({**settings.defaults(), **stored})}  # the upstream's flat names too


@settings_bp.get("/api/settings")
def get_settings():
    """``{settings: {name: value}, defaults: {name: value}, profile, password_set: bool,
    password_source: "config"|"settings"|null}``.

    ``settings`` holds what this profile has set (the effective value of any other is
    in ``defaults``): ``theme`` (``system|light|dark``), ``custom_instructions`` (≤ 20,000
    characters), ``default_model`` (an id of ``GET /api/models``), ``send_key``
    (``enter|ctrl-enter``). The password and its hash never leave the server. 500 if
    the profile's settings.json is damaged.
    """
    try:
        data = settings.read_settings_file(_store().path)
    except SettingsUnreadable as exc:
        raise _damaged(exc) from None
    return jsonify(_public_view(data))


def _check_password_change(body: dict) -> tuple[str | None, bool]:
    """``(new password | None, remove?)`` from the body, checked (nothing written yet)."""
    password = field(body, "password", str, required=False)
    remove = field(body, "remove_password", bool, required=False, default=False)
    if password is not None and remove:
        raise ApiError("send either 'password' or 'remove_password', not both")
    if password is None and not remove:
        return None, False
    if auth_state().password_source == "config":
        raise ApiError("the password is set with --password or HERMES_WEBUI_PASSWORD; change it there", 409)
    if password is not None and not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise ApiError(f"password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")
    if remove and not auth_state().enabled:
        raise ApiError("no password is set; there is nothing to remove")
    return password, remove


def _current_password_refusal(body: dict, sent_as: str = "current_password"):
    """None if ``current_password`` is right, else the 400/403/429 answer (rate-limited like
    logins). ``sent_as``: the field's name in the caller's shape (the upstream's flat one
    calls it ``_current_password``), so a 400 names the field the caller can send."""
    from .auth import limited_check

    current = body.get("current_password")
    if current is None:
        raise ApiError(f"removing the password needs '{sent_as}'")
    if not isinstance(current, str):
        raise ApiError(f"field '{sent_as}' must be str")
    auth = auth_state()
    refusal, ok = limited_check(auth, lambda: auth.check_password(current))
    if refusal is not None:
        return refusal
    return None if ok else error_response("the current password is wrong; nothing was changed", 403)


@settings_bp.post("/api/settings")
def post_settings():
    """Change this profile's settings and/or the server's password.

    Body: ``{settings?: {name: value | null}, password?: str (8-1024 chars),
    remove_password?: true, current_password?: str}``. A ``null`` value resets that
    setting to its default. Answers like ``GET /api/settings``; when the password was set
    or changed the response also carries ``csrf_token`` and a fresh login cookie for this
    client, and every other login ends. Removing the password (``remove_password: true``)
    needs ``current_password`` as well as the login every route needs once a password is
    set; afterwards the server is open (auth off).

    The upstream's flat shape (``{theme, send_key, _set_password, …}``) is read too
    (:func:`api.compat.upstream_settings`), and the answer carries its flat names
    (``theme``, ``send_key``, ``default_model``, ``notifications_enabled``) beside ours.

    Errors, with nothing stored: 400 an unknown field or setting, a bad value, a
    ``default_model`` not in ``GET /api/models``; 403 a wrong ``current_password``; 409
    the password comes from ``--password`` / ``HERMES_WEBUI_PASSWORD`` (change it there);
    429 too many wrong passwords; 500 a damaged settings.json (left as it is).
    """
    body = json_body()
    sent_as = "current_password"
    if compat.is_upstream_settings_body(body, BODY_FIELDS):  # the upstream's flat shape (api.compat)
        body = compat.upstream_settings(body, settings.FIELDS)
        sent_as = "_current_password"
        if body.get("current_password") is not None and not body.get("remove_password"):
            refusal = _current_password_refusal(body, sent_as)  # sent with a change: checked, never ignored
            if refusal is not None:
                return refusal
    unknown = sorted(set(body) - BODY_FIELDS)
    if unknown:
        raise ApiError(f"unknown field {unknown[0][:80]!r}; send settings, password, remove_password, current_password")
    changes = checked_changes(field(body, "settings", dict, required=False, default={}))
    if changes.get("default_model") is not None:
        model_catalog.resolve(app_state().backend, changes["default_model"],   # 400 if not listed
                              home=agent_home()["home"])
    password, remove = _check_password_change(body)
    if remove:
        refusal = _current_password_refusal(body, sent_as)
        if refusal is not None:
            return refusal
    store = _store() if changes else None
    new_hash = hash_password(password) if password is not None else None
    try:
        data = store.update(lambda d: settings.apply_changes(d, changes)) if store is not None \
            else settings.read_settings_file(_store().path)
        if new_hash is not None or remove:
            def change_password(d: dict) -> None:
                if remove:
                    d.pop("password_hash", None)
                else:
                    d["password_hash"] = new_hash
                d["revoked_logins"] = {}
            root = auth_state().settings.update(change_password)
            if current_profile() == DEFAULT:
                data = root
    except SettingsUnreadable as exc:
        raise _damaged(exc) from None
    if new_hash is None and not remove:
        return jsonify(_public_view(data))
    auth_state().set_password_hash(new_hash)
    if remove:
        current_app.logger.warning("the password was removed: anyone who can reach this server can use it")
        return jsonify(_public_view(data))
    return auth_state().login_response(_public_view(data))
