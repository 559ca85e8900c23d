// The right-hand workspace panel (#workspace-panel). This module only opens and closes
// it and remembers that choice; the workspace feature fills #workspace-body.
//
// Hook for the workspace feature: the chat dispatches
//   document "hermes:session" CustomEvent, detail {sessionId: string|null}
// whenever another chat is opened; this module re-dispatches it as
//   document "hermes:workspace" CustomEvent, detail {sessionId, open: bool}
// whenever the panel opens, closes or the chat changes while it is open.

import { $ } from "./dom.js";

const STORAGE_KEY = "hermes.workspaceOpen";

function stored() {
  try { return localStorage.getItem(STORAGE_KEY) === "1"; } catch { return false; }
}

function store(open) {
  try { localStorage.setItem(STORAGE_KEY, open ? "1" : "0"); } catch { /* private mode: not remembered */ }
}

/** Wire the toggle buttons; returns {toggle(open?, remember?), isOpen()}. */
export function initWorkspacePanel() {
  const app = $("#app");
  const panel = $("#workspace-panel");
  const toggleBtn = $("#toggle-workspace");
  let sessionId = null;

  const notify = () => document.dispatchEvent(new CustomEvent("hermes:workspace", {
    detail: { sessionId, open: !panel.hidden },
  }));

  function toggle(open = panel.hidden, remember = true) {
    panel.hidden = !open;
    app.classList.toggle("with-workspace", open);
    toggleBtn.setAttribute("aria-expanded", String(open));
    toggleBtn.setAttribute("aria-label", open ? "Hide workspace panel" : "Show workspace panel");
    if (remember) store(open);
    notify();
  }

  toggleBtn.addEventListener("click", () => {
    toggle();
    if (!panel.hidden) $("#close-workspace").focus();
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
  toggle(stored() && !window.matchMedia("(max-width: 760px)").matches, false);
  return { toggle, isOpen: () => !panel.hidden };
}
