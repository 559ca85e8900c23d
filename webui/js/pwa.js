// The installable app in the page: registers the service worker (/sw.js), hands it the
// list of files this page loaded so the whole shell is kept, says "offline" when the page
// was opened from that copy, and sends a browser notification when a reply finishes while
// the tab is in the background (opt-in: the Settings dialog's #settings-notify, the
// profile's notify_on_reply setting, POST /api/settings).

import { post } from "./api.js";
import { $, announce } from "./dom.js";

const HEALTH_EVERY_MS = 4000;

// ------------------------------------------------------------ service worker

async function register() {
  if (!("serviceWorker" in navigator)) return;
  try {
    await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    navigator.serviceWorker.addEventListener("message", (e) => {
      if (e.data?.type === "kept") document.documentElement.dataset.offlineReady = "1";
    });
    navigator.serviceWorker.startMessages();
    const reg = await navigator.serviceWorker.ready;
    const urls = performance.getEntriesByType("resource").map((e) => e.name)
      .concat(performance.getEntriesByType("navigation").map((e) => e.name));
    reg.active?.postMessage({ type: "keep", urls });
  } catch (err) {
    // Not fatal: the app works without it (e.g. a browser that refuses service workers).
    console.info("the offline copy is not available:", err?.message || err);
  }
}

// ------------------------------------------------------------ offline note

function offlineNote() {
  let note = $("#offline-note");
  if (note) return note;
  note = document.createElement("div");
  note.id = "offline-note";
  note.className = "offline-note";
  note.setAttribute("role", "status");
  const banner = $("#banner");   // in the chat column's flow, above the messages: it covers nothing
  if (banner) banner.before(note);
  else document.body.prepend(note);
  return note;
}

/** The page came from the kept copy: say so, and offer a reload once the server answers. */
function showOffline() {
  const note = offlineNote();
  note.replaceChildren(document.createTextNode(
    "Offline: the server cannot be reached. These are the chats this browser saved; sending waits for the server."));
  document.documentElement.classList.add("offline-shell");
  const timer = setInterval(async () => {
    try {
      const resp = await fetch("/health", { cache: "no-store" });
      if (!resp.ok) return;
    } catch {
      return;
    }
    clearInterval(timer);
    const reload = document.createElement("button");
    reload.type = "button";
    reload.className = "btn btn-small";
    reload.textContent = "Reload";
    reload.addEventListener("click", () => location.reload());
    note.replaceChildren(document.createTextNode("The server is back. "), reload);
    announce("The server is back: reload the page to continue");
  }, HEALTH_EVERY_MS);
}

// ------------------------------------------------------------ notifications

let notifyOn = false;

function canNotify() {
  return "Notification" in window;
}

/** A reply this tab followed has finished: notify if the tab is hidden and the user opted in. */
function onReplyFinished(event) {
  const { status } = event.detail || {};
  if (!notifyOn || !document.hidden || !canNotify() || Notification.permission !== "granted") return;
  const title = $("#chat-title")?.textContent || "Hermes";
  const body = status === "complete" || !status ? "The reply is ready." : `The reply ended: ${status}.`;
  try {
    const n = new Notification(title, { body, icon: "/static/icons/icon-192.png", tag: "hermes-reply" });
    n.addEventListener("click", () => { window.focus(); n.close(); });
  } catch { /* some browsers only notify from a service worker; the in-page announce still happens */ }
}

function wireNotifyToggle() {
  const box = $("#settings-notify");
  const help = $("#settings-notify-help");
  if (!box) return;
  const explain = (text) => { if (help) help.textContent = text; };
  if (!canNotify()) {
    box.disabled = true;
    explain("This browser cannot show notifications.");
  }
  document.addEventListener("hermes:settings", (e) => {
    notifyOn = Boolean(e.detail?.notify_on_reply);
    box.checked = notifyOn;
  });
  box.addEventListener("change", async () => {
    const want = box.checked;
    if (want && canNotify() && Notification.permission !== "granted") {
      const answer = await Notification.requestPermission();
      if (answer !== "granted") {
        box.checked = false;
        explain("The browser did not allow notifications for this page: allow them in its site settings, then try again.");
        return;
      }
    }
    try {
      const answer = await post("/api/settings", { settings: { notify_on_reply: want } });
      notifyOn = Boolean(answer.settings?.notify_on_reply);
      box.checked = notifyOn;
      explain(notifyOn ? "On: a notification comes when a reply finishes while this tab is in the background."
        : "Off.");
      announce(notifyOn ? "Notifications on" : "Notifications off");
    } catch (err) {
      box.checked = notifyOn;
      explain(`Could not save: ${err.message}`);
    }
  });
}

export function initPwa() {
  if (document.documentElement.dataset.offline === "1") showOffline();
  wireNotifyToggle();
  document.addEventListener("hermes:reply-finished", onReplyFinished);
  if (document.readyState === "complete") register();
  else window.addEventListener("load", register, { once: true });
}

initPwa();
