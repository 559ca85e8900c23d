// The list of chats: pinned first, then Today / Yesterday / Earlier by updated_at; a
// search box (GET /api/sessions/search); and a menu per chat to rename, pin, archive or
// delete it (the same menu serves the chat header's ⋯ button).

import { api, post } from "./api.js";
import { $, h, icon, toast } from "./dom.js";
import { openDialog, openMenu } from "./menu.js";

const SEARCH_DEBOUNCE_MS = 150;

/** "Pinned", "Today", "Yesterday" or "Earlier" for a session (local calendar days). */
export function groupOf(session, now = new Date()) {
  if (session.pinned) return "Pinned";
  const d = new Date((session.updated_at || 0) * 1000);
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const day = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const diff = Math.round((today - day) / 86400e3);
  if (diff <= 0) return "Today";
  if (diff === 1) return "Yesterday";
  return "Earlier";
}

const GROUPS = ["Pinned", "Today", "Yesterday", "Earlier"];

/**
 * Sidebar controller. ``hooks``: {onSelect(sid), onDeleted(sid), onRenamed(session)}.
 */
export class Sidebar {
  constructor(hooks) {
    this.hooks = hooks;
    this.nav = $("#session-list");
    this.search = $("#search-input");
    this.showArchived = $("#show-archived");
    this.sessions = new Map();
    this.order = [];
    this.activeId = null;
    this.query = "";
    this.results = null;
    this.searchTimer = null;
    this.refreshing = null;
    this.refreshAgain = false;
    this.search.addEventListener("input", () => this.onSearchInput());
    this.search.addEventListener("keydown", (e) => this.onSearchKey(e));
    this.showArchived.addEventListener("change", () => this.refresh());
    this.nav.addEventListener("click", (e) => this.onClick(e));
  }

  /** Reload the list from the server (coalesces overlapping calls). */
  async refresh() {
    if (this.refreshing) { this.refreshAgain = true; return this.refreshing; }
    this.refreshing = (async () => {
      try {
        const data = await api("/api/sessions", { params: { include_archived: this.showArchived.checked ? 1 : 0 } });
        this.sessions = new Map(data.sessions.map((s) => [s.session_id, s]));
        this.order = data.sessions;
        this.showUnreadable(data.unreadable || []);
        this.render();
      } catch (err) {
        if (err.status !== 401) toast(`Could not load the chat list: ${err.message}`);
      } finally {
        this.refreshing = null;
      }
    })();
    await this.refreshing;
    if (this.refreshAgain) { this.refreshAgain = false; await this.refresh(); }
  }

  showUnreadable(list) {
    const note = $("#unreadable-note");
    note.hidden = list.length === 0;
    note.textContent = list.length === 1 ? "1 chat file could not be read." : `${list.length} chat files could not be read.`;
    note.title = list.map((u) => `${u.file || u.session_id || "?"}: ${u.error || ""}`).join("\n");
  }

  /** Highlight ``sid`` as the open chat. */
  setActive(sid) {
    this.activeId = sid;
    for (const li of this.nav.querySelectorAll(".session")) {
      const on = li.dataset.sid === sid;
      li.classList.toggle("active", on);
      const link = li.querySelector(".session-link");
      if (on) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  /** The compact session ``sid`` as last listed (or undefined). */
  get(sid) { return this.sessions.get(sid); }

  render() {
    if (this.query) return this.renderResults();
    const groups = new Map(GROUPS.map((g) => [g, []]));
    const now = new Date();
    for (const s of this.order) groups.get(groupOf(s, now)).push(s);
    const parts = [];
    for (const [name, rows] of groups) {
      if (!rows.length) continue;
      const id = `group-${name.toLowerCase()}`;
      parts.push(h("h2", { class: "group-label", id }, name),
        h("ul", { class: "sessions", "aria-labelledby": id }, rows.map((s) => this.item(s))));
    }
    if (!parts.length) parts.push(h("p", { class: "list-empty" }, "No chats yet. Start one with New chat."));
    this.nav.replaceChildren(...parts);
    this.setActive(this.activeId);
  }

  renderResults() {
    const rows = this.results || [];
    const parts = [h("h2", { class: "group-label", id: "group-results" }, this.results ? "Results" : "Searching…")];
    if (this.results && !rows.length) parts.push(h("p", { class: "list-empty" }, `No chats match “${this.query}”.`));
    else parts.push(h("ul", { class: "sessions", "aria-labelledby": "group-results" }, rows.map((r) => {
      const s = this.sessions.get(r.session_id) || { session_id: r.session_id, title: r.title };
      const snippet = r.snippet && r.snippet !== r.title ? r.snippet : null;
      return this.item({ ...s, title: r.title || s.title }, snippet);
    })));
    this.nav.replaceChildren(...parts);
    this.setActive(this.activeId);
  }

  item(s, snippet = null) {
    const title = s.title || "New chat";
    const link = h("a", { class: "session-link", href: `/?s=${encodeURIComponent(s.session_id)}` },
      s.pinned ? icon("pin", "session-pin") : null,
      h("span", { class: "session-text" }, h("span", { class: "session-title" }, title),
        snippet ? h("span", { class: "session-snippet" }, snippet) : null),
      s.active_stream_id ? h("span", { class: "session-streaming", title: "Replying…" }) : null,
      s.archived ? h("span", { class: "session-archived" }, "Archived") : null);
    const menuBtn = h("button", {
      type: "button", class: "icon-btn session-menu-btn", "aria-haspopup": "menu", "aria-expanded": "false",
      "aria-label": `Actions for “${title}”`,
    }, icon("dots"));
    return h("li", { class: "session", dataset: { sid: s.session_id } }, link, menuBtn);
  }

  onClick(e) {
    const li = e.target.closest(".session");
    if (!li) return;
    const sid = li.dataset.sid;
    if (e.target.closest(".session-menu-btn")) {
      this.openSessionMenu(e.target.closest(".session-menu-btn"), sid);
      return;
    }
    const link = e.target.closest(".session-link");
    if (link && !(e.ctrlKey || e.metaKey || e.shiftKey || e.button === 1)) {
      e.preventDefault();
      this.hooks.onSelect(sid);
    }
  }

  /** The rename / pin / archive / delete menu for ``sid``, under ``anchor``. */
  openSessionMenu(anchor, sid) {
    openMenu(anchor, this.menuItems(sid));
  }

  /** The menu items for ``sid``; ``extra`` items go before Delete (the chat header adds its own). */
  menuItems(sid, extra = []) {
    const s = this.sessions.get(sid) || { session_id: sid, title: "this chat" };
    return [
      { label: "Rename", icon: "edit", action: () => this.rename(s) },
      { label: s.pinned ? "Unpin" : "Pin", icon: "pin", action: () => this.patch("pin", { pinned: !s.pinned }, s) },
      { label: s.archived ? "Unarchive" : "Archive", icon: "archive", action: () => this.patch("archive", { archived: !s.archived }, s) },
      "separator",
      ...extra,
      { label: "Delete", icon: "trash", danger: true, action: () => this.remove(s) },
    ];
  }

  async rename(s) {
    const title = await openDialog({ title: "Rename chat", label: "Title", value: s.title || "", ok: "Save" });
    if (!title || title === s.title) return;
    await this.patch("rename", { title }, s);
  }

  async patch(action, body, s) {
    try {
      const { session } = await post(`/api/session/${action}`, { session_id: s.session_id, ...body });
      if (action === "rename") this.hooks.onRenamed(session);
      await this.refresh();
    } catch (err) {
      toast(`Could not ${action} the chat: ${err.message}`);
    }
  }

  async remove(s) {
    const ok = await openDialog({
      title: "Delete chat?", text: `“${s.title || "New chat"}” and all its messages will be deleted. This cannot be undone.`,
      ok: "Delete", danger: true,
    });
    if (!ok) return;
    try {
      await post("/api/session/delete", { session_id: s.session_id });
      this.hooks.onDeleted(s.session_id);
      await this.refresh();
    } catch (err) {
      toast(`Could not delete the chat: ${err.message}`);
    }
  }

  // ------------------------------------------------------------ search

  onSearchInput() {
    clearTimeout(this.searchTimer);
    const q = this.search.value.trim();
    if (!q) {
      this.query = "";
      this.results = null;
      this.render();
      return;
    }
    this.searchTimer = setTimeout(() => this.runSearch(q), SEARCH_DEBOUNCE_MS);
  }

  async runSearch(q) {
    this.query = q;
    try {
      const { results } = await api("/api/sessions/search", { params: { q, limit: 50 } });
      if (q !== this.search.value.trim()) return;
      this.results = results;
    } catch (err) {
      this.results = [];
      toast(`Search failed: ${err.message}`);
    }
    this.render();
  }

  onSearchKey(e) {
    if (e.key === "Escape" && this.search.value) {
      e.preventDefault();
      e.stopPropagation();
      this.search.value = "";
      this.onSearchInput();
    } else if (e.key === "ArrowDown") {
      e.preventDefault();
      this.nav.querySelector(".session-link")?.focus();
    } else if (e.key === "Enter") {
      const first = this.nav.querySelector(".session");
      if (first && this.query) this.hooks.onSelect(first.dataset.sid);
    }
  }

  /** Put the cursor in the search box (Ctrl/Cmd+K). */
  focusSearch() {
    this.search.focus();
    this.search.select();
  }
}
