// Progressive enhancement for the credential form; the form works without it.
(function () {
  "use strict";
  document.querySelectorAll("[data-toggle-secret]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-toggle-secret"));
    if (!input) return;
    button.addEventListener("click", function () {
      var show = input.type === "password";
      input.type = show ? "text" : "password";
      button.textContent = show ? "Hide" : "Show";
      button.setAttribute("aria-pressed", String(show));
    });
  });
  // Tell the server whether a popup opener is waiting for a message, so it renders the
  // result page instead of redirecting to the partner's redirect URI.
  var hasOpener = false;
  try { hasOpener = !!window.opener && window.opener !== window; } catch (e) { hasOpener = false; }
  document.querySelectorAll("[data-opener-hint]").forEach(function (field) {
    field.value = hasOpener ? "1" : "0";
  });
})();
