// Scheduled tasks: prompts the agent runs on a schedule, each run an ordinary chat.
//
//   import { mount } from "/static/panels/tasks.js";
//   const panel = mount(container, { onOpen: (sessionId) => … });
//
// API (docs/api.md "Scheduled tasks"): GET /api/tasks?prompt=preview → {tasks: [{id, name,
// prompt_preview, prompt_bytes, schedule, timezone, enabled, session_mode, session_id, model,
// missed, allowed_tools, next_runs, last_run?}]} (the list, polled while a run goes, without
// the full prompts); GET /api/tasks?task_id → that task with its prompt (the editor);
// GET /api/tasks/preview?schedule&timezone → {cron, next_runs};
// POST /api/tasks/save|delete|run|pause; GET /api/tasks/runs?task_id → {runs}.
// GET /api/models fills the model choice.

import { api, post } from "../js/api.js";
import { h } from "../js/dom.js";
import { openDialog } from "../js/menu.js";

const PRESETS = [
  ["hourly", "Every hour"],
  ["daily", "Every day at…"],
  ["weekdays", "Weekdays (Mon–Fri) at…"],
  ["weekly", "Every week on…"],
  ["cron", "Custom (cron)"],
];
const DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
const STATUS_TEXT = { running: "Running", complete: "Finished", error: "Failed", interrupted: "Interrupted",
                      skipped: "Skipped" };
const REASON_TEXT = { scheduled: "on schedule", missed: "made up for missed runs", manual: "run by hand" };
const RUNNING_POLL_MS = 3_000;   // how often an open panel looks again while a run is going
let uid = 0;

/** The browser's time zone (IANA), or UTC. */
export function browserZone() {
  try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch { return "UTC"; }
}

/** An ISO time or epoch seconds as a short local text, on the wall clock of ``zone``,
 *  which is named when it is not this browser's (chats show the browser's clock). */
function when(value, zone) {
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  const opts = { weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
  try {
    const text = date.toLocaleString(undefined, { ...opts, timeZone: zone || undefined });
    return zone && zone !== browserZone() ? `${text} (${zone} time)` : text;
  } catch {
    return date.toLocaleString(undefined, opts);
  }
}

/** A schedule text split into the editor's fields (a preset, a time, a day, or cron). */
function parseSchedule(text) {
  const s = (text || "").trim().toLowerCase().replace(/\s+/g, " ");
  let m;
  if (s === "hourly") return { preset: "hourly" };
  if ((m = s.match(/^(daily|weekdays) at (\d{1,2}):(\d{2})$/))) return { preset: m[1], time: `${m[2].padStart(2, "0")}:${m[3]}` };
  if ((m = s.match(/^weekly ([a-z]+) at (\d{1,2}):(\d{2})$/))) {
    const day = DAYS.find((d) => d === m[1] || d.slice(0, 3) === m[1]) || "monday";
    return { preset: "weekly", day, time: `${m[2].padStart(2, "0")}:${m[3]}` };
  }
  return { preset: s ? "cron" : "weekdays", cron: s, time: "08:00" };
}

export function mount(container, ctx = {}) {
  const onOpen = ctx.onOpen || ((sid) => { window.location.assign(`/?s=${encodeURIComponent(sid)}`); });
  // a toast kept in sight at the foot of the dialog however long the list (sticky, CSS)
  const status = h("p", { class: "hp-status hp-tasks-status", role: "status", "aria-live": "polite" });
  const list = h("div", { class: "hp-tasks-list" });
  const editorBox = h("div", { class: "hp-task-editor-box" });
  const historyBox = h("div", { class: "hp-task-history-box" });
  const root = h("div", { class: "hp-panel hp-tasks" },
    h("div", { class: "hp-toolbar" },
      h("button", { type: "button", class: "hp-btn hp-primary", id: "task-new", onclick: () => edit(null) }, "New task"),
      h("button", { type: "button", class: "hp-btn", onclick: () => load() }, "Reload")),
    editorBox, list, historyBox, status);
  container.replaceChildren(root);
  let tasks = [];
  let models = null;
  let shown = null;      // {id, highlight}: the task whose runs are shown
  let again = null;      // the next look while a run is going (its end shows without Reload)
  let listSig = "";
  let histSig = "";
  let gone = false;

  function say(text, isError = false, detail = null) {
    status.replaceChildren(text);
    status.classList.toggle("hp-error", isError);
    if (detail) status.append(" ", h("details", { class: "hp-details" }, h("summary", {}, "Details"), detail));
  }
  const fail = (what) => (err) => {
    say(`Could not ${what}: ${err.message}`, true, err.detail);
    if (err.status === 404) load();   // deleted in another tab: its row goes
  };

  // -- the list ---------------------------------------------------------------

  function lastRunText(t) {
    if (!t.last_run) return "Never run yet";
    return `Last run ${when(t.last_run.started_at, t.timezone)}: ${STATUS_TEXT[t.last_run.status] || t.last_run.status}`;
  }

  function row(t) {
    const next = t.enabled ? (t.next_runs[0] ? `Next ${when(t.next_runs[0], t.timezone)}` : "No next run") : "Paused";
    const act = (label, fn, cls = "hp-btn") => h("button", { type: "button", class: cls, onclick: fn,
                                                            "aria-label": `${label}: ${t.name}` }, label);
    return h("section", { class: "hp-task", dataset: { taskId: t.id, status: t.last_run?.status || "none" } },
      h("h3", { class: "hp-task-name" }, t.name),
      h("p", { class: "hp-meta hp-task-when" }, `${t.schedule} · ${t.timezone}`),
      h("p", { class: "hp-meta hp-task-next" }, next),
      h("p", { class: `hp-meta hp-task-last hp-run-${t.last_run?.status || "none"}` }, lastRunText(t)),
      h("div", { class: "hp-toolbar" },
        act("Run now", () => runNow(t)),
        act(t.enabled ? "Pause" : "Resume", () => pause(t, t.enabled)),
        act("Edit", () => edit(t)),
        act("History", () => history(t)),
        act("Delete", () => remove(t), "hp-btn hp-danger")));
  }

  /** Re-render ``box`` by ``render()``, keeping the keyboard focus on the control with the same label. */
  function keepFocus(box, render) {
    const label = box.contains(document.activeElement) ? document.activeElement.getAttribute("aria-label") : null;
    render();
    if (label) [...box.querySelectorAll("[aria-label]")].find((el) => el.getAttribute("aria-label") === label)?.focus();
  }

  async function load() {
    clearTimeout(again);
    try {
      ({ tasks } = await api("/api/tasks?prompt=preview"));   // no full prompts: polled every 3 s during a run
      if (gone) return;
      const sig = JSON.stringify(tasks);
      if (sig !== listSig) {
        listSig = sig;
        keepFocus(list, () => list.replaceChildren(...(tasks.length ? tasks.map(row)
          : [h("p", { class: "hp-empty" }, "No tasks yet. A task sends a prompt to the agent on a schedule, "
              + "for example every weekday at 8:00.")])));
      }
      const open = shown && tasks.find((t) => t.id === shown.id);
      if (open) history(open, shown.highlight, false);
      else if (shown) { shown = null; historyBox.replaceChildren(); }
      if (tasks.some((t) => t.last_run?.status === "running")) again = setTimeout(load, RUNNING_POLL_MS);
    } catch (err) { fail("load the tasks")(err); }
  }

  async function runNow(t) {
    try {
      const { session_id: sid } = await post("/api/tasks/run", { task_id: t.id });
      say(`Started ${t.name}.`);
      await load();
      history(t, sid);
    } catch (err) { fail(`run ${t.name}`)(err); }
  }

  /** Focus the control labelled ``label`` (else "New task"): the one the keyboard was on went away. */
  function focusOn(label) {
    const el = label && [...root.querySelectorAll("[aria-label]")].find((e) => e.getAttribute("aria-label") === label);
    (el || root.querySelector("#task-new"))?.focus();
  }

  async function pause(t, paused) {
    try {
      await post("/api/tasks/pause", { task_id: t.id, paused });
      say(paused ? `Paused ${t.name}: it will not run until you resume it.` : `Resumed ${t.name}.`);
      await load();
      focusOn(`${paused ? "Resume" : "Pause"}: ${t.name}`);
    } catch (err) { fail(paused ? "pause the task" : "resume the task")(err); }
  }

  async function remove(t) {
    if (!await openDialog({ title: `Delete the task ${t.name}?`,
      text: "It will not run again and its run history goes; the chats of its runs stay.", ok: "Delete", danger: true })) return;
    try {
      await post("/api/tasks/delete", { task_id: t.id });
      shown = null;
      historyBox.replaceChildren();
      say(`Deleted ${t.name}.`);
      await load();
      focusOn(null);
    } catch (err) { fail("delete the task")(err); }
  }

  // -- history ----------------------------------------------------------------

  async function history(t, highlight = null, scroll = true) {
    shown = { id: t.id, highlight };
    try {
      const { runs } = await api(`/api/tasks/runs?task_id=${encodeURIComponent(t.id)}`);
      if (gone || shown?.id !== t.id) return;
      const sig = JSON.stringify([t.name, t.timezone, highlight, runs]);
      if (!scroll && sig === histSig) return;
      histSig = sig;
      const items = runs.map((r) => {
        const denied = (r.denied || []).map((d) => `${d.tool}${d.command ? ` (${d.command})` : ""}`);
        return h("li", { class: `hp-run hp-run-${r.status}`, dataset: { runId: r.run_id } },
          h("span", { class: "hp-run-head" },
            h("strong", {}, STATUS_TEXT[r.status] || r.status), " · ", when(r.started_at, t.timezone),
            " · ", r.reason === "missed" && r.status === "skipped" ? "missed while the server was stopped"
              : REASON_TEXT[r.reason] || r.reason || ""),
          r.note ? h("span", { class: "hp-meta hp-run-note" }, r.note) : null,
          denied.length ? h("span", { class: "hp-meta hp-run-denied" },
            `Denied without asking (not in the task's allowed tools): ${denied.join(", ")}`) : null,
          r.session_id ? h("button", { type: "button", class: "hp-link hp-run-open",
                                       "aria-label": `Open the chat of the run at ${when(r.started_at, t.timezone)}`,
                                       onclick: () => onOpen(r.session_id) },
            highlight === r.session_id && r.status === "running" ? "Open this run's chat (live)" : "Open chat") : null);
      });
      keepFocus(historyBox, () => historyBox.replaceChildren(
        h("section", { class: "hp-group hp-task-history", "aria-label": `Runs of ${t.name}` },
          h("h3", { class: "hp-group-title" }, `Runs of ${t.name}`),
          items.length ? h("ol", { class: "hp-list hp-runs" }, ...items) : h("p", { class: "hp-empty" }, "No runs yet."))));
      if (scroll) historyBox.scrollIntoView({ block: "nearest" });
    } catch (err) { fail("load the runs")(err); }
  }

  // -- the editor -------------------------------------------------------------

  async function modelOptions(current) {
    if (!models) {
      try { models = (await api("/api/models")).models; } catch { models = []; }
    }
    const options = [h("option", { value: "" }, "The default model"),
      ...models.map((m) => h("option", { value: m.id, selected: m.id === current }, m.label || m.id))];
    // a model this server no longer offers stays chosen (and named) rather than silently becoming the default
    if (current && !models.some((m) => m.id === current)) {
      options.push(h("option", { value: current, selected: true }, `${current} (not offered by this server now)`));
    }
    return options;
  }

  async function edit(t) {
    if (t) {   // the list carries only a preview of each prompt: ask for this one's whole
      try { [t] = (await api(`/api/tasks?task_id=${encodeURIComponent(t.id)}`)).tasks; } catch (err) {
        fail(`open ${t.name}`)(err);
        return;
      }
    }
    shown = null;
    historyBox.replaceChildren();
    const n = ++uid;
    const id = (name) => `task-${name}-${n}`;
    const sched = parseSchedule(t?.schedule);
    const field = (label, name, control, help = null) => h("div", { class: "hp-field" },
      h("label", { for: id(name) }, label), control, help ? h("p", { class: "hp-hint" }, help) : null);
    const name = h("input", { id: id("name"), class: "hp-input", required: true, maxlength: 128, value: t?.name || "" });
    const prompt = h("textarea", { id: id("prompt"), class: "hp-editor hp-task-prompt", required: true, rows: 4 });
    prompt.value = t?.prompt || "";
    const preset = h("select", { id: id("preset"), class: "hp-input" },
      ...PRESETS.map(([v, label]) => h("option", { value: v, selected: v === sched.preset }, label)));
    const time = h("input", { id: id("time"), class: "hp-input", type: "time", value: sched.time || "08:00" });
    const day = h("select", { id: id("day"), class: "hp-input" },
      ...DAYS.map((d) => h("option", { value: d, selected: d === sched.day }, d[0].toUpperCase() + d.slice(1))));
    const cron = h("input", { id: id("cron"), class: "hp-input", spellcheck: "false", placeholder: "30 7 * * 1-5",
                              value: sched.cron || "" });
    const zone = h("input", { id: id("zone"), class: "hp-input", value: t?.timezone || browserZone(), spellcheck: "false" });
    const model = h("select", { id: id("model"), class: "hp-input" }, ...(await modelOptions(t?.model)));
    const mode = h("select", { id: id("mode"), class: "hp-input" },
      h("option", { value: "new", selected: t?.session_mode !== "continue" }, "A new chat for each run"),
      h("option", { value: "continue", selected: t?.session_mode === "continue" }, "One chat, continued by each run"));
    const missed = h("select", { id: id("missed"), class: "hp-input" },
      h("option", { value: "skip", selected: t?.missed !== "run_once" }, "Skip them"),
      h("option", { value: "run_once", selected: t?.missed === "run_once" }, "Run once when the server starts"));
    const tools = h("input", { id: id("tools"), class: "hp-input", spellcheck: "false", placeholder: "e.g. web_search, read_file",
                               value: (t?.allowed_tools || []).join(", ") });
    const previewList = h("ol", { class: "hp-list hp-task-preview", "aria-live": "polite", id: id("preview") });
    const previewNote = h("p", { class: "hp-hint" });
    const error = h("p", { class: "hp-error", role: "alert", hidden: true });
    const timeField = field("Time", "time", time);
    const dayField = field("Day", "day", day);
    const cronField = field("Cron expression", "cron", cron, "Minute hour day-of-month month day-of-week, e.g. 30 7 * * 1-5.");

    const NO_TIME = "Enter a time (hours and minutes) for this schedule.";
    /** The schedule the fields say, or null when its time is missing (cleared, or half typed). */
    const scheduleText = () => {
      const p = preset.value;
      if (p === "hourly") return "hourly";
      if (p === "cron") return cron.value.trim();
      if (!time.value) return null;
      if (p === "weekly") return `weekly ${day.value} at ${time.value}`;
      return `${p} at ${time.value}`;
    };
    const showFields = () => {
      timeField.hidden = !["daily", "weekdays", "weekly"].includes(preset.value);
      dayField.hidden = preset.value !== "weekly";
      cronField.hidden = preset.value !== "cron";
    };
    let timer = null;
    let asked = 0;
    const preview = () => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        const ticket = ++asked;
        if (scheduleText() === null) {
          previewNote.textContent = NO_TIME;
          previewNote.classList.add("hp-error");
          previewList.replaceChildren();
          return;
        }
        const q = new URLSearchParams({ schedule: scheduleText(), timezone: zone.value.trim() });
        try {
          const res = await api(`/api/tasks/preview?${q}`);
          if (ticket !== asked) return;
          previewNote.textContent = `Next five runs (${res.timezone}, cron ${res.cron}):`;
          previewNote.classList.remove("hp-error");
          previewList.replaceChildren(...res.next_runs.map((iso) => h("li", { class: "hp-task-run-time" }, when(iso, res.timezone))));
        } catch (err) {
          if (ticket !== asked) return;
          previewNote.textContent = err.message;
          previewNote.classList.add("hp-error");
          previewList.replaceChildren();
        }
      }, 200);
    };
    for (const el of [preset, time, day, cron, zone]) {
      el.addEventListener("input", () => { showFields(); preview(); });
      el.addEventListener("change", () => { showFields(); preview(); });
    }

    async function submit(e) {
      e.preventDefault();
      if (scheduleText() === null) {
        error.hidden = false;
        error.textContent = `Could not save the task: ${NO_TIME}`;
        time.focus();
        return;
      }
      const body = {
        name: name.value, prompt: prompt.value, schedule: scheduleText(), timezone: zone.value.trim(),
        model: model.value || null, session_mode: mode.value, missed: missed.value,
        allowed_tools: tools.value.split(",").map((s) => s.trim()).filter(Boolean),
      };
      if (t) body.id = t.id;
      try {
        const { task } = await post("/api/tasks/save", body);
        editorBox.replaceChildren();
        say(`Saved ${task.name}.${task.next_runs[0] ? ` Next run ${when(task.next_runs[0], task.timezone)}.` : ""}`);
        await load();
        focusOn(t ? `Edit: ${task.name}` : null);   // back where the form was opened
      } catch (err) {
        error.hidden = false;
        error.textContent = `Could not save the task: ${err.message}`;
        if (err.status === 404) load();
      }
    }

    const form = h("form", { class: "hp-group hp-task-form", onsubmit: submit, "aria-label": t ? `Edit ${t.name}` : "New task" },
      h("h3", { class: "hp-group-title" }, t ? `Edit ${t.name}` : "New task"),
      field("Name", "name", name),
      field("Prompt", "prompt", prompt, "The message sent to the agent at each run."),
      field("Schedule", "preset", preset), timeField, dayField, cronField,
      field("Time zone", "zone", zone, "An IANA name such as Europe/Paris; this browser's is filled in."),
      previewNote, previewList,
      field("Model", "model", model),
      field("Chat", "mode", mode),
      field("Runs missed while the server was stopped", "missed", missed),
      field("Tools it may use without asking", "tools", tools,
        "Comma-separated. Nobody is there to approve a scheduled run: any other tool is denied and the denial is noted."),
      error,
      h("div", { class: "hp-toolbar" },
        h("button", { type: "submit", class: "hp-btn hp-primary" }, t ? "Save changes" : "Create task"),
        h("button", { type: "button", class: "hp-btn", onclick: () => {
          editorBox.replaceChildren();
          focusOn(t ? `Edit: ${t.name}` : null);
        } }, "Cancel")));
    editorBox.replaceChildren(form);
    showFields();
    preview();
    name.focus();
  }

  load();
  return { refresh: load, unmount: () => { gone = true; clearTimeout(again); container.replaceChildren(); } };
}
