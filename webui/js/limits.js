// The server's size limit for one message, as the page learns it from
// <meta name="max-message-bytes"> (filled in by api/ui.py from --max-message-bytes),
// and the sentences that tell the user what to do when a message is over it.

/** The server's limit for one message in UTF-8 bytes, or null when the page was not told. */
export function messageLimit() {
  const meta = document.querySelector('meta[name="max-message-bytes"]');
  const value = Number.parseInt(meta?.getAttribute("content") || "", 10);
  return Number.isFinite(value) && value > 0 ? value : null;
}

const encoder = new TextEncoder();

/** The size of ``text`` in UTF-8 bytes, as the server counts it (a lone surrogate is 3). */
export function utf8Bytes(text) {
  return encoder.encode(text).length;
}

/**
 * Whether ``text`` is over ``limit`` bytes; returns its size in bytes when it is, else 0.
 * Cheap for short texts: a UTF-16 unit is 1 to 3 UTF-8 bytes, so only texts between
 * limit/3 and limit units are measured exactly.
 */
export function overLimit(text, limit) {
  if (!limit || text.length * 3 <= limit) return 0;
  const size = text.length > limit ? Math.max(text.length, utf8Bytes(text)) : utf8Bytes(text);
  return size > limit ? size : 0;
}

/** "1.3 MB", "950 KB", "12 bytes" (decimal units, as file managers show them). */
export function formatBytes(n) {
  if (n >= 1_000_000) return `${(n / 1_000_000).toFixed(n >= 10_000_000 ? 0 : 1)} MB`;
  if (n >= 1_000) return `${Math.round(n / 1_000)} KB`;
  return `${n} bytes`;
}

/** What to tell the user about a message of ``size`` bytes over ``limit``. */
export function tooLargeSentence(size, limit) {
  const what = size ? `This message is ${formatBytes(size)}` : "This message is too large";
  const max = limit ? `; this server accepts at most ${formatBytes(limit)}` : " for this server";
  return `${what}${max}. Shorten it, send it in parts, or upload it as a file in the Files panel and refer to it.`;
}
