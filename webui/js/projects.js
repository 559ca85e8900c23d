// Projects and tags in the sidebar: the project dialog (name, colour, default workspace,
// custom instructions; POST /api/projects/create|update), a project's ⋯ menu, moving a
// chat into or out of a project (POST /api/session/move) and editing a chat's tags
// (POST /api/session/tags). The sidebar (sidebar.js) draws the folders and the filter.

import { api, post } from "./api.js";
import { $, h, icon, toast } from "./dom.js";
import { openDialog, openMenu, wireDialogClose } from "./menu.js";

/** The colours offered for a project (null: none). Stored as #rrggbb. */
export const PROJECT_COLORS = [
  ["#3b82f6", "Blue"], ["#10b981", "Green"], ["#f59e0b", "Amber"], ["#ef4444", "Red"],
  ["#8b5cf6", "Violet"], ["#ec4899", "Pink"], ["#14b8a6", "Teal"], ["#64748b", "Slate"],
];

/** Tags typed as "#work, ideas #日本" → ["work", "ideas", "日本"] (the server checks them). */
export function parseTags(text) {
  return String(text || "").split(/[\s,]+/).map((t) => t.replace(/^#+/, "")).filter(Boolean);
}

/** A small coloured dot for ``project`` (its colour through a CSS variable, never a style attribute). */
export function projectDot(project) {
  const dot = h("span", { class: `project-dot${project.color ? "" : " no-color"}`, "aria-hidden": "true" });
  if (project.color) dot.style.setProperty("--project-color", project.color);
  return dot;
}

// ------------------------------------------------------------ the project dialog

let dialogEl = null;

function field(id, label, control, help = null) {
  return h("div", { class: "field" },
    h("label", { for: id, class: "dialog-label" }, label), control,
    help ? h("p", { class: "field-help", id: `${id}-help` }, help) : null);
}

function buildDialog() {
  const swatches = [[null, "No colour"], ...PROJECT_COLORS].map(([value, name]) => {
    const input = h("input", { type: "radio", name: "project-color", value: value || "", "aria-label": name });
    const label = h("label", { class: "swatch", title: name }, input,
      h("span", { class: `swatch-dot${value ? "" : " no-color"}`, "aria-hidden": "true" }));
    if (value) label.querySelector(".swatch-dot").style.setProperty("--project-color", value);
    return label;
  });
  const dialog = h("dialog", { id: "project-dialog", class: "dialog dialog-wide", "aria-labelledby": "project-dialog-title" },
    h("form", { id: "project-form", novalidate: true },
      h("div", { class: "dialog-head" },
        h("h2", { id: "project-dialog-title" }, "New project"),
        h("button", { type: "button", class: "icon-btn dialog-close", "data-close": true, "aria-label": "Close" }, icon("close"))),
      field("project-name", "Name", h("input", { id: "project-name", type: "text", maxlength: 128, autocomplete: "off", required: true })),
      h("fieldset", { class: "field swatches" }, h("legend", { class: "dialog-label" }, "Colour"), swatches),
      field("project-workspace", "Default workspace",
        h("input", { id: "project-workspace", type: "text", list: "project-workspace-roots", autocomplete: "off",
          spellcheck: "false", placeholder: "The profile's workspace", "aria-describedby": "project-workspace-help" }),
        "A folder on the server. A chat in this project without a workspace of its own uses it."),
      h("datalist", { id: "project-workspace-roots" }),
      field("project-instructions", "Custom instructions",
        h("textarea", { id: "project-instructions", rows: 5, maxlength: 20000, "aria-describedby": "project-instructions-help" }),
        "Sent to the model with every message in this project's chats, after your own custom instructions (Settings)."),
      h("p", { id: "project-error", class: "form-error", role: "alert", hidden: true }),
      h("div", { class: "dialog-actions" },
        h("button", { type: "button", class: "btn", "data-close": true }, "Cancel"),
        h("button", { type: "submit", id: "project-save", class: "btn btn-primary" }, "Create project"))));
  document.body.append(dialog);
  wireDialogClose(dialog);
  return dialog;
}

async function fillWorkspaceRoots() {
  try {
    const { roots } = await api("/api/workspaces");
    $("#project-workspace-roots").replaceChildren(...roots.map((r) => h("option", { value: r.path }, r.name)));
  } catch { /* suggestions only */ }
}

/**
 * Create a project (``project`` null) or edit one. Resolves to the saved project, or
 * null when the dialog is closed. A refusal from the server is shown in the dialog,
 * which stays open with what was typed.
 */
export function openProjectDialog(project = null) {
  dialogEl ||= buildDialog();
  const dialog = dialogEl;
  const form = $("#project-form");
  const name = $("#project-name");
  const workspace = $("#project-workspace");
  const instructions = $("#project-instructions");
  const error = $("#project-error");
  $("#project-dialog-title").textContent = project ? "Edit project" : "New project";
  $("#project-save").textContent = project ? "Save" : "Create project";
  name.value = project?.name || "";
  workspace.value = project?.workspace || "";
  instructions.value = project?.instructions || "";
  const color = project ? project.color || "" : PROJECT_COLORS[0][0];
  for (const radio of form.querySelectorAll("input[name=project-color]")) radio.checked = radio.value === color;
  error.hidden = true;
  fillWorkspaceRoots();
  return new Promise((resolve) => {
    let saved = null;
    const onSubmit = async (e) => {
      e.preventDefault();
      if (!name.value.trim()) {
        error.textContent = "Give the project a name.";
        error.hidden = false;
        name.focus();
        return;
      }
      const body = {
        name: name.value.trim(),
        color: form.querySelector("input[name=project-color]:checked")?.value || null,
        workspace: workspace.value.trim() || null,
        instructions: instructions.value.trim() || null,
      };
      try {
        const res = project
          ? await post("/api/projects/update", { project_id: project.project_id, ...body })
          : await post("/api/projects/create", body);
        saved = res.project;
        dialog.close();
      } catch (err) {
        error.textContent = `The project was not saved: ${err.message}`;
        error.hidden = false;
      }
    };
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", () => {
      form.removeEventListener("submit", onSubmit);
      resolve(saved);
    }, { once: true });
    dialog.showModal();
    name.focus();
  });
}

// ------------------------------------------------------------ menus and actions

/**
 * The ⋯ menu items of ``project``. ``hooks``: {onNewChat(projectId), onChanged()}.
 */
export function projectMenuItems(project, hooks) {
  return [
    { label: "New chat in this project", icon: "plus", action: () => hooks.onNewChat(project.project_id) },
    { label: "Rename", icon: "edit", action: () => renameProject(project, hooks) },
    { label: "Workspace, colour and instructions…", icon: "folder", action: () => editProject(project, hooks) },
    "separator",
    { label: "Delete project", icon: "trash", danger: true, action: () => deleteProject(project, hooks) },
  ];
}

async function renameProject(project, hooks) {
  const name = await openDialog({ title: "Rename project", label: "Name", value: project.name, ok: "Save" });
  if (!name || name === project.name) return;
  try {
    await post("/api/projects/rename", { project_id: project.project_id, name });
    await hooks.onChanged();
  } catch (err) {
    toast(`Could not rename the project: ${err.message}`);
  }
}

async function editProject(project, hooks) {
  if (await openProjectDialog(project)) await hooks.onChanged();
}

async function deleteProject(project, hooks) {
  const ok = await openDialog({
    title: "Delete project?", ok: "Delete", danger: true,
    text: `The project “${project.name}” is deleted. Its chats are kept and move out of it.`,
  });
  if (!ok) return;
  try {
    await post("/api/projects/delete", { project_id: project.project_id });
    await hooks.onChanged(project.project_id);
  } catch (err) {
    toast(`Could not delete the project: ${err.message}`);
  }
}

/** Create a project from the dialog; resolves to it (null if cancelled). */
export async function createProject() {
  return openProjectDialog(null);
}

/**
 * Put chat ``session`` into a project or take it out: a menu of the projects under
 * ``anchor`` (the button the chat's menu was opened from). ``onDone()`` after a move.
 */
export function openMoveMenu(anchor, session, projects, onDone) {
  const move = async (projectId) => {
    try {
      await post("/api/session/move", { session_id: session.session_id, project_id: projectId });
      await onDone();
    } catch (err) {
      toast(`Could not move the chat: ${err.message}`);
    }
  };
  const items = projects.map((p) => ({
    label: p.project_id === session.project_id ? `${p.name} (current)` : p.name,
    icon: "folder",
    action: () => { if (p.project_id !== session.project_id) move(p.project_id); },
  }));
  if (session.project_id) items.unshift({ label: "Remove from project", icon: "close", action: () => move(null) }, "separator");
  if (projects.length) items.push("separator");
  items.push({
    label: "New project…", icon: "plus",
    action: async () => {
      const project = await createProject();
      if (project) await move(project.project_id);
    },
  });
  openMenu(anchor, items);
}

/** Edit the tags of chat ``session`` in the app's dialog; ``onDone()`` after a save. */
export async function editTags(session, onDone) {
  const value = (session.tags || []).map((t) => `#${t}`).join(" ");
  const text = await openDialog({
    title: "Tags", label: "Tags, separated by spaces (for example #work #ideas)", value, ok: "Save",
  });
  if (text === null) return;
  const tags = parseTags(text);
  try {
    await post("/api/session/tags", { session_id: session.session_id, tags });
    await onDone();
  } catch (err) {
    toast(`The tags were not saved: ${err.message}`, 7000);
  }
}
