// The Settings dialog (gear button in the sidebar): set or change the password
// (POST /api/settings {password}; the answer carries a new CSRF token, which replaces the
// page's) and, when a password protects the server, log out (POST /api/auth/logout).

import { api, post, redirectToLogin, setCsrfToken } from "./api.js";
import { $, announce } from "./dom.js";
import { wireDialogClose } from "./menu.js";

const MIN_CHARS = 8;

/** Wire #settings-btn and #settings-dialog. */
export function initSettings() {
  const dialog = $("#settings-dialog");
  const form = $("#settings-form");
  const pw = $("#settings-password");
  const again = $("#settings-confirm");
  const save = $("#settings-save");
  const error = $("#settings-error");
  const done = $("#settings-done");
  const logout = $("#settings-logout");
  const statusText = $("#settings-auth-status");

  const say = (el, text) => { el.textContent = text; el.hidden = !text; };

  function showState(settings, auth) {
    const fromConfig = settings.password_source === "config";
    if (fromConfig) statusText.textContent = "The password is set when the server starts (--password or HERMES_WEBUI_PASSWORD); change it there.";
    else if (settings.password_set) statusText.textContent = "A password protects this server. You can change it here.";
    else statusText.textContent = "No password is set: anyone who can reach this server can use it. Set one before sharing it on your network.";
    for (const el of [pw, again, save]) el.disabled = fromConfig;
    save.textContent = settings.password_set ? "Change password" : "Set password";
    logout.hidden = !(auth.auth_enabled && auth.logged_in);
  }

  async function load() {
    try {
      const [settings, auth] = await Promise.all([api("/api/settings"), api("/api/auth/status")]);
      showState(settings, auth);
    } catch (err) {
      say(error, `Could not read the settings: ${err.message}`);
    }
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
      showState(answer, { auth_enabled: true, logged_in: true });
      say(done, "Password saved. This browser stays logged in; every other one has to log in again.");
      announce("Password saved");
    } catch (err) {
      say(error, err.message);
      pw.focus();
    } finally {
      save.disabled = false;
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

  $("#settings-btn").addEventListener("click", () => {
    say(error, "");
    say(done, "");
    pw.value = "";
    again.value = "";
    dialog.showModal();
    pw.focus();
    load();
  });
  form.addEventListener("submit", submit);
  logout.addEventListener("click", logOut);
  wireDialogClose(dialog);
  dialog.addEventListener("close", () => { $("#settings-btn").focus(); });
}
