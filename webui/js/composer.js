// The message box: Enter sends (or Ctrl/Cmd+Enter: the profile's send key, settings.js),
// Shift+Enter is a newline, it grows with its text, and it is disabled while a message is
// being sent. While a reply streams the Send button
// becomes Stop (the box stays editable so the next message can be drafted).
//
// Size: a message over the server's limit (limits.js) is not sent; a note under the box
// says how large it is and what to do, before the user presses Send. A 413 from the
// server shows the same kind of sentence, with the server's own words behind "Details".
// Drafts: the text is kept per chat in localStorage (drafts.js), so a reload or an
// expired login never loses it; it comes back when the chat is opened again.

import { limitIn413 } from "./api.js";
import { $, h } from "./dom.js";
import { clearDraft, draftKey, loadDraft, saveDraft } from "./drafts.js";
import { messageLimit, overLimit, tooLargeSentence } from "./limits.js";
import { sendKey } from "./settings.js";

const MAX_HEIGHT_RATIO = 0.4; // of the viewport; the box scrolls beyond that
const SAVE_DELAY_MS = 300;

/**
 * Wire the composer. ``onSend(text)`` returns a promise of true when the message was
 * accepted (the box is then cleared) and false otherwise (the text stays). ``onStop()``
 * is called by the Stop button. ``hasFiles()`` says whether files are attached (then a
 * message may be sent without text; attachments.js). Returns {setStreaming, focus,
 * setText, isEmpty, setSession, showTooLarge, update}.
 */
export function initComposer({ onSend, onStop, hasFiles = () => false }) {
  const form = $("#composer");
  const input = $("#composer-input");
  const send = $("#send-btn");
  const stop = $("#stop-btn");
  const note = $("#composer-note");
  const limit = messageLimit();
  let streaming = false;
  let busy = false;
  let tooLarge = 0;     // the text's size in bytes when it is over the limit
  let key = draftKey(null);
  let heldFor = null;   // a chat created for files, nothing sent yet: its text is still the new chat's draft
  let saveTimer = null;

  const grow = () => {
    input.style.height = "auto";
    const max = Math.round(window.innerHeight * MAX_HEIGHT_RATIO);
    input.style.height = `${Math.min(input.scrollHeight, max)}px`;
  };
  const refresh = () => {
    send.disabled = busy || (!input.value.trim() && !hasFiles()) || tooLarge > 0;
    send.hidden = streaming && !input.value.trim();  // while a reply runs, Send queues the message
    send.setAttribute("aria-label", streaming ? "Queue the message (sent when the reply ends)" : "Send message");
    stop.hidden = !streaming;
    input.disabled = busy;
  };
  const showNote = (sentence, details = "") => {
    const parts = [h("span", {}, sentence)];
    if (details) parts.push(h("details", { class: "note-details" }, h("summary", {}, "Details"), h("div", {}, details)));
    note.replaceChildren(...parts);
    note.hidden = false;
  };
  const hideNote = () => { note.hidden = true; note.replaceChildren(); };
  // ``typed``: the user changed the text, so an earlier refusal no longer applies.
  const checkSize = (typed = false) => {
    const size = overLimit(input.value, limit);
    if (size && size !== tooLarge) showNote(tooLargeSentence(size, limit));
    else if (!size && (tooLarge || typed)) hideNote();
    tooLarge = size;
  };
  const saveNow = () => {
    clearTimeout(saveTimer);
    saveTimer = null;
    saveDraft(key, input.value);
  };
  const saveSoon = () => {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(saveNow, SAVE_DELAY_MS);
  };
  const changed = (typed = false) => { checkSize(typed); grow(); refresh(); };

  async function submit() {
    const text = input.value;
    if (busy || (!text.trim() && !hasFiles()) || tooLarge) return;
    saveNow(); // if the send meets an expired login, the text is waiting after it
    const sentFrom = key;
    busy = true;
    refresh();
    let accepted = false;
    try {
      accepted = await onSend(text);
    } finally {
      busy = false;
      if (accepted) {
        clearDraft(sentFrom);
        clearDraft(key);
        if (heldFor) [key, heldFor] = [heldFor, null];   // sent: the chat is a real one now
        if (input.value === text) input.value = "";
      }
      changed();
      input.focus();
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  input.addEventListener("input", () => { changed(true); saveSoon(); });
  input.addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.keyCode === 229) return;
    // the profile's send key (Settings): Enter, or Ctrl/Cmd+Enter (then Enter is a new line)
    if (sendKey() === "ctrl-enter" && !(e.ctrlKey || e.metaKey)) return;
    e.preventDefault();
    submit();
  });
  stop.addEventListener("click", () => onStop());
  window.addEventListener("resize", grow);
  window.addEventListener("pagehide", () => { if (saveTimer) saveNow(); });
  input.value = loadDraft(key);
  changed();

  return {
    setStreaming(on) {
      const hadFocus = document.activeElement === stop;
      streaming = on;
      refresh();
      if (hadFocus && !on) input.focus();
    },
    focus() { input.focus(); },
    setText(text) {
      input.value = text;
      changed(true);
      saveSoon();
      input.focus();
      input.setSelectionRange(text.length, text.length);
    },
    isEmpty: () => !input.value.trim(),
    /** The attached files changed: enable or disable Send. */
    update() { refresh(); },
    /** The open chat is now ``sid`` (null: a new chat): keep the box's text as the previous
     * chat's draft and show this one's. While a message is being sent (its chat was just
     * created), the text belongs to the new chat and stays. A chat just ``created`` for an
     * attached file keeps the text too, still as the new chat's draft until a message is
     * sent in it: left unsent, that chat is deleted (attachments.js), and the text comes
     * back with the next new chat (or after a reload) instead of going with it. */
    setSession(sid, { created = false } = {}) {
      const next = draftKey(sid);
      if (created && !busy) {
        heldFor = next;
        return;
      }
      heldFor = null;
      if (next === key) return;
      if (busy) {
        clearDraft(key);
        key = next;
        saveNow();
        return;
      }
      saveNow();
      key = next;
      input.value = loadDraft(key);
      changed(true);
    },
    /** Say that the server refused the message as too large (413); ``detail`` is its answer. */
    showTooLarge(text, detail) {
      const size = overLimit(text, 1) || null;
      // the limit the server names (a request's, which can be below the message limit), else the message limit
      const max = limitIn413(detail) ?? limit;
      showNote(`Not sent. ${tooLargeSentence(size, max)} Your text is still in the box.`, detail);
    },
  };
}
