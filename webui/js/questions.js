// Questions a running turn asks the person (docs/api.md "Human in the loop"): an approval
// card before a risky tool runs (Allow once / Allow for this chat / Always / Deny) and a
// clarifying question (choice buttons, or a text box). Both are shown in the reply being
// streamed, answered over HTTP, and closed by the ``approval_answered`` /
// ``clarify_answered`` event, which every tab receives (and a reload replays), so a card
// answered elsewhere shows its outcome too. A saved reply keeps them (``approvals``,
// ``clarifications``): after a reload they are drawn answered, read-only, where they came.

import { post } from "./api.js";
import { announce, h, icon } from "./dom.js";

export const APPROVAL_CHOICES = [
  { choice: "once", label: "Allow once", done: "Allowed once" },
  { choice: "session", label: "Allow for this chat", done: "Allowed for this chat" },
  { choice: "always", label: "Always", done: "Always allowed" },
  { choice: "deny", label: "Deny", done: "Denied" },
];

// A refused answer as a sentence a person can act on, with the server's words behind "Details".
function refusal(err, kind) {
  let sentence = `Your answer could not be sent. Try again.`;
  if (err.status === 409) sentence = `This ${kind} was already answered (in another tab, or it timed out).`;
  else if (err.status === 404) sentence = `This ${kind} is no longer open: the reply has ended. Reload the chat to see it as it is now.`;
  return h("div", { class: "question-error", role: "alert" }, h("span", {}, sentence),
    h("details", { class: "note-details" }, h("summary", {}, "Details"), h("div", {}, String(err.message || err))));
}

function setBusy(card, busy) {
  for (const el of card.querySelectorAll("button, input, textarea")) el.disabled = busy;
}

async function answer(card, kind, path, body) {
  card.querySelector(".question-error")?.remove();
  setBusy(card, true);
  try {
    await post(path, body);
    if (card.dataset.state === "open") card.dataset.state = "sent";  // the answered event closes it
  } catch (err) {
    if (card.dataset.state === "answered") return;  // the event closed it meanwhile
    setBusy(card, err.status === 409 || err.status === 404);
    card.querySelector(".question-actions").after(refusal(err, kind));
  }
}

function outcome(card, text, ok) {
  const out = card.querySelector(".question-outcome");
  out.replaceChildren(ok ? icon("check") : icon("alert"), h("span", {}, text));
  out.hidden = false;
  const hadFocus = card.contains(document.activeElement) || document.activeElement === document.body;
  card.querySelector(".question-actions").remove();
  card.querySelector(".question-error")?.remove();
  card.querySelector(".question-form")?.remove();
  card.dataset.state = "answered";
  if (hadFocus && card.isConnected) out.focus({ preventScroll: true });
}

/** The card for ``approval {approval_id, tool, command, description}`` of stream ``streamId``
 * (``quiet``: not announced, for a saved one). */
export function approvalCard(data, streamId, { quiet = false } = {}) {
  const id = String(data.approval_id ?? "");
  const tool = String(data.tool || "tool");
  const title = h("strong", { class: "question-title", id: `approval-${id}` }, `Allow ${tool} to run this?`);
  const card = h("section", { class: "question-card approval-card", role: "group", "aria-labelledby": `approval-${id}`,
    dataset: { approvalId: id, state: "open" } },
  h("div", { class: "question-head" }, icon("alert"), title),
  h("pre", { class: "approval-command" }, h("code", {}, String(data.command ?? ""))),
  data.description ? h("p", { class: "approval-description" }, String(data.description)) : null,
  h("div", { class: "question-actions" }, APPROVAL_CHOICES.map(({ choice, label }) => h("button", {
    type: "button", class: `btn${choice === "deny" ? " btn-deny" : choice === "once" ? " btn-primary" : ""}`,
    dataset: { choice },
    onclick: () => answer(card, "approval", "/api/approval/respond", { stream_id: streamId, approval_id: id, choice }),
  }, label))),
  h("div", { class: "question-outcome", role: "status", tabindex: "-1", hidden: true }));
  if (!quiet) announce(`The agent asks before running ${tool}: ${String(data.command ?? "").slice(0, 200)}`);
  return card;
}

/** Show ``approval_answered {answer, timed_out}`` on ``card``. */
export function settleApproval(card, data) {
  const found = APPROVAL_CHOICES.find((c) => c.choice === data?.answer);
  const text = data?.unattended   // a scheduled task's run: its allowed tools answered, nobody was asked
    ? (data.answer === "deny" ? "Denied without asking: not among this task's allowed tools" : "Allowed: one of this task's allowed tools")
    : data?.timed_out ? "Denied: nobody answered in time" : found ? found.done : `Answered: ${data?.answer}`;
  card.dataset.outcome = data?.timed_out ? "deny" : String(data?.answer ?? "");
  outcome(card, text, data?.answer !== "deny" && !data?.timed_out);
}

/** The card for ``clarify {clarify_id, question, choices?}`` of stream ``streamId``
 * (``quiet``: not announced, for a saved one). */
export function clarifyCard(data, streamId, { quiet = false } = {}) {
  const id = String(data.clarify_id ?? "");
  const send = (text) => answer(card, "question", "/api/clarify/respond", { stream_id: streamId, clarify_id: id, answer: text });
  const choices = Array.isArray(data.choices) ? data.choices.map(String) : [];
  let actions;
  if (choices.length) {
    actions = h("div", { class: "question-actions" },
      choices.map((c) => h("button", { type: "button", class: "btn", dataset: { answer: c }, onclick: () => send(c) }, c)));
  } else {
    const input = h("input", { type: "text", class: "clarify-input", maxlength: "10000", "aria-labelledby": `clarify-${id}`,
      autocomplete: "off" });
    actions = h("form", { class: "question-actions question-form" }, input,
      h("button", { type: "submit", class: "btn btn-primary" }, "Answer"));
    actions.addEventListener("submit", (e) => {
      e.preventDefault();
      if (input.value.trim()) send(input.value);
      else input.focus();
    });
  }
  const card = h("section", { class: "question-card clarify-card", role: "group", "aria-labelledby": `clarify-${id}`,
    dataset: { clarifyId: id, state: "open" } },
  h("div", { class: "question-head" }, icon("spark"), h("strong", { class: "question-title", id: `clarify-${id}` },
    String(data.question ?? ""))),
  actions,
  h("div", { class: "question-outcome", role: "status", tabindex: "-1", hidden: true }));
  if (!quiet) announce(`The agent asks: ${String(data.question ?? "").slice(0, 200)}`);
  return card;
}

/** Show ``clarify_answered {answer, timed_out}`` on ``card``. */
export function settleClarify(card, data) {
  const text = data?.timed_out ? "No answer in time: the agent went on without one" : `You answered: ${data?.answer ?? ""}`;
  outcome(card, text, !data?.timed_out);
}

/** The turn ended with ``card`` still open (cancelled, failed): say so, offer nothing. */
export function closeQuestion(card) {
  if (card.dataset.state === "answered") return;
  outcome(card, "Not answered: the reply ended first", false);
}

/** A saved reply's question, answered, read-only, as it looked once answered live:
 * ``kind`` "approval" with ``{approval_id, tool, command, description, choice, timed_out,
 * unattended?, unanswered?}`` or "clarify" with ``{clarify_id, question, choices?, answer,
 * timed_out, unanswered?}`` (docs/api.md). One left open by a restart was never granted. */
export function savedQuestionCard(kind, rec) {
  if (kind === "approval") {
    const card = approvalCard(rec, null, { quiet: true });
    if (rec.unanswered) {
      card.dataset.outcome = "deny";
      outcome(card, "Not granted: the reply was interrupted before anyone answered", false);
    } else settleApproval(card, { answer: rec.choice, timed_out: rec.timed_out, unattended: rec.unattended });
    return card;
  }
  const card = clarifyCard(rec, null, { quiet: true });
  if (rec.unanswered) outcome(card, "Not answered: the reply was interrupted first", false);
  else settleClarify(card, { answer: rec.answer, timed_out: rec.timed_out });
  return card;
}
