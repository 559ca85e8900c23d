// Files attached to the next message (docs/api.md, "Attachments"): the paperclip button,
// drag and drop onto the composer or the conversation, and images pasted from the
// clipboard. Each file is uploaded as soon as it is added (POST /api/attachments,
// multipart, through XMLHttpRequest so its upload progress shows), into the open chat;
// a new chat is created first when none is open. Each file is a chip above the message
// box: a thumbnail for images, name, size, progress, a remove button, and a sentence
// when it could not be attached (over the server's limit: said before uploading, and
// again if the server answers 413). Sending takes the ids of the uploaded files
// (`attachments: [id…]` on /api/chat/start, or /api/chat/queue while a reply runs); the
// chips of other chats wait for them. Removing a chip whose file was uploaded deletes the
// file (POST /api/attachment/delete). A chat created only to hold files is deleted again
// when the person leaves it (opens another chat, or closes or reloads the page) before
// sending anything: abandoned, it would be an empty "New chat" in the list.
//
// Also here: the attachments of a sent message, as the user bubble shows them
// (thumbnails that open full size, other files as download links through
// GET /api/attachment), and the open chat's id for the other modules that build URLs.

import { csrfToken, post, redirectToLogin } from "./api.js";
import { $, announce, h, icon, toast } from "./dom.js";
import { formatBytes } from "./limits.js";

/** Types a browser shows inline (the server serves them ``inline`` too). */
const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"]);
const MAX_PER_MESSAGE = 20; // api/attachment_store.py

let currentSid = null;
document.addEventListener("hermes:session", (e) => { currentSid = e.detail?.sessionId ?? null; });
// Chats this page created for attached files, while nothing has been sent in them.
const fresh = new Set();

// Closing or reloading the page in such a chat: delete it (keepalive outlives the page).
window.addEventListener("pagehide", () => {
  if (!currentSid || !fresh.has(currentSid)) return;
  fresh.delete(currentSid);
  fetch("/api/session/delete", { method: "POST", keepalive: true, credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify({ session_id: currentSid }) }).catch(() => {});
});

/** The id of the chat the page shows (null for a new chat not yet created). */
export const openSessionId = () => currentSid;

/** The server's limit for one attachment in bytes (<meta name="max-attachment-bytes">), or null. */
export function attachmentLimit() {
  const meta = document.querySelector('meta[name="max-attachment-bytes"]');
  const value = Number.parseInt(meta?.getAttribute("content") || "", 10);
  return Number.isFinite(value) && value > 0 ? value : null;
}

/** What to say about a file of ``size`` bytes that is over ``limit`` (either may be unknown). */
export function tooBigSentence(name, size, limit) {
  const what = size ? `“${name}” is ${formatBytes(size)}` : `“${name}” is too large`;
  const max = limit ? `; this server accepts attachments up to ${formatBytes(limit)}` : " for this server";
  return `${what}${max}. Attach a smaller file, or split it.`;
}

/** The limit named in the server's 413 message ("… limit of 25 MiB …"), in bytes, or null. */
function limitIn(message) {
  const m = /limit of ([0-9.]+(?:e-?[0-9]+)?) MiB/.exec(String(message || ""));
  return m ? Math.round(Number(m[1]) * 1048576) : null;
}

/** GET /api/attachment's address for attachment ``id`` of session ``sid``. */
export function attachmentUrl(sid, id, download = false) {
  const query = new URLSearchParams({ session_id: sid, id });
  if (download) query.set("download", "1");
  return `/api/attachment?${query}`;
}

export const isImage = (mime) => IMAGE_TYPES.has(String(mime || "").toLowerCase());

/**
 * The attachments of a sent message (``atts``: [{id, name, size, mime}]) of session
 * ``sid`` (default: the open chat): images as thumbnails linking to the full picture,
 * other files as download links. Null when there are none.
 */
export function attachmentList(atts, sid = currentSid) {
  if (!Array.isArray(atts) || !atts.length || !sid) return null;
  return h("ul", { class: "msg-attachments", "aria-label": "Attached files" }, atts.map((att) => {
    const name = String(att.name || "attachment");
    const size = Number.isFinite(att.size) ? formatBytes(att.size) : "";
    if (typeof att.id !== "string" || !att.id) {  // named by another app (a migrated chat), not stored here
      return h("li", { class: "att-item" }, h("span", { class: "att-file att-absent", title: `${name}: not stored here` },
        icon("file"), h("span", { class: "att-name" }, name), h("span", { class: "att-size" }, size)));
    }
    if (isImage(att.mime)) {
      const url = attachmentUrl(sid, att.id);
      return h("li", { class: "att-item" }, h("a", {
        class: "att-thumb", href: url, target: "_blank", rel: "noopener", title: `${name} (${size}): open full size`,
        "aria-label": `${name}, ${size}: open full size`,
      }, h("img", { src: url, alt: name, loading: "lazy" })));
    }
    return h("li", { class: "att-item" }, h("a", {
      class: "att-file", href: attachmentUrl(sid, att.id, true), download: name, title: `Download ${name}`,
    }, icon("file"), h("span", { class: "att-name" }, name), h("span", { class: "att-size" }, size)));
  }));
}

/**
 * POST ``form`` to ``url`` with the page's CSRF header (as api.js sends it), reporting
 * upload progress: ``onProgress(sentBytes, totalBytes)``. Resolves to {status, data}
 * (status 0: the network failed or the request was aborted); a 401 sends the page to
 * the login.
 */
function postWithProgress(url, form, onProgress, onXhr) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    onXhr(xhr);
    xhr.open("POST", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.responseType = "text";
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    xhr.addEventListener("load", () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { data = null; }
      if (xhr.status === 401) redirectToLogin();
      resolve({ status: xhr.status, data });
    });
    xhr.addEventListener("error", () => resolve({ status: 0, data: null }));
    xhr.addEventListener("abort", () => resolve({ status: 0, data: null, aborted: true }));
    xhr.send(form);
  });
}

let serial = 0;

/** A name for a pasted file that has none (screenshots are often just "image.png"). */
function pastedName(file) {
  if (file.name && file.name !== "image.png") return file.name;
  const ext = (file.type.split("/")[1] || "png").replace("jpeg", "jpg").replace(/[^a-z0-9]/g, "");
  const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
  return `pasted-${stamp}.${ext}`;
}

/**
 * Wire the paperclip, drop targets and paste. ``ensureSession()`` resolves to the open
 * chat's id, creating the chat first if needed; ``onChange()`` is called whenever the
 * chips change (the composer enables Send for a message of files alone).
 *
 * Returns {count(), ready(), sent(records), add(files)}: ``count`` the chips of the open
 * chat; ``ready`` waits for their uploads and resolves to their records
 * ([{id, name, size, mime}]) or null when one could not be attached (said on its chip);
 * ``sent`` removes the chips of records that went with a message.
 */
export function initAttachments({ ensureSession, onChange = () => {} }) {
  const tray = $("#attach-tray");
  const fileInput = $("#attach-input");
  const chat = $("#chat");
  const items = [];   // {key, file, name, size, mime, sid, state, loaded, record, error, detail, xhr, done, thumb}
  // Chips of the open chat. Files added to a new chat have no chat id until the chat is
  // created for them (within the same task as the event that announces it).
  const mine = () => items.filter((it) => it.sid === currentSid);
  let shownSid = currentSid;

  function chip(it) {
    const img = it.thumb ? h("img", { class: "att-chip-thumb", src: it.thumb, alt: "" })
      : h("span", { class: "att-chip-icon" }, icon("file"));
    const pct = it.size ? Math.min(100, Math.round((100 * it.loaded) / it.size)) : 0;
    const status = it.state === "uploading"
      ? h("progress", { class: "att-progress", max: 100, value: pct, "aria-label": `Uploading ${it.name}: ${pct}%` })
      : null;
    const error = it.state === "error" ? h("div", { class: "att-error", role: "alert" }, it.error,
      it.detail ? h("details", { class: "note-details" }, h("summary", {}, "Details"), h("div", {}, it.detail)) : null) : null;
    const remove = h("button", { type: "button", class: "att-remove icon-btn", "aria-label": `Remove ${it.name}`,
      title: "Remove", onclick: () => removeItem(it) }, icon("close"));
    return h("li", { class: "att-chip", dataset: { state: it.state, key: String(it.key) } }, img,
      h("span", { class: "att-meta" }, h("span", { class: "att-name", title: it.name }, it.name),
        h("span", { class: "att-size" }, formatBytes(it.size)), status),
      remove, error);
  }

  function render() {
    const list = mine();
    tray.hidden = list.length === 0;
    tray.replaceChildren(...list.map(chip));
    onChange();
  }

  // Progress changes often: update the bar in place instead of redrawing the tray.
  function showProgress(it) {
    const bar = tray.querySelector(`.att-chip[data-key="${it.key}"] progress`);
    if (!bar) return;
    const pct = it.size ? Math.min(100, Math.round((100 * it.loaded) / it.size)) : 0;
    bar.value = pct;
    bar.setAttribute("aria-label", `Uploading ${it.name}: ${pct}%`);
  }

  function removeItem(it) {
    const i = items.indexOf(it);
    if (i < 0) return;
    items.splice(i, 1);
    if (it.xhr && it.state === "uploading") it.xhr.abort();
    if (it.thumb) URL.revokeObjectURL(it.thumb);
    // uploaded already: the file goes too (a 409, the file went with a message meanwhile, keeps it)
    if (it.record && it.sid) post("/api/attachment/delete", { session_id: it.sid, id: it.record.id }).catch(() => {});
    render();
    announce(`Removed ${it.name}`);
    $("#composer-input")?.focus();
  }

  function fail(it, sentence, detail = "") {
    it.state = "error";
    it.error = sentence;
    it.detail = detail;
  }

  async function upload(it) {
    let sid;
    const wasNew = !currentSid;
    try {
      sid = await ensureSession();
      if (wasNew) fresh.add(sid);
    } catch (err) {
      fail(it, `Not attached: the chat could not be created (${err.message}).`);
      render();
      return;
    }
    if (!items.includes(it)) return;
    it.sid = sid;
    render();
    const form = new FormData();
    form.append("session_id", sid);
    form.append("file", it.file, it.name);
    const { status, data, aborted } = await postWithProgress("/api/attachments", form,
      (loaded) => { it.loaded = loaded; showProgress(it); }, (xhr) => { it.xhr = xhr; });
    it.xhr = null;
    if (aborted || !items.includes(it)) return;
    if (status === 200 && data?.attachment?.id) {
      it.state = "done";
      it.record = data.attachment;
      announce(`Attached ${it.name}`);
    } else if (status === 413) {
      const limit = limitIn(data?.error) ?? attachmentLimit();
      fail(it, `Not attached. ${tooBigSentence(it.name, it.size, limit)}`, data?.error || "");
    } else if (status === 0) {
      fail(it, "Not attached: the server cannot be reached. Remove it and try again when the connection is back.");
    } else if (status !== 401) {
      fail(it, `Not attached: ${data?.error || `the server answered ${status}`}.`);
    }
    render();
  }

  /** Add ``files`` (a FileList or array of File) to the next message and upload them. */
  function add(files, { pasted = false } = {}) {
    const list = [...files];
    if (!list.length) return;
    if (mine().length + list.length > MAX_PER_MESSAGE) {
      toast(`A message takes at most ${MAX_PER_MESSAGE} files; remove some first.`, 6000);
      list.length = Math.max(0, MAX_PER_MESSAGE - mine().length);
    }
    const limit = attachmentLimit();
    for (const file of list) {
      const name = pasted ? pastedName(file) : (file.name || "attachment");
      const it = { key: ++serial, file, name, size: file.size, mime: file.type, sid: currentSid, state: "uploading",
        loaded: 0, record: null, error: "", detail: "", xhr: null, done: null,
        thumb: isImage(file.type) ? URL.createObjectURL(file) : null };
      items.push(it);
      if (limit && file.size > limit) fail(it, `Not attached. ${tooBigSentence(name, file.size, limit)}`);
      else it.done = upload(it);
    }
    render();
  }

  // ---- the paperclip
  $("#attach-btn").addEventListener("click", () => fileInput.click());
  fileInput.addEventListener("change", () => {
    const files = [...fileInput.files];
    fileInput.value = "";
    add(files);
  });

  // ---- pasting: files (a screenshot) are attached; text pastes as usual
  $("#composer-input").addEventListener("paste", (e) => {
    const data = e.clipboardData;
    if (!data) return;
    const files = [...data.files];
    if (!files.length || data.types.includes("text/plain")) return;
    e.preventDefault();
    add(files, { pasted: true });
  });

  // ---- drag and drop onto the composer or the conversation (both inside #chat)
  let depth = 0;
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
  chat.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth += 1;
    chat.classList.add("drop-active");
  });
  chat.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  chat.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) chat.classList.remove("drop-active");
  });
  chat.addEventListener("drop", (e) => {
    depth = 0;
    chat.classList.remove("drop-active");
    if (!hasFiles(e)) return;
    e.preventDefault();
    add(e.dataTransfer.files);
    $("#composer-input")?.focus();
  });

  // Leaving a chat created only for files, with nothing sent: delete it and drop its chips.
  function discard(sid) {
    fresh.delete(sid);
    for (const it of items.filter((x) => x.sid === sid)) {
      items.splice(items.indexOf(it), 1);
      if (it.xhr) it.xhr.abort();
      if (it.thumb) URL.revokeObjectURL(it.thumb);
    }
    post("/api/session/delete", { session_id: sid }).catch(() => {});
  }

  document.addEventListener("hermes:session", () => {
    const left = shownSid;
    shownSid = currentSid;
    if (left && left !== currentSid && fresh.has(left)) discard(left);
    render();
  });

  return {
    add,
    count: () => mine().length,
    async ready() {
      const list = mine();
      await Promise.all(list.map((it) => it.done));
      if (list.some((it) => it.state !== "done")) {
        toast("Some files could not be attached: remove them (×) before sending.", 6000);
        return null;
      }
      return list.map((it) => it.record);
    },
    sent(records) {
      fresh.delete(currentSid);   // a message went: the chat is a real one now
      const ids = new Set(records.map((r) => r.id));
      for (const it of [...items]) {
        if (it.record && ids.has(it.record.id)) {
          items.splice(items.indexOf(it), 1);
          if (it.thumb) URL.revokeObjectURL(it.thumb);
        }
      }
      render();
    },
  };
}
