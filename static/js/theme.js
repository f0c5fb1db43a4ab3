// Theme: the server sets data-theme from the user's profile. While that is "auto" (or for
// anonymous pages), the toggle's choice, remembered per browser, applies instead.
(function () {
  "use strict";
  var KEY = "daygle-theme";
  var root = document.documentElement;
  var order = ["auto", "light", "dark"];
  var stored = null;
  try { stored = window.localStorage.getItem(KEY); } catch (e) { /* storage disabled */ }
  var serverTheme = root.getAttribute("data-theme") || "auto";
  if (serverTheme === "auto" && order.indexOf(stored) >= 0) { root.setAttribute("data-theme", stored); }

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
