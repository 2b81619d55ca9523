// The demo partner page: its backend mints a connect token, and PortalConnect.open
// (static/connect.js, loaded from the portal) runs the popup and reports the one result.
(function () {
  "use strict";
  var status = document.getElementById("status");

  function show(result) {
    status.textContent = result.status + (result.error ? ": " + result.error : "");
    document.getElementById("connection-id").textContent = result.connectionId || "–";
    document.getElementById("session-id").textContent = result.sessionId || "–";
  }

  // Back from the portal by redirect (the popup was blocked): the result is in the query.
  var back = new URLSearchParams(window.location.search);
  if (back.get("status")) {
    show({status: back.get("status"), sessionId: back.get("sessionId"),
      connectionId: back.get("connectionId"), error: back.get("code")});
    window.history.replaceState(null, "", window.location.pathname);
  }

  document.getElementById("connect").addEventListener("click", function () {
    status.textContent = "waiting for the user…";
    fetch("/mint", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({integrationName: document.getElementById("integration").value,
                            locale: document.getElementById("locale").value,
                            theme: document.getElementById("theme").value}),
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || "could not mint a token");
        document.getElementById("session-id").textContent = body.sessionId;
        return PortalConnect.open({
          connectUrl: body.connectUrl,
          token: body.token,
          onClose: function () { status.textContent = "closed before connecting"; }
        });
      });
    }).then(function (result) {
      if (result.status !== "closed") show(result);
    }).catch(function (error) {
      status.textContent = "error: " + error.message;
    });
  });

  // The end user's own connect portal: the backend mints an eut_ link, or emails it.
  var endUserStatus = document.getElementById("end-user-status");
  function endUser(path, then) {
    endUserStatus.textContent = "…";
    fetch(path, {method: "POST"}).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || "the portal refused");
        then(body);
      });
    }).catch(function (error) {
      endUserStatus.textContent = "error: " + error.message;
    });
  }
  var portalButton = document.getElementById("end-user-portal");
  if (portalButton) {
    portalButton.addEventListener("click", function () {
      endUser("/end-user/link", function (body) {
        endUserStatus.textContent = "link valid until " + body.expiresAt;
        window.open(body.connectUrl, "_blank", "noopener");
      });
    });
    document.getElementById("end-user-invite").addEventListener("click", function () {
      endUser("/end-user/invite", function (body) {
        endUserStatus.textContent = "invite sent to " + body.invite.email + " (see the mailbox)";
      });
    });
  }
})();
