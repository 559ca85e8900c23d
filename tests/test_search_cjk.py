"""Search finds words in every script: Chinese, Japanese and Korean words inside a
sentence (no spaces between words), in messages, replies that just finished and renamed
titles, with the matched text marked in the snippet."""
from __future__ import annotations

from .test_search import chat, hits, search


def _marked(hit: dict) -> list[str]:
    return [hit["snippet"][a:b] for a, b in hit["match_ranges"]]


def test_a_chinese_word_inside_a_sentence_is_found_and_marked(live_server):
    s = live_server
    sid = s.new_session(title="Travel")
    chat(s, sid, "我们明天去北京大学参观图书馆然后吃午饭")
    found = hits(s, "图书馆")
    assert set(found) == {sid}
    assert _marked(found[sid]) == ["图书馆"] and found[sid]["message_index"] in (0, 1)
    assert set(hits(s, "北京")) >= {sid} and sid in hits(s, "馆")
    assert sid not in hits(s, "上海")
    assert sid not in hits(s, "馆书图")  # the same characters in another order are another word


def test_japanese_and_korean_words_are_found(live_server):
    s = live_server
    ja = s.new_session(title="日本語")
    chat(s, ja, "東京都の天気は明日晴れるでしょうか")
    ko = s.new_session(title="한국어")
    chat(s, ko, "서울에서 부산까지 기차로 가고 싶어요")
    assert set(hits(s, "天気")) == {ja} and _marked(hits(s, "天気")[ja]) == ["天気"]
    assert set(hits(s, "カタカナ")) == set()
    assert set(hits(s, "서울")) == {ko} and _marked(hits(s, "부산")[ko]) == ["부산"]
    assert set(hits(s, "京都 晴れ")) == {ja}  # two words, both required
    assert hits(s, "京都 雨") == {}


def test_a_word_mixed_with_latin_text_and_a_renamed_title_are_found(live_server):
    s = live_server
    sid = s.new_session(title="plain")
    chat(s, sid, "the iPhone用ケース arrived")
    assert sid in hits(s, "ケース")
    assert sid in hits(s, "iphone ケース")
    s.post("/api/session/rename", {"session_id": sid, "title": "买手机壳的记录"})
    found = hits(s, "手机")
    assert sid in found and found[sid]["message_index"] is None and _marked(found[sid]) == ["手机"]


def test_a_reply_that_just_finished_is_found(live_server):
    s = live_server
    sid = s.new_session(title="echo")
    chat(s, sid, "请记住这个词语火锅店")  # the fake agent echoes it: the reply holds it too
    messages = s.session(sid)["messages"]
    assert messages[-1]["role"] == "assistant" and "火锅店" in messages[-1]["content"]
    assert sid in hits(s, "火锅")
    assert search(s, "火锅")["partial"] is False
