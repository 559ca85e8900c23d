// Small DOM helpers shared by every module: element builder, icons, toast, live region.
// Nothing here sets inline styles or HTML strings from data (text goes in as text).

const SVG_NS = "http://www.w3.org/2000/svg";

// Icon outlines (24×24, stroked), drawn with the same pen as the HTML's inline icons.
const ICONS = {
  dots: [["circle", { cx: 5, cy: 12, r: 1.4 }], ["circle", { cx: 12, cy: 12, r: 1.4 }], ["circle", { cx: 19, cy: 12, r: 1.4 }]],
  pin: [["path", { d: "M12 16.5V21" }], ["path", { d: "M8.5 3.5h7M9.5 3.5v6l-3 3.5v1.5h11V13l-3-3.5v-6" }]],
  archive: [["rect", { x: 3.5, y: 4.5, width: 17, height: 4.5, rx: 1.2 }], ["path", { d: "M5 9v9.5a1.5 1.5 0 0 0 1.5 1.5h11a1.5 1.5 0 0 0 1.5-1.5V9M10 13h4" }]],
  edit: [["path", { d: "M4 20h4L19 9l-4-4L4 16z" }], ["path", { d: "M13.5 6.5l4 4" }]],
  trash: [["path", { d: "M4 7h16M9 7V4.5h6V7M6.5 7l1 13h9l1-13" }]],
  copy: [["rect", { x: 8.5, y: 8.5, width: 11, height: 11, rx: 2 }], ["path", { d: "M15.5 8.5V6a1.5 1.5 0 0 0-1.5-1.5H6A1.5 1.5 0 0 0 4.5 6v8A1.5 1.5 0 0 0 6 15.5h2.5" }]],
  check: [["path", { d: "M5 12.5l4.5 4.5L19 7.5" }]],
  chevron: [["path", { d: "M9 6l6 6-6 6" }]],
  tool: [["path", { d: "M14.5 5.5a4 4 0 0 0-5 5L4 16l4 4 5.5-5.5a4 4 0 0 0 5-5l-2.5 2.5-3-1-1-3z" }]],
  alert: [["circle", { cx: 12, cy: 12, r: 9 }], ["path", { d: "M12 7.5v5.5M12 16.5v.01" }]],
  spark: [["path", { d: "M12 3v4M12 17v4M3 12h4M17 12h4M6 6l2.5 2.5M15.5 15.5L18 18M6 18l2.5-2.5M15.5 8.5L18 6" }]],
  retry: [["path", { d: "M4.5 12a7.5 7.5 0 0 1 13.2-4.9M19.5 12a7.5 7.5 0 0 1-13.2 4.9" }], ["path", { d: "M18 3.5v4h-4M6 20.5v-4h4" }]],
  fork: [["circle", { cx: 6.5, cy: 5.5, r: 2 }], ["circle", { cx: 6.5, cy: 18.5, r: 2 }], ["circle", { cx: 17.5, cy: 5.5, r: 2 }], ["path", { d: "M6.5 7.5v9M17.5 7.5v1a5 5 0 0 1-5 5h-6" }]],
  download: [["path", { d: "M12 4v11M7 10l5 5 5-5M5 20h14" }]],
  upload: [["path", { d: "M12 16V5M7 10l5-5 5 5M5 20h14" }]],
  undo: [["path", { d: "M9 14L4.5 9.5 9 5" }], ["path", { d: "M4.5 9.5H14a5.5 5.5 0 0 1 0 11h-3" }]],
  eraser: [["path", { d: "M14.5 4.5l5 5-9 9h-5l-2-2a1.5 1.5 0 0 1 0-2.1z" }], ["path", { d: "M9.5 9.5l5 5M10.5 20.5H20" }]],
  folder: [["path", { d: "M3.5 7.5A2 2 0 0 1 5.5 5.5h4l2 2.5h7a2 2 0 0 1 2 2v7.5a2 2 0 0 1-2 2h-13a2 2 0 0 1-2-2z" }]],
  plus: [["path", { d: "M12 5v14M5 12h14" }]],
  tag: [["path", { d: "M4 4h7.5L20 12.5 12.5 20 4 11.5z" }], ["circle", { cx: 8.5, cy: 8.5, r: 1.3 }]],
  file: [["path", { d: "M14 3.5H7.5A1.5 1.5 0 0 0 6 5v14a1.5 1.5 0 0 0 1.5 1.5h9A1.5 1.5 0 0 0 18 19V7.5z" }], ["path", { d: "M14 3.5v4h4" }]],
  close: [["path", { d: "M7 7l10 10M17 7L7 17" }]],
  speaker: [["path", { d: "M4.5 9.5h3l4.5-4v13l-4.5-4h-3z" }], ["path", { d: "M15.5 9a4 4 0 0 1 0 6M18 6.5a7.5 7.5 0 0 1 0 11" }]],
  brand: [["rect", { width: 32, height: 32, rx: 9, class: "brand-bg" }], ["path", { d: "M10 8v16M22 8v16M10 16h12", class: "brand-glyph" }]],
};

/** An SVG icon element; ``name`` is a key of ICONS. Decorative (aria-hidden). */
export function icon(name, cls = "") {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", name === "brand" ? "0 0 32 32" : "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  if (cls) svg.setAttribute("class", cls);
  for (const [tag, attrs] of ICONS[name] || []) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    svg.append(node);
  }
  return svg;
}

/**
 * Build an element: h("button", {class: "x", type: "button", onclick: fn}, "text", child…).
 * Keys starting with "on" become listeners, "dataset" an object of data-*, everything
 * else an attribute (false/null skip it). Children may be strings, nodes or arrays.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);

let toastTimer = null;
let toastMs = 0;
let toastHeld = false;

/** Milliseconds a person needs to read ``text``: 2 s plus ~60 ms a character (≥ 4 s, ≤ 20 s). */
export const readingMs = (text) => Math.min(20_000, Math.max(4000, 2000 + 60 * String(text).length));

function hideToastLater(ms) {
  clearTimeout(toastTimer);
  toastTimer = toastHeld ? null : setTimeout(() => { $("#toast").hidden = true; }, ms);
}

function holdToast(held) {
  toastHeld = held;
  if (held) clearTimeout(toastTimer);
  else if (!$("#toast").hidden) hideToastLater(Math.max(2500, toastMs / 2));
}

/**
 * Show a message at the bottom of the screen (role=alert) for ``ms`` milliseconds, and at
 * least as long as it takes to read (:func:`readingMs`); it stays while the pointer or the
 * keyboard focus is on it. ``detail``: the technical text (e.g. an ApiError's ``detail``)
 * behind a "Details" toggle.
 */
export function toast(message, ms = 4000, { detail = null } = {}) {
  const el = $("#toast");
  if (!el.dataset.wired) {
    el.dataset.wired = "1";
    el.addEventListener("pointerenter", () => holdToast(true));
    el.addEventListener("pointerleave", () => holdToast(false));
    el.addEventListener("focusin", () => holdToast(true));
    el.addEventListener("focusout", () => holdToast(false));
  }
  const parts = [h("span", { class: "toast-text" }, message)];
  if (detail) {
    const pre = h("pre", { class: "toast-detail", hidden: true }, detail);
    const btn = h("button", { type: "button", class: "toast-toggle", "aria-expanded": "false" }, "Details");
    btn.addEventListener("click", () => {
      pre.hidden = !pre.hidden;
      btn.setAttribute("aria-expanded", String(!pre.hidden));
      btn.textContent = pre.hidden ? "Details" : "Hide details";
    });
    parts.push(" ", btn, pre);
  }
  el.replaceChildren(...parts);
  el.hidden = false;
  toastMs = Math.max(ms, readingMs(message));
  hideToastLater(toastMs);
}

/** A toast for a failed call: ``what`` (e.g. "Not sent") and the error's sentence, its
 * technical detail behind the toggle. */
export function toastError(what, err, ms = 6000) {
  toast(what ? `${what}: ${err.message}` : err.message, ms, { detail: err.detail || null });
}

/** Tell screen readers something happened (polite live region). */
export function announce(message) {
  const el = $("#live-region");
  el.textContent = "";
  requestAnimationFrame(() => { el.textContent = message; });
}

/** "14:05" today, "Mon 14:05" this week, else a short date; ``seconds`` is epoch seconds. */
export function formatTime(seconds) {
  if (!seconds) return "";
  const d = new Date(seconds * 1000);
  const now = new Date();
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (d.toDateString() === now.toDateString()) return time;
  if (now - d < 6 * 86400e3) return `${d.toLocaleDateString([], { weekday: "short" })} ${time}`;
  return d.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
}

/** Copy ``text`` to the clipboard; falls back to execCommand on plain-http LAN origins. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try { await navigator.clipboard.writeText(text); return true; } catch { /* fall back */ }
  }
  const area = h("textarea", { class: "visually-hidden", readonly: true, "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch { ok = false; }
  area.remove();
  return ok;
}
