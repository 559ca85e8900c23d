"""Agent control in a real browser (issue 15): what a person sees and clicks."""
from __future__ import annotations

import pytest

from ..helpers import fake_script
from .conftest import PHONE, sid_of, tokens, wait_reply_finished

pytestmark = pytest.mark.browser


def test_a_misconfigured_server_shows_an_amber_footer_with_the_fix(make_server, open_page):
    server = make_server(agent="openai").start()
    page = open_page(server)
    info = page.locator("#backend-info.warn")
    info.wait_for()
    text = page.inner_text("#backend-text")
    assert "--base-url" in text and "Ollama" in text
    color = page.eval_on_selector("#backend-info .dot", "e => getComputedStyle(e).backgroundColor")
    ok_color = page.evaluate("() => getComputedStyle(document.documentElement).getPropertyValue('--warn')")
    assert color != "rgba(0, 0, 0, 0)" and ok_color.strip()
    assert not page.locator("#backend-info.ok").count()


# ------------------------------------------------------------------ approvals (questions.js)


COMMAND = "rm -rf build && echo 'done' > \"log\""


def approval_script(**extra) -> str:
    return fake_script(tokens=4, approval={"tool": "terminal", "command": COMMAND, "description": "Clean the build folder"},
                       tools=[{"name": "terminal", "args": {"command": COMMAND}, "result": "removed 12 files"}], **extra)


def send(page, text: str) -> None:
    page.fill("#composer-input", text)
    page.keyboard.press("Enter")


def open_card(page):
    card = page.locator(".msg-assistant.streaming .approval-card[data-state='open']")
    card.wait_for()
    return page.locator(f".approval-card[data-approval-id='{card.get_attribute('data-approval-id')}']")


def test_an_approval_card_shows_the_exact_command_and_allowing_it_runs_the_tool(live_server, open_page):
    page = open_page(live_server)
    send(page, approval_script())
    card = open_card(page)
    assert card.locator(".approval-command").inner_text() == COMMAND
    assert card.locator(".approval-description").inner_text() == "Clean the build folder"
    assert "terminal" in card.locator(".question-title").inner_text()
    labels = card.locator(".question-actions button").all_inner_texts()
    assert labels == ["Allow once", "Allow for this chat", "Always", "Deny"]
    # the card is in the reply, before the tool has run; nothing ran yet
    assert page.locator(".msg-assistant.streaming .tool-card").count() == 0
    # keyboard: Tab reaches the buttons, Enter answers
    card.locator("button[data-choice='once']").focus()
    page.keyboard.press("Enter")
    card.locator(".question-outcome").get_by_text("Allowed once").wait_for()
    wait_reply_finished(page)
    tool = page.locator(".msg-assistant .tool-card").last
    assert tool.get_attribute("data-state") == "ok"
    assert card.get_attribute("data-state") == "answered" and card.locator("button").count() == 0
    saved = live_server.session(sid_of(page))["messages"][-1]
    assert saved["tool_calls"][0]["result"] == "removed 12 files" and not saved["tool_calls"][0].get("is_error")


def test_denying_shows_the_tool_failed_and_the_card_says_denied(live_server, open_page):
    page = open_page(live_server)
    send(page, approval_script())
    card = open_card(page)
    card.get_by_role("button", name="Deny").click()
    card.locator(".question-outcome").get_by_text("Denied").wait_for()
    wait_reply_finished(page)
    tool = page.locator(".msg-assistant .tool-card").last
    assert tool.get_attribute("data-state") == "error"
    tool.locator("summary").click()
    assert "denied by the user" in tool.locator(".tool-result").inner_text()


def test_an_answer_from_another_tab_closes_the_card_and_a_reload_shows_an_open_one(live_server, open_page):
    page = open_page(live_server)
    send(page, approval_script())
    open_card(page)
    sid = sid_of(page)
    page.reload()
    page.wait_for_selector("html[data-ready]")
    card = open_card(page)  # replayed: still open, with its buttons
    assert card.locator(".approval-command").inner_text() == COMMAND
    pending = live_server.get(f"/api/approval/pending?session_id={sid}").json()["approvals"]
    assert [a["command"] for a in pending] == [COMMAND]
    # another tab (here: the API) answers; this tab's card shows the outcome
    resp = live_server.post("/api/approval/respond", {"stream_id": pending[0]["stream_id"],
                                                      "approval_id": pending[0]["approval_id"], "choice": "session"})
    assert resp.status_code == 200, resp.text
    card.locator(".question-outcome").get_by_text("Allowed for this chat").wait_for()
    assert card.locator("button").count() == 0
    wait_reply_finished(page)


def test_a_second_answer_is_refused_with_a_sentence(live_server, open_page, console):
    console.allow(r"status of 409")  # the refused answer's own resource error, and only it
    page = open_page(live_server)
    send(page, approval_script(approval_timeout_ms=60_000))
    card = open_card(page)
    # hold back the event that would close the card, so the tab answers a question already answered
    pending = live_server.get(f"/api/approval/pending?session_id={sid_of(page)}").json()["approvals"][0]
    page.route("**/api/approval/respond", lambda route: route.fulfill(
        status=409, content_type="application/json", body='{"error": "this approval was already answered or timed out"}'))
    card.get_by_role("button", name="Always").click()
    err = card.locator(".question-error")
    err.wait_for()
    assert "already answered" in err.inner_text() and err.locator("details summary").inner_text() == "Details"
    page.unroute("**/api/approval/respond")
    live_server.post("/api/approval/respond", {"stream_id": pending["stream_id"], "approval_id": pending["approval_id"],
                                               "choice": "deny"})
    card.locator(".question-outcome").get_by_text("Denied").wait_for()
    wait_reply_finished(page)


def test_the_backends_starting_status_goes_once_a_question_or_a_tool_comes(live_server, open_page):
    """The hermes backend says "starting Hermes Agent…" under a new worker's first reply; an
    approval card (the agent is waiting for the person, not starting) or a tool clears it."""
    page = open_page(live_server)
    shown = page.evaluate("""async () => {
      const { AssistantView } = await import('/static/js/messages.js');
      const status = (v) => v.el.querySelector('.typing-status').textContent;
      const asked = new AssistantView(), ran = new AssistantView();
      document.querySelector('#messages').append(asked.el, ran.el);
      for (const v of [asked, ran]) v.handle('status', { text: 'starting Hermes Agent…' });
      const before = status(asked);
      asked.addQuestion(document.createElement('section'));
      ran.handle('tool', { id: 'call_1', name: 'terminal', args: { command: 'ls' } });
      return [before, status(asked), status(ran)];
    }""")
    assert shown == ["starting Hermes Agent…", "", ""]


def test_approval_buttons_are_touch_sized_on_a_phone(live_server, open_page):
    page = open_page(live_server, viewport=PHONE)
    send(page, approval_script())
    card = open_card(page)
    heights = card.locator(".question-actions button").evaluate_all("bs => bs.map(b => b.getBoundingClientRect().height)")
    assert len(heights) == 4 and min(heights) >= 44
    card.get_by_role("button", name="Allow once").click()
    wait_reply_finished(page)


# ------------------------------------------------------------------ clarify


def test_a_clarify_with_choices_is_answered_by_a_button(live_server, open_page):
    page = open_page(live_server)
    send(page, fake_script(tokens=2, clarify={"question": "Which branch?", "choices": ["main", "dev"]}))
    page.locator(".msg-assistant.streaming .clarify-card").wait_for()
    card = page.locator(".clarify-card")
    assert card.locator(".question-title").inner_text() == "Which branch?"
    assert card.locator(".question-actions button").all_inner_texts() == ["main", "dev"]
    card.get_by_role("button", name="dev").click()
    card.locator(".question-outcome").get_by_text("You answered: dev").wait_for()
    wait_reply_finished(page)
    assert page.locator(".msg-assistant .md").last.inner_text().strip() == "answer: dev t0 t1"


def test_a_clarify_without_choices_is_answered_in_a_text_box(live_server, open_page):
    page = open_page(live_server)
    send(page, fake_script(tokens=2, clarify={"question": "What name should the file have?"}))
    box = page.get_by_role("textbox", name="What name should the file have?")
    box.wait_for()
    box.fill("notes.txt")
    box.press("Enter")
    page.locator(".clarify-card .question-outcome").get_by_text("You answered: notes.txt").wait_for()
    wait_reply_finished(page)
    assert page.locator(".msg-assistant .md").last.inner_text().strip() == "answer: notes.txt t0 t1"
    assert page.locator(".clarify-card input").count() == 0


# ------------------------------------------------------------------ continue


def test_continue_extends_a_truncated_reply_in_the_same_bubble(live_server, open_page):
    page = open_page(live_server)
    send(page, fake_script(tokens=3, finish="length"))
    wait_reply_finished(page)
    sid = sid_of(page)
    page.reload()  # as saved: marked cut off, with Continue offered
    reply = page.locator(".msg-assistant[data-status='truncated']")
    reply.wait_for()
    assert reply.locator(".badge-truncated").inner_text() == "Cut off"
    assert "cut off" in page.locator(".resume-notice").inner_text()
    page.locator(".resume-notice").get_by_role("button", name="Continue").click()
    page.wait_for_function("() => !document.querySelector('.msg-assistant.streaming')"
                           " && document.querySelector('.msg-assistant .md').innerText.trim() !== 't0 t1 t2'")
    assert page.locator(".msg-assistant").count() == 1 and page.locator(".msg-user").count() == 1
    assert page.locator(".msg-assistant .md").inner_text().strip() == "t0 t1 t2 t0 t1 t2"
    saved = live_server.session(sid)["messages"]
    assert len(saved) == 2 and saved[1]["content"] == "t0 t1 t2 t0 t1 t2 " and saved[1]["status"] == "truncated"
    # cut again: still marked, and Continue is offered again after a reload
    assert page.locator(".msg-assistant[data-status='truncated'] .badge-truncated").count() == 1


def test_a_continued_reply_shows_the_tokens_of_both_parts_as_saved(live_server, open_page):
    """The saved reply adds the continue's usage to its own: the page says the same live,
    straight after the reply (no reload) and after continuing a reloaded one."""
    page = open_page(live_server)
    send(page, fake_script(tokens=3, finish="length"))
    wait_reply_finished(page)
    sid = sid_of(page)

    def continue_and_compare(parts: int):
        page.locator(".resume-notice").get_by_role("button", name="Continue").click()
        page.wait_for_function("n => !document.querySelector('.msg-assistant.streaming') && document.querySelector("
                               "'.msg-assistant .md').innerText.trim().split(' ').length === 3 * n", arg=parts)
        saved = live_server.session(sid)["messages"][1]["usage"]
        assert saved["completion_tokens"] == 3 * parts
        shown = page.locator(".msg-assistant .msg-meta .usage").inner_text()
        assert shown == f"{saved['prompt_tokens']:,} in · {saved['completion_tokens']:,} out"

    continue_and_compare(2)          # the reply this tab just streamed
    page.reload()
    page.wait_for_selector("html[data-ready]")
    continue_and_compare(3)          # a saved reply


# ------------------------------------------------------------------ usage


def test_tokens_show_under_each_reply_and_the_chat_total_in_the_header(live_server, open_page):
    page = open_page(live_server)
    assert page.locator("#chat-usage").is_hidden()
    send(page, fake_script(tokens=4))
    wait_reply_finished(page)
    sid = sid_of(page)
    first = live_server.session(sid)["messages"][1]["usage"]
    assert first["completion_tokens"] == 4
    assert page.locator(".msg-assistant .usage").inner_text() == f"{first['prompt_tokens']} in · 4 out"
    send(page, "one two three")
    wait_reply_finished(page, 2)
    session = live_server.session(sid)
    second = session["messages"][3]["usage"]
    total = session["usage"]["prompt_tokens"] + session["usage"]["completion_tokens"]
    assert total == sum(u["prompt_tokens"] + u["completion_tokens"] for u in (first, second))
    page.locator("#chat-usage").get_by_text(f"{total:,} tokens").wait_for()
    # as saved: after a reload, each reply keeps its own count and the header the total
    page.reload()
    page.wait_for_selector("html[data-ready]")
    page.locator("#chat-usage").get_by_text(f"{total:,} tokens").wait_for()
    assert page.locator(".msg-assistant .usage").all_inner_texts() == [
        f"{u['prompt_tokens']:,} in · {u['completion_tokens']:,} out" for u in (first, second)]
    page.click("#new-chat")
    page.locator("#chat-usage").wait_for(state="hidden")


# ------------------------------------------------------------------ model picker


def test_the_model_picker_runs_a_turn_on_the_chosen_model_and_remembers_it_per_chat(live_server, open_page):
    page = open_page(live_server)
    picker = page.get_by_label("Model", exact=True)
    picker.wait_for()
    assert picker.locator("option").all_inner_texts() == ["fake-echo", "fake-echo-2"]
    assert picker.input_value() == "fake-echo"
    picker.select_option("fake-echo-2")
    send(page, "hello there")
    wait_reply_finished(page)
    sid = sid_of(page)
    session = live_server.session(sid)
    assert session["messages"][1]["model"] == "fake-echo-2" and session["model"] == "fake-echo-2"
    page.click("#new-chat")  # another chat shows the default; this one keeps its choice
    page.wait_for_function("() => document.querySelector('#model-select').value === 'fake-echo'")
    page.goto(live_server.url(f"/?s={sid}"))
    page.wait_for_selector("html[data-ready]")
    page.wait_for_function("() => document.querySelector('#model-select').value === 'fake-echo-2'")
    with page.expect_response("**/api/session/model") as resp:
        page.get_by_label("Model", exact=True).select_option("fake-echo")
    assert resp.value.ok
    assert live_server.session(sid)["model"] == "fake-echo"
    send(page, "again")
    wait_reply_finished(page, 2)
    assert live_server.session(sid)["messages"][3]["model"] == "fake-echo"


# ------------------------------------------------------------------ send while the agent works


def test_a_message_sent_during_a_reply_is_queued_removable_and_runs_after_it(live_server, open_page):
    page = open_page(live_server)
    send(page, fake_script(tokens=30, delay_ms=100))
    page.wait_for_function("() => document.querySelector('.msg-assistant.streaming')?.innerText.includes('t2')")
    send(page, "first in line")
    queue = page.get_by_role("region", name="Queued messages")
    queue.get_by_text("first in line").wait_for()
    send(page, "second in line")
    queue.get_by_text("second in line").wait_for()
    assert page.input_value("#composer-input") == ""
    assert queue.locator(".queued-text").all_inner_texts() == ["first in line", "second in line"]
    assert page.locator(".msg-assistant.streaming").count() == 1  # nothing else started
    queue.get_by_role("button", name="Remove from the queue: second in line").click()
    page.wait_for_function("() => document.querySelectorAll('#queue .queued').length === 1")
    sid = sid_of(page)
    assert [q["text"] for q in live_server.get(f"/api/chat/queue?session_id={sid}").json()["queued"]] == ["first in line"]
    # the queued message runs when the reply ends, and this page follows it
    wait_reply_finished(page, 2, timeout=30_000)
    page.wait_for_selector("#queue", state="hidden")
    assert page.locator(".msg-user .msg-text").all_inner_texts()[-1] == "first in line"
    assert page.locator(".msg-assistant .md").last.inner_text().strip() == "echo: first in line"
    messages = live_server.session(sid)["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"][1:] == ["first in line"]


def test_a_reload_during_continue_follows_it_in_the_same_bubble(make_server, open_page):
    live_server = make_server().start()
    page = open_page(live_server)
    send(page, fake_script(tokens=20, delay_ms=80, finish="length"))
    wait_reply_finished(page)
    sid = sid_of(page)
    page.locator(".resume-notice").get_by_role("button", name="Continue").click()
    page.wait_for_function("() => document.querySelector('.msg-assistant.streaming')?.innerText.includes('t19 t0 t1')")
    page.reload()
    page.wait_for_selector("html[data-ready]")
    page.wait_for_selector(".msg-assistant.streaming")  # re-attached to the continuation
    wait_reply_finished(page, timeout=30_000)
    assert page.locator(".msg-assistant").count() == 1 and page.locator(".msg-user").count() == 1
    full = " ".join([tokens(20), tokens(20)])
    assert page.locator(".msg-assistant .md").inner_text().strip() == full
    assert live_server.session(sid)["messages"][1]["content"].strip() == full
