// The popup menu (role=menu, arrow keys, Esc, click outside) and the modal dialog used
// to rename and to confirm a delete. One of each exists in index.html and is reused.
// The settings and profiles dialogs are their own <dialog>s (settings.js, profile.js).

import { $, h, icon } from "./dom.js";

let openState = null; // {anchor, onKey, onPointer}

/** True while the popup menu is showing. */
export const menuIsOpen = () => openState !== null;

/**
 * Show the menu under ``anchor`` with ``items``: [{label, icon, action, danger}] or
 * "separator". Focus moves to the first item and returns to ``anchor`` on close.
 */
export function openMenu(anchor, items) {
  closeMenu();
  const menu = $("#menu");
  menu.replaceChildren(...items.map((item) => (item === "separator"
    ? h("div", { class: "menu-sep", role: "separator" })
    : h("button", {
      type: "button", role: "menuitem", class: `menu-item${item.danger ? " danger" : ""}`, tabindex: "-1",
      onclick: () => { closeMenu(); item.action(); },
    }, item.icon ? icon(item.icon) : null, h("span", {}, item.label)))));
  menu.hidden = false;
  position(menu, anchor);
  anchor.setAttribute("aria-expanded", "true");
  const onKey = (e) => menuKey(e, menu);
  const onPointer = (e) => { if (!menu.contains(e.target) && !anchor.contains(e.target)) closeMenu(false); };
  openState = { anchor, onKey, onPointer };
  document.addEventListener("keydown", onKey, true);
  document.addEventListener("pointerdown", onPointer, true);
  menu.querySelector(".menu-item")?.focus();
}

/** Close the menu; focus goes back to its button unless ``restoreFocus`` is false. */
export function closeMenu(restoreFocus = true) {
  if (!openState) return;
  const { anchor, onKey, onPointer } = openState;
  openState = null;
  $("#menu").hidden = true;
  anchor.setAttribute("aria-expanded", "false");
  document.removeEventListener("keydown", onKey, true);
  document.removeEventListener("pointerdown", onPointer, true);
  if (restoreFocus && anchor.isConnected) anchor.focus();
}

function position(menu, anchor) {
  const r = anchor.getBoundingClientRect();
  const width = menu.offsetWidth;
  const height = menu.offsetHeight;
  const left = Math.max(8, Math.min(r.right - width, window.innerWidth - width - 8));
  const below = r.bottom + 4 + height <= window.innerHeight - 8;
  menu.style.left = `${left}px`;
  menu.style.top = `${below ? r.bottom + 4 : Math.max(8, r.top - height - 4)}px`;
}

function menuKey(e, menu) {
  const items = [...menu.querySelectorAll(".menu-item")];
  const at = items.indexOf(document.activeElement);
  if (e.key === "Escape") {
    e.preventDefault();
    e.stopPropagation();
    closeMenu();
  } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    const step = e.key === "ArrowDown" ? 1 : -1;
    items[(at + step + items.length) % items.length]?.focus();
  } else if (e.key === "Home" || e.key === "End") {
    e.preventDefault();
    items[e.key === "Home" ? 0 : items.length - 1]?.focus();
  } else if (e.key === "Tab") {
    closeMenu(false);
  }
}

/**
 * The modal dialog. ``opts``: {title, text, label (shows a text field), value, ok,
 * danger}. Resolves to the field's trimmed value (or true without a field) on OK, and
 * to null on Cancel / Esc.
 */
export function openDialog({ title, text = "", label = null, value = "", ok = "OK", danger = false }) {
  const dialog = $("#dialog");
  const input = $("#dialog-input");
  const okBtn = $("#dialog-ok");
  $("#dialog-title").textContent = title;
  $("#dialog-text").textContent = text;
  $("#dialog-text").hidden = !text;
  $("#dialog-label").textContent = label || "";
  $("#dialog-label").hidden = !label;
  input.hidden = !label;
  input.value = value;
  okBtn.textContent = ok;
  okBtn.className = `btn ${danger ? "btn-danger" : "btn-primary"}`;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    const cancel = () => dialog.close("");
    $("#dialog-cancel").addEventListener("click", cancel, { once: true });
    dialog.addEventListener("close", () => {
      $("#dialog-cancel").removeEventListener("click", cancel);
      if (dialog.returnValue !== "ok") resolve(null);
      else resolve(label ? input.value.trim() : true);
    }, { once: true });
    dialog.showModal();
    if (label) { input.focus(); input.select(); } else okBtn.focus();
  });
}

/** True while a modal dialog (confirm, settings, profiles) is showing. */
export const dialogIsOpen = () => document.querySelector("dialog[open]") !== null;

/** Close ``dialog`` when a [data-close] button in it is pressed or its backdrop is clicked. */
export function wireDialogClose(dialog) {
  dialog.addEventListener("click", (e) => {
    if (e.target.closest("[data-close]")) {
      dialog.close();
      return;
    }
    if (e.target !== dialog) return;
    const r = dialog.getBoundingClientRect();
    if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) dialog.close();
  });
}
