// Following one reply's server-sent events (docs/architecture.md §4) so that the thread is never lost.
//
// fetch() streaming rather than EventSource, for two reasons: heartbeat comments are
// visible (a silent, half-dead connection is noticed and replaced), and reconnection is
// decided here, after asking the server whether the stream still exists, so a stream
// that died with a server restart is never hammered with requests that can only 404.
// On reconnect the request carries ``Last-Event-ID: <last seq seen>``; events are also
// de-duplicated by seq, so text is never shown twice.

import { api, redirectToLogin } from "./api.js";

const STALL_MS = 30_000;          // no byte (event or heartbeat) for this long: reconnect
const BACKOFF_MS = [250, 500, 1000, 2000, 3000];

/**
 * new StreamClient({streamId, sessionId, afterSeq, onEvent, onState, onGone}).start()
 *
 * - ``onEvent(name, data, seq)`` for each event after ``afterSeq``, once, in order.
 * - ``onState("live" | "reconnecting")`` when the connection drops or comes back.
 * - ``onGone()`` when the stream cannot be resumed (it ended while we were away, or the
 *   server restarted): the caller reloads the session, which the server has settled.
 * The client stops by itself after ``stream_end``; ``close()`` stops it early.
 */
export class StreamClient {
  constructor({ streamId, sessionId, afterSeq = 0, onEvent, onState = () => {}, onGone = () => {} }) {
    Object.assign(this, { streamId, sessionId, onEvent, onState, onGone });
    this.lastSeq = afterSeq;
    this.closed = false;
    this.ended = false;
    this.state = "connecting";
    this.controller = null;
    this.lastByteAt = 0;
    this.watchdog = null;
  }

  start() {
    this.watchdog = setInterval(() => {
      if (this.controller && Date.now() - this.lastByteAt > STALL_MS) this.controller.abort();
    }, 2000);
    this.run();
    return this;
  }

  close() {
    this.closed = true;
    clearInterval(this.watchdog);
    if (this.controller) this.controller.abort();
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onState(state);
  }

  async run() {
    let attempt = 0;
    while (!this.closed && !this.ended) {
      const outcome = await this.connectOnce();
      if (this.closed || this.ended) break;
      if (outcome === "gone") return this.finishGone();
      this.setState("reconnecting");
      const next = await this.waitForServer(attempt++);
      if (next === "gone") return this.finishGone();
      if (next === "closed") break;
      attempt = outcome === "progress" ? 0 : attempt;
    }
    clearInterval(this.watchdog);
  }

  finishGone() {
    clearInterval(this.watchdog);
    if (!this.closed) this.onGone();
  }

  // One HTTP request. Returns "gone" (404), "progress" (events arrived, then the
  // connection broke) or "failed" (nothing arrived).
  async connectOnce() {
    this.controller = new AbortController();
    this.lastByteAt = Date.now();
    const headers = { Accept: "text/event-stream" };
    if (this.lastSeq > 0) headers["Last-Event-ID"] = String(this.lastSeq);
    const url = `/api/chat/stream?stream_id=${encodeURIComponent(this.streamId)}`;
    let got = false;
    try {
      const resp = await fetch(url, { headers, signal: this.controller.signal, credentials: "same-origin", cache: "no-store" });
      if (resp.status === 401) { redirectToLogin(); this.closed = true; return "failed"; }
      if (resp.status === 404) return "gone";
      if (!resp.ok || !resp.body) return "failed";
      this.setState("live");
      got = await this.read(resp.body.getReader());
    } catch {
      // network error, abort by the watchdog, or close(): decided by the caller's loop
    } finally {
      this.controller = null;
    }
    return got ? "progress" : "failed";
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    let got = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return got;
      this.lastByteAt = Date.now();
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (this.dispatch(block)) got = true;
        if (this.ended || this.closed) { reader.cancel().catch(() => {}); return got; }
      }
    }
  }

  // Parse one SSE block; deliver it unless its seq was already seen.
  dispatch(block) {
    let id = null;
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") id = value;
      else if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return false;
    const seq = id !== null && /^\d+$/.test(id) ? Number(id) : null;
    if (seq !== null) {
      if (seq <= this.lastSeq) return false;
      this.lastSeq = seq;
    }
    let payload = null;
    try { payload = JSON.parse(data.join("\n")); } catch { payload = data.join("\n"); }
    if (name === "stream_end") this.ended = true;
    this.onEvent(name, payload, seq);
    return true;
  }

  // Poll the session's status until the server answers. "resume" if our stream still
  // runs, "gone" if it does not (ended, or lost with a restart), "closed" if close()d.
  async waitForServer(attempt) {
    for (let i = attempt; !this.closed; i++) {
      await sleep(BACKOFF_MS[Math.min(i, BACKOFF_MS.length - 1)]);
      if (this.closed) break;
      try {
        const status = await api("/api/session/status", { params: { session_id: this.sessionId } });
        return status.streaming && status.active_stream_id === this.streamId ? "resume" : "gone";
      } catch (err) {
        if (err.status === 404) return "gone"; // the session itself was deleted
      }
    }
    return "closed";
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
