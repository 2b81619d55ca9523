// Progressive enhancement for the credential form; the form works without it.
(function () {
  "use strict";
  document.querySelectorAll("[data-toggle-secret]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-toggle-secret"));
    if (!input) return;
    // The words for "shown" come from the page (translated there); "hidden" is what it says now.
    var hidden = { text: button.textContent, label: button.getAttribute("aria-label") };
    var shown = { text: button.getAttribute("data-hide-text") || hidden.text,
                  label: button.getAttribute("data-hide-label") || hidden.label };
    button.addEventListener("click", function () {
      var show = input.type === "password";
      var words = show ? shown : hidden;
      input.type = show ? "text" : "password";
      button.textContent = words.text;
      if (words.label) button.setAttribute("aria-label", words.label);
      button.setAttribute("aria-pressed", String(show));
    });
  });
  // One submit at a time: the button says the form is being sent (a spinner, portal.css)
  // and a second press, or Enter again, does not post the form a second time.
  document.querySelectorAll("form.connect-form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sending") === "1") { event.preventDefault(); return; }
      form.setAttribute("data-sending", "1");
      var button = event.submitter || form.querySelector("button[type=submit]");
      if (!button) return;
      button.setAttribute("aria-busy", "true");
      button.setAttribute("aria-disabled", "true");
      var busy = button.getAttribute("data-busy-text");
      if (busy) { button.setAttribute("data-idle-text", button.textContent); button.textContent = busy; }
    });
  });
  // Back from the browser's cache: the form can be sent again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form.connect-form[data-sending]").forEach(function (form) {
      form.removeAttribute("data-sending");
      form.querySelectorAll("[aria-busy]").forEach(function (button) {
        button.removeAttribute("aria-busy");
        button.removeAttribute("aria-disabled");
        var idle = button.getAttribute("data-idle-text");
        if (idle !== null) { button.textContent = idle; button.removeAttribute("data-idle-text"); }
      });
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
