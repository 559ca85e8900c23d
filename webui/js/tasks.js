// The Tasks button at the foot of the sidebar opens a dialog holding the tasks panel
// (webui/panels/tasks.js). Opting in to notifications ("Tell me when a run ends") makes
// this page ask GET /api/tasks?prompt=preview (the list without full prompts) while it is
// open (when a chat's turn ends, as the page's live updates say through the document event "hermes:sessions-changed"; every 3 s while a
// run is going; else every 30 s) and show a browser notification when a run of a task
// finishes or fails; the choice is kept per browser.

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { wireDialogClose } from "./menu.js";
import { mount } from "../panels/tasks.js";

const NOTIFY_KEY = "hermes.taskNotify";
const POLL_MS = 30_000;
const RUNNING_POLL_MS = 3_000;
const ENDED = { complete: "finished", error: "failed", interrupted: "was interrupted" };

function stored() {
  try { return localStorage.getItem(NOTIFY_KEY) === "1"; } catch { return false; }
}

function remember(on) {
  try { localStorage.setItem(NOTIFY_KEY, on ? "1" : "0"); } catch { /* private mode: not remembered */ }
}

/** Wire #tasks-btn and #tasks-dialog. ``onOpen(sessionId)`` shows a run's chat. */
export function initTasks({ onOpen }) {
  const button = $("#tasks-btn");
  const dialog = $("#tasks-dialog");
  if (!button || !dialog) return {};
  let panel = null;
  let seen = null;    // task id → "run_id:status" of its last run, as last polled
  let timer = null;

  const notifyBox = h("input", { type: "checkbox", id: "tasks-notify" });
  const notifyNote = h("span", { class: "hp-hint", role: "status" });
  $("#tasks-notify-row")?.replaceChildren(
    h("label", { class: "check" }, notifyBox, h("span", {}, "Tell me when a run ends (a browser notification)")),
    " ", notifyNote);

  let on = false;
  let busy = false;   // one poll at a time, so a change is announced once
  let again = false;
  async function poll() {
    if (busy) { again = true; return; }
    clearTimeout(timer);
    if (!on) return;
    busy = true;
    let tasks = null;
    try { ({ tasks } = await api("/api/tasks?prompt=preview")); } catch { /* asked again at the next tick */ }
    busy = false;
    if (!on) return;
    if (again) { again = false; poll(); return; }
    timer = setTimeout(poll, tasks?.some((t) => t.last_run?.status === "running") ? RUNNING_POLL_MS : POLL_MS);
    if (!tasks) return;
    const now = new Map(tasks.map((t) => [t.id, t.last_run ? `${t.last_run.run_id}:${t.last_run.status}` : ""]));
    if (seen) {
      for (const t of tasks) {
        const run = t.last_run;
        if (!run || seen.get(t.id) === now.get(t.id) || !ENDED[run.status]) continue;
        try {
          new Notification(`Task ${t.name} ${ENDED[run.status]}`, { body: t.prompt_preview.slice(0, 120), tag: `task-${t.id}` });
        } catch { /* notifications refused meanwhile */ }
      }
    }
    seen = now;
  }

  function watch(enabled) {
    clearTimeout(timer);
    on = enabled;
    seen = null;
    poll();
  }
  document.addEventListener("hermes:sessions-changed", (e) => {
    if (!["turn_started", "turn_finished", "reconnected"].includes(e.detail?.reason)) return;
    if (on) poll();
    panel?.refresh();   // an open panel shows a run that starts or ends (e.g. on schedule) without Reload
  });

  notifyBox.checked = stored() && typeof Notification !== "undefined" && Notification.permission === "granted";
  notifyBox.addEventListener("change", async () => {
    if (notifyBox.checked) {
      if (typeof Notification === "undefined") {
        notifyNote.textContent = "This browser cannot show notifications.";
        notifyBox.checked = false;
        return;
      }
      const permission = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
      if (permission !== "granted") {
        notifyNote.textContent = "The browser did not allow notifications: allow them for this site in its settings.";
        notifyBox.checked = false;
        return;
      }
    }
    notifyNote.textContent = notifyBox.checked ? "On." : "";
    remember(notifyBox.checked);
    watch(notifyBox.checked);
  });
  watch(notifyBox.checked);

  let opening = false;
  button.addEventListener("click", () => {
    panel = mount($("#tasks-body"), {
      onOpen: (sid) => {
        opening = true;
        dialog.close();
        onOpen(sid);
      },
    });
    dialog.showModal();
    $("#task-new")?.focus();
  });
  wireDialogClose(dialog);
  dialog.addEventListener("close", () => {
    panel?.unmount();
    panel = null;
    if (!opening) button.focus();   // else the chat being opened takes the focus
    opening = false;
  });
  return { refresh: () => panel?.refresh() };
}
