// Entry point: wires the sidebar (with the profile switcher and Settings), the chat and
// its ⋯ menu, the composer and the side panel; keeps the open chat in the URL
// (/?s=<session id>; back and forward work), and handles the global keys: Ctrl/Cmd+K
// focuses search, Esc stops a reply (or closes what is open).

import { api, postForm } from "./api.js";
import { initAttachments } from "./attachments.js";
import { $, announce, h, toast } from "./dom.js";
import { Chat } from "./chat.js";
import { clearDraft, draftKey } from "./drafts.js";
import { LiveEvents } from "./events.js";
import { initComposer } from "./composer.js";
import { initModelPicker } from "./models.js";
import { offerMigration } from "./migrate.js";
import { closeMenu, dialogIsOpen, menuIsOpen, openMenu } from "./menu.js";
import { initProfiles } from "./profile.js";
import { initTasks } from "./tasks.js";
import { initSettings, reloadSettings } from "./settings.js";
import { initShortcuts } from "./shortcuts.js";
import { Sidebar } from "./sidebar.js";
import { initJumpToLatest } from "./jump.js";
import { initSpeech } from "./speech.js";
import { initWorkspacePanel } from "./workspace.js";

const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;
const HEALTH_EVERY_MS = 20_000;
const PHONE = window.matchMedia("(max-width: 760px)");

const app = $("#app");
let chat;
let sidebar;
let composer;
let panel;
let models;
let attachments;

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
}

// ------------------------------------------------------------ chat menu, import

/** The chat header's ⋯ menu: the sidebar's items plus export, import, undo and clear. */
function openChatMenu(anchor) {
  const importItem = { label: "Import chats…", icon: "upload", action: () => $("#import-input").click() };
  // every chat of every profile, attachments and projects included: one ZIP that import reads back
  const exportAll = { label: "Export all chats", icon: "download", action: () => location.assign("/api/export/all") };
  if (!chat.sessionId) {
    openMenu(anchor, [importItem, exportAll]);
    return;
  }
  const empty = chat.count === 0;
  openMenu(anchor, sidebar.menuItems(chat.sessionId, [
    { label: "Export as Markdown", icon: "download", action: () => chat.exportAs("md") },
    { label: "Export as JSON", icon: "download", action: () => chat.exportAs("json") },
    importItem,
    exportAll,
    "separator",
    ...(empty ? [] : [
      { label: "Undo last exchange", icon: "undo", action: () => chat.undo() },
      { label: "Clear chat", icon: "eraser", danger: true, action: () => chat.clear() },
    ]),
  ]));
}

/** Import the chosen file (our JSON export or a ChatGPT export) and open the first chat. */
async function importFile(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const { sessions, imported, skipped_messages: skipped, skipped_conversations: left = [] } =
      await postForm("/api/session/import", form);
    await sidebar.refresh();
    if (!imported) { toast("The file holds no chats to import."); return; }
    let note = skipped ? ` (${skipped} message${skipped === 1 ? "" : "s"} could not be read)` : "";
    if (left.length) note += `; skipped ${left.length}: ${left.slice(0, 5).map((c) => `“${c.title}” (${c.reason})`).join(", ")}`;
    toast(`Imported ${imported === 1 ? "1 chat" : `${imported} chats`}${note}.`, left.length ? 10000 : 4000);
    await navigate(sessions[0].session_id);
  } catch (err) {
    toast(`Could not import ${file.name}: ${err.message}`, 7000);
  }
}

/** Send the composer's text with the files attached to it (once they are uploaded). */
async function sendMessage(text) {
  const files = await attachments.ready();
  if (files === null) return false;
  const ok = await chat.send(text, files);
  if (ok) attachments.sent(files);
  return ok;
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
    app.classList.remove("is-offline");   // it answers: a stop can reach it
    const problems = health.problems || [];
    if (problems.length) {  // misconfigured: say what and how to fix it, before anyone types
      $("#backend-text").textContent = `${problems[0].message}: ${problems[0].fix}`;
      info.title = problems.map((p) => `${p.message}: ${p.fix}`).join("\n");
      info.classList.add("warn");
      info.classList.remove("ok", "down");
      return;
    }
    if (health.agent) {
      const model = health.model || "default model";
      // the model's name is hidden (CSS) while the picker beside it names the chat's model
      $("#backend-text").replaceChildren(h("span", { class: "backend-model" }, `${model} · `), `${health.agent} backend`);
      info.title = `Model ${model}, backend ${health.agent}`;
    } else {
      $("#backend-text").textContent = "Connected";
    }
    info.classList.add("ok");
    info.classList.remove("down", "warn");
  } catch {
    $("#backend-text").textContent = "Server unreachable";
    info.classList.add("down");
    info.classList.remove("ok");
    app.classList.add("is-offline");
  }
}

// ------------------------------------------------------------ live updates (other tabs, the server)

const LIST_DEBOUNCE_MS = 150;
const FOLLOW_REASONS = new Set(["turn_started", "turn_finished", "messages_changed", "reconnected"]);
const OWN_TURN_MS = 3000;
let live;
let listTimer = null;
let ownTurn = { sid: null, at: 0 };   // the turn this tab follows (at: Infinity) or followed until ``at``

/** True for the start of a turn this tab follows, or the end of one it follows or has just
 * followed: the page refreshed what it shows itself, so the event asks for nothing more.
 * A turn that starts after this tab's ended (a queued message the server starts at once,
 * another tab's send) is not this tab's: the open chat catches up with it. */
function isOwnTurnEvent(event) {
  if (event.session_id !== ownTurn.sid) return false;
  if (event.reason === "turn_started") return ownTurn.at === Infinity;
  return event.reason === "turn_finished" && Date.now() - ownTurn.at < OWN_TURN_MS;
}

/** A session changed (in this tab, another one, or on the server): refetch the list soon
 * (a burst of changes costs one request), keep the header's title in step with it, and
 * let the open chat catch up: follow a reply another tab started, show messages it added. */
function onSessionsChanged(event) {
  document.dispatchEvent(new CustomEvent("hermes:sessions-changed", { detail: event }));  // e.g. js/tasks.js
  if (isOwnTurnEvent(event)) return;
  clearTimeout(listTimer);
  listTimer = setTimeout(refreshList, LIST_DEBOUNCE_MS);
  const sid = chat.sessionId;
  if (!sid || (event.session_id !== sid && event.reason !== "reconnected")) return;
  if (event.reason === "deleted") {
    toast("This chat was deleted.");
    // text typed for it goes on to the new chat, not into the deleted chat's draft (never shown again)
    const typed = $("#composer-input").value;
    navigate(null, { replace: true }).then(() => {
      clearDraft(draftKey(sid));
      if (!typed.trim()) return;
      composer.setText(composer.isEmpty() ? typed : `${$("#composer-input").value}\n\n${typed}`);
    });
  } else if (FOLLOW_REASONS.has(event.reason)) {
    chat.syncIfStale();
  }
}

async function refreshList() {
  await sidebar.refresh();
  const row = chat.sessionId ? sidebar.sessions.get(chat.sessionId) : null;
  if (row?.title) setTitle(row.title);  // the header shows what the list shows (a new or generated title)
}

/** The live stream broke or opened: say at once that the server may be gone (and hide Stop),
 * then let /health confirm it (a stream refused for another reason leaves the footer "ok"). */
function onReachability(state) {
  if (state === "offline") {
    app.classList.add("is-offline");
    $("#backend-text").textContent = "Server unreachable: reconnecting…";
    $("#backend-info").classList.add("down");
    $("#backend-info").classList.remove("ok", "warn");
  }
  showHealth();
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
    onNewChat: () => navigate(null),
  });
  chat = new Chat({
    onTitle: setTitle,
    onSessionShown: (session) => models.showSession(session),
    onContext: (usage) => models.showContext(usage),
    model: () => models.value(),
    onCreated: (sid) => {
      history.replaceState({ sid }, "", urlFor(sid));
      sidebar.setActive(sid);
      // created: the new chat the page showed now has an id (the box's text stays with it)
      document.dispatchEvent(new CustomEvent("hermes:session", { detail: { sessionId: sid, created: true } }));
    },
    onForked: async (sid) => {
      await sidebar.refresh();
      await navigate(sid);
      announce("Opened the fork of the chat");
    },
    offerText: (text) => {
      if (!composer.isEmpty()) return false;
      composer.setText(text);
      return true;
    },
    onTurnEnded: () => panel.refreshFiles(),
    onListChanged: () => refreshList(),
    onMissing: (sid) => {
      toast("That chat does not exist any more.");
      if (sid === sidFromUrl()) navigate(null, { replace: true });
    },
    setStreaming: (on) => {
      composer.setStreaming(on);
      app.classList.toggle("is-streaming", on);
      ownTurn = { sid: chat.stream?.sid ?? ownTurn.sid, at: on ? Infinity : Date.now() };
    },
    setBanner: (on) => { $("#banner").hidden = !on; app.classList.toggle("is-reconnecting", on); },
    onTooLarge: (text, detail) => composer.showTooLarge(text, detail),
    newChatFields: () => sidebar.newChatFields(),
  });
  models = initModelPicker({ sessionId: () => chat.sessionId });
  attachments = initAttachments({ ensureSession: () => chat.ensureSession(), onChange: () => composer?.update() });
  composer = initComposer({ onSend: sendMessage, onStop: () => chat.stop(), hasFiles: () => attachments.count() > 0 });
  initSpeech();
  initJumpToLatest();
  document.addEventListener("hermes:session", (e) => composer.setSession(e.detail.sessionId, { created: !!e.detail.created }));
  panel = initWorkspacePanel({ sessionId: () => chat.sessionId });
  initSettings();
  initTasks({ onOpen: (sid) => { sidebar.refresh(); navigate(sid); } });
  initProfiles({
    onSwitch: async (name) => {
      panel.reset();
      await reloadSettings();   // the new profile's theme, send key and default model
      await navigate(null);
      live.restart();  // the events stream is per profile
      await sidebar.refresh();
      toast(`Switched to the profile ${name}.`);
    },
  });

  $("#new-chat").addEventListener("click", () => navigate(null));
  $("#brand-link").addEventListener("click", (e) => { e.preventDefault(); navigate(null); });
  $("#open-sidebar").addEventListener("click", openDrawer);
  $("#close-sidebar").addEventListener("click", closeDrawer);
  $("#scrim").addEventListener("click", closeDrawer);
  $("#chat-menu-btn").addEventListener("click", (e) => openChatMenu(e.currentTarget));
  $("#import-input").addEventListener("change", (e) => {
    const [file] = e.target.files;
    e.target.value = "";
    if (file) importFile(file);
  });
  $("#suggestions").addEventListener("click", (e) => {
    const btn = e.target.closest(".suggestion");
    if (btn && !chat.streaming) sendMessage(btn.dataset.prompt);   // a chip sends its prompt at once
  });
  document.addEventListener("keydown", onKey);
  initShortcuts({ newChat: () => navigate(null), toggleSidebar: () => sidebar.toggleCollapsed() });
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
  live = new LiveEvents({ onChange: onSessionsChanged, onState: onReachability }).start();
  offerMigration(() => sidebar.refresh());
  document.documentElement.dataset.ready = "1";
}

boot();
