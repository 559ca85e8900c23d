// The profile switcher at the foot of the sidebar: a button naming the active profile
// opens a dialog holding the profiles panel (webui/panels/profiles.js). Switching keeps
// the page: the caller's ``onSwitch(name)`` shows that profile's chats.

import { api } from "./api.js";
import { $ } from "./dom.js";
import { wireDialogClose } from "./menu.js";
import { mount } from "../panels/profiles.js";

/** Wire #profile-btn and #profiles-dialog. Returns {refresh()} (re-reads the active name). */
export function initProfiles({ onSwitch }) {
  const button = $("#profile-btn");
  const dialog = $("#profiles-dialog");
  const label = $("#profile-name");
  let panel = null;

  async function refresh() {
    try {
      const { active } = await api("/api/profiles");
      label.textContent = active;
      button.setAttribute("aria-label", `Profile: ${active}. Switch profile`);
    } catch { /* the name stays as it was; the dialog reports errors */ }
  }

  button.addEventListener("click", () => {
    panel = mount($("#profiles-body"), {
      onSwitch: (name) => {
        dialog.close();
        label.textContent = name;
        button.setAttribute("aria-label", `Profile: ${name}. Switch profile`);
        onSwitch(name);
      },
    });
    dialog.showModal();
    $("#profiles-body select")?.focus();
  });
  wireDialogClose(dialog);
  dialog.addEventListener("close", () => {
    panel?.unmount();
    panel = null;
    button.focus();
  });
  refresh();
  return { refresh };
}
