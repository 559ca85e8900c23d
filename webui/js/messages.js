// Building message elements: user bubbles, assistant replies with reasoning, tool-call
// cards, error cards and status badges, both for saved messages and while streaming.
// Message shape (docs/architecture.md §3): {role, content, timestamp, status?, reasoning?,
// tool_calls?: [{id, name, args, result, duration_ms, is_error}], error?}.
//
// Each saved message carries an action bar (.msg-actions): Copy, and Edit + Fork on the
// user's messages, Retry + Fork on replies (Retry shows on the last reply only: the chat
// marks it .is-last). The buttons say what they do in data-action; chat.js handles them
// (Read aloud, where the browser can speak: speech.js).
//
// A reply reads in the order it happened: each tool call records ``offset``, the
// characters (code points) of reply text before it, so the text is cut there and the
// tool cards sit between the pieces, live (a tool event closes the text piece being
// streamed) and after a reload alike. Each piece is rendered as markdown on its own.
// Reasoning likewise: each run of it (reasoning with no text or tool between) is a
// block where it came; a saved reply says where in ``reasoning_runs`` (docs/api.md).

import { attachmentList } from "./attachments.js";
import { formatTime, h, icon } from "./dom.js";
import { LARGE_CHARS, LiveMarkdown, plainTextElement, setRendered, showPlain } from "./markdown.js";
import { savedQuestionCard } from "./questions.js";
import { canSpeak } from "./speech.js";

const STATUS_LABELS = { truncated: "Cut off", interrupted: "Interrupted", cancelled: "Stopped", error: "Error", partial: "Partial" };

/** Whether ``msg``'s content is rendered as markdown (assistant replies are). */
export const isMarkdown = (msg) => msg.role === "assistant";

/**
 * A reply's text, reasoning and tool calls in the order they happened:
 * [{text} | {reasoning} | {tools: [call…]}]. Calls without an ``offset`` (saved by an
 * earlier version) come first, as they were shown then; consecutive calls at one offset
 * form one group; text pieces that are only whitespace are dropped. Reasoning without
 * ``reasoning_runs`` is one run before everything else; a run at the offset of a tool
 * call comes before it when fewer calls preceded the run (``tools_before``).
 */
export function replyParts(msg) {
  const content = textOf(msg.content);
  const calls = Array.isArray(msg.tool_calls) ? msg.tool_calls.filter((c) => c && typeof c === "object") : [];
  const runs = reasoningRuns(msg);
  const asks = questionsOf(msg);
  if (!calls.length && !runs.length && !asks.length) return content ? [{ text: content }] : [];
  const at = (c) => (Number.isInteger(c.offset) && c.offset > 0 ? c.offset : 0);
  const before = (q) => (Number.isInteger(q.record.tools_before) && q.record.tools_before >= 0 ? q.record.tools_before : 0);
  // [offset, sequence, kind (0 reasoning, 1 tool or question), item]: a run sorts before the
  // call numbered tools_before, a question just before it (asked before that call came)
  const marks = [...calls.map((c, i) => [at(c), i, 1, c]), ...runs.map((r) => [r.offset, r.tools_before, 0, r]),
    ...asks.map((q) => [at(q.record), before(q) - 0.5, 1, q])]
    .sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  const cuts = codePointIndices(content, marks.map(([o]) => o));
  const parts = [];
  let from = 0;
  marks.forEach(([, , kind, item], k) => {
    const cut = Math.max(from, cuts[k]);
    const text = content.slice(from, cut);
    if (text.trim()) parts.push({ text });
    from = cut;
    const last = parts[parts.length - 1];
    if (kind === 0) { if (item.text.trim()) parts.push({ reasoning: item.text }); }
    else if (last?.tools && !text.trim()) last.tools.push(item);
    else parts.push({ tools: [item] });
  });
  const rest = content.slice(from);
  if (rest.trim()) parts.push({ text: rest });
  return parts;
}

/** A saved reply's answered approvals and clarifying questions, in the order asked:
 * [{question: "approval" | "clarify", record}] (see replyParts; questions.js draws them). */
function questionsOf(msg) {
  const list = (value, kind) => (Array.isArray(value) ? value : [])
    .filter((r) => r && typeof r === "object").map((record) => ({ question: kind, record }));
  return [...list(msg.approvals, "approval"), ...list(msg.clarifications, "clarify")];
}

/** ``msg``'s reasoning cut into its runs: [{offset, tools_before, text}] (see replyParts). */
function reasoningRuns(msg) {
  const reasoning = typeof msg.reasoning === "string" ? msg.reasoning : "";
  if (!reasoning) return [];
  const ok = (n) => Number.isInteger(n) && n >= 0;
  const saved = Array.isArray(msg.reasoning_runs) ? msg.reasoning_runs : [];
  const runs = saved.length && saved.every((r) => r && ok(r.offset) && ok(r.start) && ok(r.tools_before))
    ? [...saved].sort((a, b) => a.start - b.start) : [{ offset: 0, start: 0, tools_before: 0 }];
  const starts = codePointIndices(reasoning, runs.map((r) => r.start));
  starts[0] = 0;  // text before the first run's start belongs to it
  return runs.map((r, i) => ({ offset: r.offset, tools_before: r.tools_before,
    text: reasoning.slice(starts[i], i + 1 < runs.length ? Math.max(starts[i], starts[i + 1]) : undefined) }));
}

/** The UTF-16 index in ``text`` of each code-point offset of the ascending ``offsets``
 * (past the end: the text's length). */
function codePointIndices(text, offsets) {
  const out = [];
  let cp = 0;
  let i = 0;
  for (const offset of offsets) {
    while (cp < offset && i < text.length) {
      const c = text.charCodeAt(i);
      i += c >= 0xd800 && c <= 0xdbff && i + 1 < text.length ? 2 : 1;
      cp += 1;
    }
    out.push(i);
  }
  return out;
}

/** The texts of ``msg`` that are rendered as markdown (the text pieces of a reply), in order. */
export function markdownTexts(msg) {
  return isMarkdown(msg) ? replyParts(msg).filter((p) => p.text !== undefined).map((p) => p.text) : [];
}

/** A saved message as an <article>; ``html`` is the server-rendered HTML of each of its
 * ``markdownTexts`` (assistant), null for one that was not rendered (too large, or the
 * render failed): shown as plain text. */
export function messageElement(msg, index, html = null) {
  if (msg.role === "user") return userElement(msg, index);
  if (msg.role === "assistant") return assistantElement(msg, index, html);
  return otherElement(msg, index);
}

const OTHER_LABELS = { system: "System note", tool: "Tool output" };

/** A message of any other role (system, tool, or one an import or an old file left
 * unknown or missing): a labelled note with its text, never "undefined: …". */
function otherElement(msg, index) {
  const known = OTHER_LABELS[msg.role];
  const role = typeof msg.role === "string" && msg.role.trim() ? msg.role.trim().slice(0, 40) : "";
  const label = known || (role ? `Message (${role})` : "Message");
  const when = timeEl(msg.timestamp);
  return h("article", { class: `msg msg-${msg.role === "system" ? "system" : "other"}`, "aria-label": label,
    dataset: { index: index ?? "", role: role || "unknown" } },
  h("div", { class: "msg-body" }, h("div", { class: "msg-label" }, label), plainTextElement(textOf(msg.content), "msg-text"),
    when ? h("div", { class: "msg-meta" }, when) : null));
}

/** The text of a message's content (a string, or OpenAI-style parts). */
export function textOf(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === "string" ? p : p?.text || "")).join("");
  return content == null ? "" : JSON.stringify(content);
}

function statusBadge(status) {
  const label = STATUS_LABELS[status];
  return label ? h("span", { class: `badge badge-${status}` }, label) : null;
}

const count = (n) => Number(n).toLocaleString();

/** Two ``{prompt_tokens, completion_tokens}`` records added up, as the server adds a
 * continued reply's (either may be null; null when both are). */
export function addUsage(a, b) {
  if (!a || !b) return a || b || null;
  const n = (u, key) => (Number.isInteger(u[key]) ? u[key] : 0);
  return { prompt_tokens: n(a, "prompt_tokens") + n(b, "prompt_tokens"),
    completion_tokens: n(a, "completion_tokens") + n(b, "completion_tokens") };
}

/** The reply's tokens, subtle under it: "1,234 in · 56 out" (null without usage). */
export function usageEl(usage) {
  const p = usage?.prompt_tokens;
  const c = usage?.completion_tokens;
  if (!Number.isInteger(p) && !Number.isInteger(c)) return null;
  const text = `${count(p || 0)} in · ${count(c || 0)} out`;
  const full = `${count(p || 0)} prompt tokens and ${count(c || 0)} reply tokens`;
  return h("span", { class: "usage", title: full, "aria-label": full }, text);
}

function timeEl(seconds) {
  // none, or not a real time (a string, 0, NaN): no time shown rather than a wrong one
  return Number.isFinite(seconds) && seconds > 0 ? h("time", { datetime: new Date(seconds * 1000).toISOString(), title: new Date(seconds * 1000).toLocaleString() }, formatTime(seconds)) : null;
}

/** The user's message (plain text, never interpreted as HTML). */
export function userElement(msg, index) {
  const text = textOf(msg.content);
  const el = h("article", { class: "msg msg-user", "aria-label": "You", dataset: { index: index ?? "", role: "user" } },
    h("div", { class: "msg-wrap" },
      attachmentList(msg.attachments),
      text ? h("div", { class: "msg-body" }, plainTextElement(text, "msg-text")) : null,
      h("div", { class: "msg-meta" }, actionBar("user", true), statusBadge(msg.status), timeEl(msg.timestamp))));
  if (msg.status) el.dataset.status = msg.status;
  el.rawText = textOf(msg.content);
  return el;
}

const ACTIONS = {
  copy: { icon: "copy", text: "Copy", user: "Copy message", assistant: "Copy reply" },
  edit: { icon: "edit", text: "Edit", user: "Edit message" },
  retry: { icon: "retry", text: "Retry", assistant: "Retry: a new reply (this one is kept as a version)" },
  fork: { icon: "fork", text: "Fork", user: "Fork: a new chat up to this message", assistant: "Fork: a new chat up to this reply" },
  speak: { icon: "speaker", text: "Read aloud", assistant: "Read this reply aloud" },
};

function actionButton(name, role) {
  const a = ACTIONS[name];
  return h("button", { type: "button", class: `msg-action msg-${name}`, "aria-label": a[role], title: a[role],
    dataset: { action: name } }, icon(a.icon), h("span", {}, a.text));
}

/** The action buttons of a message of ``role`` (``hasText``: whether Copy makes sense). */
function actionBar(role, hasText) {
  const names = role === "user" ? ["copy", "edit", "fork"] : ["copy", "speak", "retry", "fork"];
  return h("div", { class: "msg-actions" },
    names.filter((n) => (n !== "copy" || hasText) && (n !== "speak" || (hasText && canSpeak())))
      .map((n) => actionButton(n, role)));
}

function assistantShell(index) {
  const body = h("div", { class: "msg-body" });
  const el = h("article", { class: "msg msg-assistant", "aria-label": "Assistant", dataset: { index: index ?? "", role: "assistant" } },
    h("div", { class: "msg-avatar" }, icon("brand")), body);
  return { el, body };
}

/** A saved assistant reply. */
export function assistantElement(msg, index, html) {
  const { el, body } = assistantShell(index);
  const rendered = Array.isArray(html) ? html : [html];
  let k = 0;
  for (const part of replyParts(msg)) {
    if (part.reasoning !== undefined) {
      body.append(reasoningBlock(part.reasoning, false).details);
      continue;
    }
    if (part.tools) {
      body.append(h("div", { class: "tools" }, part.tools.map((call) => {
        if (call.question) return savedQuestionCard(call.question, call.record);   // an answered approval or clarify
        const card = toolCard(call, call.result !== undefined);
        // saved without a result (a stopped turn, a migrated call never answered): it never will be
        if (call.result === undefined) card.parts.status.replaceChildren("Not finished");
        return card;
      })));
      continue;
    }
    const md = h("div", { class: "md" });
    const piece = rendered[k++] ?? null;
    if (piece !== null) setRendered(md, piece);
    else showPlain(md, part.text, part.text.length > LARGE_CHARS ? "large" : "failed");
    md.segmentText = part.text;
    body.append(md);
  }
  const content = textOf(msg.content);
  if (msg.error || msg.status === "error") body.append(errorCard(msg.error || "The reply failed.", null));
  if (Array.isArray(msg.denied_tools) && msg.denied_tools.length) {   // a scheduled task's run: nobody to ask
    const tools = [...new Set(msg.denied_tools.map((d) => String(d.tool)))].join(", ");
    body.append(h("p", { class: "denied-note", role: "note" },
      `Denied without asking (a scheduled run): ${tools}. Add it to the task's allowed tools to let the task use it.`));
  }
  const from = typeof msg.source_role === "string" && msg.source_role   // imported with an unknown role
    ? h("span", { class: "source-role", title: "The role this message had where it came from" }, `from “${msg.source_role.slice(0, 40)}”`) : null;
  body.append(h("div", { class: "msg-meta" }, statusBadge(msg.status), from, timeEl(msg.timestamp), usageEl(msg.usage),
    actionBar("assistant", Boolean(content))));
  if (msg.status) el.dataset.status = msg.status;
  el.rawText = content;
  el.usage = msg.usage || null;   // a continue adds its own to it (AssistantView.adopt)
  return el;
}

function reasoningBlock(text, live) {
  const label = h("span", { class: "reasoning-label" }, live ? "Thinking" : "Reasoning");
  const body = h("div", { class: "reasoning-text" }, text);
  const details = h("details", { class: `reasoning${live ? " thinking" : ""}` },
    h("summary", {}, icon("chevron", "chevron"), label), body);
  return { details, body, label };
}

function prettyJson(value) {
  if (value === undefined || value === null || value === "") return "";
  if (typeof value === "string") {
    try { return JSON.stringify(JSON.parse(value), null, 2); } catch { return value; }
  }
  return JSON.stringify(value, null, 2);
}

/** A tool-call card: name, arguments, result, duration, error state (``done`` = has a result). */
export function toolCard(call, done) {
  const status = h("span", { class: "tool-status" });
  const args = h("pre", { class: "tool-args" }, prettyJson(call.args) || "{}");
  const result = h("pre", { class: "tool-result" });
  const resultSection = h("div", { class: "tool-section", hidden: true }, h("div", { class: "tool-label" }, "Result"), result);
  const card = h("details", { class: "tool-card", dataset: { toolId: String(call.id ?? ""), state: "running" } },
    h("summary", {},
      h("span", { class: "tool-icon" }, icon("tool")),
      h("span", { class: "tool-name" }, String(call.name || "tool")),
      status),
    h("div", { class: "tool-body" },
      h("div", { class: "tool-section" }, h("div", { class: "tool-label" }, "Arguments"), args),
      resultSection));
  card.parts = { status, result, resultSection };
  if (done) completeToolCard(card, call);
  else status.append(h("span", { class: "spinner", "aria-hidden": "true" }), "Running…");
  return card;
}

/** Fill in a card's result, duration and error state from a ``tool_complete`` event. */
export function completeToolCard(card, data) {
  const { status, result, resultSection } = card.parts;
  const error = Boolean(data.is_error);
  card.dataset.state = error ? "error" : "ok";
  const duration = Number.isFinite(data.duration_ms) ? formatDuration(data.duration_ms) : "";
  status.replaceChildren(error ? icon("alert") : icon("check"), [error ? "Failed" : "Done", duration].filter(Boolean).join(" · "));
  const text = prettyJson(data.result);
  result.textContent = text || "(no output)";
  resultSection.hidden = false;
}

function formatDuration(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

/** The card shown for an ``apperror`` event or a saved reply with ``status: error``. */
// What to tell a person for each kind of failed turn (the ``type`` of an ``apperror``);
// the backend's own text goes behind "Details".
const ERROR_ADVICE = {
  auth: "The model provider refused the key: check --api-key (or the provider's settings).",
  not_found: "The model or its endpoint was not found: check --model and --base-url.",
  rate_limit: "The model provider asks to slow down: wait a moment, then retry.",
  connection: "The model could not be reached: check that it is running and that --base-url points to it, then retry.",
  bad_request: "The model refused the request (perhaps too long for it): retry, or go on in a new chat.",
  provider_error: "The model provider had an error: retry in a moment.",
  internal: "Something went wrong on the server while replying: retry, and if it keeps happening, see the details.",
  save_failed: "The reply could not be saved (is the disk full?): free some space, then retry.",
};

/** The card shown for a failed reply: a sentence to act on, the technical text behind "Details". */
export function errorCard(message, type) {
  const advice = ERROR_ADVICE[type];
  const text = String(message);
  return h("div", { class: "error-card", role: "alert" }, icon("alert"),
    h("div", {},
      h("strong", {}, "The reply failed"),
      h("div", { class: "error-message" }, advice || text),
      advice ? h("details", { class: "error-details" }, h("summary", {}, "Details"),
        h("pre", { class: "error-type" }, text)) : null));
}

/**
 * The assistant reply being streamed. Feed it events with ``handle(name, data)``;
 * ``finish(status)`` settles it. ``el`` is the <article> to insert. Text streams into
 * a piece (``.md``) that a tool event closes: the card goes after it and later text
 * into a new piece, so the reply reads in the order it happened (see replyParts).
 */
export class AssistantView {
  constructor() {
    const { el, body } = assistantShell("");
    this.el = el;
    this.body = body;
    this.el.classList.add("streaming");
    this.reasoning = null;  // the reasoning block being streamed, while no text or tool has followed it
    this.thoughts = [];     // every reasoning block of the reply
    this.group = null;      // the tool group last added, while no text has followed it
    this.cards = new Map();
    this.piece = null;      // {el, live} the text piece being streamed
    this.closing = [];      // final renders of pieces a tool closed
    this.text = "";         // the whole reply's text so far
    this.statusText = h("span", { class: "typing-status" });
    this.typing = h("div", { class: "typing", "aria-label": "Assistant is replying" }, h("i"), h("i"), h("i"), this.statusText);
    this.meta = h("div", { class: "msg-meta" });
    this.body.append(this.typing, this.meta);
    this.errored = false;
    this.usage = null;      // the done event's {prompt_tokens, completion_tokens}
    this.usageBefore = null; // a continued reply's own, before this turn (adopt)
  }

  /** Apply one stream event (token, reasoning, tool, tool_complete, apperror, status). */
  handle(name, data) {
    // what the backend said it is doing ("starting Hermes Agent…") is over once the reply moves on
    if (name !== "status") this.statusText.textContent = "";
    if (name === "token") this.token(String(data?.text ?? ""));
    else if (name === "reasoning") this.addReasoning(String(data?.text ?? ""));
    else if (name === "tool") this.addTool(data || {});
    else if (name === "tool_complete") this.completeTool(data || {});
    else if (name === "apperror") this.addError(data || {});
    else if (name === "status") this.statusText.textContent = String(data?.text ?? "");
  }

  token(text) {
    if (!text) return;
    this.reasoning = null;
    this.typing.hidden = true;
    this.text += text;
    this.openPiece().live.append(text);
  }

  /** The text piece being streamed, started after whatever came last (a tool group). */
  openPiece(el = null) {
    if (!this.piece) {
      const md = el || h("div", { class: "md md-live" });
      if (!el) this.typing.before(md);
      this.piece = { el: md, live: new LiveMarkdown(md) };
      this.group = null;
    }
    return this.piece;
  }

  // A tool (or a question) comes now: the text so far is one finished piece.
  closePiece() {
    const piece = this.piece;
    if (!piece) return;
    this.piece = null;
    piece.el.segmentText = piece.live.text;
    this.closing.push(piece.live.finish().then(() => {
      if (!piece.live.text.trim()) piece.el.remove();
      else piece.el.classList.remove("md-live");
    }));
  }

  /** Reasoning goes on the block being streamed, or starts a new one after what came last. */
  addReasoning(text) {
    if (!text) return;
    if (!this.reasoning) {
      this.closePiece();
      this.group = null;
      this.reasoning = reasoningBlock("", true);
      this.thoughts.push(this.reasoning);
      this.typing.before(this.reasoning.details);
    }
    this.reasoning.body.append(text);
  }

  toolsBox() {
    if (!this.group) {
      this.closePiece();
      this.reasoning = null;
      this.group = h("div", { class: "tools" });
      this.typing.before(this.group);
    }
    return this.group;
  }

  /** Continue the saved reply ``old`` (an article): take over its reasoning, pieces,
   * tool cards, index and text, so the appended part streams on after it in one bubble
   * (its last text piece goes on growing). */
  adopt(old) {
    const body = old.querySelector(".msg-body");
    const kept = body ? [...body.children].filter((c) => c.matches("details.reasoning, .tools, .md")) : [];
    for (const child of kept) this.typing.before(child);
    const last = kept[kept.length - 1];
    if (last?.matches(".md") && typeof last.segmentText === "string") {
      const md = h("div", { class: "md md-live" });
      last.replaceWith(md);
      this.openPiece(md).live.append(last.segmentText);
    } else if (last?.matches(".tools")) {
      this.group = last;
    }
    for (const card of this.body.querySelectorAll(".tool-card")) this.cards.set(card.dataset.toolId, card);
    this.el.dataset.index = old.dataset.index ?? "";
    this.text = old.rawText || "";
    this.usageBefore = old.usage || null;   // the saved reply counts both parts (api/journal.py add_usage)
  }

  /** Show a question card (approval, clarify) where the reply has got to. */
  addQuestion(card) {
    this.statusText.textContent = "";
    this.toolsBox().append(card);
  }

  addTool(data) {
    const card = toolCard(data, false);
    this.cards.set(String(data.id), card);
    this.toolsBox().append(card);
  }

  completeTool(data) {
    let card = this.cards.get(String(data.id));
    if (!card) {
      this.addTool(data);
      card = this.cards.get(String(data.id));
    }
    completeToolCard(card, data);
  }

  addError(data) {
    if (this.errored) return;
    this.errored = true;
    this.typing.hidden = true;
    this.meta.before(errorCard(data.message || "The reply failed.", data.type));
  }

  /** The reply is over: final render, then the badge for ``status`` (complete|cancelled|error…).
   * The caller removes the ``streaming`` class once the chat is ready for the next message. */
  async finish(status) {
    this.typing.remove();
    for (const block of this.thoughts) {
      block.details.classList.remove("thinking");
      block.label.textContent = "Reasoning";
    }
    for (const card of this.cards.values()) {
      if (card.dataset.state === "running") card.parts.status.replaceChildren("Not finished");
    }
    this.closePiece();
    await Promise.all(this.closing);
    if (status && status !== "complete") this.el.dataset.status = status;
    this.el.rawText = this.text;
    this.el.usage = addUsage(this.usageBefore, this.usage);
    const parts = [statusBadge(status === "complete" ? null : status), timeEl(Date.now() / 1000), usageEl(this.el.usage),
      actionBar("assistant", Boolean(this.text))];
    this.meta.append(...parts.filter(Boolean));
  }
}

/**
 * Turn user message ``article`` into an inline editor. ``onSave(text)`` resolves true when
 * the edit was accepted (the editor then stays until the chat redraws) and false to keep
 * editing. Enter saves, Shift+Enter is a new line, Esc or Cancel restores the message.
 */
export function openEditor(article, onSave) {
  if (article.classList.contains("editing")) {
    article.querySelector(".edit-input")?.focus();
    return;
  }
  const wrap = article.querySelector(".msg-wrap");
  const area = h("textarea", { class: "edit-input", rows: 1, "aria-label": "Edit your message", spellcheck: "true" });
  area.value = article.rawText ?? "";
  const save = h("button", { type: "submit", class: "btn btn-primary" }, "Save and send");
  const close = () => {
    form.remove();
    article.classList.remove("editing");
    article.querySelector(".msg-edit")?.focus();
  };
  const form = h("form", { class: "edit-form" }, area,
    h("div", { class: "edit-actions" },
      h("span", { class: "edit-hint" }, "A new version from here on: this one is kept (‹ › switches back)."),
      h("button", { type: "button", class: "btn", onclick: close }, "Cancel"), save));
  const grow = () => {
    area.style.height = "auto";
    area.style.height = `${Math.min(area.scrollHeight, Math.round(window.innerHeight * 0.5))}px`;
  };
  const submit = async () => {
    const text = area.value;
    if (!text.trim() || save.disabled) return;
    save.disabled = true;
    const ok = await onSave(text);
    save.disabled = false;
    if (!ok && form.isConnected) area.focus();
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  area.addEventListener("input", grow);
  area.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submit();
    } else if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      close();
    }
  });
  article.classList.add("editing");
  wrap.append(form);
  grow();
  area.focus();
  area.setSelectionRange(area.value.length, area.value.length);
}
