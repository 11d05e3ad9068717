// The Chatwoot Dashboard App side of the panel: Chatwoot posts the open conversation to this iframe
// (`{"event": "appContext", "data": {"conversation": …, "contact": …, "currentAgent": …}}`, a JSON string) when
// it loads, and again when asked with "chatwoot-dashboard-app:fetch-info". Messages from origins other than
// the configured Chatwoot ones are ignored.
(function () {
  "use strict";
  var holder = document.querySelector("[data-allowed-origins]");
  if (!holder) { return; }
  var allowed = (holder.getAttribute("data-allowed-origins") || "").split(/\s+/).filter(function (o) {
    return o && o.charAt(0) !== "'";
  });

  function fromChatwoot(origin) { return allowed.indexOf(origin) >= 0; }

  function target(context) {
    var conv = context && context.conversation;
    if (!conv) { return null; }
    var account = conv.account_id || (context.account && context.account.id);
    var id = conv.id;
    if (!account || !id) { return null; }
    return { account: String(account), conversation: String(id) };
  }

  window.addEventListener("message", function (event) {
    if (!fromChatwoot(event.origin)) { return; }
    var message = event.data;
    if (typeof message === "string") {
      try { message = JSON.parse(message); } catch (e) { return; }
    }
    if (!message || message.event !== "appContext") { return; }
    var where = target(message.data);
    if (!where) { return; }
    var current = holder.getAttribute("data-external-id");
    if (current === "chatwoot:" + where.account + ":" + where.conversation) { return; }
    var status = document.getElementById("embed-status");
    if (status && status.getAttribute("data-signed-in") !== "true") { return; } // sign in first
    window.location.assign("/console/embed/chatwoot/open?account_id=" + encodeURIComponent(where.account) +
      "&conversation_id=" + encodeURIComponent(where.conversation));
  });

  // Ask for the context (Chatwoot also sends it on load, but this page may load after a sign-in).
  if (window.parent !== window) {
    for (var i = 0; i < allowed.length; i++) {
      window.parent.postMessage("chatwoot-dashboard-app:fetch-info", allowed[i]);
    }
  }
})();
