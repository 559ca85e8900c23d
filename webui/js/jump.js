// "Jump to latest": a floating button over the conversation, shown while the view is
// scrolled up away from the newest message (during a reply or after one), that scrolls
// back to the bottom, where the chat follows the reply again (chat.js's ``stick``).

import { $ } from "./dom.js";

const AWAY_PX = 160; // further than this from the bottom counts as "scrolled up"

/** Wire the button ``#jump-latest`` to the conversation's scroller. */
export function initJumpToLatest() {
  const scroller = $("#messages-scroll");
  const list = $("#messages");
  const btn = $("#jump-latest");
  let frame = null;
  const update = () => {
    frame = null;
    const away = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;
    const show = away > AWAY_PX && list.children.length > 0;
    if (btn.hidden === show) btn.hidden = !show;
    btn.classList.toggle("live", show && Boolean(list.querySelector(".msg-assistant.streaming")));
  };
  const soon = () => { if (frame === null) frame = requestAnimationFrame(update); };
  scroller.addEventListener("scroll", soon, { passive: true });
  new ResizeObserver(soon).observe(list);
  new ResizeObserver(soon).observe(scroller);
  btn.addEventListener("click", () => {
    scroller.scrollTop = scroller.scrollHeight;
    update();
  });
}
