// Theme: follows the system unless the reader picks light or dark; remembered per browser.
(function () {
  "use strict";
  var KEY = "daygle-theme";
  var root = document.documentElement;
  var order = ["auto", "light", "dark"];
  var stored = null;
  try { stored = window.localStorage.getItem(KEY); } catch (e) { /* storage disabled */ }
  if (order.indexOf(stored) >= 0) { root.setAttribute("data-theme", stored); }

  function label(theme) { return "Theme: " + theme + " (click to switch)"; }

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (!button) { return; }
    button.title = label(root.getAttribute("data-theme") || "auto");
    button.addEventListener("click", function () {
      var current = root.getAttribute("data-theme") || "auto";
      var next = order[(order.indexOf(current) + 1) % order.length];
      root.setAttribute("data-theme", next);
      button.title = label(next);
      try { window.localStorage.setItem(KEY, next); } catch (e) { /* storage disabled */ }
    });
  });
})();
