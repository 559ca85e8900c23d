// The list of chats: pinned first, then the project folders, then Today / Yesterday /
// Previous 7 days / Previous 30 days / by month (updated_at, local calendar days); a
// filter bar (a project or a #tag); a search box (GET /api/sessions/search); a menu per
// chat to rename, pin, archive, move to a project, tag or delete it (the same menu
// serves the chat header's ⋯ button). The list is one roving tab stop: ↑ ↓ Home End
// move through every row of every group, → reaches a row's ⋯ button or opens a folder,
// ← closes a folder. On a desktop the whole sidebar collapses (remembered per browser).
//
// refreshSessions() is the one entry point that reloads the list (after a change in this
// tab, or when another tab or the server says something changed).

import { api, post } from "./api.js";
import { $, announce, h, icon, toast } from "./dom.js";
import { menuIsOpen, openDialog, openMenu } from "./menu.js";
import { createProject, editTags, openMoveMenu, projectDot, projectMenuItems } from "./projects.js";

const SEARCH_DEBOUNCE_MS = 150;
const COLLAPSED_KEY = "hermes.sidebarCollapsed";
const DESKTOP = window.matchMedia("(min-width: 761px)");
const ROVING = ".session-link, .project-toggle";
const MENU_BUTTONS = ".session-menu-btn, .project-menu-btn";

/**
 * The group of a session: "Pinned", "Today", "Yesterday", "Previous 7 days",
 * "Previous 30 days", or its month ("October 2026") — local calendar days of updated_at.
 */
export function groupOf(session, now = new Date()) {
  if (session.pinned) return "Pinned";
  const d = new Date((session.updated_at || 0) * 1000);
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const day = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const diff = Math.round((today - day) / 86400e3);
  if (diff <= 0) return "Today";
  if (diff === 1) return "Yesterday";
  if (diff <= 7) return "Previous 7 days";
  if (diff <= 30) return "Previous 30 days";
  return d.toLocaleDateString([], { month: "long", year: "numeric" });
}

/** ``rows`` (newest first) split into [[label, rows]] in the order the labels appear. */
function groupRows(rows, now = new Date()) {
  const groups = new Map();
  for (const s of rows) {
    const g = groupOf(s, now);
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(s);
  }
  return [...groups];
}

let current = null;

/** Reload the chat list and the projects from the server (coalesces overlapping calls). */
export function refreshSessions() {
  return current ? current.refresh() : Promise.resolve();
}

/**
 * Sidebar controller. ``hooks``: {onSelect(sid), onDeleted(sid), onRenamed(session),
 * onNewChat()} (the last opens an empty chat; newChatFields() then says which project
 * it starts in).
 */
export class Sidebar {
  constructor(hooks) {
    this.hooks = hooks;
    this.nav = $("#session-list");
    this.search = $("#search-input");
    this.showArchived = $("#show-archived");
    this.filterBar = $("#filter-bar");
    this.sessions = new Map();
    this.order = [];
    this.projects = [];
    this.filter = null;          // {kind: "project" | "tag", value}
    this.pendingProject = null;  // the project a new, not yet saved chat goes into
    this.activeId = null;
    this.rovingKey = null;
    this.query = "";
    this.results = null;
    this.searchTimer = null;
    this.refreshing = null;
    this.refreshAgain = false;
    this.deferred = null;        // a MutationObserver waiting for an open menu to close
    this.search.addEventListener("input", () => this.onSearchInput());
    this.search.addEventListener("keydown", (e) => this.onSearchKey(e));
    this.showArchived.addEventListener("change", () => this.refresh());
    this.nav.addEventListener("click", (e) => this.onClick(e));
    this.nav.addEventListener("keydown", (e) => this.onNavKey(e));
    this.nav.addEventListener("focusin", (e) => { if (e.target.matches(ROVING)) this.makeTabStop(e.target); });
    this.filterBar.addEventListener("click", (e) => this.onFilterClick(e));
    this.initCollapse();
    current = this;
  }

  /** Reload the list from the server (coalesces overlapping calls). */
  async refresh() {
    if (this.refreshing) { this.refreshAgain = true; return this.refreshing; }
    this.refreshing = (async () => {
      try {
        const [data, projects] = await Promise.all([
          api("/api/sessions", { params: { include_archived: this.showArchived.checked ? 1 : 0 } }),
          api("/api/projects").catch((err) => {
            if (err.status !== 401) toast(`Could not load the projects: ${err.message}`);
            return null;
          }),
        ]);
        this.sessions = new Map(data.sessions.map((s) => [s.session_id, s]));
        this.order = data.sessions;
        if (projects) this.projects = projects.projects;
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

  /** Highlight ``sid`` as the open chat (a chat being opened ends a pending new chat in a project). */
  setActive(sid) {
    this.activeId = sid;
    if (this.pendingProject) {
      this.pendingProject = null;
      this.nav.querySelector(".session-pending")?.remove();
    }
    this.markActive();
  }

  markActive() {
    const sid = this.activeId;
    for (const li of this.nav.querySelectorAll(".session[data-sid]")) {
      const on = li.dataset.sid === sid;
      li.classList.toggle("active", on);
      const link = li.querySelector(".session-link");
      if (on) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  /** The compact session ``sid`` as last listed (or undefined). */
  get(sid) { return this.sessions.get(sid); }

  /** Fields for POST /api/session/new: the project of a "New chat in this project". */
  newChatFields() {
    return this.pendingProject && !this.activeId ? { project_id: this.pendingProject } : {};
  }

  /** Open an empty chat that will be saved in project ``pid``. */
  async newChatIn(pid) {
    const opened = this.hooks.onNewChat();
    const project = this.projects.find((p) => p.project_id === pid);
    this.pendingProject = pid;
    this.render();
    announce(`New chat in the project ${project?.name || ""}`);
    await opened;
  }

  // ------------------------------------------------------------ drawing

  render() {
    if (this.deferWhileMenuOpen()) return;
    const hadFocus = this.nav.contains(document.activeElement) ? keyOf(document.activeElement) : null;
    this.renderFilterBar();
    let parts;
    if (this.query) parts = this.resultParts();
    else if (this.filter) parts = this.filteredParts();
    else parts = this.allParts();
    this.nav.replaceChildren(...parts);
    this.markActive();
    this.initRoving(hadFocus);
  }

  /** A row's or folder's menu is open: redraw once it closes, so the menu keeps its button. */
  deferWhileMenuOpen() {
    if (!menuIsOpen() || !this.nav.querySelector(`:is(${MENU_BUTTONS})[aria-expanded="true"]`)) return false;
    if (!this.deferred) {
      const menu = $("#menu");
      this.deferred = new MutationObserver(() => {
        if (!menu.hidden) return;
        this.deferred.disconnect();
        this.deferred = null;
        this.render();
      });
      this.deferred.observe(menu, { attributes: true, attributeFilter: ["hidden"] });
    }
    return true;
  }

  groupParts(groups, prefix) {
    return groups.map(([name, rows], i) => {
      const id = `${prefix}-${i}`;
      return [h("h2", { class: "group-label", id }, name),
        h("ul", { class: "sessions", "aria-labelledby": id }, rows.map((s) => this.item(s, { showProject: true })))];
    }).flat();
  }

  allParts() {
    const now = new Date();
    const byId = new Map(this.projects.map((p) => [p.project_id, p]));
    const pinned = this.order.filter((s) => s.pinned);
    const inProject = new Map(this.projects.map((p) => [p.project_id, []]));
    const pinnedIn = new Map();  // a pinned chat is listed under Pinned, and counted in its folder
    const rest = [];
    for (const s of this.order) {
      if (s.pinned) {
        if (s.project_id && byId.has(s.project_id)) pinnedIn.set(s.project_id, (pinnedIn.get(s.project_id) || 0) + 1);
        continue;
      }
      if (s.project_id && byId.has(s.project_id)) inProject.get(s.project_id).push(s);
      else rest.push(s);
    }
    const parts = this.groupParts(groupRows(pinned, now), "group-pinned");
    parts.push(h("div", { class: "group-head" },
      h("h2", { class: "group-label", id: "group-projects" }, "Projects"),
      h("button", { type: "button", class: "icon-btn projects-new", "aria-label": "New project", title: "New project" }, icon("plus"))));
    if (this.projects.length) {
      parts.push(h("div", { class: "projects", role: "group", "aria-labelledby": "group-projects" },
        this.projects.map((p) => this.folder(p, inProject.get(p.project_id), pinnedIn.get(p.project_id) || 0))));
    }
    parts.push(...this.groupParts(groupRows(rest, now), "group"));
    if (!this.order.length) parts.push(h("p", { class: "list-empty" }, "No chats yet. Start one with New chat."));
    return parts;
  }

  folder(p, rows, pinned = 0) {
    const pending = this.pendingProject === p.project_id && !this.activeId;
    const open = !p.collapsed || pending;
    const listId = `project-list-${p.project_id}`;
    const toggle = h("button", {
      type: "button", class: "project-toggle", "aria-expanded": String(open), "aria-controls": listId,
      title: p.name, dataset: { pid: p.project_id },
    }, icon("chevron", "project-chevron"), projectDot(p), h("span", { class: "project-name" }, p.name),
    h("span", { class: "project-count" }, h("span", { class: "visually-hidden" }, ", chats: "), String(rows.length + pinned)));
    const menuBtn = h("button", {
      type: "button", class: "icon-btn project-menu-btn", "aria-haspopup": "menu", "aria-expanded": "false",
      "aria-label": `Actions for the project “${p.name}”`, dataset: { pid: p.project_id },
    }, icon("dots"));
    const items = rows.map((s) => this.item(s));
    if (pending) items.unshift(h("li", { class: "session session-pending active" }, h("span", { class: "session-label" }, "New chat")));
    if (!items.length) {
      items.push(h("li", { class: "project-empty" },
        pinned ? `${pinned === 1 ? "Its chat is" : `Its ${pinned} chats are`} under Pinned` : "No chats yet"));
    }
    return h("section", { class: `project${open ? "" : " collapsed"}`, dataset: { pid: p.project_id } },
      h("div", { class: "project-head" }, toggle, menuBtn),
      h("ul", { class: "sessions project-sessions", id: listId, "aria-label": p.name, hidden: !open }, items));
  }

  filteredParts() {
    const { kind, value } = this.filter;
    const rows = this.order.filter((s) => (kind === "project" ? s.project_id === value
      : (s.tags || []).some((t) => t.toLowerCase() === value.toLowerCase())));
    if (!rows.length) {
      const name = this.projects.find((p) => p.project_id === value)?.name;
      return [h("p", { class: "list-empty" }, kind === "project" ? `No chats in “${name}” yet.` : `No chats are tagged #${value}.`)];
    }
    return this.groupParts(groupRows(rows), "group-filtered");
  }

  resultParts() {
    const rows = this.results || [];
    const parts = [h("h2", { class: "group-label", id: "group-results" }, this.results ? "Results" : "Searching…")];
    if (this.results && !rows.length) parts.push(h("p", { class: "list-empty" }, `No chats match “${this.query}”.`));
    else parts.push(h("ul", { class: "sessions", "aria-labelledby": "group-results" }, rows.map((r) => {
      const s = this.sessions.get(r.session_id) || { session_id: r.session_id, title: r.title };
      const snippet = r.snippet && r.snippet !== r.title ? r.snippet : null;
      return this.item({ ...s, title: r.title || s.title }, { snippet, showProject: true });
    })));
    return parts;
  }

  item(s, { snippet = null, showProject = false } = {}) {
    const title = s.title || "New chat";
    const project = showProject && s.project_id ? this.projects.find((p) => p.project_id === s.project_id) : null;
    const tags = s.tags || [];
    const link = h("a", { class: "session-link", href: `/?s=${encodeURIComponent(s.session_id)}`, title },
      s.pinned ? icon("pin", "session-pin") : null,
      project ? projectDot(project) : null,
      h("span", { class: "session-text" }, h("span", { class: "session-title" }, title),
        snippet ? h("span", { class: "session-snippet" }, snippet) : null,
        tags.length ? h("span", { class: "session-tags" }, tags.map((t) => h("span", { class: "session-tag" }, `#${t}`))) : null),
      s.active_stream_id ? h("span", { class: "session-streaming", title: "Replying…" }) : null,
      s.archived ? h("span", { class: "session-archived" }, "Archived") : null);
    if (project) link.title = `${title} (project ${project.name})`;
    const menuBtn = h("button", {
      type: "button", class: "icon-btn session-menu-btn", "aria-haspopup": "menu", "aria-expanded": "false",
      "aria-label": `Actions for “${title}”`, tabindex: "-1",
    }, icon("dots"));
    return h("li", { class: "session", dataset: { sid: s.session_id } }, link, menuBtn);
  }

  // ------------------------------------------------------------ the filter bar

  /** Chips for "All", each project and each tag in use (most used first). */
  renderFilterBar() {
    const counts = new Map();
    for (const s of this.order) {
      for (const t of s.tags || []) {
        const key = t.toLowerCase();
        const c = counts.get(key) || { tag: t, n: 0 };
        c.n += 1;
        counts.set(key, c);
      }
    }
    const tags = [...counts.values()].sort((a, b) => b.n - a.n || a.tag.localeCompare(b.tag));
    const f = this.filter;
    if (f && f.kind === "project" && !this.projects.some((p) => p.project_id === f.value)) this.filter = null;
    if (f && f.kind === "tag" && !counts.has(f.value.toLowerCase())) this.filter = null;
    this.filterBar.hidden = !this.projects.length && !tags.length;
    const chip = (label, kind, value, extra = null) => {
      const on = kind ? this.filter?.kind === kind && this.filter.value === value : !this.filter;
      return h("button", { type: "button", class: "chip", "aria-pressed": String(on), dataset: { kind: kind || "", value: value || "" } },
        extra, h("span", {}, label));
    };
    this.filterBar.replaceChildren(
      chip("All chats", null, null),
      ...this.projects.map((p) => chip(p.name, "project", p.project_id, projectDot(p))),
      ...tags.map(({ tag }) => chip(`#${tag}`, "tag", tag)),
    );
  }

  onFilterClick(e) {
    const btn = e.target.closest(".chip");
    if (!btn) return;
    const { kind, value } = btn.dataset;
    const same = this.filter && this.filter.kind === kind && this.filter.value === value;
    this.setFilter(!kind || same ? null : { kind, value });
    this.filterBar.querySelector(`.chip[data-kind="${kind}"][data-value="${CSS.escape(same ? "" : value)}"]`)?.focus();
  }

  /** Show only a project's or a tag's chats (null: all of them). */
  setFilter(filter) {
    this.filter = filter;
    this.render();
    if (!filter) announce("Showing all chats");
    else announce(`Showing ${this.nav.querySelectorAll(".session[data-sid]").length} chats`);
  }

  // ------------------------------------------------------------ clicks and menus

  onClick(e) {
    if (e.target.closest(".projects-new")) { this.newProject(); return; }
    const toggle = e.target.closest(".project-toggle");
    if (toggle) { this.toggleProject(toggle.dataset.pid); return; }
    const projectMenu = e.target.closest(".project-menu-btn");
    if (projectMenu) { this.openProjectMenu(projectMenu); return; }
    const li = e.target.closest(".session[data-sid]");
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

  async newProject() {
    const project = await createProject();
    if (!project) return;
    await this.refresh();
    announce(`Created the project ${project.name}`);
    this.nav.querySelector(`.project-toggle[data-pid="${CSS.escape(project.project_id)}"]`)?.focus();
  }

  /** Fold or unfold project ``pid``; remembered on the server (the project's ``collapsed``). */
  async toggleProject(pid) {
    const p = this.projects.find((x) => x.project_id === pid);
    if (!p) return;
    p.collapsed = !p.collapsed;
    this.render();
    try {
      await post("/api/projects/update", { project_id: pid, collapsed: p.collapsed });
    } catch (err) {
      p.collapsed = !p.collapsed;
      this.render();
      toast(`Could not ${p.collapsed ? "open" : "close"} the project folder: ${err.message}`);
    }
  }

  openProjectMenu(anchor) {
    const p = this.projects.find((x) => x.project_id === anchor.dataset.pid);
    if (!p) return;
    openMenu(anchor, projectMenuItems(p, {
      onNewChat: (pid) => this.newChatIn(pid),
      onChanged: async (deleted) => {
        if (deleted && this.filter?.value === deleted) this.filter = null;
        await this.refresh();
      },
    }));
  }

  /** The rename / pin / archive / move / tags / delete menu for ``sid``, under ``anchor``. */
  openSessionMenu(anchor, sid) {
    openMenu(anchor, this.menuItems(sid));
  }

  /** The menu items for ``sid``; ``extra`` items go before Delete (the chat header adds its own). */
  menuItems(sid, extra = []) {
    const s = this.sessions.get(sid) || { session_id: sid, title: "this chat" };
    // a menu item's action runs after the menu gave the focus back to the button it came from
    const anchor = () => (document.activeElement?.matches?.("button") && document.activeElement.isConnected
      ? document.activeElement : $("#chat-menu-btn"));
    return [
      { label: "Rename", icon: "edit", action: () => this.rename(s) },
      { label: s.pinned ? "Unpin" : "Pin", icon: "pin", action: () => this.patch("pin", { pinned: !s.pinned }, s) },
      { label: s.archived ? "Unarchive" : "Archive", icon: "archive", action: () => this.patch("archive", { archived: !s.archived }, s) },
      { label: s.project_id ? "Move to project…" : "Add to project…", icon: "folder",
        action: () => openMoveMenu(anchor(), s, this.projects, () => this.refresh()) },
      { label: "Edit tags…", icon: "tag", action: () => editTags(s, () => this.refresh()) },
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

  // ------------------------------------------------------------ keyboard: one roving tab stop

  rovingItems() {
    return [...this.nav.querySelectorAll(ROVING)].filter((el) => el.getClientRects().length > 0);
  }

  /** Make ``el`` the list's one tab stop. */
  makeTabStop(el) {
    for (const other of this.nav.querySelectorAll(`${ROVING}, ${MENU_BUTTONS}`)) other.tabIndex = -1;
    el.tabIndex = 0;
    this.rovingKey = keyOf(el);
  }

  /** After a redraw: the tab stop is the last one (or the open chat, or the first row); focus stays put. */
  initRoving(hadFocus) {
    const items = this.rovingItems();
    for (const el of this.nav.querySelectorAll(`${ROVING}, ${MENU_BUTTONS}`)) el.tabIndex = -1;
    const find = (key) => (key ? this.nav.querySelector(selectorOf(key)) : null);
    const stop = find(hadFocus && hadFocus.startsWith("m:") ? hadFocus.slice(2) : hadFocus)
      || find(this.rovingKey) || this.nav.querySelector(".session.active .session-link") || items[0];
    if (stop && items.includes(stop)) stop.tabIndex = 0;
    else if (items[0]) items[0].tabIndex = 0;
    const refocus = find(hadFocus);
    if (refocus && refocus !== document.activeElement) refocus.focus({ preventScroll: true });
    else if (hadFocus && !refocus && items.length) items[0].focus({ preventScroll: true });
  }

  focusItem(el) {
    if (!el) return;
    if (el.matches(ROVING)) this.makeTabStop(el);
    el.focus();
    el.scrollIntoView({ block: "nearest" });
  }

  onNavKey(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const el = e.target;
    const rowMain = (btn) => btn.closest(".session, .project-head")?.querySelector(ROVING);
    if (el.matches(MENU_BUTTONS)) {
      if (e.key === "ArrowLeft") { e.preventDefault(); this.focusItem(rowMain(el)); return; }
      if (e.key !== "ArrowUp" && e.key !== "ArrowDown") return;
    }
    const main = el.matches(MENU_BUTTONS) ? rowMain(el) : el;
    if (!main || !main.matches(ROVING)) return;
    if (e.key === "ContextMenu" || (e.shiftKey && e.key === "F10")) {
      e.preventDefault();
      main.parentElement.querySelector(MENU_BUTTONS)?.click();
      return;
    }
    const items = this.rovingItems();
    const i = items.indexOf(main);
    const toggle = main.matches(".project-toggle");
    const expanded = toggle && main.getAttribute("aria-expanded") === "true";
    switch (e.key) {
      case "ArrowDown": this.focusItem(items[Math.min(i + 1, items.length - 1)]); break;
      case "ArrowUp": if (i <= 0) this.search.focus(); else this.focusItem(items[i - 1]); break;
      case "Home": this.focusItem(items[0]); break;
      case "End": this.focusItem(items[items.length - 1]); break;
      case "ArrowRight":
        if (toggle && !expanded) this.toggleProject(main.dataset.pid);
        else this.focusItem(main.parentElement.querySelector(MENU_BUTTONS));
        break;
      case "ArrowLeft":
        if (toggle && expanded) this.toggleProject(main.dataset.pid);
        else if (!toggle) this.focusItem(main.closest(".project")?.querySelector(".project-toggle"));
        break;
      default: return;
    }
    e.preventDefault();
  }

  // ------------------------------------------------------------ collapsing the sidebar (desktop)

  initCollapse() {
    let stored = false;
    try { stored = localStorage.getItem(COLLAPSED_KEY) === "1"; } catch { /* private mode: not remembered */ }
    this.applyCollapsed(stored);
    $("#collapse-sidebar").addEventListener("click", () => this.setCollapsed(true));
    $("#expand-sidebar").addEventListener("click", () => this.setCollapsed(false));
  }

  applyCollapsed(on) {
    this.collapsed = on;
    $("#app").classList.toggle("sidebar-collapsed", on);
    $("#expand-sidebar").setAttribute("aria-expanded", String(!on));
  }

  /** Hide (true) or show the chat list on a desktop; remembered by this browser. */
  setCollapsed(on) {
    this.applyCollapsed(on);
    try { localStorage.setItem(COLLAPSED_KEY, on ? "1" : "0"); } catch { /* not remembered */ }
    if (on) $("#expand-sidebar").focus();
    else $("#collapse-sidebar").focus();
    announce(on ? "Chat list hidden" : "Chat list shown");
  }

  /** Ctrl/Cmd+Shift+S: show or hide the chat list (desktop only; the phone has its drawer). */
  toggleCollapsed() {
    if (DESKTOP.matches) this.setCollapsed(!this.collapsed);
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
      this.focusItem(this.rovingItems()[0]);
    } else if (e.key === "Enter") {
      const first = this.nav.querySelector(".session[data-sid]");
      if (first && this.query) this.hooks.onSelect(first.dataset.sid);
    }
  }

  /** Put the cursor in the search box (Ctrl/Cmd+K); shows a collapsed sidebar first. */
  focusSearch() {
    if (this.collapsed && DESKTOP.matches) this.applyCollapsed(false);
    this.search.focus();
    this.search.select();
  }
}

/** A stable name for a list control across redraws: "s:<sid>", "p:<pid>", "m:" + either for its ⋯ button. */
function keyOf(el) {
  if (!el?.closest) return null;
  if (el.matches(".projects-new")) return "new-project";
  const menu = el.matches(MENU_BUTTONS) ? "m:" : "";
  const li = el.closest(".session[data-sid]");
  if (li) return `${menu}s:${li.dataset.sid}`;
  const project = el.closest(".project");
  if (project && (el.matches(".project-toggle") || menu)) return `${menu}p:${project.dataset.pid}`;
  return null;
}

function selectorOf(key) {
  if (key === "new-project") return ".projects-new";
  const menu = key.startsWith("m:");
  const rest = menu ? key.slice(2) : key;
  const id = CSS.escape(rest.slice(2));
  if (rest.startsWith("s:")) return `.session[data-sid="${id}"] ${menu ? ".session-menu-btn" : ".session-link"}`;
  return `.project[data-pid="${id}"] ${menu ? ".project-menu-btn" : ".project-toggle"}`;
}
