// Live sync progress: an element with data-live="/url" is refreshed from that JSON every few
// seconds. A JSON object fills the element's [data-live-field=name] children and its
// data-state; {"rows": [{id, ...}]} does the same for each [data-live-row=id] inside it.
// Without script the page shows the state as of loading; nothing else depends on this.
(function () {
  "use strict";
  var FAST = 3000, SLOW = 15000;

  function fill(target, data) {
    if (data.state) { target.setAttribute("data-state", data.state); }
    target.querySelectorAll("[data-live-field]").forEach(function (el) {
      var value = data[el.getAttribute("data-live-field")];
      if (typeof value === "string" && el.textContent !== value) { el.textContent = value; }
    });
  }

  function poll(box) {
    var url = box.getAttribute("data-live");
    function again(busy) { window.setTimeout(tick, busy ? FAST : SLOW); }
    function tick() {
      if (document.hidden) { again(false); return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (data) {
          var busy = false;
          if (Array.isArray(data.rows)) {
            data.rows.forEach(function (row) {
              var target = box.querySelector('[data-live-row="' + row.id + '"]');
              if (target) { fill(target, row); }
              busy = busy || row.state === "running" || row.state === "due";
            });
          } else {
            fill(box, data);
            busy = data.state === "running" || data.state === "due";
          }
          again(busy);
        })
        .catch(function () { again(false); });
    }
    again(true);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(poll);
  });
})();
