// Read aloud and dictate, where the browser offers it (no server-side speech models):
// a "Read aloud" action on each reply (the browser's speechSynthesis) and a microphone
// button in the composer (SpeechRecognition / webkitSpeechRecognition). Both are
// hidden when the browser lacks them; the microphone also on a phone-sized screen
// (app.css), whose keyboard has its own dictation key and whose box needs the width.

import { $, announce, toast } from "./dom.js";

const Recognition = window.SpeechRecognition || window.webkitSpeechRecognition || null;

/** Whether this browser can read text aloud. */
export const canSpeak = () => "speechSynthesis" in window && typeof window.SpeechSynthesisUtterance === "function";

/** Whether this browser can turn speech into text. */
export const canDictate = () => Recognition !== null;

const RECOGNITION_ERRORS = {
  "not-allowed": "The browser did not allow the microphone. Allow it for this site and try again.",
  "service-not-allowed": "This browser's speech recognition is not available here.",
  "no-speech": "Nothing was heard. Try again closer to the microphone.",
  "audio-capture": "No microphone was found.",
  network: "Speech recognition needs the browser's speech service, which cannot be reached.",
};

/** The text a reply reads as: its rendered pieces (no markdown symbols), else its raw text. */
function spokenText(article) {
  const pieces = [...article.querySelectorAll(".msg-body > .md")].map((el) => el.innerText.trim()).filter(Boolean);
  return pieces.length ? pieces.join("\n\n") : article.rawText || "";
}

let speakingButton = null;

function stopSpeaking() {
  window.speechSynthesis.cancel();
  if (speakingButton) setSpeaking(speakingButton, false);
  speakingButton = null;
}

function setSpeaking(btn, on) {
  btn.setAttribute("aria-pressed", on ? "true" : "false");
  btn.classList.toggle("speaking", on);
  const label = btn.querySelector("span");
  if (label) label.textContent = on ? "Stop reading" : "Read aloud";
}

function speak(btn) {
  const wasThis = speakingButton === btn;
  stopSpeaking();
  if (wasThis) return;
  const article = btn.closest(".msg");
  const text = article ? spokenText(article) : "";
  if (!text) return;
  const utterance = new SpeechSynthesisUtterance(text);
  utterance.lang = document.documentElement.lang || navigator.language || "en";
  const done = () => {
    if (speakingButton === btn) {
      setSpeaking(btn, false);
      speakingButton = null;
    }
  };
  utterance.addEventListener("end", done);
  utterance.addEventListener("error", (e) => {
    done();
    // stopped by us or by another reply: no news; else say why nothing is heard (a browser
    // with no voice installed, e.g. Chromium on Linux without speech-dispatcher, fails at once)
    if (e.error !== "interrupted" && e.error !== "canceled") {
      toast(e.error === "synthesis-failed" || e.error === "voice-unavailable"
        ? "This browser has no voice to read with: install one in the system's speech settings (on Linux, speech-dispatcher), or use another browser."
        : `Reading aloud stopped: ${e.error || "the browser could not speak"}.`, 7000);
    }
  });
  speakingButton = btn;
  setSpeaking(btn, true);
  window.speechSynthesis.speak(utterance);
}

/** Wire the reply's Read aloud buttons (delegated on the conversation) and the microphone. */
export function initSpeech() {
  if (canSpeak()) {
    $("#messages").addEventListener("click", (e) => {
      const btn = e.target.closest(".msg-action[data-action='speak']");
      if (btn) speak(btn);
    });
    document.addEventListener("hermes:session", () => { if (speakingButton) stopSpeaking(); });
  }
  const mic = $("#mic-btn");
  if (!mic) return;
  mic.hidden = !canDictate();
  if (!canDictate()) return;
  const input = $("#composer-input");
  let rec = null;
  const stop = () => rec?.stop();
  mic.addEventListener("click", () => {
    if (rec) { stop(); return; }
    rec = new Recognition();
    rec.lang = navigator.language || "en";
    rec.interimResults = false;
    rec.continuous = true;
    rec.addEventListener("result", (e) => {
      let heard = "";
      for (let i = e.resultIndex; i < e.results.length; i++) if (e.results[i].isFinal) heard += e.results[i][0].transcript;
      heard = heard.trim();
      if (!heard) return;
      const before = input.value;
      input.value = before + (before && !/\s$/.test(before) ? " " : "") + heard;
      input.dispatchEvent(new Event("input", { bubbles: true }));
    });
    rec.addEventListener("error", (e) => {
      if (e.error !== "aborted") toast(RECOGNITION_ERRORS[e.error] || `Dictation stopped: ${e.error}.`, 6000);
    });
    rec.addEventListener("end", () => {
      rec = null;
      mic.setAttribute("aria-pressed", "false");
      mic.classList.remove("listening");
      announce("Dictation stopped");
    });
    try {
      rec.start();
    } catch (err) {
      rec = null;
      toast(`Dictation could not start: ${err.message}`);
      return;
    }
    mic.setAttribute("aria-pressed", "true");
    mic.classList.add("listening");
    announce("Listening: speak, then press the microphone again to stop");
    input.focus();
  });
}
