// The demo partner page: mint a token through its own backend, open the popup, and
// show the one result message the portal posts back.
(function () {
  "use strict";
  var root = document.getElementById("partner");
  var portalOrigin = new URL(root.getAttribute("data-portal-origin")).origin;
  var status = document.getElementById("status");

  window.addEventListener("message", function (event) {
    if (event.origin !== portalOrigin) return;
    var data = event.data || {};
    if (data.type !== "weavz-connect-result") return;
    status.textContent = data.status + (data.error ? ": " + data.error : "");
    document.getElementById("connection-id").textContent = data.connectionId || "–";
    document.getElementById("session-id").textContent = data.sessionId || "–";
  });

  document.getElementById("connect").addEventListener("click", function () {
    // Open the window inside the click so popup blockers allow it, then point it at the portal.
    var popup = window.open("", "connect-portal", "width=500,height=600");
    status.textContent = "waiting for the user…";
    fetch("/mint", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({integrationName: document.getElementById("integration").value}),
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || "could not mint a token");
        document.getElementById("session-id").textContent = body.sessionId;
        if (popup) popup.location.href = body.connectUrl;
        else window.location.href = body.connectUrl;
      });
    }).catch(function (error) {
      if (popup) popup.close();
      status.textContent = "error: " + error.message;
    });
  });
})();
