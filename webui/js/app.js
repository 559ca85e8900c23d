// Entry point: wires the sidebar, the chat, the composer and the workspace panel, keeps
// the open chat in the URL (/?s=<session id>; back and forward work), and handles the
// global keys: Ctrl/Cmd+K focuses search, Esc stops a reply (or closes what is open).

import { api } from "./api.js";
import { $, toast } from "./dom.js";
import { Chat } from "./chat.js";
import { initComposer } from "./composer.js";
import { closeMenu, dialogIsOpen, menuIsOpen } from "./menu.js";
import { Sidebar } from "./sidebar.js";
import { initWorkspacePanel } from "./workspace.js";

const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
const HEALTH_EVERY_MS = 20_000;
const PHONE = window.matchMedia("(max-width: 760px)");

const app = $("#app");
let chat;
let sidebar;
let composer;

/** The session id in the address bar, or null. */
function sidFromUrl() {
  const sid = new URLSearchParams(location.search).get("s");
  return sid && SESSION_ID.test(sid) ? sid : null;
}

function urlFor(sid) {
  return sid ? `/?s=${encodeURIComponent(sid)}` : "/";
}

/** Open ``sid`` (null: new chat) and record it in history (``replace``: no new entry). */
function navigate(sid, { replace = false } = {}) {
  const url = urlFor(sid);
  if (url !== location.pathname + location.search) history[replace ? "replaceState" : "pushState"]({ sid }, "", url);
  sidebar.setActive(sid);
  closeDrawer();
  return chat.open(sid).then(() => { if (!PHONE.matches) composer.focus(); });
}

function setTitle(title) {
  $("#chat-title").textContent = title || "New chat";
  document.title = title ? `${title} · Hermes` : "Hermes";
  $("#chat-menu-btn").hidden = !chat.sessionId;
}

// ------------------------------------------------------------ phone drawer

function openDrawer() {
  app.classList.add("drawer-open");
  $("#scrim").hidden = false;
  $("#open-sidebar").setAttribute("aria-expanded", "true");
}

function closeDrawer() {
  if (!app.classList.contains("drawer-open")) return;
  app.classList.remove("drawer-open");
  $("#scrim").hidden = true;
  $("#open-sidebar").setAttribute("aria-expanded", "false");
}

// ------------------------------------------------------------ footer

async function showHealth() {
  const info = $("#backend-info");
  try {
    const health = await api("/health");
    if (health.agent) {
      const model = health.model || "default model";
      $("#backend-text").textContent = `${model} · ${health.agent} backend`;
      info.title = `Model ${model}, backend ${health.agent}`;
    } else {
      $("#backend-text").textContent = "Connected";
    }
    info.classList.add("ok");
    info.classList.remove("down");
  } catch {
    $("#backend-text").textContent = "Server unreachable";
    info.classList.add("down");
    info.classList.remove("ok");
  }
}

// ------------------------------------------------------------ keys

function onKey(e) {
  if ((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === "k") {
    e.preventDefault();
    if (PHONE.matches) openDrawer();
    sidebar.focusSearch();
    return;
  }
  if (e.key !== "Escape" || e.defaultPrevented || dialogIsOpen()) return;
  if (menuIsOpen()) closeMenu();
  else if (chat.streaming) { e.preventDefault(); chat.stop(); }
  else if (app.classList.contains("drawer-open")) { closeDrawer(); $("#open-sidebar").focus(); }
}

// ------------------------------------------------------------ boot

function wire() {
  sidebar = new Sidebar({
    onSelect: (sid) => navigate(sid),
    onDeleted: (sid) => { if (sid === chat.sessionId) navigate(null, { replace: true }); },
    onRenamed: (s) => { if (s.session_id === chat.sessionId) setTitle(s.title); },
  });
  chat = new Chat({
    onTitle: setTitle,
    onCreated: (sid) => {
      history.replaceState({ sid }, "", urlFor(sid));
      sidebar.setActive(sid);
      $("#chat-menu-btn").hidden = false;
    },
    onListChanged: () => sidebar.refresh(),
    onMissing: (sid) => {
      toast("That chat does not exist any more.");
      if (sid === sidFromUrl()) navigate(null, { replace: true });
    },
    setStreaming: (on) => { composer.setStreaming(on); app.classList.toggle("is-streaming", on); },
    setBanner: (on) => { $("#banner").hidden = !on; },
  });
  composer = initComposer({ onSend: (text) => chat.send(text), onStop: () => chat.stop() });
  initWorkspacePanel();

  $("#new-chat").addEventListener("click", () => navigate(null));
  $("#brand-link").addEventListener("click", (e) => { e.preventDefault(); navigate(null); });
  $("#open-sidebar").addEventListener("click", openDrawer);
  $("#close-sidebar").addEventListener("click", closeDrawer);
  $("#scrim").addEventListener("click", closeDrawer);
  $("#chat-menu-btn").addEventListener("click", (e) => {
    if (chat.sessionId) sidebar.openSessionMenu(e.currentTarget, chat.sessionId);
  });
  $("#suggestions").addEventListener("click", (e) => {
    const btn = e.target.closest(".suggestion");
    if (btn) composer.setText(btn.dataset.prompt);
  });
  document.addEventListener("keydown", onKey);
  window.addEventListener("popstate", () => {
    const sid = sidFromUrl();
    sidebar.setActive(sid);
    chat.open(sid);
  });
  window.addEventListener("focus", () => { sidebar.refresh(); chat.syncIfStale(); });
  PHONE.addEventListener("change", () => { if (!PHONE.matches) closeDrawer(); });
}

function boot() {
  wire();
  const sid = sidFromUrl();
  if (new URLSearchParams(location.search).has("s") && !sid) history.replaceState({}, "", "/");
  sidebar.setActive(sid);
  sidebar.refresh();
  chat.open(sid).then(() => { if (!PHONE.matches) composer.focus(); });
  showHealth();
  setInterval(showHealth, HEALTH_EVERY_MS);
  document.documentElement.dataset.ready = "1";
}

boot();
