// Corridor operator dashboard: small progressive enhancements. Every page works without
// this file; it only asks before actions, shows times in the reader's zone and refreshes
// the overview.
"use strict";

(function () {
  // Ask before a state-changing form is sent, and send it once.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    if (form.method.toLowerCase() === "post") {
      // Disable after the submit has been taken, so the button's own value still goes out.
      window.setTimeout(function () {
        form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      }, 0);
    }
  });

  function ago(ms) {
    var s = Math.round(ms / 1000);
    if (s < 60) return s + " s ago";
    var m = Math.round(s / 60);
    if (m < 120) return m + " min ago";
    var h = Math.round(m / 60);
    if (h < 48) return h + " h ago";
    return Math.round(h / 24) + " days ago";
  }

  // Times are written in UTC; show the local time too, and the age on hover.
  function localise() {
    var now = Date.now();
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (isNaN(t)) return;
      el.title = el.textContent.indexOf("UTC") >= 0 ? el.textContent : el.title;
      el.textContent = new Date(t).toLocaleString() + " (" + ago(now - t) + ")";
    });
  }

  // The overview reloads itself while it is visible.
  function autorefresh() {
    var marker = document.querySelector("[data-autorefresh]");
    if (!marker) return;
    var seconds = parseInt(marker.getAttribute("data-autorefresh"), 10) || 15;
    window.setInterval(function () {
      if (document.visibilityState === "visible") window.location.reload();
    }, seconds * 1000);
  }

  // A page restored from the back-forward cache gets its buttons back.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form button:disabled").forEach(function (b) { b.disabled = false; });
  });

  document.addEventListener("DOMContentLoaded", function () {
    localise();
    autorefresh();
  });
})();
