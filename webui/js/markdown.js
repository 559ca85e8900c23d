// Markdown is rendered on the server (POST /api/render: markdown-it-py + Pygments + nh3),
// so the HTML inserted here is already sanitised. This module batches those calls, adds
// copy buttons to code blocks, and renders a reply progressively while it streams.

import { post } from "./api.js";
import { copyText, h, icon } from "./dom.js";

const MAX_BATCH_CHARS = 600_000; // stay well under the server's 2 MiB body limit
const MAX_BATCH_ITEMS = 200;

/** Rendered HTML for each of ``texts`` (same order), in as few requests as fit the limits. */
export async function renderTexts(texts) {
  const out = [];
  let batch = [];
  let size = 0;
  const flush = async () => {
    if (!batch.length) return;
    const { html } = await post("/api/render", { texts: batch });
    out.push(...html);
    batch = [];
    size = 0;
  };
  for (const text of texts) {
    if (batch.length && (size + text.length > MAX_BATCH_CHARS || batch.length >= MAX_BATCH_ITEMS)) await flush();
    batch.push(text);
    size += text.length;
  }
  await flush();
  return out;
}

/** Put server-rendered ``html`` into ``el`` and decorate it (copy buttons). */
export function setRendered(el, html) {
  el.innerHTML = html; // sanitised by nh3 on the server
  decorate(el);
}

/** Add a copy button to every code block header in ``root`` that lacks one. */
export function decorate(root) {
  for (const head of root.querySelectorAll(".code-head")) {
    if (head.querySelector(".copy-btn")) continue;
    head.append(h("button", { type: "button", class: "copy-btn", "aria-label": "Copy code" },
      icon("copy"), h("span", {}, "Copy")));
  }
}

/** Click handler (delegated): copies the code block or message a copy button belongs to. */
export async function handleCopyClick(event) {
  const btn = event.target.closest(".copy-btn, .msg-copy");
  if (!btn) return false;
  let text = "";
  if (btn.classList.contains("copy-btn")) {
    const code = btn.closest(".code-block")?.querySelector("pre code");
    text = code ? code.textContent : "";
  } else {
    text = btn.closest(".msg")?.rawText ?? "";
  }
  const ok = await copyText(text);
  const label = btn.querySelector("span");
  const before = label ? label.textContent : "";
  btn.classList.toggle("copied", ok);
  if (label) label.textContent = ok ? "Copied" : "Copy failed";
  setTimeout(() => {
    btn.classList.remove("copied");
    if (label) label.textContent = before;
  }, 1500);
  return true;
}

/**
 * Progressive rendering of a streaming reply into ``el``: the text received so far is
 * re-rendered on the server at most every few hundred ms; whatever arrived since the
 * last render is shown as plain text (the "tail") so nothing waits on a round trip.
 */
export class LiveMarkdown {
  constructor(el) {
    this.el = el;
    this.text = "";
    this.renderedLength = 0;
    this.timer = null;
    this.inflight = null;
    this.closed = false;
    this.interval = 200;
    this.tail = h("span", { class: "tail" });
    el.append(this.tail);
  }

  /** Add streamed ``text`` (shown at once as plain text, rendered shortly after). */
  append(text) {
    if (!text || this.closed) return;
    this.text += text;
    this.tail.textContent = this.text.slice(this.renderedLength);
    this.schedule();
  }

  schedule() {
    if (this.timer || this.inflight || this.closed) return;
    this.timer = setTimeout(() => { this.timer = null; this.inflight = this.renderNow(); }, this.interval);
  }

  async renderNow() {
    const snapshot = this.text;
    const started = performance.now();
    try {
      const { html } = await post("/api/render", { text: snapshot });
      if (this.closed) return;
      setRendered(this.el, html);
      this.renderedLength = snapshot.length;
      this.placeTail();
      // Long replies take longer to render: back off so rendering never dominates.
      this.interval = Math.min(1500, Math.max(200, 3 * (performance.now() - started)));
    } catch {
      this.interval = 1500; // keep streaming as plain text; try again later
    } finally {
      this.inflight = null;
      if (!this.closed && this.text.length > this.renderedLength) this.schedule();
    }
  }

  // The unrendered tail continues the last paragraph unless it starts a new block.
  placeTail() {
    const rest = this.text.slice(this.renderedLength);
    this.tail.textContent = rest;
    const last = this.el.lastElementChild;
    const inline = last && /^(P|LI|H[1-6])$/.test(last.tagName) && !rest.includes("\n");
    (inline ? last : this.el).append(this.tail);
  }

  /** Stop streaming; render ``finalText`` (default: everything received) once more. */
  async finish(finalText = this.text) {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.inflight) await this.inflight.catch(() => {});
    const upToDate = finalText === this.text && this.renderedLength === finalText.length && this.renderedLength > 0;
    this.text = finalText;
    if (!finalText) {
      this.el.replaceChildren();
      return;
    }
    if (upToDate) {
      this.tail.remove();
      return;
    }
    try {
      const { html } = await post("/api/render", { text: finalText });
      setRendered(this.el, html);
    } catch {
      this.el.replaceChildren(h("p", { class: "tail" }, finalText));
    }
  }
}
