// Memory panel: edit the agent's MEMORY.md (its notes) and USER.md (what it knows about you).
//
//   import { mount } from "/static/panels/memory.js";
//   const panel = mount(container, ctx);
//
// API: GET /api/memory → {files: [{file, exists, content, size, mtime, error?}]};
// POST /api/memory/write {file, content, expected_mtime} (409 if changed since read).

import { api, post } from "../js/api.js";
import { h } from "../js/dom.js";

const LABELS = {
  "MEMORY.md": "Agent notes (MEMORY.md)",
  "USER.md": "About you (USER.md)",
};

export function mount(container, _ctx = {}) {
  const status = h("p", { class: "hp-status", role: "status", "aria-live": "polite" });
  const body = h("div", { class: "hp-memory-files" });
  const root = h("div", { class: "hp-panel hp-memory" },
    h("div", { class: "hp-toolbar" },
      h("button", { type: "button", class: "hp-btn", onclick: () => load() }, "Reload")),
    body, status);
  container.replaceChildren(root);

  const say = (text, isError = false) => {
    status.textContent = text;
    status.classList.toggle("hp-error", isError);
  };

  function fileEditor(f) {
    const id = `hp-mem-${f.file.replace(/\W/g, "-")}`;
    const area = h("textarea", { id, class: "hp-editor", spellcheck: "true", readonly: Boolean(f.error) });
    area.value = f.content;
    let mtime = f.mtime ?? 0;             // 0: "the file must not exist yet"
    const saved = h("span", { class: "hp-meta" },
      f.mtime ? `saved ${new Date(f.mtime * 1000).toLocaleString()}` : "not created yet");
    const save = async () => {
      try {
        const res = await post("/api/memory/write", { file: f.file, content: area.value, expected_mtime: mtime });
        mtime = res.mtime;
        saved.textContent = `saved ${new Date(res.mtime * 1000).toLocaleString()}`;
        say(`Saved ${f.file}.`);
      } catch (err) {
        say(err.status === 409
          ? `${f.file} was changed by the agent since you opened it. Copy your edits, then Reload.`
          : err.message, true);
      }
    };
    return h("section", { class: "hp-group" },
      h("label", { class: "hp-group-title", for: id }, LABELS[f.file] || f.file),
      f.error ? h("p", { class: "hp-error" }, f.error) : null,
      area,
      h("div", { class: "hp-toolbar" },
        h("button", { type: "button", class: "hp-btn hp-primary", onclick: save, disabled: Boolean(f.error) }, "Save"),
        saved));
  }

  async function load() {
    try {
      const { files } = await api("/api/memory");
      body.replaceChildren(...files.map(fileEditor));
      say("");
    } catch (err) {
      say(err.message, true);
    }
  }

  load();
  return { refresh: load, unmount: () => container.replaceChildren() };
}
