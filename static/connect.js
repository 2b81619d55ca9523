// PortalConnect: open the connect portal in a popup; learn the outcome exactly once.
// No dependencies. See docs/connect-js.md.
(function (root) {
  "use strict";
  var TYPE = "weavz-connect-result", active = null;

  function fromSession(s) {
    if (s.status === "COMPLETED" || s.status === "FAILED") {
      var result = {type: TYPE, status: s.status === "COMPLETED" ? "success" : "error",
        sessionId: s.id, connectionId: s.connectionId, integrationName: s.integrationName,
        externalId: s.externalId};
      if (s.status === "FAILED") { result.error = s.error; result.code = s.errorCode; }
      return result;
    }
    return s.status;
  }

  function open(options) {
    options = options || {};
    return new Promise(function (resolve) {
      var url = new URL(options.connectUrl, root.location.href);
      var origin = url.origin;
      var token = options.token || url.searchParams.get("token");
      if (token && !url.searchParams.get("token")) url.searchParams.set("token", token);
      var every = options.pollInterval || 1000;
      var grace = options.closeGrace == null ? 2000 : options.closeGrace;
      var settled = false, replaced = false, popup = null, timer = null;
      var graceLeft = Math.ceil(grace / every);
      // A new open() reuses the window: this one is over unless the portal says otherwise.
      function supersede() { replaced = true; clearTimeout(timer); follow(false); }
      if (active) active();
      active = supersede;

      function finish(result) {
        if (settled) return;
        settled = true;
        if (active === supersede) active = null;
        root.removeEventListener("message", onMessage);
        clearTimeout(timer);
        var callback = {success: options.onSuccess, error: options.onError,
          closed: options.onClose}[result.status];
        if (typeof callback === "function") {
          try { callback(result); } catch (e) { setTimeout(function () { throw e; }); }
        }
        resolve(result);
      }

      function closed() { finish({type: TYPE, status: "closed", sessionId: null}); }

      function onMessage(event) {
        var data = event.data;
        if (replaced || event.origin !== origin || !data || data.type !== TYPE) return;
        if (popup && event.source !== popup) return;
        if (options.sessionId && data.sessionId !== options.sessionId) return;
        finish(data);
      }

      // A result, "PENDING", "CONNECTING", "GONE" (token refused) or null (unreachable).
      function poll() {
        if (!token) return Promise.resolve("GONE");
        return fetch(origin + "/api/v1/connect/session/poll", {
          method: "POST", headers: {"Content-Type": "application/json"},
          body: JSON.stringify({token: token}), credentials: "omit", cache: "no-store"
        }).then(function (response) {
          if (response.status === 401 || response.status === 404) return "GONE";
          return response.ok ? response.json().then(fromSession) : null;
        }, function () { return null; });
      }

      function later(step) { if (!settled) timer = setTimeout(step, every); }

      // Ask the portal before calling it a cancel; `patient` (noopener) waits out PENDING.
      function follow(patient) {
        poll().then(function (state) {
          if (settled) return;
          if (state && typeof state === "object") return finish(state);
          if (state === "GONE" || (!patient && state !== "CONNECTING" && graceLeft-- <= 0)) {
            return closed();
          }
          later(function () { follow(patient); });
        });
      }

      function watch() {
        if (settled) return;
        var gone = true;
        try { gone = popup.closed; } catch (e) { /* gone */ }
        if (gone) follow(false); else timer = setTimeout(watch, 400);
      }

      var w = options.width || 500, h = options.height || 600;
      var left = (root.screenX || 0) + Math.max(0, ((root.outerWidth || w) - w) / 2);
      var top = (root.screenY || 0) + Math.max(0, ((root.outerHeight || h) - h) / 2);
      var features = "popup,width=" + w + ",height=" + h + ",left=" + Math.round(left) +
        ",top=" + Math.round(top) + (options.noopener ? ",noopener" : "");
      root.addEventListener("message", onMessage);
      popup = root.open(url.href, options.windowName || "portal-connect", features);
      if (options.noopener) {
        popup = null;
        return later(function () { follow(true); });
      }
      if (!popup || popup.closed) {
        popup = null;
        if (options.redirectFallback !== false) {
          root.removeEventListener("message", onMessage);
          root.location.assign(url.href);
          return;
        }
        return finish({type: TYPE, status: "error", sessionId: null, code: "POPUP_BLOCKED",
          error: "The browser blocked the connect window."});
      }
      timer = setTimeout(watch, 400);
    });
  }

  root.PortalConnect = {open: open, version: "1"};
})(window);
