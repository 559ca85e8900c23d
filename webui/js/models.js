// The model picker in the composer (docs/api.md GET /api/models): the models the server's
// backends can run. The choice is per chat: choosing one in an open chat makes it that
// chat's default (POST /api/session/model); in a new chat it is remembered until the first
// message creates the chat with it. Every chat start sends the chosen model.

import { api, post } from "./api.js";
import { $, h, toast } from "./dom.js";

/** Wire the picker; returns {value(), showSession(session|null)}. */
export function initModelPicker({ sessionId }) {
  const select = $("#model-select");
  const wrap = $("#model-picker");
  let fallback = null;   // the server's default
  let ids = [];

  const load = api("/api/models").then(({ models, default: def }) => {
    ids = (models || []).map((m) => m.id);
    fallback = def || ids[0] || null;
    select.replaceChildren(...(models || []).map((m) => h("option", { value: m.id },
      m.label && m.label !== m.id ? `${m.label}` : m.id)));
    select.value = fallback || "";
    wrap.hidden = ids.length === 0;
  }).catch(() => { wrap.hidden = true; });  // no list: turns run on the server's default

  select.addEventListener("change", async () => {
    const sid = sessionId();
    if (!sid) return; // a new chat: sent with its first message
    try {
      await post("/api/session/model", { session_id: sid, model: select.value });
    } catch (err) {
      toast(`Could not switch this chat to ${select.value}: ${err.message}`);
    }
  });

  return {
    value: () => (wrap.hidden || !select.value ? null : select.value),
    async showSession(session) {
      await load;
      const model = session?.model;
      select.value = model && ids.includes(model) ? model : fallback || "";
    },
  };
}
