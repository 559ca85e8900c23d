// Workspace panel: the session's file tree, previews of text and images, editing,
// new file/folder, rename, delete, and uploads by button or drag and drop.
//
//   import { mount } from "/static/panels/workspace.js";
//   const panel = mount(container, { sessionId: () => currentId });
//   panel.refresh();   // e.g. after a turn that may have changed files
//   panel.unmount();
//
// It also refreshes itself on the document "hermes:session" event. API: docs/api.md
// (/api/list, /api/file, /api/file/raw, /api/file/save|create|delete|rename, /api/upload).

import { api, csrfToken, friendlyMessage, post } from "../js/api.js";
import { h, icon } from "../js/dom.js";
import { openDialog } from "../js/menu.js";

const join = (folder, name) => (folder ? `${folder}/${name}` : name);
const parentOf = (path) => path.split("/").slice(0, -1).join("/");

function formatSize(bytes) {
  if (bytes == null) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** POST multipart with upload progress; resolves {status, data}. */
function sendUpload(form, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/upload");
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => resolve({ status: xhr.status, data: xhr.response });
    xhr.onerror = () => resolve({ status: 0, data: { error: "The server cannot be reached." } });
    xhr.send(form);
  });
}

export function mount(container, ctx) {
  let folder = "";
  let openFile = null;           // the previewed file's /api/file answer
  let lastSession = null;

  const status = h("p", { class: "hp-status", role: "status", "aria-live": "polite" });
  const crumbs = h("nav", { class: "hp-crumbs", "aria-label": "Folder" });
  const list = h("ul", { class: "hp-list", "aria-label": "Files" });
  const preview = h("section", { class: "hp-preview", "aria-label": "Preview", hidden: true });
  const fileInput = h("input", { type: "file", class: "hp-hidden", multiple: true, onchange: () => {
    uploadAll([...fileInput.files]);
    fileInput.value = "";
  } });
  const nameForm = h("form", { class: "hp-inline-form", hidden: true });
  const toolbar = h("div", { class: "hp-toolbar" },
    h("button", { type: "button", class: "hp-btn", onclick: () => askName("file") }, "New file"),
    h("button", { type: "button", class: "hp-btn", onclick: () => askName("dir") }, "New folder"),
    h("button", { type: "button", class: "hp-btn", onclick: () => fileInput.click() }, "Upload"),
    h("button", { type: "button", class: "hp-btn", onclick: () => load() }, "Refresh"));
  const root = h("div", { class: "hp-panel hp-workspace" }, toolbar, nameForm, crumbs, list, preview, status,
    fileInput, h("p", { class: "hp-hint" }, "Drop files here to upload them into this folder."));
  container.replaceChildren(root);

  const say = (text, isError = false) => {
    status.textContent = text;
    status.classList.toggle("hp-error", isError);
  };

  function renderCrumbs() {
    const parts = folder ? folder.split("/") : [];
    const items = [h("button", { type: "button", class: "hp-link", onclick: () => go("") }, "workspace")];
    parts.forEach((part, i) => {
      const target = parts.slice(0, i + 1).join("/");
      items.push(" / ", h("button", { type: "button", class: "hp-link", onclick: () => go(target) }, part));
    });
    crumbs.replaceChildren(...items);
  }

  function entryRow(entry) {
    const isDir = entry.type === "dir";
    const open = () => (isDir ? go(entry.path) : show(entry.path));
    const label = h("button", {
      type: "button", class: `hp-entry hp-${entry.type}`, onclick: open,
      disabled: entry.type === "link" || entry.type === "other",
      title: entry.type === "link" ? "A link that leads outside the workspace" : entry.path,
    }, entry.name, entry.symlink ? h("span", { class: "hp-meta" }, " (link)") : null);
    return h("li", { class: "hp-row" }, label,
      h("span", { class: "hp-meta" }, isDir ? "" : formatSize(entry.size)),
      h("button", { type: "button", class: "hp-mini", "aria-label": `Rename ${entry.name}`, title: "Rename",
                    onclick: () => askName("rename", entry) }, icon("edit")),
      h("button", { type: "button", class: "hp-mini hp-danger", "aria-label": `Delete ${entry.name}`, title: "Delete",
                    onclick: () => remove(entry) }, icon("trash")));
  }

  async function load() {
    const sid = ctx.sessionId();
    if (!sid) {
      list.replaceChildren(h("li", { class: "hp-empty" }, "Open a chat to see its workspace."));
      crumbs.replaceChildren();
      return;
    }
    renderCrumbs();
    try {
      const data = await api("/api/list", { params: { session_id: sid, path: folder } });
      const rows = data.entries.map(entryRow);
      if (folder) rows.unshift(h("li", { class: "hp-row" }, h("button", { type: "button", class: "hp-entry",
        onclick: () => go(parentOf(folder)) }, "..")));
      if (!data.entries.length) rows.push(h("li", { class: "hp-empty" }, "This folder is empty."));
      if (data.truncated) rows.push(h("li", { class: "hp-empty" }, "Only the first 5,000 entries are shown."));
      list.replaceChildren(...rows);
      say("");
    } catch (err) {
      if (err.status === 404 && folder) return go("");
      list.replaceChildren();
      say(err.message, true);
    }
  }

  function go(target) {
    folder = target;
    closePreview();
    return load();
  }

  function closePreview() {
    openFile = null;
    preview.hidden = true;
    preview.replaceChildren();
  }

  async function show(path) {
    try {
      openFile = await api("/api/file", { params: { session_id: ctx.sessionId(), path } });
    } catch (err) {
      say(err.message, true);
      return;
    }
    const f = openFile;
    const facts = [formatSize(f.size), f.lines != null ? `${f.lines} line${f.lines === 1 ? "" : "s"}` : "", f.truncated ? "preview cut" : ""]
      .filter(Boolean).join(" · ");
    const head = h("header", { class: "hp-preview-head" },
      h("strong", {}, f.name), h("span", { class: "hp-meta" }, facts),
      h("a", { class: "hp-link", href: `${f.raw_url}&download=1` }, "Download"),
      f.binary || f.truncated ? null : h("button", { type: "button", class: "hp-btn", onclick: edit }, "Edit"),
      h("button", { type: "button", class: "hp-btn", onclick: closePreview }, "Close"));
    let bodyEl;
    if (f.image) bodyEl = h("img", { class: "hp-image", src: f.raw_url, alt: f.name });
    else if (f.binary) bodyEl = h("p", { class: "hp-empty" }, "A binary file: download it to open it.");
    else bodyEl = h("pre", { class: "hp-code" }, f.content);
    preview.replaceChildren(head, bodyEl);
    preview.hidden = false;
  }

  function edit() {
    const f = openFile;
    const area = h("textarea", { class: "hp-editor", spellcheck: "false", "aria-label": `Contents of ${f.name}` });
    area.value = f.content;
    const save = async () => {
      try {
        await post("/api/file/save", { session_id: ctx.sessionId(), path: f.path, content: area.value,
                                       expected_mtime: f.mtime });
        await show(f.path);
        await load();
        say(`Saved ${f.name}.`);  // after load(), which clears the status
      } catch (err) {
        say(err.status === 409 ? `${f.name} changed on disk since you opened it; reopen it to edit.` : err.message, true);
      }
    };
    preview.replaceChildren(preview.firstChild, area, h("div", { class: "hp-toolbar" },
      h("button", { type: "button", class: "hp-btn hp-primary", onclick: save }, "Save"),
      h("button", { type: "button", class: "hp-btn", onclick: () => show(f.path) }, "Cancel")));
    area.focus();
  }

  function askName(kind, entry = null) {
    const input = h("input", { type: "text", class: "hp-input", required: true, maxlength: 255,
                               "aria-label": kind === "rename" ? "New name" : "Name" });
    input.value = entry ? entry.name : "";
    nameForm.replaceChildren(input,
      h("button", { type: "submit", class: "hp-btn hp-primary" }, kind === "rename" ? "Rename" : "Create"),
      h("button", { type: "button", class: "hp-btn", onclick: () => { nameForm.hidden = true; } }, "Cancel"));
    nameForm.onsubmit = async (e) => {
      e.preventDefault();
      const name = input.value.trim();
      try {
        if (kind === "rename") {
          await post("/api/file/rename", { session_id: ctx.sessionId(), path: entry.path,
                                           new_path: join(parentOf(entry.path), name) });
        } else {
          await post("/api/file/create", { session_id: ctx.sessionId(), path: join(folder, name), kind });
        }
        nameForm.hidden = true;
        await load();
      } catch (err) {
        say(err.message, true);
      }
    };
    nameForm.hidden = false;
    input.focus();
  }

  async function remove(entry) {
    const what = entry.type === "dir" ? `the folder ${entry.name} and everything in it` : entry.name;
    if (!await openDialog({ title: `Delete ${entry.name}?`, text: `This deletes ${what} from the workspace. It cannot be undone.`,
      ok: "Delete", danger: true })) return;
    try {
      await post("/api/file/delete", { session_id: ctx.sessionId(), path: entry.path, recursive: entry.type === "dir" });
      if (openFile && openFile.path === entry.path) closePreview();
      await load();
    } catch (err) {
      say(err.message, true);
    }
  }

  async function uploadOne(file, overwrite = false) {
    const form = new FormData();
    form.append("session_id", ctx.sessionId());
    form.append("path", folder);
    if (overwrite) form.append("overwrite", "1");
    form.append("file", file, file.name);
    const { status: code, data } = await sendUpload(form, (p) => say(`Uploading ${file.name}… ${Math.round(p * 100)}%`));
    if (code === 409 && !overwrite && await openDialog({ title: `Replace ${file.name}?`,
      text: `A file named ${file.name} already exists in this folder.`, ok: "Replace", danger: true })) {
      return uploadOne(file, true);
    }
    if (code !== 200) throw new Error(`${file.name}: ${friendlyMessage(code, data && data.error)[0]}`);
    return data;
  }

  async function uploadAll(files) {
    if (!ctx.sessionId() || !files.length) return;
    try {
      for (const file of files) await uploadOne(file);
      say(`Uploaded ${files.length === 1 ? files[0].name : `${files.length} files`}.`);
    } catch (err) {
      say(err.message, true);
    }
    await load();
  }

  const onDragOver = (e) => {
    if (![...e.dataTransfer.types].includes("Files")) return;
    e.preventDefault();
    root.classList.add("hp-dropping");
  };
  const onDragLeave = (e) => { if (!root.contains(e.relatedTarget)) root.classList.remove("hp-dropping"); };
  const onDrop = (e) => {
    e.preventDefault();
    root.classList.remove("hp-dropping");
    uploadAll([...e.dataTransfer.files]);
  };
  root.addEventListener("dragover", onDragOver);
  root.addEventListener("dragleave", onDragLeave);
  root.addEventListener("drop", onDrop);

  const onSession = () => {
    const sid = ctx.sessionId();
    if (sid === lastSession) return;
    lastSession = sid;
    go("");
  };
  // The chat updates what ctx.sessionId() returns around the event; read it afterwards.
  const onSessionEvent = () => setTimeout(onSession, 0);
  document.addEventListener("hermes:session", onSessionEvent);
  onSession();

  return {
    refresh: load,
    unmount() {
      document.removeEventListener("hermes:session", onSessionEvent);
      container.replaceChildren();
    },
  };
}
