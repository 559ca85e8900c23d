// The message box: Enter sends, Shift+Enter is a newline, it grows with its text, and it
// is disabled while a message is being sent. While a reply streams the Send button
// becomes Stop (the box stays editable so the next message can be drafted).

import { $ } from "./dom.js";

const MAX_HEIGHT_RATIO = 0.4; // of the viewport; the box scrolls beyond that

/**
 * Wire the composer. ``onSend(text)`` returns a promise of true when the message was
 * accepted (the box is then cleared) and false otherwise (the text stays). ``onStop()``
 * is called by the Stop button. Returns {setStreaming, focus, setText, isEmpty}.
 */
export function initComposer({ onSend, onStop }) {
  const form = $("#composer");
  const input = $("#composer-input");
  const send = $("#send-btn");
  const stop = $("#stop-btn");
  let streaming = false;
  let busy = false;

  const grow = () => {
    input.style.height = "auto";
    const max = Math.round(window.innerHeight * MAX_HEIGHT_RATIO);
    input.style.height = `${Math.min(input.scrollHeight, max)}px`;
  };
  const refresh = () => {
    send.disabled = busy || streaming || !input.value.trim();
    send.hidden = streaming;
    stop.hidden = !streaming;
    input.disabled = busy;
  };

  async function submit() {
    const text = input.value;
    if (busy || streaming || !text.trim()) return;
    busy = true;
    refresh();
    let accepted = false;
    try {
      accepted = await onSend(text);
    } finally {
      busy = false;
      if (accepted && input.value === text) input.value = "";
      grow();
      refresh();
      input.focus();
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  input.addEventListener("input", () => { grow(); refresh(); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submit();
    }
  });
  stop.addEventListener("click", () => onStop());
  window.addEventListener("resize", grow);
  refresh();

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
      grow();
      refresh();
      input.focus();
      input.setSelectionRange(text.length, text.length);
    },
    isEmpty: () => !input.value.trim(),
  };
}
