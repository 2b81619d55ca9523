// Honest progress while the credential form is being sent: the button says what the
// portal is doing now. It asks the session's status (GET …/status, this browser's own
// session only) while the post is pending: PENDING means the details are still being
// checked with the app, CONNECTING that they passed and the connection is being saved.
(function () {
  "use strict";
  document.querySelectorAll("form.connect-form[data-status-url]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var button = event.submitter || form.querySelector("button[type=submit]");
      var saving = button && button.getAttribute("data-saving-text");
      if (!saving || form.getAttribute("data-watching") === "1") return;
      form.setAttribute("data-watching", "1");
      var url = form.getAttribute("data-status-url");
      function look() {
        fetch(url, { credentials: "same-origin", cache: "no-store" })
          .then(function (response) { return response.ok ? response.json() : null; })
          .then(function (answer) {
            if (answer && answer.status === "CONNECTING") { button.textContent = saving; return; }
            if (!answer || answer.status === "PENDING") setTimeout(look, 1000);
          })
          .catch(function () { /* the page is leaving, or the network is gone */ });
      }
      setTimeout(look, 700);
    });
  });
})();
