// The right-hand side panel (#workspace-panel): tabs Files / Skills / Memory, each filled
// by a panel module of webui/panels/ (mount(container, ctx) → {refresh, unmount}). A tab's
// panel is mounted the first time it is shown; the panel's open state and the chosen tab
// are remembered in localStorage.
//
// Hooks: the chat dispatches document "hermes:session" {sessionId} whenever another chat
// is opened (the Files panel follows it by itself); this module re-dispatches it as
// document "hermes:workspace" {sessionId, open} whenever the panel opens, closes or the
// chat changes while it is open.

import { $ } from "./dom.js";
import { mount as mountFiles } from "../panels/workspace.js";
import { mount as mountSkills } from "../panels/skills.js";
import { mount as mountMemory } from "../panels/memory.js";

const OPEN_KEY = "hermes.workspaceOpen";
const TAB_KEY = "hermes.panelTab";
const TABS = ["files", "skills", "memory"];

function stored(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

function store(key, value) {
  try { localStorage.setItem(key, value); } catch { /* private mode: not remembered */ }
}

/**
 * Wire the panel. ``ctx.sessionId()`` is the open chat's id (or null). Returns
 * {toggle(open?, remember?), isOpen(), select(tab), refreshFiles(), reset()}.
 */
export function initWorkspacePanel(ctx) {
  const app = $("#app");
  const panel = $("#workspace-panel");
  const toggleBtn = $("#toggle-workspace");
  const tabs = TABS.map((name) => $(`#tab-${name}`));
  const mounters = { files: () => mountFiles($("#tabpanel-files"), { sessionId: ctx.sessionId }),
                     skills: () => mountSkills($("#tabpanel-skills"), {}),
                     memory: () => mountMemory($("#tabpanel-memory"), {}) };
  const mounted = new Map();  // tab name → {refresh, unmount}
  let current = TABS.includes(stored(TAB_KEY)) ? stored(TAB_KEY) : "files";
  let sessionId = null;

  const notify = () => document.dispatchEvent(new CustomEvent("hermes:workspace", {
    detail: { sessionId, open: !panel.hidden },
  }));

  // Show tab ``name``; its panel is mounted on first sight (only while the panel is open).
  function select(name, focus = false) {
    current = name;
    store(TAB_KEY, name);
    for (const tab of tabs) {
      const on = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      $(`#tabpanel-${tab.dataset.tab}`).hidden = !on;
      if (on && focus) tab.focus();
    }
    if (!panel.hidden && !mounted.has(name)) mounted.set(name, mounters[name]());
  }

  function toggle(open = panel.hidden, remember = true) {
    const wasOpen = !panel.hidden;
    panel.hidden = !open;
    app.classList.toggle("with-workspace", open);
    toggleBtn.setAttribute("aria-expanded", String(open));
    toggleBtn.setAttribute("aria-label", open ? "Hide files, skills and memory" : "Show files, skills and memory");
    if (remember) store(OPEN_KEY, open ? "1" : "0");
    if (open && !wasOpen) {
      if (mounted.has(current)) mounted.get(current).refresh();
      else select(current);
    }
    notify();
  }

  // Tabs pattern: arrows move between tabs (and select them), Home/End jump.
  function onTabKey(e) {
    const at = TABS.indexOf(current);
    let next = null;
    if (e.key === "ArrowRight") next = TABS[(at + 1) % TABS.length];
    else if (e.key === "ArrowLeft") next = TABS[(at - 1 + TABS.length) % TABS.length];
    else if (e.key === "Home") next = TABS[0];
    else if (e.key === "End") next = TABS[TABS.length - 1];
    if (next === null) return;
    e.preventDefault();
    select(next, true);
  }

  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab.dataset.tab));
    tab.addEventListener("keydown", onTabKey);
  }
  toggleBtn.addEventListener("click", () => {
    toggle();
    if (!panel.hidden) $(`#tab-${current}`).focus();
  });
  $("#close-workspace").addEventListener("click", () => {
    toggle(false);
    toggleBtn.focus();
  });
  document.addEventListener("hermes:session", (e) => {
    sessionId = e.detail.sessionId;
    if (!panel.hidden) notify();
  });
  // Phones have no room for it beside the chat: it starts closed there.
  select(current);
  toggle(stored(OPEN_KEY) === "1" && !window.matchMedia("(max-width: 760px)").matches, false);

  return {
    toggle,
    select,
    isOpen: () => !panel.hidden,
    /** Re-list the files (after a turn, which may have changed them), if they are showing. */
    refreshFiles() {
      if (!panel.hidden && current === "files" && mounted.has("files")) mounted.get("files").refresh();
    },
    /** Forget every mounted panel (another profile: other skills, memory and files). */
    reset() {
      for (const p of mounted.values()) p.unmount();
      mounted.clear();
      if (!panel.hidden) select(current);
    },
  };
}
