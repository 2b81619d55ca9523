// "Close this window" on an error page opened as the partner's popup: shown only where a
// script may close the window (one opened by the partner page).
(function () {
  "use strict";
  var opened = false;
  try { opened = !!window.opener && window.opener !== window; } catch (e) { opened = false; }
  document.querySelectorAll("[data-close-window]").forEach(function (button) {
    if (!opened) return;
    button.hidden = false;
    button.addEventListener("click", function () { window.close(); });
  });
})();
