/* fieldtune support: what the chat and the agent console share, loaded before either. One JSON call to
   the /v1/support/* API (the token cookie goes along); a failed call rejects with the server's error
   message, and its type (e.g. unknown_session) as error.type. */
var fieldtuneSupport = (function () {
  "use strict";

  var ROOT = document.body.dataset.root || "";

  function call(method, path, body) {
    var options = {method: method, credentials: "same-origin", headers: {"Accept": "application/json"}};
    if (body) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(ROOT + path, options).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) {
          var error = new Error((data.error && data.error.message) || "HTTP " + r.status);
          error.type = data.error && data.error.type;
          throw error;
        }
        return data;
      });
    });
  }

  return {call: call};
})();
