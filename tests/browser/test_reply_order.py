"""Replies read in the order they happened, in a real browser (issue 16): text, tool card,
text, live and after a reload; no words run together or doubled spaces where the
rendered part of a streaming reply meets its plain tail; "Jump to latest" when scrolled
up, during a reply and after it; long code blocks fold; math, task lists, footnotes and
tables that scroll on a phone; Read aloud and dictation where the browser offers them."""
from __future__ import annotations

import re

import pytest

from ..helpers import fake_script
from .conftest import PHONE, sid_of, wait_reply_finished, write_session
from .test_attachments import png

pytestmark = pytest.mark.browser

# The reply's body, top to bottom: "md:<text>" for a text piece, "tools:<names>" for a group.
ORDER = """() => [...document.querySelectorAll('.msg-assistant')].pop().querySelectorAll('.msg-body > .md, .msg-body > .tools')
  .values().map(el => el.matches('.md') ? 'md:' + el.innerText.trim()
    : 'tools:' + [...el.querySelectorAll('.tool-name')].map(n => n.textContent).join(',')).toArray()"""


def send(page, text: str) -> None:
    page.fill("#composer-input", text)
    page.click("#send-btn")


def test_a_tool_in_the_middle_shows_text_card_text_live_and_after_reload(live_server, open_page):
    page = open_page(live_server)
    send(page, fake_script(tokens=6, delay_ms=150, tools=[{"name": "search", "args": {"q": "x"}, "result": "found",
                                                            "duration_ms": 300}]))
    # live: the card comes after the first half of the text, before the rest has arrived
    page.wait_for_function("() => document.querySelector('.msg-assistant.streaming .tools + .md')")
    live = page.evaluate(ORDER)
    assert live[0] == "md:t0 t1 t2" and live[1] == "tools:search" and live[2].startswith("md:t3")
    wait_reply_finished(page)
    assert page.evaluate(ORDER) == ["md:t0 t1 t2", "tools:search", "md:t3 t4 t5"]
    sid_of(page)
    page.reload()
    page.wait_for_selector("html[data-ready]")
    wait_reply_finished(page)
    assert page.evaluate(ORDER) == ["md:t0 t1 t2", "tools:search", "md:t3 t4 t5"]
    assert page.locator(".msg-assistant .tool-card[data-state='ok']").count() == 1


def test_continue_keeps_the_order_of_a_reply_with_a_tool(live_server, open_page):
    page = open_page(live_server)
    send(page, fake_script(tokens=2, delay_ms=50, tools=[{"name": "look", "result": "ok"}], finish="length"))
    wait_reply_finished(page)
    assert page.evaluate(ORDER) == ["md:t0", "tools:look", "md:t1"]
    page.locator(".resume-notice").get_by_role("button", name="Continue").click()
    page.wait_for_function("() => !document.querySelector('.msg-assistant.streaming')"
                           " && document.querySelectorAll('.msg-assistant .tool-card').length === 2")
    expected = ["md:t0", "tools:look", "md:t1 t0", "tools:look", "md:t1"]   # the cut text goes on where it stopped
    assert page.evaluate(ORDER) == expected and page.locator(".msg-assistant").count() == 1
    page.reload()
    page.wait_for_selector("html[data-ready]")
    wait_reply_finished(page)
    assert page.evaluate(ORDER) == expected


def test_streamed_text_never_runs_words_together_or_doubles_spaces(live_server, open_page):
    page = open_page(live_server)
    # Record what the streaming reply shows at every frame until it ends.
    page.evaluate("""() => { window.seen = []; const tick = () => {
        const el = document.querySelector('.msg-assistant.streaming .md');
        if (el) window.seen.push(el.innerText);
        if (!window.stopWatching) requestAnimationFrame(tick); };
      requestAnimationFrame(tick); }""")
    send(page, fake_script(tokens=60, delay_ms=25))
    wait_reply_finished(page)
    seen = page.evaluate("() => { window.stopWatching = true; return window.seen; }")
    assert len(seen) > 20
    bad = [s for s in seen if re.search(r"t\d+t\d", s) or "  " in s.strip()]
    assert bad == [], bad[:3]
    assert page.locator(".msg-assistant .md").last.inner_text().strip() == " ".join(f"t{i}" for i in range(60))


def scrolled_up(page) -> None:
    page.eval_on_selector("#messages-scroll", "el => el.scrollTo(0, 0)")


def at_bottom(page) -> bool:
    return page.eval_on_selector("#messages-scroll", "el => el.scrollHeight - el.scrollTop - el.clientHeight < 4")


def test_jump_to_latest_appears_when_scrolled_up_and_brings_the_reply_back(live_server, open_page):
    page = open_page(live_server)
    send(page, fake_script(tokens=2500))
    wait_reply_finished(page)
    assert page.locator("#jump-latest").is_hidden()
    scrolled_up(page)
    page.locator("#jump-latest").wait_for(state="visible")
    page.click("#jump-latest")
    page.wait_for_function("() => document.querySelector('#jump-latest').hidden")
    assert at_bottom(page)
    # during a reply: scrolled up, the reply goes on below; the button brings the view
    # back and the chat follows the reply again to its end
    send(page, fake_script(tokens=1500, delay_ms=4))
    page.wait_for_selector(".msg-assistant.streaming .md")
    scrolled_up(page)
    page.wait_for_selector("#jump-latest.live:not([hidden])")
    page.click("#jump-latest")
    wait_reply_finished(page, count=2)
    page.wait_for_function("() => { const el = document.querySelector('#messages-scroll');"
                           " return el.scrollHeight - el.scrollTop - el.clientHeight < 4; }")
    assert page.locator("#jump-latest").is_hidden()


CODE = "\n".join(f"line_{i} = {i}" for i in range(80))
RICH = f"""Here is the code:

```python
{CODE}
```

- [x] done
- [ ] to do

Euler: $e^{{i\\pi}} + 1 = 0$ and a footnote[^n].

| name | a long column heading | another long column heading | yet another heading | and one more |
|---|---|---|---|---|
| x | some words in a cell | more words in a cell | still more words | the last words |

![diagram](https://example.com/d.png) and a workspace file: ![chart](chart.png)

[^n]: The note.
"""


def test_long_code_folds_and_rich_markdown_is_styled_on_a_phone(live_server, open_page):
    write_session(live_server.sessions_dir, "rich", "Rich", [
        {"role": "user", "content": "show me", "timestamp": 1_700_000_000},
        {"role": "assistant", "content": RICH, "timestamp": 1_700_000_001, "status": "complete"},
    ])
    r = live_server.post("/api/upload", data={"session_id": "rich"}, files={"file": ("chart.png", png(), "image/png")},
                         headers={"Origin": live_server.url("")})
    assert r.status_code == 200, r.text
    page = open_page(live_server, "/?s=rich", viewport=PHONE)
    block = page.locator(".msg-assistant .code-block")
    block.wait_for()
    pre = block.locator("pre")
    assert pre.evaluate("el => el.scrollHeight > el.clientHeight + 100")       # folded
    fold = block.locator(".fold-btn")
    assert fold.inner_text() == "Show all 80 lines" and fold.get_attribute("aria-expanded") == "false"
    fold.click()
    assert pre.evaluate("el => el.scrollHeight <= el.clientHeight + 1")        # all lines shown
    assert fold.get_attribute("aria-expanded") == "true"
    md = page.locator(".msg-assistant .md")
    assert md.locator("input.task-list-item-checkbox:checked").count() == 1
    assert md.locator(".contains-task-list").evaluate("el => getComputedStyle(el).listStyleType") == "none"
    assert md.locator("math").count() == 1 and md.locator("math").evaluate("el => el.getBoundingClientRect().height") > 5
    assert md.locator("section.footnotes li").count() == 1
    wrap = md.locator(".table-wrap")
    assert wrap.evaluate("el => el.scrollWidth > el.clientWidth")              # scrolls sideways on a phone
    assert wrap.evaluate("el => el.getBoundingClientRect().right <= window.innerWidth")
    remote = md.locator("a.remote-image")
    assert "example.com" in remote.inner_text() and md.locator("img[src*='example.com']").count() == 0
    # a relative image is the chat's workspace file, its address filled in by the page
    page.wait_for_function("() => document.querySelector('.md img[data-ws-path=\"chart.png\"]')?.naturalWidth === 24")


SPEECH_FAKES = """
window.spoken = [];
window.speechSynthesis.speak = (u) => { window.spoken.push(u.text); setTimeout(() => u.dispatchEvent(new Event('end')), 50); };
window.SpeechRecognition = class extends EventTarget {
  start() { setTimeout(() => {
    const e = new Event('result'); e.resultIndex = 0;
    e.results = [Object.assign([{ transcript: 'hello from the microphone' }], { isFinal: true })];
    this.dispatchEvent(e); this.dispatchEvent(new Event('end')); }, 20); }
  stop() { this.dispatchEvent(new Event('end')); }
};
"""


def test_read_aloud_and_dictation_use_the_browsers_speech(live_server, browser, console):
    ctx = browser.new_context()
    ctx.add_init_script(SPEECH_FAKES)
    page = ctx.new_page()
    console.attach(page)
    try:
        page.goto(live_server.url("/"))
        page.wait_for_selector("html[data-ready]")
        page.click("#mic-btn")
        page.wait_for_function("() => document.querySelector('#composer-input').value === 'hello from the microphone'")
        assert page.is_enabled("#send-btn")
        page.click("#send-btn")
        wait_reply_finished(page)
        page.locator(".msg-assistant .msg-speak").click()
        page.wait_for_function("() => window.spoken.length === 1")
        assert page.evaluate("() => window.spoken[0]") == "echo: hello from the microphone"
        page.wait_for_function("() => document.querySelector('.msg-speak').getAttribute('aria-pressed') === 'false'")
    finally:
        ctx.close()
    assert console.unexpected() == []


def test_read_aloud_in_a_browser_without_a_voice_says_so(live_server, browser, console):
    """Chromium on Linux without speech-dispatcher fails every utterance at once
    (``synthesis-failed``): the button must not just flick, the person is told why."""
    ctx = browser.new_context()
    ctx.add_init_script("""window.speechSynthesis.speak = (u) => setTimeout(() => {
      const e = new Event('error'); e.error = 'synthesis-failed'; u.dispatchEvent(e); }, 20);""")
    page = ctx.new_page()
    console.attach(page)
    try:
        page.goto(live_server.url("/"))
        page.wait_for_selector("html[data-ready]")
        page.fill("#composer-input", "read me")
        page.click("#send-btn")
        wait_reply_finished(page)
        page.locator(".msg-assistant .msg-speak").click()
        page.wait_for_function("() => document.querySelector('#toast').innerText.includes('no voice')")
        assert page.get_attribute(".msg-assistant .msg-speak", "aria-pressed") == "false"
    finally:
        ctx.close()
    assert console.unexpected() == []


# The reply's body with its reasoning blocks too: "reasoning:<text>" for each.
ORDER_ALL = ORDER.replace("'.msg-body > .md, .msg-body > .tools'",
                          "'.msg-body > .md, .msg-body > .tools, .msg-body > details.reasoning'").replace(
    "el.matches('.md') ? 'md:' + el.innerText.trim()",
    "el.matches('.md') ? 'md:' + el.innerText.trim() : el.matches('.reasoning') ? "
    "'reasoning:' + el.querySelector('.reasoning-text').textContent")


def test_reasoning_shows_where_it_came_live_and_after_reload(live_server, open_page):
    page = open_page(live_server)
    send(page, fake_script(tokens=4, delay_ms=150, reasoning="plan it", reasoning_after_tools="check the result",
                           tools=[{"name": "search", "result": "found", "duration_ms": 200}]))
    expected = ["reasoning:plan it", "md:t0 t1", "tools:search", "reasoning:check the result", "md:t2 t3"]
    # live: the second reasoning block comes after the card, before the rest of the text
    page.wait_for_function("() => document.querySelector('.msg-assistant.streaming .tools + details.reasoning')")
    assert page.evaluate(ORDER_ALL)[:4] == expected[:4]
    wait_reply_finished(page)
    assert page.evaluate(ORDER_ALL) == expected
    assert page.locator(".msg-assistant details.reasoning.thinking").count() == 0   # both settled
    sid_of(page)
    page.reload()
    page.wait_for_selector("html[data-ready]")
    wait_reply_finished(page)
    assert page.evaluate(ORDER_ALL) == expected


def test_a_saved_tool_call_without_a_result_says_not_finished_not_running(live_server, open_page):
    """A reply stopped while its tool ran (or an upstream call never answered) is saved
    without a result: after a reload its card must not spin "Running…" for ever."""
    write_session(live_server.sessions_dir, "stopped-tool", "Stopped tool", [
        {"role": "user", "content": "list files", "timestamp": 1_700_000_000},
        {"role": "assistant", "content": "Looking ", "timestamp": 1_700_000_001, "status": "cancelled",
         "tool_calls": [{"id": "call_0", "name": "terminal", "args": {"command": "ls"}, "offset": 8}]},
    ])
    page = open_page(live_server, "/?s=stopped-tool")
    status = page.locator(".msg-assistant .tool-card .tool-status")
    status.wait_for()
    assert status.inner_text() == "Not finished"
    assert page.locator(".msg-assistant .tool-card .spinner").count() == 0
