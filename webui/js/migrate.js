// The first-start offer to bring chats over from the upstream web UI (/api/migrate, docs/api.md).
// Shown above the chat when the server finds the upstream's state dir and nothing has
// been migrated from it yet; "Not now" hides it for this browser.

import { api } from "./api.js";
import { h, toast } from "./dom.js";

const DISMISSED = "hermes.migrate.dismissed";
const POLL_MS = 400;

function summary(report) {
  const parts = [`${report.imported.length} imported`];
  if (report.updated.length) parts.push(`${report.updated.length} updated`);
  if (report.skipped.length) parts.push(`${report.skipped.length} skipped`);
  if (report.unreadable.length) parts.push(`${report.unreadable.length} unreadable (${report.unreadable.map((u) => u.file).join(", ")})`);
  return parts.join(", ");
}

/** Offer the migration if there is one to offer; ``onDone`` runs after it (to refresh the list). */
export async function offerMigration(onDone) {
  let status;
  try {
    status = await api("/api/migrate/status");
  } catch {
    document.documentElement.dataset.migrateChecked = "1";
    return;
  }
  document.documentElement.dataset.migrateChecked = "1";
  if (!status.available || status.migrated || localStorage.getItem(DISMISSED) === status.source) return;
  const text = h("span", { class: "migrate-text" },
    `Found ${status.sessions} chats from the earlier Hermes web UI in ${status.source}. Bring them over? ` +
    "They are copied; the old folder is not changed.");
  const go = h("button", { type: "button", class: "btn btn-primary", id: "migrate-go" }, "Bring them over");
  const later = h("button", { type: "button", class: "btn", id: "migrate-later" }, "Not now");
  const offer = h("div", { class: "migrate-offer", id: "migrate-offer", role: "region", "aria-label": "Migrate chats" },
    text, h("div", { class: "migrate-actions" }, go, later));
  document.querySelector("#chat .chat-head").after(offer);
  later.addEventListener("click", () => { localStorage.setItem(DISMISSED, status.source); offer.remove(); });
  go.addEventListener("click", async () => {
    go.disabled = later.disabled = true;
    try {
      await api("/api/migrate", { method: "POST", body: {} });
      for (;;) {
        const now = await api("/api/migrate/status");
        text.textContent = `Migrating… ${now.done} of ${now.total || status.sessions} chats`;
        if (!now.running) {
          if (now.error) throw new Error(now.error);
          offer.remove();
          toast(`Migration done: ${summary(now.report)}.`, 8000);
          onDone?.();
          return;
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    } catch (err) {
      text.textContent = `The migration failed: ${err.message}`;
      go.disabled = later.disabled = false;
    }
  });
}
