// The model picker in the composer (docs/api.md GET /api/models): the models the server's
// backends can run. The choice is per chat: choosing one in an open chat makes it that
// chat's default (POST /api/session/model); in a new chat it is remembered until the first
// message creates the chat with it. A new chat starts on the profile's default model
// (Settings, settings.js) when it is listed, else on the server's. Every chat start sends
// the chosen model.
//
// The context gauge in the chat header: the last reply's tokens (prompt + reply, i.e. how
// full the model's context was) against the chosen model's context_length, shown when
// both are known.

import { api, post } from "./api.js";
import { $, h, toast } from "./dom.js";
import { profileDefaultModel } from "./settings.js";

/** Wire the picker; returns {value(), showSession(session|null), showContext(usage|null)}. */
export function initModelPicker({ sessionId }) {
  const select = $("#model-select");
  const wrap = $("#model-picker");
  let fallback = null;   // the server's default
  let models = [];
  let lastUsage = null;

  const listed = (id) => Boolean(id) && models.some((m) => m.id === id);
  const newChatModel = () => (listed(profileDefaultModel()) ? profileDefaultModel() : fallback || "");

  const load = api("/api/models").then(({ models: found, default: def }) => {
    models = found || [];
    fallback = def || models[0]?.id || null;
    select.replaceChildren(...models.map((m) => h("option", { value: m.id },
      m.label && m.label !== m.id ? `${m.label}` : m.id)));
    select.value = sessionId() ? fallback || "" : newChatModel();
    wrap.hidden = models.length === 0;
  }).catch(() => { wrap.hidden = true; });  // no list: turns run on the server's default

  function showContext(usage) {
    lastUsage = usage || null;
    const gauge = $("#context-gauge");
    const limit = models.find((m) => m.id === select.value)?.context_length;
    const used = (usage?.prompt_tokens || 0) + (usage?.completion_tokens || 0);
    gauge.hidden = !(limit > 0 && used > 0);
    if (gauge.hidden) return;
    const share = Math.min(1, used / limit);
    const meter = $("#context-meter");
    meter.value = share;
    const pct = share > 0 && share < 0.01 ? "<1" : String(Math.round(share * 100));
    meter.setAttribute("aria-valuetext", `${pct}% of the context used`);
    $("#context-text").textContent = `${pct}% of ${limit.toLocaleString()}`;
    gauge.title = `Context: the last reply used ${used.toLocaleString()} of the ${limit.toLocaleString()} tokens `
      + `${select.value} can take (${usage.prompt_tokens || 0} prompt + ${usage.completion_tokens || 0} reply). `
      + "Older messages are left out or summarised when it is full.";
  }

  select.addEventListener("change", async () => {
    showContext(lastUsage);
    const sid = sessionId();
    if (!sid) return; // a new chat: sent with its first message
    try {
      await post("/api/session/model", { session_id: sid, model: select.value });
    } catch (err) {
      toast(`Could not switch this chat to ${select.value}: ${err.message}`);
    }
  });
  // the profile's default changed (Settings, or a profile switch): a new chat follows it
  document.addEventListener("hermes:settings", () => { load.then(() => { if (!sessionId()) select.value = newChatModel(); }); });

  return {
    value: () => (wrap.hidden || !select.value ? null : select.value),
    async showSession(session) {
      await load;
      const model = session?.model;
      if (!session) select.value = newChatModel();
      else select.value = listed(model) ? model : fallback || "";
      showContext(lastUsage);
    },
    showContext,
  };
}
