// The Settings dialog (gear button in the sidebar) and the profile's settings the page
// uses (GET/POST /api/settings, per profile): theme (applied at once; js/theme.js keeps a
// localStorage mirror so a reload paints in it), send key (the composer asks sendKey()),
// default model for new chats (models.js asks profileDefaultModel()), custom instructions;
// the commands answered "Always" (GET /api/approval/rules, revocable); and the server's
// password: set or change (the answer carries a new CSRF token, which replaces the
// page's), remove (needs the current one), log out.
//
// Whenever the settings are read or changed, a "hermes:settings" event with the effective
// settings ({theme, send_key, default_model, custom_instructions}) goes to the document.

import { api, post, redirectToLogin, setCsrfToken } from "./api.js";
import { $, announce, h } from "./dom.js";
import { wireDialogClose } from "./menu.js";

const MIN_CHARS = 8;
const SEND_KEY_MIRROR = "hermes.sendKey";
const HELP = {
  enter: "Enter to send · Shift+Enter for a new line · Esc to stop",
  "ctrl-enter": "Ctrl+Enter to send · Enter for a new line · Esc to stop",
};

let effective = {
  theme: window.hermesTheme?.get() || "system",
  send_key: readMirror(),
  default_model: null,
  custom_instructions: "",
};

function readMirror() {
  try {
    return localStorage.getItem(SEND_KEY_MIRROR) === "ctrl-enter" ? "ctrl-enter" : "enter";
  } catch {
    return "enter";
  }
}

/** "enter" or "ctrl-enter": the key that sends a message (composer.js). */
export function sendKey() { return effective.send_key; }

/** The profile's default model for new chats, or null (models.js). */
export function profileDefaultModel() { return effective.default_model; }

/** Say under the composer (and to assistive technology) which key sends. */
function showSendKey() {
  const help = $("#composer-help");
  if (help) help.textContent = HELP[effective.send_key] || HELP.enter;
  $("#composer-input")?.setAttribute("aria-keyshortcuts", effective.send_key === "ctrl-enter" ? "Control+Enter" : "Enter");
}

/** Take the server's answer ({settings, defaults}) as the page's settings and apply them. */
function adopt(answer) {
  effective = { ...(answer.defaults || {}), ...(answer.settings || {}) };
  window.hermesTheme?.set(effective.theme);
  try { localStorage.setItem(SEND_KEY_MIRROR, effective.send_key); } catch { /* this page only */ }
  showSendKey();
  document.dispatchEvent(new CustomEvent("hermes:settings", { detail: { ...effective } }));
  return answer;
}

/** Read the active profile's settings and apply them (at start and after a profile switch). */
export async function reloadSettings() {
  try {
    return adopt(await api("/api/settings"));
  } catch {
    showSendKey(); // the mirrors stay in force (offline: the key last heard of, not the page's built-in text)
    return null;   // the dialog says what is wrong when opened
  }
}

/** Wire #settings-btn and #settings-dialog; reads the settings once. */
export function initSettings() {
  const dialog = $("#settings-dialog");
  const say = (el, text) => { el.textContent = text; el.hidden = !text; };
  const prefs = wirePreferences(say);
  const password = wirePassword(say);
  const rules = wireRules();

  $("#settings-btn").addEventListener("click", async () => {
    prefs.reset();
    password.reset();
    dialog.showModal();
    $("#settings-theme").focus();
    try {
      const [settings, auth] = await Promise.all([api("/api/settings"), api("/api/auth/status")]);
      adopt(settings);
      prefs.show(settings);
      password.show(settings, auth);
    } catch (err) {
      say($("#settings-prefs-error"), `Could not read the settings: ${err.message}`);
    }
    rules.load();
  });
  wireDialogClose(dialog);
  dialog.addEventListener("close", () => { $("#settings-btn").focus(); });
  reloadSettings();
}

// ------------------------------------------------------------ theme, keys, model, instructions

function wirePreferences(say) {
  const theme = $("#settings-theme");
  const key = $("#settings-send-key");
  const model = $("#settings-model");
  const titles = $("#settings-titles");
  const text = $("#settings-instructions");
  const error = $("#settings-prefs-error");
  const done = $("#settings-prefs-done");
  let saved = "";

  async function save(changes, what) {
    say(error, "");
    say(done, "");
    try {
      adopt(await post("/api/settings", { settings: changes }));
      say(done, `${what} saved.`);
      announce(`${what} saved`);
      return true;
    } catch (err) {
      say(error, `Could not save: ${err.message}`);
      return false;
    }
  }

  async function fillModels(chosen) {
    let models = [];
    let fallback = null;
    try {
      ({ models = [], default: fallback = null } = await api("/api/models"));
    } catch { /* only the server's default can be offered */ }
    const label = (m) => (m.label && m.label !== m.id ? m.label : m.id);
    model.replaceChildren(
      h("option", { value: "" }, fallback ? `The server's default (${fallback})` : "The server's default"),
      ...models.map((m) => h("option", { value: m.id }, label(m))));
    model.value = chosen && models.some((m) => m.id === chosen) ? chosen : "";
  }

  theme.addEventListener("change", () => {
    window.hermesTheme?.set(theme.value);     // at once, before the server answers
    save({ theme: theme.value }, "Theme");
  });
  key.addEventListener("change", () => save({ send_key: key.value }, "Send key"));
  model.addEventListener("change", () => save({ default_model: model.value || null }, "Default model"));
  titles.addEventListener("change", () => save({ generate_titles: titles.checked }, "Chat titles"));
  $("#settings-prefs").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (await save({ custom_instructions: text.value || null }, "Custom instructions")) saved = text.value;
  });
  return {
    reset() { say(error, ""); say(done, ""); },
    show(answer) {
      const s = { ...(answer.defaults || {}), ...(answer.settings || {}) };
      theme.value = s.theme;
      key.value = s.send_key;
      titles.checked = s.generate_titles !== false;
      if (text.value === saved) text.value = s.custom_instructions || "";   // never drop unsaved typing
      saved = s.custom_instructions || "";
      $("#settings-profile-note").textContent =
        `These settings belong to the profile “${answer.profile || "default"}”; the password is the server's.`;
      fillModels(s.default_model);
    },
  };
}

// ------------------------------------------------------------ "always" approval rules

function wireRules() {
  const list = $("#settings-rules");
  const empty = $("#settings-rules-empty");

  function show(rules) {
    empty.textContent = "None. When you answer “Always” to an approval, the command is listed here and can be revoked.";
    empty.hidden = rules.length > 0;
    list.replaceChildren(...rules.map((r) => h("li", { class: "settings-rule" },
      h("span", { class: "settings-rule-text" },
        h("span", { class: "settings-rule-tool" }, r.tool),
        h("code", { class: "settings-rule-command" }, r.command)),
      h("button", { type: "button", class: "btn", "aria-label": `Revoke: ${r.tool} ${r.command}`.slice(0, 200),
        onclick: (e) => revoke(r, e.currentTarget) }, "Revoke"))));
  }

  async function load() {
    try {
      const { rules = [] } = await api("/api/approval/rules");
      show(rules);
    } catch (err) {
      list.replaceChildren();
      empty.hidden = false;
      empty.textContent = `Could not list them: ${err.message}`;
    }
  }

  async function revoke(rule, button) {
    button.disabled = true;
    try {
      await post("/api/approval/rules/revoke", { tool: rule.tool, command: rule.command });
      announce(`Revoked: ${rule.command}. It will be asked again.`);
    } catch (err) {
      if (err.status !== 404) {   // 404: already revoked elsewhere; the list below shows it
        button.disabled = false;
        empty.hidden = false;
        empty.textContent = `Could not revoke it: ${err.message}`;
        return;
      }
    }
    await load();
    // the button is gone: the focus goes to the next rule's, or to the dialog's Close
    (list.querySelector("button") || $("#settings-dialog .dialog-close")).focus();
  }

  return { load };
}

// ------------------------------------------------------------ password

function wirePassword(say) {
  const pw = $("#settings-password");
  const again = $("#settings-confirm");
  const save = $("#settings-save");
  const error = $("#settings-error");
  const done = $("#settings-done");
  const logout = $("#settings-logout");
  const statusText = $("#settings-auth-status");
  const removeForm = $("#settings-remove-form");
  const current = $("#settings-current");
  const removeError = $("#settings-remove-error");

  function show(settings, auth) {
    const fromConfig = settings.password_source === "config";
    if (fromConfig) statusText.textContent = "The password is set when the server starts (--password or HERMES_WEBUI_PASSWORD); change it there.";
    else if (settings.password_set) statusText.textContent = "A password protects this server. You can change or remove it here.";
    else statusText.textContent = "No password is set: anyone who can reach this server can use it. Set one before sharing it on your network.";
    for (const el of [pw, again, save]) el.disabled = fromConfig;
    save.textContent = settings.password_set ? "Change password" : "Set password";
    logout.hidden = !(auth.auth_enabled && auth.logged_in);
    removeForm.hidden = !(settings.password_set && settings.password_source === "settings");
  }

  async function submit(e) {
    e.preventDefault();
    say(error, "");
    say(done, "");
    if (pw.value.length < MIN_CHARS) {
      say(error, `The password needs at least ${MIN_CHARS} characters.`);
      pw.focus();
      return;
    }
    if (pw.value !== again.value) {
      say(error, "The two passwords differ.");
      again.focus();
      return;
    }
    save.disabled = true;
    try {
      const answer = await post("/api/settings", { password: pw.value });
      if (answer.csrf_token) setCsrfToken(answer.csrf_token);
      pw.value = "";
      again.value = "";
      show(answer, { auth_enabled: true, logged_in: true });
      say(done, "Password saved. This browser stays logged in; every other one has to log in again.");
      announce("Password saved");
    } catch (err) {
      say(error, err.message);
      pw.focus();
    } finally {
      save.disabled = false;
    }
  }

  async function remove(e) {
    e.preventDefault();
    say(removeError, "");
    say(done, "");
    if (!current.value) {
      say(removeError, "Type the current password to remove it.");
      current.focus();
      return;
    }
    try {
      const answer = await post("/api/settings", { remove_password: true, current_password: current.value });
      current.value = "";
      show(answer, { auth_enabled: false, logged_in: false });
      say(done, "Password removed. Anyone who can reach this server can now use it.");
      announce("Password removed");
    } catch (err) {
      say(removeError, err.status === 403 ? "That is not the current password; nothing was changed." : err.message);
      current.focus();
    }
  }

  async function logOut() {
    try {
      await post("/api/auth/logout", {});
    } catch (err) {
      if (err.status !== 401) { say(error, `Could not log out: ${err.message}`); return; }
    }
    redirectToLogin();
  }

  $("#settings-form").addEventListener("submit", submit);
  removeForm.addEventListener("submit", remove);
  logout.addEventListener("click", logOut);
  return {
    reset() {
      for (const el of [error, done, removeError]) say(el, "");
      pw.value = "";
      again.value = "";
      current.value = "";
    },
    show,
  };
}
