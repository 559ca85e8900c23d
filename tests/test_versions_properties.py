"""Properties of api.versions (issue 17 item 1), for any sequence of retries, edits, new
turns and switches: nothing is ever lost or duplicated by a switch, switching back restores
exactly what was shown, the summary matches, and the file layout round-trips."""
from __future__ import annotations

import json
from collections import Counter

from hypothesis import given, settings, strategies as st

from api import versions
from api.codec import encode_session, read_header

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


def every_message(messages: list, stored: dict) -> Counter:
    """All messages of every version (shown and stored), counted by their JSON."""
    seen = Counter(json.dumps(m, sort_keys=True) for m in messages)
    for _at, _n, _count, tail in versions.all_tails(stored):
        seen.update(json.dumps(m, sort_keys=True) for m in tail["messages"])
    return seen


@st.composite
def histories(draw):
    """A transcript and its versions built by random retries/edits, turns and switches."""
    counter = iter(range(10_000))
    def turn(text):
        n = next(counter)
        return [{"role": "user", "content": text, "n": n}, {"role": "assistant", "content": f"re: {text}", "n": n}]
    messages = turn(draw(TEXT))
    stored: dict = {}
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["turn", "branch", "switch"]))
        if kind == "turn":
            messages = messages + turn(draw(TEXT))
        elif kind == "branch":
            at = draw(st.sampled_from(range(0, len(messages), 2)))
            messages, stored = versions.branch(messages, stored, at)
            messages = messages + turn(draw(TEXT))          # the retry's or the edit's new turn
        else:
            pts = versions.points(stored)
            if pts:
                key = draw(st.sampled_from(sorted(pts)))
                messages, stored = versions.switch(messages, stored, int(key), draw(st.integers(0, pts[key][0] - 1)))
    return messages, stored


@settings(max_examples=150, deadline=None)
@given(histories(), st.data())
def test_a_switch_loses_nothing_and_switching_back_restores_exactly(history, data):
    messages, stored = history
    pts = versions.points(stored)
    assert all(int(k) < len(messages) for k in pts)            # every point is on a shown message
    if not pts:
        return
    key = data.draw(st.sampled_from(sorted(pts)))
    count, current = pts[key]
    target = data.draw(st.integers(0, count - 1))
    after, after_stored = versions.switch(messages, stored, int(key), target)
    assert every_message(after, after_stored) == every_message(messages, stored)
    assert after[:int(key)] == messages[:int(key)]
    assert versions.points(after_stored)[key] == [count, target]
    back, back_stored = versions.switch(after, after_stored, int(key), current)
    assert back == messages and back_stored == stored


@settings(max_examples=100, deadline=None)
@given(histories())
def test_the_file_keeps_a_plain_transcript_and_a_small_prefix(history):
    messages, stored = history
    meta = {"session_id": "s1", "title": "t", "versions": stored}
    versions.refresh_points(meta)
    raw = encode_session(meta, messages)
    whole = json.loads(raw)
    assert whole["messages"] == messages and whole.get("versions", {}) == stored
    prefix, _ = read_header(raw, len(raw))
    assert "versions" not in prefix
    assert versions.summary(prefix) == {k: {"count": c, "current": i} for k, (c, i) in versions.points(stored).items()}
    assert raw.endswith(b"]}\n") if not stored else b'\n],\n"versions":' in raw


@settings(max_examples=100, deadline=None)
@given(histories())
def test_an_import_check_accepts_what_we_write(history):
    messages, stored = history
    assert versions.check(json.loads(json.dumps(stored)), len(messages), lambda m, _w: m, "s") == stored


# ---------------------------------------------------------------- the store's cheap paths


def test_a_session_with_versions_keeps_the_cheap_reads_and_appends(tmp_path):
    """The tail reader steps over the versions line: a window, the whole array and a
    turn's append cost what they cost without versions (no index of the messages is
    built), and the append copies the versions line byte for byte."""
    from api import codec
    from api.models import SessionStore
    from api.streams import session_lock

    store = SessionStore(tmp_path / "sessions")
    session = store.create(title="versions")
    big = "长" * 40_000                                    # a file well over the index cache's floor
    session.messages = [{"role": "user", "content": f"q{i} {big}"} for i in range(3)]
    session.messages, session.meta["versions"] = versions.branch(session.messages, {}, 1)
    session.messages += [{"role": "user", "content": "q1 again"}, {"role": "assistant", "content": "a1 again"}]
    with session_lock(session.session_id):
        session.save()
    path = store.path(session.session_id)
    line = path.read_bytes().rsplit(b"\n", 2)[-2]
    assert line.startswith(b'"versions":')
    builds = codec.MESSAGE_INDEXES.builds
    meta, window, offset = store.read_window(session.session_id, 1, None)
    assert window == [{"role": "assistant", "content": "a1 again"}] and offset == 2
    assert versions.summary(meta) == {"1": {"count": 2, "current": 1}} and "versions" not in meta
    _meta, array = store.read_all_raw(session.session_id)
    assert json.loads(array) == session.messages
    with session_lock(session.session_id):
        store.append_messages(session.session_id, [{"role": "user", "content": "next"}], {})
    assert codec.MESSAGE_INDEXES.builds == builds             # no full parse on any of these
    raw = path.read_bytes()
    assert raw.rsplit(b"\n", 2)[-2] == line
    full = store.load(session.session_id)
    assert [m["content"] for m in full.messages][-3:] == ["q1 again", "a1 again", "next"]
    assert full.meta["versions"] == session.meta["versions"] and full.meta["message_count"] == 4
