// Profiles switcher: each profile has its own chats, skills, memory and workspace.
// The active profile is per browser (a cookie the server sets on switch).
//
//   import { mount } from "/static/panels/profiles.js";
//   mount(container, { onSwitch: (name) => … });   // default: reload the page
//
// API: GET /api/profiles → {active, profiles: [{name, active, default}]};
// POST /api/profile/switch|create|delete {name}.

import { api, post } from "../js/api.js";
import { h } from "../js/dom.js";
import { openDialog } from "../js/menu.js";

export function mount(container, ctx = {}) {
  const onSwitch = ctx.onSwitch || (() => window.location.reload());
  const status = h("p", { class: "hp-status", role: "status", "aria-live": "polite" });
  const select = h("select", { class: "hp-input", "aria-label": "Active profile" });
  const nameInput = h("input", { type: "text", class: "hp-input", placeholder: "new-profile", maxlength: 64,
                                 pattern: "[a-z0-9][a-z0-9_\\-]*", "aria-label": "New profile name", required: true });
  const del = h("button", { type: "button", class: "hp-btn hp-danger" }, "Delete");
  const root = h("div", { class: "hp-panel hp-profiles" },
    h("div", { class: "hp-toolbar" }, select, del),
    h("form", { class: "hp-toolbar", onsubmit: create }, nameInput,
      h("button", { type: "submit", class: "hp-btn" }, "Create")),
    status);
  container.replaceChildren(root);
  let active = "default";

  const say = (text, isError = false) => {
    status.textContent = text;
    status.classList.toggle("hp-error", isError);
  };

  async function load() {
    try {
      const data = await api("/api/profiles");
      active = data.active;
      select.replaceChildren(...data.profiles.map((p) =>
        h("option", { value: p.name, selected: p.active }, p.name)));
      select.value = active;
      del.disabled = active === "default";
    } catch (err) {
      say(err.message, true);
    }
  }

  async function create(e) {
    e.preventDefault();
    const name = nameInput.value.trim();
    try {
      await post("/api/profile/create", { name });
      nameInput.value = "";
      await post("/api/profile/switch", { name });
      onSwitch(name);
    } catch (err) {
      say(err.message, true);
    }
  }

  select.addEventListener("change", async () => {
    const name = select.value;
    if (name === active) return;
    try {
      await post("/api/profile/switch", { name });
      onSwitch(name);
    } catch (err) {
      say(err.message, true);
      select.value = active;
    }
  });

  del.addEventListener("click", async () => {
    if (active === "default") return;
    if (!await openDialog({ title: `Delete the profile ${active}?`,
      text: "All its chats, skills, memory and files are deleted. This cannot be undone.", ok: "Delete", danger: true })) return;
    try {
      await post("/api/profile/delete", { name: active });
      onSwitch("default");
    } catch (err) {
      say(err.message, true);
    }
  });

  load();
  return { refresh: load, unmount: () => container.replaceChildren() };
}
