// The conversation in the centre: opening a session on its newest page, loading older
// pages on scroll, sending, streaming, stopping, and re-attaching to a reply that is
// still running (after a reload, a network loss or in a second tab); and the session
// operations (retry, edit, fork, undo, clear, export). Every operation sends the message
// count the page shows; a 409 (the chat changed elsewhere) reloads the chat and says why.

import { api, post } from "./api.js";
import { $, announce, h, toast, toastError } from "./dom.js";
import { messageLimit, tooLargeSentence, utf8Bytes } from "./limits.js";
import { handleCopyClick, renderTexts } from "./markdown.js";
import { openDialog } from "./menu.js";
import { AssistantView, markdownTexts, messageElement, openEditor, userElement } from "./messages.js";
import { approvalCard, clarifyCard, closeQuestion, settleApproval, settleClarify } from "./questions.js";
import { StreamClient } from "./stream.js";
import { Versions } from "./versions.js";

/** ``message`` as the page shows it: a user message whose reply was saved (cut or not) is
 * not itself "interrupted" — the cut reply carries that badge and its Continue. */
function asShown(message, next) {
  if (message.role !== "user" || message.status !== "interrupted" || next?.role !== "assistant") return message;
  const { status, ...shown } = message;
  return shown;
}

export const PAGE_SIZE = 50;
const LOAD_OLDER_PX = 600;   // start loading older messages this close to the top
const STICK_PX = 80;         // "at the bottom" tolerance for following a stream
const USER_INPUT_MS = 1000;  // a scroll this soon after the user's wheel, touch, pointer or key is theirs

/**
 * Chat controller. ``hooks``: {onTitle(title|null), onCreated(sid), onListChanged(),
 * onMissing(sid), setStreaming(bool), setBanner(bool), onForked(sid), offerText(text),
 * onTurnEnded(), onTooLarge(text, serverMessage)} (the last: a send refused with 413),
 * newChatFields() (extra fields for POST /api/session/new, e.g. the sidebar's project_id).
 */
export class Chat {
  constructor(hooks) {
    this.hooks = hooks;
    this.scroller = $("#messages-scroll");
    this.list = $("#messages");
    this.empty = $("#empty-state");
    this.historyTop = $("#history-top");
    this.sessionId = null;
    this.offset = 0;
    this.count = 0;
    this.stream = null;
    this.openToken = 0;
    this.loadingOlder = false;
    this.sending = false;
    this.stick = true;
    // Only the user leaves the bottom: a scroll the layout makes (a lazily loaded image, an
    // off-screen block's size estimate replaced by its real size, a clamp) keeps ``stick``,
    // and the view is pinned again (onScroll, and the ResizeObserver below).
    this.seen = { height: 0, top: 0 };
    this.userAt = -Infinity;
    const byUser = () => { this.userAt = performance.now(); };
    for (const type of ["wheel", "touchmove", "pointerdown", "keydown"]) {
      this.scroller.addEventListener(type, byUser, { passive: true });
    }
    this.scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    new ResizeObserver(() => { if (this.stick) this.scrollToBottom(); }).observe(this.list);
    this.list.addEventListener("click", (e) => this.onClick(e));
    this.versions = new Versions(this);   // "‹ 2/3 ›" on messages with versions (versions.js)
  }

  get streaming() { return this.stream !== null; }

  /** Show session ``sid`` (null: an empty new chat). Resolves when its newest page is shown. */
  /** Show session ``sid`` (or a new chat for null). ``this.ready`` settles when its
   * messages are in, so a send never reads the message count of a chat still loading. */
  open(sid) {
    const done = this.load(sid);
    this.ready = done.catch(() => {});
    return done;
  }

  async load(sid) {
    const token = ++this.openToken;
    this.detach();
    this.sessionId = sid;
    this.offset = 0;
    this.count = 0;
    this.list.replaceChildren();
    this.list.setAttribute("aria-busy", "true");
    this.empty.hidden = Boolean(sid);
    document.dispatchEvent(new CustomEvent("hermes:session", { detail: { sessionId: sid } }));
    this.showUsage(null);
    this.hooks.onContext?.(null);
    this.showQueue([]);
    if (!sid) {
      this.hooks.onTitle(null);
      this.hooks.onSessionShown?.(null);
      this.list.removeAttribute("aria-busy");
      return;
    }
    let session;
    try {
      ({ session } = await api("/api/session", { params: { session_id: sid, msg_limit: PAGE_SIZE } }));
    } catch (err) {
      if (token !== this.openToken) return;
      this.list.removeAttribute("aria-busy");
      if (err.status === 404 || err.status === 400) this.hooks.onMissing(sid);
      else this.showLoadError(err, sid);
      return;
    }
    if (token !== this.openToken) return;
    await this.showSession(session, token);
  }

  async showSession(session, token) {
    this.offset = session.messages_offset || 0;
    this.count = session.message_count || 0;
    this.hooks.onTitle(session.title || "New chat");
    this.showUsage(session.usage);
    // the context gauge: the newest reply's usage is how full the model's context was
    this.hooks.onContext?.([...(session.messages || [])].reverse().find((m) => m.role === "assistant" && m.usage)?.usage);
    this.hooks.onSessionShown?.(session);
    this.refreshQueue(session.session_id);
    const nodes = await this.buildNodes(session.messages || [], this.offset);
    if (token !== this.openToken) return;
    this.list.replaceChildren(...nodes);
    this.versions.show(session.versions);
    this.list.removeAttribute("aria-busy");
    this.markLast();
    const running = session.active_stream_id && session.pending_user_message != null;
    // a running Continue has no new user message: it extends the last reply shown
    const last = this.list.lastElementChild;
    const continuing = !running && session.active_stream_id && last?.dataset.role === "assistant";
    if (running) {
      this.attach(session.active_stream_id, session.pending_user_message, session.pending_started_at, null,
        session.pending_attachments);
    }
    else if (continuing) this.attach(session.active_stream_id, null, null, last);
    else this.addResumeNotice();
    this.empty.hidden = nodes.length > 0 || running;
    this.stick = true;
    this.scrollToBottom();
    this.maybeLoadOlder();
  }

  /** The session's total tokens in the header (hidden when the backend reports none). */
  showUsage(usage) {
    const el = $("#chat-usage");
    const p = usage?.prompt_tokens || 0;
    const c = usage?.completion_tokens || 0;
    el.hidden = !(p || c);
    el.textContent = `${(p + c).toLocaleString()} tokens`;
    el.title = `This chat so far: ${p.toLocaleString()} prompt tokens and ${c.toLocaleString()} reply tokens`;
  }

  showLoadError(err, sid) {
    this.list.replaceChildren(h("div", { class: "notice" }, `This chat could not be loaded: ${err.message}`,
      h("button", { type: "button", class: "btn", onclick: () => this.open(sid) }, "Try again")));
    this.empty.hidden = true;
  }

  /** Elements for ``messages`` starting at absolute index ``offset``. Markdown is rendered
   * in as few requests as fit; a reply that is too large or fails to render is shown as
   * plain text on its own (see markdown.js renderTexts), the others still render. */
  async buildNodes(messages, offset) {
    const texts = messages.map((m) => markdownTexts(m));  // a reply's text pieces, cut where its tools ran
    const html = await renderTexts(texts.flat());
    let k = 0;
    return messages.map((m, i) => messageElement(asShown(m, messages[i + 1]), offset + i, html.slice(k, k += texts[i].length)));
  }

  // ------------------------------------------------------------ paging

  onScroll() {
    const s = this.scroller;
    // while stuck, a scroll with no wheel, touch, pointer or key in the scroller lately that
    // came with a change of height at least as big as the move was made by the layout
    // (scroll anchoring, a clamp), not the user: keep following
    const grew = Math.abs(s.scrollHeight - this.seen.height);
    const byLayout = this.stick && grew > 0 && Math.abs(s.scrollTop - this.seen.top) <= grew + 1
      && performance.now() - this.userAt > USER_INPUT_MS;
    this.seen = { height: s.scrollHeight, top: s.scrollTop };
    if (byLayout) this.scrollToBottom();
    else this.stick = s.scrollHeight - s.scrollTop - s.clientHeight < STICK_PX;
    if (s.scrollTop < LOAD_OLDER_PX) this.loadOlder();
  }

  maybeLoadOlder() {
    if (this.scroller.scrollTop < LOAD_OLDER_PX) this.loadOlder();
  }

  /** Prepend the page of messages before the oldest one shown, keeping the view still. */
  async loadOlder() {
    if (this.loadingOlder || this.offset <= 0 || !this.sessionId) return;
    const token = this.openToken;
    this.loadingOlder = true;
    this.historyTop.hidden = false;
    try {
      const { session } = await api("/api/session", {
        params: { session_id: this.sessionId, msg_limit: PAGE_SIZE, msg_before: this.offset },
      });
      if (token !== this.openToken) return;
      const nodes = await this.buildNodes(session.messages || [], session.messages_offset);
      if (token !== this.openToken) return;
      const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
      this.list.prepend(...nodes);
      this.versions.show(session.versions);
      this.offset = session.messages_offset;
      this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
    } catch (err) {
      if (token === this.openToken) toast(`Could not load earlier messages: ${err.message}`);
      return;
    } finally {
      this.loadingOlder = false;
      this.historyTop.hidden = true;
    }
    requestAnimationFrame(() => this.maybeLoadOlder());
  }

  scrollToBottom() {
    const s = this.scroller;
    s.scrollTop = s.scrollHeight;
    this.seen = { height: s.scrollHeight, top: s.scrollTop };
  }

  // ------------------------------------------------------------ sending and streaming

  /** Send ``text`` with the uploaded ``files`` ([{id, name, size, mime}], attachments.js),
   * creating the session first for a new chat. Resolves true if accepted. */
  async send(text, files = []) {
    if (this.sending) return false;
    if (this.stream) return this.queue(text, files);
    this.sending = true;
    try {
      return await this.startTurn(text, files);
    } finally {
      this.sending = false;
    }
  }

  /** The open chat's id, creating the chat first when it is a new one (once, however
   * many callers ask at the same time: a send and the uploads of attached files). */
  async ensureSession() {
    if (this.sessionId) return this.sessionId;
    if (!this.creating) {
      const model = this.hooks.model?.() || undefined;
      const fields = { ...(model ? { model } : {}), ...(this.hooks.newChatFields?.() || {}) }; // e.g. project_id
      this.creating = post("/api/session/new", fields).then(({ session }) => {
        this.sessionId = session.session_id;
        this.hooks.onCreated(session.session_id);
        return session.session_id;
      }).finally(() => { this.creating = null; });
    }
    return this.creating;
  }

  async startTurn(text, files = []) {
    await this.ready; // the count sent below must be the loaded chat's, not 0 while it loads
    let sid = this.sessionId;
    try {
      const model = this.hooks.model?.() || undefined;
      if (!sid) sid = await this.ensureSession();
      const attachments = files.length ? { attachments: files.map((f) => f.id) } : {};
      const { stream_id: streamId } = await post("/api/chat/start",
        { session_id: sid, message: text, expected_message_count: this.count, ...(model ? { model } : {}), ...attachments });
      if (sid !== this.sessionId) return true; // the user moved on; the turn runs anyway
      this.removeResumeNotice();
      this.empty.hidden = true;
      this.stick = true;
      this.attach(streamId, text, Date.now() / 1000, null, files);
      this.hooks.onListChanged();
      return true;
    } catch (err) {
      if (err.status === 409) {  // another tab got there first: show the chat as it is now, keep the text
        await this.open(sid);
        toast(this.stream ? "A reply is running in another tab: your message is still in the box. Send it when the reply ends."
          : "This chat changed in another tab, so it was brought up to date. Your message is still in the box: send it again.", 7000);
      } else if (err.status === 413) {
        this.hooks.onTooLarge(text, err.detail || err.message);  // the server's own words, behind its toggle
      } else if (err.status !== 401) { // 401: the page is on its way to /login; the draft is kept
        toastError("Not sent", err);
      }
      return false;
    }
  }

  // ------------------------------------------------------------ messages queued behind a reply

  /** Queue ``text`` and the uploaded ``files`` behind the running reply (POST /api/chat/queue);
   * true if accepted. */
  async queue(text, files = []) {
    const sid = this.sessionId;
    const model = this.hooks.model?.() || undefined;
    try {
      const res = await post("/api/chat/queue", { session_id: sid, message: text, ...(model ? { model } : {}),
        ...(files.length ? { attachments: files.map((f) => f.id) } : {}) });
      if (sid !== this.sessionId) return true;
      this.showQueue(res.queued || []);
      if (res.stream_id && !this.stream) this.attach(res.stream_id, text, Date.now() / 1000, null, files);
      else announce("Queued: it is sent when the reply ends");
      return true;
    } catch (err) {
      if (err.status === 413) this.hooks.onTooLarge(text, err.detail || err.message);
      else if (err.status !== 401) toast(`Not queued: ${err.message}`);
      return false;
    }
  }

  /** Show the queued messages above the box, each with Remove. */
  showQueue(items) {
    this.queued = items;
    const box = $("#queue");
    box.hidden = !items.length;
    if (!items.length) { box.replaceChildren(); return; }
    box.replaceChildren(
      h("div", { class: "queue-label" }, items.length === 1 ? "1 message waits for the reply to end"
        : `${items.length} messages wait for the reply to end`),
      h("ul", { class: "queue-list" }, items.map((q) => h("li", { class: "queued", dataset: { id: q.id } },
        h("span", { class: "queued-text" }, q.text),
        q.attachments?.length ? h("span", { class: "queued-files" },
          `+ ${q.attachments.map((a) => String(a.name || "attachment")).join(", ")}`) : null,
        h("button", { type: "button", class: "btn queued-edit-btn", "aria-label": `Edit the queued message: ${q.text.slice(0, 80)}`,
          onclick: (e) => this.editQueued(q, e.currentTarget.closest("li")) }, "Edit"),
        h("button", { type: "button", class: "btn queued-remove", "aria-label": `Remove from the queue: ${q.text.slice(0, 80)}`,
          onclick: () => this.unqueue(q.id) }, "Remove")))));
  }

  /** Edit a queued message in place (POST /api/chat/queue/edit); Esc or Cancel keeps it as it was. */
  editQueued(q, li) {
    const sid = this.sessionId;
    const box = h("textarea", { class: "queued-edit", "aria-label": "Queued message", rows: 3 });
    box.value = q.text;
    const restore = () => this.showQueue(this.queued || []);
    const save = async () => {
      if (!box.value.trim()) { box.focus(); return; }
      try {
        const res = await post("/api/chat/queue/edit", { session_id: sid, id: q.id, message: box.value });
        if (sid === this.sessionId) this.showQueue(res.queued || []);
        announce("Queued message changed");
      } catch (err) {
        toast(err.status === 404 ? "That message has already been sent." : `Could not change it: ${err.message}`);
        await this.refreshQueue(sid);
      }
    };
    box.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); restore(); }
      else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); save(); }
    });
    li.replaceChildren(box,
      h("button", { type: "button", class: "btn btn-primary", onclick: save }, "Save"),
      h("button", { type: "button", class: "btn", onclick: restore }, "Cancel"));
    box.focus();
  }

  async unqueue(id) {
    const sid = this.sessionId;
    try {
      const res = await post("/api/chat/queue/remove", { session_id: sid, id });
      if (sid === this.sessionId) this.showQueue(res.queued || []);
      announce("Removed from the queue");
    } catch (err) {
      toast(err.status === 404 ? "That message has already been sent." : `Could not remove it: ${err.message}`);
      await this.refreshQueue(sid);
    }
  }

  async refreshQueue(sid) {
    if (!sid) { this.showQueue([]); return; }
    try {
      const { queued } = await api("/api/chat/queue", { params: { session_id: sid } });
      if (sid === this.sessionId) this.showQueue(queued || []);
    } catch { /* the next send reports what is wrong */ }
  }

  // A reply ended with messages queued: the server starts the first one; follow it.
  async followQueued(sid) {
    for (let i = 0; i < 50 && sid === this.sessionId && !this.stream; i++) {
      let st;
      try {
        st = await api("/api/session/status", { params: { session_id: sid } });
      } catch { break; }
      if (sid !== this.sessionId || this.stream) return;
      if (st.streaming && st.active_stream_id && st.pending_user_message != null) {
        this.count = st.message_count;
        this.attach(st.active_stream_id, st.pending_user_message, Date.now() / 1000, null, st.pending_attachments || null);
        this.hooks.onListChanged();
        break;
      }
      if (st.message_count !== this.count) { await this.open(sid); return; }  // it ran already
      // A stopped reply's count is read from the server, which may by then count the queued
      // turn too: a queue shorter than the one shown means the first message ran already.
      let left = null;
      try {
        left = (await api("/api/chat/queue", { params: { session_id: sid } })).queued || [];
      } catch { break; }
      if (sid !== this.sessionId || this.stream) return;
      if (left.length < (this.queued?.length || 0)) { await this.open(sid); return; }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await this.refreshQueue(sid);
  }

  /** Follow stream ``streamId`` from its start, showing ``userText`` as the pending message;
   * with ``continues`` (a reply's article) the stream extends that reply in its own bubble. */
  attach(streamId, userText, startedAt, continues = null, attachments = null) {
    this.removeResumeNotice();
    const view = new AssistantView();
    let userEl = null;
    if (continues) {
      view.adopt(continues);
      continues.replaceWith(view.el);
    } else {
      userEl = userElement({ role: "user", content: userText, timestamp: startedAt, attachments }, "");
      this.list.append(userEl, view.el);
    }
    this.markLast();
    const sid = this.sessionId;
    const stream = { streamId, sid, view, userEl, done: null, client: null, questions: new Map() };
    stream.client = new StreamClient({
      streamId,
      sessionId: sid,
      onEvent: (name, data) => this.onEvent(stream, name, data),
      onState: (state) => this.hooks.setBanner(state === "reconnecting"),
      onGone: () => this.onGone(stream),
    });
    this.stream = stream;
    this.hooks.setStreaming(true);
    announce("Assistant is replying");
    stream.client.start();
  }

  onEvent(stream, name, data) {
    if (stream !== this.stream) return;
    if (name === "done") {
      stream.done = data;
      stream.view.usage = data?.usage || null;
      if (data?.session) {
        this.count = data.session.message_count ?? this.count;
        this.hooks.onTitle(data.session.title);
        if (stream.sid === this.sessionId) this.showUsage(data.session.usage);
        if (stream.sid === this.sessionId && data.usage) this.hooks.onContext?.(data.usage);
      }
    } else if (name === "stream_end") {
      this.endStream(stream, data?.status || "complete");
    } else if (name === "status") {
      announce(String(data?.text ?? ""));
      stream.view.handle(name, data);
    } else if (name === "approval" || name === "clarify") {
      const card = (name === "approval" ? approvalCard : clarifyCard)(data || {}, stream.streamId);
      stream.questions.set(`${name}:${data?.[`${name}_id`]}`, card);
      stream.view.addQuestion(card);
    } else if (name === "approval_answered" || name === "clarify_answered") {
      const kind = name.slice(0, -"_answered".length);
      const card = stream.questions.get(`${kind}:${data?.[`${kind}_id`]}`);
      if (card) (kind === "approval" ? settleApproval : settleClarify)(card, data);
    } else {
      stream.view.handle(name, data);
    }
  }

  // The reply is over: final render and, without a ``done`` (stopped), the new message
  // count; only then is the composer handed back, so the next send is never stale.
  async endStream(stream, status) {
    stream.client.close();
    for (const card of stream.questions.values()) closeQuestion(card);
    await Promise.all([stream.view.finish(status), stream.done ? null : this.refreshCount(stream.sid)]);
    if (stream.sid === this.sessionId) {
      if (stream.userEl) stream.userEl.dataset.index = String(this.count - 2);
      stream.view.el.dataset.index = String(this.count - 1);
    }
    if (this.stream === stream) {
      this.stream = null;
      this.hooks.setStreaming(false);
      this.hooks.setBanner(false);
    }
    stream.view.el.classList.remove("streaming");
    this.markLast();
    if (stream.sid === this.sessionId) this.versions.refresh();   // a retry or an edit made a version
    if (stream.sid === this.sessionId && !this.stream) this.addResumeNotice();  // cut off: offer Continue
    announce(status === "complete" ? "Reply finished" : `Reply ${status}`);
    this.hooks.onListChanged();
    this.hooks.onTurnEnded?.();
    document.dispatchEvent(new CustomEvent("hermes:reply-finished", { detail: { sessionId: stream.sid, status } }));
    if (this.queued?.length && stream.sid === this.sessionId && !this.stream) await this.followQueued(stream.sid);
  }

  async refreshCount(sid) {
    try {
      const st = await api("/api/session/status", { params: { session_id: sid } });
      if (sid === this.sessionId) this.count = st.message_count;
    } catch { /* the next send's 409 will resynchronise */ }
  }

  // The stream cannot be resumed (it ended while we were away, or the server restarted
  // and settled the turn as interrupted): show the session as the server now has it.
  async onGone(stream) {
    if (stream !== this.stream) return;
    this.stream = null;
    this.hooks.setStreaming(false);
    const keepStick = this.stick;
    await this.open(stream.sid);
    this.hooks.setBanner(false);
    this.stick = keepStick;
    if (keepStick) this.scrollToBottom();
    this.hooks.onListChanged();
  }

  /** Stop the running reply (keeps what arrived, marked stopped). */
  async stop() {
    const stream = this.stream;
    if (!stream) return;
    try {
      await post("/api/chat/cancel", { stream_id: stream.streamId });
    } catch (err) {
      toast(`Could not stop: ${err.message}`);
    }
  }

  // Stop following the current stream (the turn keeps running on the server).
  detach() {
    if (!this.stream) return;
    this.stream.client.close();
    this.stream = null;
    this.hooks.setStreaming(false);
    this.hooks.setBanner(false);
  }

  // ------------------------------------------------------------ interrupted turns

  addResumeNotice() {
    const last = this.list.lastElementChild;
    const status = last?.dataset.status;
    if (!last || (status !== "interrupted" && !(status === "truncated" && last.dataset.role === "assistant"))) return;
    const isUser = last.dataset.role === "user";
    const text = isUser ? "No reply: the server stopped before answering."
      : status === "truncated" ? "This reply was cut off at the length limit."
        : "The server stopped before this reply finished.";
    const action = isUser ? "Send again" : "Continue";
    const run = isUser ? () => this.resend(last.rawText) : () => this.continueReply(last);
    const notice = h("div", { class: "notice resume-notice", role: "note" }, h("span", {}, text),
      h("button", { type: "button", class: "btn", onclick: run }, action));
    (last.querySelector(".msg-wrap") || last.querySelector(".msg-body") || last).append(notice);
  }

  /** Extend the cut-off reply ``article`` in place: the new part streams into the same bubble. */
  async continueReply(article) {
    const sid = this.sessionId;
    if (this.stream || this.sending || !sid) return;
    this.sending = true;
    try {
      const { stream_id: streamId } = await post("/api/session/continue", { session_id: sid });
      if (sid !== this.sessionId || !article.isConnected) return;
      this.removeResumeNotice();
      this.stick = true;
      this.attach(streamId, null, null, article);
      this.hooks.onListChanged();
    } catch (err) {
      if (err.status === 409) {
        toast(`Could not continue: ${err.message}. The chat was reloaded, so you see it as it is now.`, 7000);
        if (sid === this.sessionId) await this.open(sid);
      } else if (err.status !== 401) {
        toast(`Could not continue the reply: ${err.message}`);
      }
    } finally {
      this.sending = false;
    }
  }

  removeResumeNotice() {
    for (const el of this.list.querySelectorAll(".resume-notice")) el.remove();
  }

  async resend(text) {
    if (this.stream || !text) return;
    await this.send(text);
  }

  onClick(e) {
    if (e.target.closest(".copy-btn, .msg-copy")) {
      handleCopyClick(e);
      return;
    }
    const btn = e.target.closest(".msg-action[data-action]");
    const article = btn?.closest(".msg");
    if (!article || btn.dataset.action === "copy") return;
    const index = Number.parseInt(article.dataset.index, 10);
    if (!Number.isInteger(index)) return;
    if (btn.dataset.action === "edit") openEditor(article, (text) => this.edit(index, text));
    else if (btn.dataset.action === "retry") this.retry();
    else if (btn.dataset.action === "fork") this.fork(index);
  }

  /** Mark the last reply (the one Retry replaces) with ``.is-last``. */
  markLast() {
    for (const el of this.list.querySelectorAll(".msg.is-last")) el.classList.remove("is-last");
    const last = this.list.lastElementChild;
    if (last && last.matches(".msg-assistant:not(.streaming)")) last.classList.add("is-last");
  }

  // ------------------------------------------------------------ session operations

  /**
   * POST a session operation on the open chat with ``expected_message_count``; resolves
   * to the answer, or null when it was refused (said in a toast; on 409 the chat is
   * reloaded to show what changed).
   */
  async op(path, body, what) {
    const sid = this.sessionId;
    if (!sid) return null;
    if (this.stream || this.sending) {
      toast(`Cannot ${what} while a reply is running: wait for it or stop it first.`);
      return null;
    }
    this.sending = true;
    try {
      return await post(path, { session_id: sid, expected_message_count: this.count, ...body });
    } catch (err) {
      if (err.status === 409) {
        toast(`Could not ${what}: ${err.message.replace(/;? ?reload it\.?$/, "")}. The chat was reloaded, so you see it as it is now.`, 7000);
        if (sid === this.sessionId) await this.open(sid);
      } else if (err.status === 413) {
        toast(`Could not ${what}. ${tooLargeSentence(utf8Bytes(body.content || ""), messageLimit())}`, 9000);
      } else {
        toast(`Could not ${what}: ${err.message}`);
      }
      return null;
    } finally {
      this.sending = false;
    }
  }

  /** Remove the shown messages from absolute index ``keep`` on. */
  trimTo(keep) {
    for (const el of [...this.list.children]) {
      const i = Number.parseInt(el.dataset.index, 10);
      if (Number.isInteger(i) && i >= keep) el.remove();
    }
    this.offset = Math.min(this.offset, keep);
    this.removeResumeNotice();
    this.markLast();
    this.empty.hidden = this.list.children.length > 0;
  }

  // Retry and edit answer like /api/chat/start: the server trimmed the session to
  // ``message_count`` messages and is running a turn with ``text``; follow it.
  follow({ stream_id: streamId, session_id: sid, message_count: keep }, text) {
    if (sid !== this.sessionId) return;
    this.trimTo(keep);
    this.count = keep;
    this.stick = true;
    this.attach(streamId, text, Date.now() / 1000);
    this.hooks.onListChanged();
  }

  /** Replace the last reply with a new one to the same message. */
  async retry() {
    const res = await this.op("/api/session/retry", {}, "retry");
    if (!res) return;
    const userEl = this.list.querySelector(`.msg-user[data-index="${res.message_count}"]`);
    if (userEl) this.follow(res, userEl.rawText);
    else if (res.session_id === this.sessionId) await this.open(res.session_id); // the reload attaches to the turn
  }

  /** Replace user message ``index`` with ``text`` and run a new turn from there. */
  async edit(index, text) {
    const res = await this.op("/api/session/edit", { message_index: index, content: text }, "edit the message");
    if (!res) return false;
    this.follow(res, text);
    return true;
  }

  /** Copy the chat up to message ``index`` (inclusive) into a new chat and open it. */
  async fork(index) {
    const res = await this.op("/api/session/duplicate", { up_to_index: index }, "fork the chat");
    if (res) this.hooks.onForked(res.session.session_id);
  }

  /** Remove the last exchange; its message goes back into the empty message box. */
  async undo() {
    const res = await this.op("/api/session/undo", {}, "undo");
    if (!res) return;
    this.count = res.session.message_count;
    this.trimTo(this.count);
    const text = res.removed_user_message;
    if (text && this.hooks.offerText(text)) toast("Removed the last exchange. Its message is back in the box.");
    else announce("Removed the last exchange");
    this.hooks.onListChanged();
  }

  /** Remove every message (after asking). */
  async clear() {
    if (!this.sessionId) return;
    const ok = await openDialog({ title: "Clear this chat?", text: "Every message in it will be removed. The title stays.",
      ok: "Clear", danger: true });
    if (!ok) return;
    const res = await this.op("/api/session/clear", {}, "clear the chat");
    if (!res) return;
    this.count = 0;
    this.trimTo(0);
    announce("Chat cleared");
    this.hooks.onListChanged();
  }

  /** Download the chat as ``fmt`` ("md" or "json"). */
  exportAs(fmt) {
    if (!this.sessionId) return;
    const query = new URLSearchParams({ session_id: this.sessionId, format: fmt });
    const link = h("a", { href: `/api/session/export?${query}`, download: "", class: "visually-hidden" });
    document.body.append(link);
    link.click();
    link.remove();
  }

  /** Re-open the chat if another tab changed it (new messages, or a reply it started). */
  async syncIfStale() {
    const sid = this.sessionId;
    if (!sid || this.stream || this.sending || this.loadingOlder) return;
    try {
      const st = await api("/api/session/status", { params: { session_id: sid } });
      if (sid === this.sessionId && !this.stream && (st.streaming || st.message_count !== this.count)) await this.open(sid);
    } catch { /* offline or deleted: the next action reports it */ }
  }
}
