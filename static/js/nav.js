// Navigation menus are <details> elements and work without script. This only tidies them:
// opening one closes the others, and a click elsewhere or Escape closes the open one.
(function () {
  "use strict";
  function menus() { return document.querySelectorAll("header nav details"); }
  document.addEventListener("click", function (event) {
    menus().forEach(function (menu) {
      if (menu.open && !menu.contains(event.target)) { menu.open = false; }
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    menus().forEach(function (menu) {
      if (menu.open) { menu.open = false; menu.querySelector("summary").focus(); }
    });
  });
  document.addEventListener("toggle", function (event) {
    var opened = event.target;
    if (!(opened instanceof HTMLDetailsElement) || !opened.open || !opened.closest("header nav")) { return; }
    menus().forEach(function (menu) { if (menu !== opened) { menu.open = false; } });
  }, true);
})();
