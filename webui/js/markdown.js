// Markdown is rendered on the server (POST /api/render: markdown-it-py + Pygments + nh3),
// so the HTML inserted here is already sanitised. This module batches those calls, adds
// copy buttons to code blocks, and renders a reply progressively while it streams.

import { post } from "./api.js";
import { openSessionId } from "./attachments.js";
import { copyText, h, icon } from "./dom.js";

// Size limits on the page. Rendering is per message: a failed or oversized text only
// affects itself (it is shown as plain text), never the other replies of the page.
const MAX_BATCH_CHARS = 400_000; // texts per /api/render request, well under the body limit
const MAX_BATCH_ITEMS = 100;
/** A reply longer than this (UTF-16 units) is shown as plain text with a "Show as markdown" action. */
export const LARGE_CHARS = 200_000;
/** A streaming reply is re-rendered progressively only while it is shorter than this. */
export const LIVE_RENDER_MAX = 100_000;
/** "Show as markdown" renders a large text in pieces of about this many characters. */
export const PIECE_CHARS = 50_000;
const PLAIN_BLOCK_CHARS = 8_000; // plain text is laid out in blocks of about this size
/** A code block of more lines than this is shown folded, with "Show all N lines". */
export const FOLD_LINES = 30;

/**
 * Rendered HTML for each of ``texts`` (same order); ``null`` for a text that was not
 * rendered as markdown (longer than ``maxChars``; the server answered it as plain text
 * because it would cost too much, see api/render.py; or the request failed), which the
 * caller shows as plain text. Texts go in as few requests as fit the limits; when a
 * batch fails, or the server's time budget ran out part-way through it, the texts
 * concerned are retried one by one, so a single bad text costs only itself.
 * Never rejects (a 401 still sends the page to /login, in api.js).
 */
export async function renderTexts(texts, { maxChars = LARGE_CHARS } = {}) {
  const out = new Array(texts.length).fill(null);
  let batch = [];
  let size = 0;
  const one = async (i) => {
    try {
      const { html, plain } = await post("/api/render", { text: texts[i] });
      out[i] = typeof html === "string" && !plain ? html : null;
    } catch { out[i] = null; }
  };
  const flush = async () => {
    if (!batch.length) return;
    const items = batch;
    batch = [];
    size = 0;
    let again = [];
    try {
      const { html, plain } = await post("/api/render", { texts: items.map((i) => texts[i]) });
      items.forEach((i, k) => {
        if (typeof html?.[k] === "string" && !plain?.[k]) out[i] = html[k];
        else again.push(i);
      });
    } catch (err) {
      again = err.status === 0 || err.status === 401 ? [] : items; // down: no point retrying each
    }
    if (items.length > 1) for (const i of again) await one(i);
  };
  for (let i = 0; i < texts.length; i++) {
    const text = texts[i];
    if (typeof text !== "string" || text.length > maxChars) continue;
    if (batch.length && (size + text.length > MAX_BATCH_CHARS || batch.length >= MAX_BATCH_ITEMS)) await flush();
    batch.push(i);
    size += text.length;
  }
  await flush();
  return out;
}

// ------------------------------------------------------------ plain text, in blocks

/**
 * Plain text (``white-space: pre-wrap``) appended in blocks of about
 * PLAIN_BLOCK_CHARS, cut at a newline (or, on a very long line, a space), so appending
 * lays out one small block and off-screen blocks are skipped (``content-visibility``).
 * ``append`` costs O(appended text).
 */
export class PlainText {
  constructor(el) {
    this.el = el;
    this.block = null;
    this.blockLen = 0;
  }

  append(text) {
    let at = 0;
    while (at < text.length) {
      if (!this.block) this.newBlock();
      let cut = -1;
      if (this.blockLen >= PLAIN_BLOCK_CHARS) {
        cut = text.indexOf("\n", at);
        if (cut < 0 && this.blockLen >= 4 * PLAIN_BLOCK_CHARS) cut = text.indexOf(" ", at);
      } else {
        const room = PLAIN_BLOCK_CHARS - this.blockLen;
        if (text.length - at > room) {
          cut = text.indexOf("\n", at + room);
          if (cut < 0 || cut - at > 4 * PLAIN_BLOCK_CHARS) {
            const space = text.indexOf(" ", at + 4 * PLAIN_BLOCK_CHARS - this.blockLen);
            if (space >= 0 && (cut < 0 || space < cut)) cut = space;
          }
        }
      }
      const end = cut < 0 ? text.length : cut;
      if (end > at) {
        this.block.append(document.createTextNode(text.slice(at, end)));
        this.blockLen += end - at;
      }
      if (cut < 0) break;
      this.block = null; // the newline (or space) becomes the break between blocks
      at = cut + 1;
      if (at === text.length) this.newBlock(); // a trailing newline starts an empty line
    }
  }

  newBlock() {
    this.block = h("div", { class: "plain-block" });
    this.blockLen = 0;
    this.el.append(this.block);
  }
}

/** An element showing ``text`` as plain text (blocks for long texts). */
export function plainTextElement(text, cls = "plain-text") {
  const el = h("div", { class: cls });
  if (text.length <= PLAIN_BLOCK_CHARS) el.textContent = text;
  else new PlainText(el).append(text);
  return el;
}

/**
 * Show markdown ``text`` in ``el`` as plain text with a note and a "Show as markdown"
 * button. ``reason``: "large" (too long to render at once) or "failed" (the server
 * could not render it).
 */
export function showPlain(el, text, reason = "large") {
  el.classList.add("md-plain");
  const note = reason === "large"
    ? `Long reply (${formatChars(text.length)}) shown as plain text.`
    : "This reply is shown as plain text: it could not be formatted at once.";
  const button = h("button", { type: "button", class: "btn show-md" }, "Show as markdown");
  const bar = h("div", { class: "plain-bar", role: "note" }, h("span", { class: "plain-note" }, note), button);
  button.addEventListener("click", () => renderInPieces(el, text, bar));
  el.replaceChildren(bar, plainTextElement(text));
}

/** "1.2 MB"-style size of ``n`` characters (the unit users know; one character ≈ one byte). */
export function formatChars(n) {
  if (n >= 1_000_000) return `${(n / 1_000_000).toFixed(1)} million characters`;
  if (n >= 1_000) return `${Math.round(n / 1_000).toLocaleString()} thousand characters`;
  return `${n} characters`;
}

/**
 * Render ``text`` into ``el`` as markdown in pieces (see :func:`splitMarkdown`), a few
 * pieces per request, appending each as it arrives so the page stays responsive. A
 * piece the server cannot render is shown plain. ``bar`` shows the progress.
 */
export async function renderInPieces(el, text, bar) {
  const pieces = splitMarkdown(text);
  const note = bar.querySelector(".plain-note");
  bar.querySelector(".show-md")?.remove();
  const out = h("div", { class: "md-pieces" });
  let done = 0;
  for (let i = 0; i < pieces.length; i += 8) {
    note.textContent = `Formatting… ${Math.round((100 * done) / pieces.length)}%`;
    const group = pieces.slice(i, i + 8);
    const html = await renderTexts(group, { maxChars: Infinity });
    for (let k = 0; k < group.length; k++) {
      const part = h("div", { class: "md-piece" });
      if (html[k] !== null) setRendered(part, html[k]);
      else part.append(plainTextElement(group[k]));
      out.append(part);
      await nextTask(); // one piece per task: the page keeps answering input meanwhile
    }
    done += group.length;
  }
  el.classList.remove("md-plain");
  el.replaceChildren(out);
}

const nextTask = () => new Promise((resolve) => { setTimeout(resolve, 0); });

const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/;

/**
 * Cut markdown ``text`` into pieces of about ``target`` characters that render on their
 * own as the whole would: cuts fall on blank lines outside code blocks; a code block
 * longer than 2 × ``target`` is cut too, its fence closed at the end of one piece and
 * reopened (same info string) at the start of the next; a line longer than 2 × ``target``
 * is cut between characters (never inside a surrogate pair). Joined without the added
 * fences, the pieces are ``text``.
 */
export function splitMarkdown(text, target = PIECE_CHARS) {
  const pieces = [];
  let pieceStart = 0;
  let prefix = "";
  let fence = null;     // {char, len, opener} while inside a fenced code block
  let lineStart = true; // whether ``at`` is at the start of a line
  let at = 0;
  while (at < text.length) {
    const nl = text.indexOf("\n", at);
    let end = nl < 0 ? text.length : nl + 1;
    if (end - at > 2 * target) {
      end = at + 2 * target;
      const c = text.charCodeAt(end - 1);
      if (c >= 0xd800 && c <= 0xdbff) end -= 1;
    }
    const line = text.slice(at, end);
    if (lineStart) {
      const m = FENCE.exec(line.replace(/\r?\n$/, ""));
      if (fence) {
        if (m && m[1][0] === fence.char && m[1].length >= fence.len && !m[2].trim()) fence = null;
      } else if (m && !(m[1][0] === "`" && m[2].includes("`"))) {
        fence = { char: m[1][0], len: m[1].length, opener: line.replace(/\r?\n$/, "") };
      }
    }
    lineStart = end === text.length || text[end - 1] === "\n";
    at = end;
    const size = at - pieceStart;
    const blank = lineStart && !line.trim();
    if (at < text.length && size >= target && ((!fence && blank) || size >= 2 * target)) {
      const close = fence ? `${lineStart ? "" : "\n"}${fence.char.repeat(fence.len)}\n` : "";
      pieces.push(prefix + text.slice(pieceStart, at) + close);
      prefix = fence ? `${fence.opener}\n` : "";
      pieceStart = at;
    }
  }
  if (pieceStart < text.length || !pieces.length) pieces.push(prefix + text.slice(pieceStart));
  return pieces;
}

/** Put server-rendered ``html`` into ``el`` and decorate it (copy buttons). */
export function setRendered(el, html) {
  el.innerHTML = html; // sanitised by nh3 on the server
  decorate(el);
}

/**
 * Decorate server-rendered HTML in ``root``: a copy button on every code block, a fold
 * on code blocks longer than FOLD_LINES (unfolded while the reply streams, by CSS), and
 * the address of each workspace image (``img[data-ws-path]``, api/render.py) in the
 * open chat's workspace.
 */
export function decorate(root) {
  for (const head of root.querySelectorAll(".code-head")) {
    if (head.querySelector(".copy-btn")) continue;
    const block = head.closest(".code-block");
    const lines = (block?.querySelector("pre code")?.textContent || "").replace(/\n$/, "").split("\n").length;
    if (block && lines > FOLD_LINES) head.append(foldButton(block, lines));
    head.append(h("button", { type: "button", class: "copy-btn", "aria-label": "Copy code" },
      icon("copy"), h("span", {}, "Copy")));
  }
  const sid = openSessionId();
  for (const img of root.querySelectorAll("img[data-ws-path]:not([src])")) {
    if (!sid) continue;
    img.src = `/api/file/raw?${new URLSearchParams({ session_id: sid, path: img.dataset.wsPath })}`;
  }
}

function foldButton(block, lines) {
  block.classList.add("folded");
  const label = h("span", {}, `Show all ${lines} lines`);
  const btn = h("button", { type: "button", class: "fold-btn", "aria-expanded": "false" }, label);
  btn.addEventListener("click", () => {
    const folded = block.classList.toggle("folded");
    btn.setAttribute("aria-expanded", folded ? "false" : "true");
    label.textContent = folded ? `Show all ${lines} lines` : "Fold";
    if (folded) block.scrollIntoView({ block: "nearest" });
  });
  return btn;
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

/** The element the streamed tail continues: the last paragraph, list item or heading of
 * the rendered part (descending into a last list), or null when it ends otherwise. */
function inlineTarget(root) {
  let last = root.lastElementChild;
  while (last && /^(UL|OL)$/.test(last.tagName)) last = last.lastElementChild;
  if (last?.tagName === "LI" && last.lastElementChild?.tagName === "P") last = last.lastElementChild;
  return last && /^(P|LI|H[1-6])$/.test(last.tagName) ? last : null;
}

/**
 * Progressive rendering of a streaming reply into ``el``: the text received so far is
 * re-rendered on the server at most every few hundred ms; whatever arrived since the
 * last render is shown as plain text (the "tail") so nothing waits on a round trip.
 * Streamed text reaches the page once per animation frame, whatever the token rate.
 * Past LIVE_RENDER_MAX characters the reply is no longer re-rendered: the rest streams
 * in as plain text blocks (O(new text) per frame) until the end, when ``finish``
 * renders it once (or, past LARGE_CHARS, shows it plain with "Show as markdown").
 */
export class LiveMarkdown {
  constructor(el) {
    this.el = el;
    this.text = "";
    this.renderedLength = 0;
    this.pending = "";     // received, not yet in the DOM
    this.frame = null;
    this.timer = null;
    this.inflight = null;
    this.closed = false;
    this.plain = null;     // PlainText sink once past LIVE_RENDER_MAX (or too costly to render)
    this.costly = false;
    this.interval = 200;
    this.tail = h("span", { class: "tail" });
    el.append(this.tail);
  }

  /** Add streamed ``text`` (shown at the next frame as plain text, rendered shortly after). */
  append(text) {
    if (!text || this.closed) return;
    this.text += text;
    this.pending += text;
    if (!this.plain && this.text.length > LIVE_RENDER_MAX && !this.inflight) this.freeze();
    if (this.frame === null) this.frame = requestAnimationFrame(() => this.flush());
    if (!this.plain) this.schedule();
  }

  // Put the text received since the last frame into the DOM.
  flush() {
    this.frame = null;
    if (!this.pending || this.closed) return;
    if (this.plain) this.plain.append(this.pending);
    else this.tail.append(document.createTextNode(this.pending));
    this.pending = "";
  }

  // Stop re-rendering: everything after the last render streams in as plain blocks.
  freeze() {
    clearTimeout(this.timer);
    this.timer = null;
    this.tail.remove();
    const box = h("div", { class: "tail tail-plain" });
    this.el.append(box);
    this.plain = new PlainText(box);
    this.plain.append(this.text.slice(this.renderedLength));
    this.pending = "";
  }

  schedule() {
    if (this.timer || this.inflight || this.closed || this.plain) return;
    this.timer = setTimeout(() => { this.timer = null; this.inflight = this.renderNow(); }, this.interval);
  }

  async renderNow() {
    const snapshot = this.text;
    const started = performance.now();
    try {
      const { html, plain } = await post("/api/render", { text: snapshot });
      if (this.closed) return;
      if (plain) { // too costly to render (api/render.py): stream the rest as plain text
        this.costly = true;
        return;
      }
      setRendered(this.el, html);
      this.renderedLength = snapshot.length;
      this.placeTail();
      // Long replies take longer to render: back off so rendering never dominates.
      this.interval = Math.min(1500, Math.max(200, 3 * (performance.now() - started)));
    } catch {
      this.interval = 1500; // keep streaming as plain text; try again later
      if (!this.closed && !this.tail.isConnected) this.placeTail();
    } finally {
      this.inflight = null;
      if (!this.closed && (this.text.length > LIVE_RENDER_MAX || this.costly)) this.freeze();
      else if (!this.closed && this.text.length > this.renderedLength) this.schedule();
    }
  }

  // The unrendered tail continues the last paragraph unless it starts a new block. At
  // the seam, the whitespace markdown dropped from the end of the rendered part (or a
  // single line break, which renders as a space) comes back as one space: never
  // "t14t15", never two spaces.
  placeTail() {
    const rendered = this.text.slice(0, this.renderedLength);
    const rest = this.text.slice(this.renderedLength);
    this.pending = "";
    const target = inlineTarget(this.el);
    const newBlock = /\n[ \t]*\n[ \t]*$/.test(rendered) || /^[ \t]*\n[ \t]*\n/.test(rest);
    const inline = target && !newBlock && !rest.includes("\n");
    if (inline) {
      const gap = /\s$/.test(rendered) || /^\s/.test(rest);
      this.tail.textContent = (gap ? " " : "") + rest.replace(/^\s+/, "");
      target.append(this.tail);
    } else {
      this.tail.textContent = rest.replace(/^\s*\n/, "");
      this.el.append(this.tail);
    }
  }

  /** Stop streaming; render ``finalText`` (default: everything received) once more. */
  async finish(finalText = this.text) {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    this.frame = null;
    if (this.inflight) await this.inflight.catch(() => {});
    const upToDate = !this.plain && finalText === this.text && this.renderedLength === finalText.length
      && this.renderedLength > 0;
    this.text = finalText;
    if (!finalText) {
      this.el.replaceChildren();
      return;
    }
    if (upToDate) {
      this.tail.remove();
      return;
    }
    if (finalText.length > LARGE_CHARS) {
      showPlain(this.el, finalText, "large");
      return;
    }
    const [html] = await renderTexts([finalText]);
    if (html !== null) setRendered(this.el, html);
    else showPlain(this.el, finalText, "failed");
  }
}
