"""Auto-titles: the first non-empty line of the first message, whole characters, ≤ 60."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from api.turns import AUTO_TITLE_CHARS, _extends, auto_title

PIECES = ["a", " ", "\n", "\t", "é", "e\u0301", "中", "😀", "👍🏽", "👩\u200d👩\u200d👧", "🏳\ufe0f\u200d🌈", "\u200d", "\ud800"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=120))
def test_a_title_is_one_line_of_whole_characters_at_most_60_long(pieces):
    text = "".join(pieces)
    title = auto_title(text)
    assert "\n" not in title and "\t" not in title and 0 < len(title) <= AUTO_TITLE_CHARS
    body = title[:-1] if title.endswith("…") else title
    if title.endswith("…"):
        assert body == "" or not body[-1] == "\u200d"
        first = next(ln for ln in text.replace("\ud800", "\ufffd").splitlines() if ln.strip())
        folded = " ".join(first.split())
        assert folded.startswith(body.rstrip())
        cut_at = len(body.rstrip())
        assert cut_at == len(folded) or not _extends(folded[cut_at])  # no character split in two


def test_the_title_is_the_first_non_empty_line_not_the_whole_paste():
    paste = "\n\n   \nERROR: disk full on /dev/sda1\n" + "stack line\n" * 10_000
    assert auto_title(paste) == "ERROR: disk full on /dev/sda1"
    assert auto_title("   ") == "New chat"
    family = "👩\u200d👩\u200d👧"
    assert auto_title("x" * 57 + family + " more") == "x" * 57 + "…"  # the family is not cut in two
