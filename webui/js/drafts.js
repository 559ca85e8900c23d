// Unsent text, kept per chat in the browser's localStorage so that it survives a reload,
// an expired login (the page goes to /login and comes back) or a closed tab. A draft is
// saved as it is typed (debounced) and when the page is left, restored when its chat is
// opened again, and removed once the message is sent. Keys: "hermes.draft.<session id>",
// or "hermes.draft.new" for a chat not created yet. At most MAX_DRAFTS are kept (oldest
// dropped); when storage is full, older drafts make room for the current one.

const PREFIX = "hermes.draft.";
const MAX_DRAFTS = 30;

/** The storage key of the draft for session ``sid`` (null: a new chat). */
export const draftKey = (sid) => PREFIX + (sid || "new");

function storage() {
  try { return window.localStorage; } catch { return null; } // blocked by the browser's settings
}

function draftKeys(store) {
  const keys = [];
  for (let i = 0; i < store.length; i++) {
    const k = store.key(i);
    if (k && k.startsWith(PREFIX)) keys.push(k);
  }
  return keys;
}

function savedAt(store, key) {
  try { return JSON.parse(store.getItem(key))?.t || 0; } catch { return 0; }
}

/** The draft stored under ``key``, or "". */
export function loadDraft(key) {
  const store = storage();
  if (!store) return "";
  try {
    const item = JSON.parse(store.getItem(key) || "null");
    return typeof item?.text === "string" ? item.text : "";
  } catch { return ""; }
}

/** Store ``text`` under ``key`` (an empty or blank text removes it). Returns whether it is kept. */
export function saveDraft(key, text) {
  const store = storage();
  if (!store) return false;
  if (!text.trim()) {
    store.removeItem(key);
    return true;
  }
  const value = JSON.stringify({ t: Date.now(), text });
  const others = () => draftKeys(store).filter((k) => k !== key).sort((a, b) => savedAt(store, a) - savedAt(store, b));
  if (draftKeys(store).length >= MAX_DRAFTS) {
    const olds = others();
    for (const old of olds.slice(0, olds.length - (MAX_DRAFTS - 1))) store.removeItem(old);
  }
  for (;;) {
    try {
      store.setItem(key, value);
      return true;
    } catch {
      const [oldest] = others();
      if (!oldest) return false; // larger than the whole storage
      store.removeItem(oldest);
    }
  }
}

/** Remove the draft under ``key``. */
export function clearDraft(key) {
  storage()?.removeItem(key);
}
