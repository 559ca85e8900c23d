// Skills panel: browse skills by category, search them, read, edit, create and delete.
//
//   import { mount } from "/static/panels/skills.js";
//   const panel = mount(container, ctx);   // ctx is not needed; skills belong to the profile
//
// API: GET /api/skills, /api/skills/content?name&category, /api/skills/search?q,
// POST /api/skills/save {name, category?, content, expected_mtime?}, /api/skills/delete.

import { api, post } from "../js/api.js";
import { h } from "../js/dom.js";
import { openDialog } from "../js/menu.js";

const TEMPLATE = (name, description) =>
  `---\nname: ${name}\ndescription: ${JSON.stringify(description)}\n---\n\n# ${name}\n\nWhat to do, step by step.\n`;

export function mount(container, _ctx = {}) {
  const status = h("p", { class: "hp-status", role: "status", "aria-live": "polite" });
  const search = h("input", { type: "search", class: "hp-input", placeholder: "Search skills",
                              "aria-label": "Search skills" });
  const list = h("div", { class: "hp-list", "aria-label": "Skills" });
  const detail = h("section", { class: "hp-preview", "aria-label": "Skill", hidden: true });
  const root = h("div", { class: "hp-panel hp-skills" },
    h("div", { class: "hp-toolbar" }, search,
      h("button", { type: "button", class: "hp-btn", onclick: newSkill }, "New skill")),
    detail, list, status);
  container.replaceChildren(root);

  const say = (text, isError = false) => {
    status.textContent = text;
    status.classList.toggle("hp-error", isError);
  };

  const skillButton = (s, extra = null) => h("button", {
    type: "button", class: "hp-entry hp-skill", onclick: () => open(s.name, s.category),
  }, h("strong", {}, s.name), h("span", { class: "hp-meta" }, s.description), extra);

  async function load() {
    const q = search.value.trim();
    try {
      if (q) {
        const { results } = await api("/api/skills/search", { params: { q } });
        list.replaceChildren(...(results.length ? results.map((r) => skillButton(r, h("span", { class: "hp-snippet" }, r.snippet)))
          : [h("p", { class: "hp-empty" }, "No skill matches.")]));
        return;
      }
      const { skills, errors } = await api("/api/skills");
      const groups = new Map();
      for (const s of skills) {
        const key = s.category || "(no category)";
        if (!groups.has(key)) groups.set(key, []);
        groups.get(key).push(s);
      }
      const blocks = [...groups].map(([cat, items]) => h("section", { class: "hp-group" },
        h("h3", { class: "hp-group-title" }, cat), items.map((s) => skillButton(s))));
      if (!skills.length) blocks.push(h("p", { class: "hp-empty" }, "No skills yet."));
      if (errors.length) blocks.push(h("p", { class: "hp-error" }, `${errors.length} skill file(s) could not be read: `
        + errors.map((e) => `${e.path} (${e.error})`).join("; ")));
      list.replaceChildren(...blocks);
    } catch (err) {
      say(err.message, true);
    }
  }

  function editor({ name, category, content, mtime, isNew }) {
    const nameInput = h("input", { type: "text", class: "hp-input", "aria-label": "Skill name", readonly: !isNew });
    nameInput.value = name;
    const catInput = h("input", { type: "text", class: "hp-input", "aria-label": "Category",
                                  placeholder: "category", readonly: !isNew });
    catInput.value = category || "";
    const area = h("textarea", { class: "hp-editor", spellcheck: "false", "aria-label": "SKILL.md" });
    area.value = content;
    // A new skill's front matter must carry its name: keep the template's line in step.
    if (isNew) nameInput.addEventListener("input", () => {
      area.value = area.value.replace(/^name: .*$/m, `name: ${nameInput.value.trim() || "my-skill"}`);
    });
    const save = async () => {
      const body = { name: nameInput.value.trim(), content: area.value };
      if (catInput.value.trim()) body.category = catInput.value.trim();
      if (mtime != null) body.expected_mtime = mtime;
      else body.expected_mtime = 0;
      try {
        const { skill } = await post("/api/skills/save", body);
        await load();
        await open(skill.name, skill.category);
        say(`Saved ${skill.name}.`);  // after open(), which clears the status
      } catch (err) {
        say(err.status === 409 && /changed/.test(err.message)
          ? "This skill changed on disk since you opened it; reopen it to edit." : err.message, true);
      }
    };
    const remove = async () => {
      if (!await openDialog({ title: `Delete the skill ${name}?`, text: "Its folder and every file in it are deleted.",
        ok: "Delete", danger: true })) return;
      try {
        await post("/api/skills/delete", { name, category });
        detail.hidden = true;
        say(`Deleted ${name}.`);
        await load();
      } catch (err) {
        say(err.message, true);
      }
    };
    detail.replaceChildren(
      h("div", { class: "hp-toolbar" }, nameInput, catInput),
      area,
      h("div", { class: "hp-toolbar" },
        h("button", { type: "button", class: "hp-btn hp-primary", onclick: save }, "Save"),
        isNew ? null : h("button", { type: "button", class: "hp-btn hp-danger", onclick: remove }, "Delete"),
        h("button", { type: "button", class: "hp-btn", onclick: () => { detail.hidden = true; } }, "Close")));
    detail.hidden = false;
    (isNew ? nameInput : area).focus();
  }

  async function open(name, category) {
    try {
      const { skill } = await api("/api/skills/content", { params: { name, category: category || undefined } });
      editor({ ...skill, isNew: false });
      say("");
    } catch (err) {
      say(err.message, true);
    }
  }

  function newSkill() {
    editor({ name: "", category: "general", content: TEMPLATE("my-skill", "When to use this skill"), mtime: null,
             isNew: true });
  }

  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(load, 200);
  });
  load();

  return {
    refresh: load,
    unmount() {
      clearTimeout(timer);
      container.replaceChildren();
    },
  };
}
