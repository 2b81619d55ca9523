// Report the result to the partner page that opened this popup (or embeds this page),
// then close. The message goes only to the session's exact allowed origins, never "*".
// Without an opener the page stays and its text tells the user the window can be closed;
// the partner then learns the result by polling (static/connect.js).
(function () {
  "use strict";
  var node = document.getElementById("connect-result");
  if (!node) return;
  var payload = JSON.parse(node.textContent);
  var target = null, framed = false;
  try {
    target = window.opener;
    if (!target && window.parent && window.parent !== window) { target = window.parent; framed = true; }
  } catch (e) { target = null; }
  if (!target || target === window) return;
  payload.targetOrigins.forEach(function (origin) {
    try { target.postMessage(payload.message, origin); } catch (e) { /* target navigated away */ }
  });
  if (!framed) window.close();
})();
