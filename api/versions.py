"""Versions of a conversation: a retry or an edit keeps what it replaces (docs/architecture.md §3
"Versions"). Pure functions on a transcript and its versions map; Flask-free, no I/O.

The transcript shown stays the plain ``messages`` list of the session file (invariant 1:
every reader of the file sees an ordinary conversation). The other versions live in one
top-level key, ``versions``, written *after* ``messages`` (:data:`api.codec.TRAILING_KEYS`)
so the metadata prefix stays small (invariant 8)::

    "versions": {"<i>": {"current": k, "tails": [tail, …, null, …]}}
    tail = {"messages": [...], "versions": {…the same shape, keys > i…}}

``<i>`` is the index where the versions part ways (a retry or an edit: the user message
that starts the exchange; an import: wherever the source's tree branches). Each version is
the *tail* of the conversation from ``i`` on. ``tails[current]`` is ``null``: that version
is the one shown, i.e. ``messages[i:]`` together with the top-level entries whose keys are
greater than ``i``. Switching to version ``j`` stores the shown tail (with those entries)
in ``tails[current]`` and puts ``tails[j]`` in its place, so versions nest: a retry inside
version 2 of an earlier edit goes with version 2. Keys are absolute message indexes, in a
stored tail too (its messages would start at ``i``).

The metadata prefix carries a derived summary, ``version_points: {"<i>": [count,
current]}``, so ``GET /api/session`` reports the versions without parsing them
(:func:`refresh_points`, :func:`summary`).
"""
from __future__ import annotations

import copy

MAX_DEPTH = 64   # nesting of versions inside versions kept by an import (deeper ones are dropped)


class VersionError(ValueError):
    """A request names a version that does not exist; the message says which."""


def _entries(versions) -> dict:
    return versions if isinstance(versions, dict) else {}


def _valid_entry(entry) -> bool:
    if not isinstance(entry, dict):
        return False
    tails, current = entry.get("tails"), entry.get("current")
    return (isinstance(tails, list) and len(tails) >= 2 and isinstance(current, int)
            and not isinstance(current, bool) and 0 <= current < len(tails) and tails[current] is None
            and all(isinstance(t, dict) and isinstance(t.get("messages"), list)
                    for i, t in enumerate(tails) if i != current))


def points(versions) -> dict:
    """``{"<i>": [count, current]}`` of a versions map (malformed entries left out)."""
    return {k: [len(e["tails"]), e["current"]] for k, e in _entries(versions).items()
            if _valid_entry(e) and k.isdigit()}


def refresh_points(meta: dict) -> None:
    """Set ``meta["version_points"]`` from ``meta["versions"]`` (both removed when there
    are none). Called by every full save (:meth:`api.models.SessionStore._write_locked`)."""
    found = points(meta.get("versions"))
    if found:
        meta["version_points"] = found
    else:
        meta.pop("version_points", None)
        meta.pop("versions", None)


def summary(meta: dict) -> dict:
    """What the API shows: ``{"<i>": {"count": n, "current": k}}`` (``current`` 0-based),
    from the prefix's ``version_points``; ``{}`` when there are none."""
    raw = meta.get("version_points")
    out = {}
    if isinstance(raw, dict):
        for k, v in raw.items():
            if (isinstance(k, str) and k.isdigit() and isinstance(v, list) and len(v) == 2
                    and all(isinstance(x, int) and not isinstance(x, bool) for x in v) and 0 <= v[1] < v[0]):
                out[k] = {"count": v[0], "current": v[1]}
    return out


def _split(messages: list, versions: dict, at: int) -> tuple[dict, dict]:
    """``(the shown tail from at, the entries that stay at top level)``."""
    inner = {k: v for k, v in versions.items() if k.isdigit() and int(k) > at}
    outer = {k: v for k, v in versions.items() if not (k.isdigit() and int(k) > at)}
    tail = {"messages": list(messages[at:])}
    if inner:
        tail["versions"] = inner
    return tail, outer


def branch(messages: list, versions, at: int) -> tuple[list, dict]:
    """Keep the shown conversation from ``at`` on as a version and start a new, empty one
    there (a retry or an edit; the new turn then appends its messages).

    Returns ``(messages[:at], versions)``; the inputs are not changed. The new version is
    the last one and the one shown.
    """
    versions = copy.copy(_entries(versions))
    tail, versions = _split(messages, versions, at)
    key = str(at)
    entry = versions.get(key)
    if _valid_entry(entry):
        tails = list(entry["tails"])
        tails[entry["current"]] = tail
    else:
        tails = [tail]
    tails.append(None)
    versions[key] = {"current": len(tails) - 1, "tails": tails}
    return list(messages[:at]), versions


def switch(messages: list, versions, at: int, version: int) -> tuple[list, dict]:
    """Show version ``version`` (0-based) of the versions at ``at``.

    Returns ``(messages, versions)`` with the shown tail stored and version ``version`` in
    its place; the inputs are not changed. Raises :class:`VersionError` when ``at`` has no
    versions or ``version`` is out of range.
    """
    versions = copy.copy(_entries(versions))
    entry = versions.get(str(at))
    if not _valid_entry(entry):
        raise VersionError(f"message {at} has no other versions")
    count = len(entry["tails"])
    if not 0 <= version < count:
        raise VersionError(f"version {version} is out of range: message {at} has {count} versions (0–{count - 1})")
    if version == entry["current"]:
        return list(messages), versions
    shown, versions = _split(messages, versions, at)
    chosen = entry["tails"][version]
    tails = list(entry["tails"])
    tails[entry["current"]], tails[version] = shown, None
    versions[str(at)] = {"current": version, "tails": tails}
    versions.update(_entries(chosen.get("versions")))
    return list(messages[:at]) + list(chosen["messages"]), versions


def truncate(versions, length: int) -> dict:
    """The versions that still belong to a transcript cut to ``length`` messages (undo,
    clear): entries at ``length`` or later go with the messages they branch from."""
    return {k: v for k, v in _entries(versions).items() if k.isdigit() and int(k) < length}


def all_tails(versions):
    """Every stored tail of a versions map, nested ones after the tail that holds them, as
    ``(index, number, count, tail)`` with ``number`` 0-based of ``count`` (an export lists
    them; an import checks their messages)."""
    for k in sorted((k for k in _entries(versions) if k.isdigit()), key=int):
        entry = versions[k]
        if not _valid_entry(entry):
            continue
        for n, tail in enumerate(entry["tails"]):
            if tail is not None:
                yield int(k), n, len(entry["tails"]), tail
                yield from all_tails(tail.get("versions"))


def check(versions, length: int, check_message, where: str, *, base: int = 0, depth: int = 0) -> dict:
    """A versions map read from an import, validated against a transcript of ``length``
    messages that starts at index ``base``: keys ``base < i < base + length`` (at the top
    level ``0 <= i <= length``: an export taken while a retry's turn runs has the new,
    still empty version shown at ``length``), ``current`` in range with a ``null`` tail, at
    least two versions, every stored tail non-empty. ``check_message(msg, where)`` validates (and may
    rewrite) each message. Returns the cleaned map; raises ValueError naming what is wrong.
    """
    if versions is None:
        return {}
    if not isinstance(versions, dict):
        raise ValueError(f"{where}: \"versions\" must be an object")
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: versions are nested more than {MAX_DEPTH} deep")
    out = {}
    for key, entry in versions.items():
        here = f"{where}, versions at {key}"
        low, high = (0, length + 1) if depth == 0 else (base + 1, base + length)
        if not (isinstance(key, str) and key.isdigit() and low <= int(key) < high):
            raise ValueError(f"{here}: not the index of a message of this conversation")
        if not _valid_entry(entry):
            raise ValueError(f"{here}: needs \"tails\" (two or more) and \"current\", the shown one, whose tail is null")
        tails = []
        for n, tail in enumerate(entry["tails"]):
            if tail is None:
                tails.append(None)
                continue
            msgs = [check_message(m, f"{here}, version {n}, message {i}") for i, m in enumerate(tail["messages"])]
            if not msgs:
                raise ValueError(f"{here}, version {n}: holds no message")
            clean = {"messages": msgs}
            inner = check(tail.get("versions"), len(msgs), check_message, f"{here}, version {n}",
                          base=int(key), depth=depth + 1)
            if inner:
                clean["versions"] = inner
            tails.append(clean)
        out[key] = {"current": entry["current"], "tails": tails}
    return out
