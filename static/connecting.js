// While a connection is being saved: look at the session's page every few seconds and
// reload it only once it shows something new (the result), rather than refreshing the
// page on a timer (which a screen reader announces again each time). Without JavaScript
// the page's <noscript> refresh does the same job.
(function () {
  "use strict";
  var script = document.currentScript;
  var every = Math.max(1, Number(script && script.getAttribute("data-every")) || 3) * 1000;
  function look() {
    fetch(window.location.href, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 409 && !response.redirected) { window.setTimeout(look, every); }
        else { window.location.reload(); }
      })
      .catch(function () { window.setTimeout(look, every); });
  }
  window.setTimeout(look, every);
})();
