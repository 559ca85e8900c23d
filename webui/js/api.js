// JSON over HTTP to the server (docs/api.md). Every POST carries the CSRF token from
// <meta name="csrf-token">; a 401 from any /api call sends the browser to /login.

/** An HTTP or network failure. ``status`` is the HTTP status, 0 for a network error. */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
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
    throw new ApiError("The server cannot be reached.", 0);
  }
  if (resp.status === 401) {
    redirectToLogin();
    throw new ApiError("Please log in.", 401);
  }
  let data = null;
  try { data = await resp.json(); } catch { data = null; }
  if (!resp.ok) throw new ApiError((data && data.error) || `HTTP ${resp.status}`, resp.status);
  return data;
}

export const post = (path, body, opts = {}) => api(path, { ...opts, method: "POST", body });

/** POST ``form`` (a FormData) as multipart/form-data; answers and errors as ``api``. */
export const postForm = (path, form, opts = {}) => api(path, { ...opts, method: "POST", form });
