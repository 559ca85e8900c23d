// The service worker (served at /sw.js, scope "/"): keeps the app shell and the last chat
// list on this device, so the page opens when the server cannot be reached and shows the
// chats it had, with an "offline" note (js/pwa.js).
//
// What it handles — GET requests of this origin only, everything else goes to the network
// untouched (POSTs, the event streams, attachments, files):
// - the page ("/"), /static/…, /manifest.webmanifest, /favicon.ico and the highlight CSS:
//   network first, the answer kept; without a network the kept copy. The page itself comes
//   back marked <html data-offline="1">, which js/pwa.js turns into the note.
// - GET /api/sessions and /api/projects: network first, the last good answer kept per
//   address; without a network that answer.
// Nothing else of the API is kept. A logout, or any 401, forgets the kept answers (a
// shared computer shows no titles after someone logged out). A new version of this file
// starts a new cache and deletes the old ones.

const VERSION = "hermes-v1";
const SHELL = `${VERSION}-shell`;
const DATA = `${VERSION}-data`;
const KEPT_API = new Set(["/api/sessions", "/api/projects"]);
const SHELL_PATHS = new Set(["/", "/manifest.webmanifest", "/favicon.ico", "/api/render/highlight.css"]);

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(SHELL);
    await Promise.all(["/", "/manifest.webmanifest", "/static/icons/icon-192.png"].map(async (path) => {
      try { await keep(cache, new Request(path), await fetch(path, { credentials: "same-origin" })); } catch { /* next visit */ }
    }));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("hermes-") && !name.startsWith(`${VERSION}-`)) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

// The page lists what it loaded (performance entries), so the whole shell and the chat
// list are kept after the first visit, including what loaded before this worker took
// control; the worker answers {type: "kept", count} when done.
self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type !== "keep" || !Array.isArray(data.urls)) return;
  event.waitUntil((async () => {
    const shell = await caches.open(SHELL);
    const api = await caches.open(DATA);
    let kept = 0;
    for (const raw of data.urls.slice(0, 300)) {
      const url = new URL(raw, self.location.origin);
      if (url.origin !== self.location.origin) continue;
      const cache = isShell(url) ? shell : KEPT_API.has(url.pathname) ? api : null;
      if (!cache || (cache === shell && await cache.match(url.href))) continue;
      try {
        const resp = await keep(cache, new Request(url.href), await fetch(url.href, { credentials: "same-origin" }));
        if (resp.ok) kept += 1;
      } catch { /* offline: the next visit */ }
    }
    event.source?.postMessage({ type: "kept", count: kept });
  })());
});

function isShell(url) {
  return SHELL_PATHS.has(url.pathname) || url.pathname.startsWith("/static/");
}

/** Store ``resp`` for ``req`` if it is a plain good answer (not a redirect to the login page). */
async function keep(cache, req, resp) {
  if (resp && resp.ok && !resp.redirected && resp.type === "basic") await cache.put(req, resp.clone());
  return resp;
}

async function forgetData() {
  await caches.delete(DATA);
}

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  if (req.method !== "GET") {
    if (url.pathname === "/api/auth/logout") event.waitUntil(forgetData());
    return;
  }
  if (req.mode === "navigate" && url.pathname === "/") {
    event.respondWith(page(req));
  } else if (isShell(url)) {
    event.respondWith(networkFirst(req, SHELL, url.href));
  } else if (KEPT_API.has(url.pathname)) {
    event.respondWith(networkFirst(req, DATA, url.href));
  }
});

async function networkFirst(req, cacheName, key) {
  const cache = await caches.open(cacheName);
  try {
    const resp = await fetch(req);
    if (resp.status === 401) await forgetData();
    return await keep(cache, new Request(key), resp);
  } catch (err) {
    const kept = await cache.match(key);
    if (kept) return kept;
    throw err;
  }
}

/** The page: from the network (kept for later), else the kept copy marked offline. */
async function page(req) {
  const cache = await caches.open(SHELL);
  try {
    const resp = await fetch(req);
    return await keep(cache, new Request("/"), resp);
  } catch (err) {
    const kept = await cache.match("/");
    if (!kept) throw err;
    const html = (await kept.text()).replace(/<html(\s|>)/, '<html data-offline="1"$1');
    const headers = new Headers(kept.headers);   // its CSP and the rest, as the server sent them
    headers.delete("Content-Length");
    return new Response(html, { status: 200, headers });
  }
}
