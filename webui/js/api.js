// JSON over HTTP to the server (docs/api.md). Every POST carries the CSRF token from
// <meta name="csrf-token">; a 401 from any /api call sends the browser to /login.

import { formatBytes } from "./limits.js";

/**
 * An HTTP or network failure. ``status`` is the HTTP status, 0 for a network error;
 * ``message`` is a sentence for people (see friendlyMessage); ``detail`` is the server's
 * own, technical text when the message replaced it (shown behind a "Details" toggle), or null.
 */
export class ApiError extends Error {
  constructor(message, status, detail = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

// Server texts meant for programs, not people: the page never shows them as the message.
const TECHNICAL = /missing (field|query parameter)|field '[^']*' must be|query parameter|request body|valid JSON|malformed|invalid session id|Last-Event-ID|nested deeper|^HTTP \d|Traceback|\b[A-Z][a-z]+Error\b|unknown setting|errno/;

/**
 * The sentence the page shows for a failed call: the server's own when it is written for
 * people, otherwise one that says what to do. ``[message, detail]``: ``detail`` is the
 * server's text when it was replaced (null otherwise).
 */
export function friendlyMessage(status, serverText) {
  const text = typeof serverText === "string" ? serverText.trim() : "";
  // Like the server's own, these read well alone and after "Could not …: " (lower case, no full stop).
  if (status === 0) return ["the server cannot be reached: check that it is running, then try again", text || null];
  if (status === 409 && /changed in another tab|messages, not \d+/.test(text)) return ["this chat changed in another tab", text];
  // an imported file that is not JSON (cut short, or not an export): about the file, not the page
  if (status === 400 && /^the file is not valid JSON\b/.test(text)) {
    return ["the file is not valid JSON: it may be cut short, or not an export; download it again", text];
  }
  if (status === 404 && /^no (session|stream)\b/i.test(text)) {
    return ["that chat no longer exists: it may have been deleted in another tab", text];
  }
  if (text && !TECHNICAL.test(text)) return [text, null];
  if (status === 413) {
    const cap = limitIn413(text);
    return [cap ? `that is too large: this server accepts at most ${formatBytes(cap)} at once, so send less (shorten it or split it)`
      : "that is too large for this server to accept at once: send less (shorten it or split it)", text || null];
  }
  if (status >= 500) return ["something went wrong on the server: try again, and if it keeps happening, see the details", text || `HTTP ${status}`];
  return ["the page and the server did not understand each other: reload the page and try again", text || `HTTP ${status}`];
}

/** The limit in bytes a 413's text names ("… at most 8,000 bytes …", "… limit of 1,048,576 bytes …"), or null. */
export function limitIn413(text) {
  const m = /(?:at most|limit of) ([0-9][0-9,]*) bytes/.exec(String(text || ""));
  return m ? Number(m[1].replace(/,/g, "")) : null;
}

/** The CSRF token the server put into the page (empty when auth is off). */
export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const value = meta ? meta.getAttribute("content") || "" : "";
  return value === "__CSRF_TOKEN__" ? "" : value;
}

/** Replace the page's CSRF token (the server issues a new one when a login starts). */
export function setCsrfToken(token) {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && typeof token === "string") meta.setAttribute("content", token);
}

let redirecting = false;
/** Leave for the login page, remembering where we were. */
export function redirectToLogin() {
  if (redirecting) return;
  redirecting = true;
  const next = location.pathname + location.search + location.hash;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

/**
 * Call the API. ``opts``: {method = "GET", params (query object), body (JSON), form
 * (a FormData sent as multipart instead of ``body``), signal}.
 * Resolves to the parsed JSON body; rejects with ApiError (status 0 when the server is
 * unreachable, or the server's ``{error}`` message otherwise). AbortError passes through.
 */
export async function api(path, { method = "GET", params, body, form, signal } = {}) {
  let url = path;
  if (params) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) query.set(k, String(v));
    url += `?${query}`;
  }
  const init = { method, signal, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    init.headers["X-CSRF-Token"] = csrfToken();
    if (form) {
      init.body = form; // the browser sets the multipart Content-Type with its boundary
    } else {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body ?? {});
    }
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(friendlyMessage(0, "")[0], 0, String(err?.message || "") || null);
  }
  if (resp.status === 401) {
    redirectToLogin();
    throw new ApiError("Please log in.", 401);
  }
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  if (!resp.ok) {
    const [message, detail] = friendlyMessage(resp.status, data && typeof data.error === "string" ? data.error : "");
    throw new ApiError(message, resp.status, detail);
  }
  return data;
}

export const post = (path, body, opts = {}) => api(path, { ...opts, method: "POST", body });

/** POST ``form`` (a FormData) as multipart/form-data; answers and errors as ``api``. */
export const postForm = (path, form, opts = {}) => api(path, { ...opts, method: "POST", form });
