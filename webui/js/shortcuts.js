// Keyboard shortcuts of the whole page and the dialog that lists them (`?` outside a
// text field). Ctrl/Cmd+Shift+O starts a new chat, Ctrl/Cmd+Shift+S shows or hides the
// chat list, ↑ in an empty message box edits the last message you sent (the message's
// own Edit action). Ctrl/Cmd+K and Esc are handled in app.js; the list's arrow keys in
// sidebar.js; they are listed here so the dialog names every shortcut.

import { $, h, icon } from "./dom.js";
import { dialogIsOpen, menuIsOpen, wireDialogClose } from "./menu.js";

const MAC = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
const MOD = MAC ? "⌘" : "Ctrl";

/** [keys (each a key cap), what it does]; shown in this order. */
export const SHORTCUTS = [
  [[MOD, "Shift", "O"], "New chat"],
  [[MOD, "K"], "Search chats"],
  [[MOD, "Shift", "S"], "Show or hide the chat list"],
  [["↑"], "Edit your last message (in an empty message box)"],
  [["Enter"], "Send the message (or Ctrl+Enter, as chosen in Settings)"],
  [["Shift", "Enter"], "New line in the message"],
  [["Esc"], "Stop the reply, close a menu or dialog"],
  [["↑", "↓"], "Move through the chat list (Home, End: first, last)"],
  [["→"], "In the chat list: a chat's actions; open a project folder"],
  [["←"], "In the chat list: close a project folder, back to the folder"],
  [["?"], "Show these shortcuts"],
];

/** True when ``el`` takes typed text (so a bare `?` must be left alone). */
function isTextField(el) {
  if (!el) return false;
  if (el.isContentEditable) return true;
  if (el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
  if (el.tagName !== "INPUT") return false;
  return !["button", "checkbox", "radio", "submit", "reset", "range", "color", "file"].includes(el.type);
}

let dialogEl = null;

function buildDialog() {
  const rows = SHORTCUTS.map(([keys, what]) => h("tr", {},
    h("th", { scope: "row" }, keys.map((k, i) => [i ? h("span", { class: "kbd-plus", "aria-hidden": "true" }, " ") : null, h("kbd", {}, k)])),
    h("td", {}, what)));
  const dialog = h("dialog", { id: "shortcuts-dialog", class: "dialog dialog-wide", "aria-labelledby": "shortcuts-title" },
    h("div", { class: "dialog-head" },
      h("h2", { id: "shortcuts-title" }, "Keyboard shortcuts"),
      h("button", { type: "button", class: "icon-btn dialog-close", "data-close": true, "aria-label": "Close shortcuts" }, icon("close"))),
    h("table", { class: "shortcuts-table" },
      h("thead", { class: "visually-hidden" }, h("tr", {}, h("th", { scope: "col" }, "Keys"), h("th", { scope: "col" }, "Action"))),
      h("tbody", {}, rows)),
    h("div", { class: "dialog-actions" }, h("button", { type: "button", class: "btn btn-primary", "data-close": true }, "Close")));
  document.body.append(dialog);
  wireDialogClose(dialog);
  return dialog;
}

/** Show the shortcuts dialog; focus returns to where it was on close. */
export function openShortcuts() {
  dialogEl ||= buildDialog();
  if (!dialogEl.open) dialogEl.showModal();
  dialogEl.querySelector(".dialog-actions .btn").focus();
}

/** Click the Edit action of the last message the user sent, if the chat is idle. */
function editLastMessage() {
  if ($("#app").classList.contains("is-streaming")) return false;
  const mine = document.querySelectorAll("#messages .msg-user");
  const button = mine[mine.length - 1]?.querySelector(".msg-action[data-action='edit']");
  if (!button) return false;
  button.click();
  return true;
}

/**
 * Wire the page-wide shortcuts. ``hooks``: {newChat(), toggleSidebar()}.
 */
export function initShortcuts(hooks) {
  document.addEventListener("keydown", (e) => {
    if (e.defaultPrevented || e.isComposing) return;
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if (mod && e.shiftKey && !e.altKey && (key === "o" || key === "s")) {
      if (dialogIsOpen()) return;
      e.preventDefault();
      if (key === "o") hooks.newChat();
      else hooks.toggleSidebar();
      return;
    }
    if (e.key === "?" && !mod && !e.altKey && !isTextField(e.target) && !dialogIsOpen() && !menuIsOpen()) {
      e.preventDefault();
      openShortcuts();
    }
  });
  const input = $("#composer-input");
  input.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowUp" || e.shiftKey || e.altKey || e.ctrlKey || e.metaKey || e.isComposing) return;
    if (input.value !== "") return;
    if (editLastMessage()) e.preventDefault();
  });
}
