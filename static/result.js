// Report the result to the partner page that opened this popup, then close.
// The message goes only to the session's exact allowed origins, never "*".
(function () {
  "use strict";
  var node = document.getElementById("connect-result");
  if (!node) return;
  var payload = JSON.parse(node.textContent);
  var opener = null;
  try { opener = window.opener; } catch (e) { opener = null; }
  if (!opener || opener === window) return;
  payload.targetOrigins.forEach(function (origin) {
    try { opener.postMessage(payload.message, origin); } catch (e) { /* opener navigated away */ }
  });
  window.close();
})();
