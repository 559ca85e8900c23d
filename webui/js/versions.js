// Versions of a conversation (docs/api.md "Versions"): a retry or an edit keeps what it
// replaces, and a message where versions part ways shows "‹ 2/3 ›". The arrows switch the
// version shown (POST /api/session/version); the chat then shows the transcript of that
// version from there on. The server reports the versions as ``session.versions``:
// {"<message index>": {count, current}} (current 0-based).
//
// Hooks in chat.js: ``new Versions(chat)``; ``show(session.versions)`` once a page of
// messages is in the list; ``refresh()`` when a turn ends (a retry or an edit made a version).

import { api } from "./api.js";
import { announce, h } from "./dom.js";

const MAX_PAGES = 200;   // older pages loaded at most to bring a switched message into view

export class Versions {
  constructor(chat) {
    this.chat = chat;
    this.map = {};
    chat.list.addEventListener("click", (e) => {
      const btn = e.target.closest(".version-step");
      if (btn && !btn.disabled) this.step(btn.closest(".msg"), Number(btn.dataset.step));
    });
  }

  /** Show ``map`` ({index: {count, current}}) on the messages in the list. */
  show(map) {
    this.map = map && typeof map === "object" ? map : {};
    for (const el of this.chat.list.querySelectorAll(".msg[data-index]")) this.decorate(el);
  }

  /** Fetch the session's versions (its metadata only: cheap) and show them. */
  async refresh() {
    const sid = this.chat.sessionId;
    if (!sid) return;
    try {
      const { session } = await api("/api/session", { params: { session_id: sid, messages: 0 } });
      if (sid === this.chat.sessionId) this.show(session.versions);
    } catch { /* the next open shows them */ }
  }

  /** Put the arrows on message ``el`` if versions part ways there (and only then). */
  decorate(el) {
    el.querySelector(":scope .versions")?.remove();
    const info = this.map[el.dataset.index];
    const meta = el.querySelector(".msg-meta");
    if (!info || !meta || !(info.count > 1)) return;
    const n = info.current + 1;
    const label = `Version ${n} of ${info.count}`;
    const step = (d, text, name) => h("button", {
      type: "button", class: "version-step", "aria-label": name, title: name,
      dataset: { step: String(d) }, disabled: n + d < 1 || n + d > info.count,
    }, text);
    meta.append(h("div", { class: "versions", role: "group", "aria-label": label, title: label },
      step(-1, "‹", "Previous version"),
      h("span", { class: "version-label", "aria-hidden": "true" }, `${n}/${info.count}`),
      step(1, "›", "Next version")));
  }

  /** Show the version ``d`` away from the one shown at message ``el``. */
  async step(el, d) {
    const chat = this.chat;
    const index = Number.parseInt(el?.dataset.index, 10);
    const info = this.map[el?.dataset.index];
    if (!Number.isInteger(index) || !info) return;
    const version = info.current + d;
    const res = await chat.op("/api/session/version", { message_index: index, version }, "switch versions");
    if (!res) return;
    const sid = chat.sessionId;
    await chat.open(sid);
    for (let i = 0; i < MAX_PAGES && sid === chat.sessionId && chat.offset > index; i++) {
      while (chat.loadingOlder) await new Promise((resolve) => setTimeout(resolve, 50));
      const before = chat.offset;
      await chat.loadOlder();
      if (chat.offset === before) break;
    }
    const shown = chat.list.querySelector(`.msg[data-index="${index}"]`);
    if (shown) {
      chat.stick = false;
      shown.scrollIntoView({ block: "nearest" });
      const again = shown.querySelector(`.version-step[data-step="${d}"]:not(:disabled)`)
        || shown.querySelector(".version-step:not(:disabled)");
      again?.focus({ preventScroll: true });
    }
    announce(`Showing version ${version + 1} of ${info.count}`);
    chat.hooks.onListChanged?.();
  }
}
