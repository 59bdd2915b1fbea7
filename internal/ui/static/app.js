// redis-keda dashboard: the overview's refresh and the "select all" box.
// No inline script anywhere (the CSP forbids it); this file is embedded in
// the binary. The fragment it fetches is HTML made by html/template on the
// server, where every payload byte is escaped text.
"use strict";
(function () {
  var body = document.body;
  var period = parseInt(body.getAttribute("data-refresh"), 10) || 5000;
  var box = document.getElementById("overview");
  var auto = document.getElementById("auto-refresh");
  var stamp = document.getElementById("refreshed");
  if (box && auto) {
    var url = box.getAttribute("data-fragment");
    var busy = false;
    setInterval(function () {
      if (!auto.checked || busy || document.hidden) return;
      busy = true;
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.text();
        })
        .then(function (html) {
          box.innerHTML = html;
          stamp.textContent = "refreshed " + new Date().toLocaleTimeString();
        })
        .catch(function (e) {
          stamp.textContent = "refresh failed: " + e.message;
        })
        .finally(function () { busy = false; });
    }, period);
  }
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      var boxes = document.querySelectorAll("input.select");
      for (var i = 0; i < boxes.length; i++) boxes[i].checked = all.checked;
    });
  }
})();
