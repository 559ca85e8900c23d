// The colour theme, applied before the first paint: a classic (blocking) script in <head>,
// so a dark page never flashes white on load. The profile's choice (system | light |
// dark, GET /api/settings) is mirrored in localStorage by settings.js; here it becomes
// <html data-theme="light|dark"> ("system" follows prefers-color-scheme, live), which
// app.css and the code-highlighting stylesheet read. Not a module: it must run at once.
(function () {
  "use strict";
  var KEY = "hermes.theme";
  var CHOICES = ["system", "light", "dark"];
  var root = document.documentElement;
  var dark = window.matchMedia("(prefers-color-scheme: dark)");
  var choice = "system";

  // The browser's own bar colour (<meta name="theme-color" media=…>) follows a chosen theme too.
  var metas = Array.prototype.slice.call(document.querySelectorAll('meta[name="theme-color"][media]'));
  metas.forEach(function (m) { m.dataset.media = m.getAttribute("media"); });

  function apply() {
    var resolved = choice === "system" ? (dark.matches ? "dark" : "light") : choice;
    root.dataset.theme = resolved;
    root.dataset.themeChoice = choice;
    metas.forEach(function (m) {
      var mine = m.dataset.media.indexOf(resolved) >= 0;
      m.setAttribute("media", choice === "system" ? m.dataset.media : (mine ? "all" : "not all"));
    });
  }

  try {
    var saved = window.localStorage.getItem(KEY);
    if (CHOICES.indexOf(saved) >= 0) choice = saved;
  } catch (e) { /* storage blocked: follow the system */ }
  apply();
  dark.addEventListener("change", apply);

  // settings.js calls this when the profile's theme is read or changed.
  window.hermesTheme = {
    set: function (next) {
      choice = CHOICES.indexOf(next) >= 0 ? next : "system";
      try { window.localStorage.setItem(KEY, choice); } catch (e) { /* kept for this page only */ }
      apply();
    },
    get: function () { return choice; },
  };
}());
