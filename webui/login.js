// Login page: POST /api/auth/login {password}; on success go back to the page the user
// was on (?next=, see nextPage) or to the app at "/".
// Answers (docs/api.md): 200 ok, 401 wrong password, 429 too many attempts (Retry-After s).

const form = document.getElementById("login-form");
const input = document.getElementById("login-password");
const button = document.getElementById("login-submit");
const errorBox = document.getElementById("login-error");

/**
 * Where to go after logging in: the ``next`` query parameter when it is a path on this
 * server ("/", "/?s=abc"), else "/". Absolute URLs, scheme-relative "//host" and
 * "/\\host" forms, other schemes and control characters are refused, so a link to
 * /login can never send the user to another site.
 */
export function nextPage(search = window.location.search) {
  const next = new URLSearchParams(search).get("next");
  if (!next || !next.startsWith("/") || next.startsWith("//") || /[\\\u0000-\u001f\u007f]/.test(next)) return "/";
  try {
    const url = new URL(next, window.location.origin);
    if (url.origin !== window.location.origin) return "/";
    return url.pathname.startsWith("/login") ? "/" : url.pathname + url.search + url.hash;
  } catch (_) {
    return "/";
  }
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

async function errorText(resp) {
  try {
    const body = await resp.json();
    if (body && typeof body.error === "string") return body.error;
  } catch (_) { /* not JSON */ }
  return `The server answered ${resp.status}.`;
}

async function alreadyIn() {
  try {
    const resp = await fetch("/api/auth/status", { credentials: "same-origin", cache: "no-store" });
    if (!resp.ok) return;
    const status = await resp.json();
    if (!status.auth_enabled || status.logged_in) window.location.replace(nextPage());
  } catch (_) { /* stay on the page; submitting will report the problem */ }
}

async function submit(event) {
  event.preventDefault();
  const password = input.value;
  if (!password) {
    showError("Enter the password.");
    input.focus();
    return;
  }
  button.disabled = true;
  showError("");
  try {
    const resp = await fetch("/api/auth/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ password }),
    });
    if (resp.ok) {
      window.location.replace(nextPage());
      return;
    }
    if (resp.status === 401) {
      showError("Wrong password.");
    } else if (resp.status === 429) {
      const wait = resp.headers.get("Retry-After");
      showError(wait ? `Too many attempts. Try again in ${wait} seconds.` : await errorText(resp));
    } else {
      showError(await errorText(resp));
    }
    input.select();
  } catch (_) {
    showError("Cannot reach the server.");
  } finally {
    button.disabled = false;
  }
}

form.addEventListener("submit", submit);
alreadyIn();
