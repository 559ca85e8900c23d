// Live updates from the server (GET /api/sessions/events, docs/api.md): one EventSource per
// page. Each ``sessions_changed {session_id, reason}`` is handed to ``onChange``; the
// connection's own state says whether the server can be reached, so the footer and the
// Stop button follow a server that goes away or comes back within a few seconds, without
// polling. The stream has no replay: after a reconnect ``onChange({reason: "reconnected"})``
// asks the page to refetch what it shows.
//
// A browser opens at most six HTTP/1.1 connections to one server, shared by all its tabs,
// and each open stream keeps one: so a tab that stays hidden for HIDDEN_CLOSE_MS closes
// its stream, and opens it again (and refetches) when it is shown.

const RETRY_MS = [1000, 2000, 3000, 5000];
const HIDDEN_CLOSE_MS = 10_000;

/**
 * new LiveEvents({onChange(event), onState("online" | "offline")}).start()
 *
 * ``onState`` fires on every change of reachability: "online" when the stream opens,
 * "offline" when it breaks. The browser retries by itself (the server asks for 2 s);
 * a stream the browser gave up on (an HTTP error) is reopened here with a backoff.
 * ``restart()`` reconnects at once (after a profile switch: the stream is per profile).
 */
export class LiveEvents {
  constructor({ onChange = () => {}, onState = () => {} } = {}) {
    this.onChange = onChange;
    this.onState = onState;
    this.source = null;
    this.state = null;
    this.everOpen = false;
    this.failures = 0;
    this.timer = null;
    this.hiddenTimer = null;
    this.asleep = false;
  }

  start() {
    this.connect();
    document.addEventListener("visibilitychange", () => this.onVisibility());
    return this;
  }

  onVisibility() {
    clearTimeout(this.hiddenTimer);
    if (document.visibilityState === "hidden") {
      this.hiddenTimer = setTimeout(() => { this.close(); this.asleep = true; }, HIDDEN_CLOSE_MS);
    } else if (this.asleep) {
      this.asleep = false;
      this.connect();   // its "open" counts as a reconnect: the page refetches
    }
  }

  restart() {
    this.close();
    this.connect();
  }

  close() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.source) this.source.close();
    this.source = null;
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  connect() {
    const source = new EventSource("/api/sessions/events", { withCredentials: true });
    this.source = source;
    source.addEventListener("open", () => {
      if (source !== this.source) return;
      const again = this.everOpen;
      this.everOpen = true;
      this.failures = 0;
      this.setState("online");
      if (again) this.onChange({ session_id: null, reason: "reconnected" });
    });
    source.addEventListener("sessions_changed", (e) => {
      if (source !== this.source) return;
      let data;
      try { data = JSON.parse(e.data); } catch { return; }
      if (data && typeof data.reason === "string") this.onChange(data);
    });
    source.addEventListener("error", () => {
      if (source !== this.source) return;
      this.setState("offline");
      if (source.readyState === EventSource.CLOSED) {  // the browser will not retry (e.g. an HTTP error)
        source.close();
        const wait = RETRY_MS[Math.min(this.failures++, RETRY_MS.length - 1)];
        this.timer = setTimeout(() => { if (this.source === source) this.connect(); }, wait);
      }
    });
  }
}
