// ReplyDesk console: live SLA countdowns, draft picking, inline tone state and keyboard shortcuts.
// Progressive enhancement only: every action here also works as a plain link or form without this file.
(function () {
  "use strict";

  var serverSkewMs = 0; // server clock minus browser clock, so countdowns follow the server's SLA times
  function now() { return Date.now() + serverSkewMs; }

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function span(seconds) {
    var s = Math.abs(Math.round(seconds));
    var m = Math.floor(s / 60);
    if (m >= 60) { return Math.floor(m / 60) + " h " + pad(m % 60) + " min"; }
    return m + " min " + pad(s % 60) + " s";
  }
  var LABELS = { ok: "On time", at_risk: "At risk", breached: "Breached" };

  function tickSla() {
    var items = document.querySelectorAll(".sla[data-due]");
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var due = Date.parse(el.getAttribute("data-due"));
      var risk = Date.parse(el.getAttribute("data-at-risk"));
      var t = now();
      var state = t >= due ? "breached" : (t >= risk ? "at_risk" : "ok");
      el.classList.remove("sla--ok", "sla--at_risk", "sla--breached");
      el.classList.add("sla--" + state);
      el.setAttribute("data-state", state);
      var row = el.closest("tr");
      if (row) {
        row.classList.remove("sla-row--ok", "sla-row--at_risk", "sla-row--breached");
        row.classList.add("sla-row--" + state);
      }
      var label = el.querySelector(".sla-state");
      if (label) { label.textContent = LABELS[state]; }
      var left = el.querySelector(".sla-left");
      if (left) {
        var secs = (due - t) / 1000;
        left.textContent = secs >= 0 ? span(secs) + " left" : "overdue " + span(secs);
      }
    }
  }

  // -- the composer -------------------------------------------------------------------------------------
  function composer() { return document.getElementById("composer-text"); }

  function pickDraft(index) {
    var card = document.getElementById("draft-" + index);
    var box = composer();
    if (!card || !box) { return false; }
    var text = card.querySelector(".draft-text").textContent;
    box.value = text.trim();
    document.getElementById("composer-suggestion").value = card.getAttribute("data-suggestion-id");
    var source = document.getElementById("composer-source");
    if (source) { source.textContent = "(editing draft " + index + ")"; }
    var cards = document.querySelectorAll(".draft");
    for (var i = 0; i < cards.length; i++) { cards[i].classList.toggle("draft--picked", cards[i] === card); }
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
    box.dispatchEvent(new Event("input", { bubbles: true })); // re-run the tone check on the new text
    return true;
  }

  function pickedCard() {
    var id = (document.getElementById("composer-suggestion") || {}).value;
    return id ? document.querySelector('.draft[data-suggestion-id="' + id + '"]') : document.getElementById("draft-1");
  }

  function clearComposer() {
    var box = composer();
    if (!box) { return; }
    box.value = "";
    document.getElementById("composer-suggestion").value = "";
    var source = document.getElementById("composer-source");
    if (source) { source.textContent = "(your own reply)"; }
    var cards = document.querySelectorAll(".draft");
    for (var i = 0; i < cards.length; i++) { cards[i].classList.remove("draft--picked"); }
    box.focus();
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }

  // A block finding makes the override reason required (the server enforces it too).
  function syncBlocking() {
    var findings = document.getElementById("tone-findings");
    var reason = document.getElementById("override-reason");
    if (!findings || !reason) { return; }
    var blocking = !!findings.querySelector('[data-blocking="true"]');
    reason.required = blocking;
    reason.setAttribute("aria-required", blocking ? "true" : "false");
    reason.closest("form").classList.toggle("composer--blocked", blocking);
  }

  function submitComposer() {
    var form = document.getElementById("composer");
    if (!form) { return; }
    if (typeof form.requestSubmit === "function") { form.requestSubmit(); } else { form.submit(); }
  }

  // -- keyboard -----------------------------------------------------------------------------------------
  function typing(target) {
    var tag = (target.tagName || "").toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function go(url) { if (url) { window.location.assign(url); } }

  function queueRows() { return Array.prototype.slice.call(document.querySelectorAll("#queue-rows a.open")); }

  function moveInQueue(step) {
    var rows = queueRows();
    if (!rows.length) { return; }
    var i = rows.indexOf(document.activeElement);
    var next = i < 0 ? (step > 0 ? 0 : rows.length - 1) : Math.min(rows.length - 1, Math.max(0, i + step));
    rows[next].focus();
  }

  var pendingG = false;
  function onKey(event) {
    var help = document.getElementById("help");
    if (event.key === "Escape") {
      if (help && help.open) { help.close(); return; }
      if (typing(event.target)) { event.target.blur(); }
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && event.target.id === "composer-text") {
        event.preventDefault();
        submitComposer();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var conv = document.querySelector(".conversation[data-conversation-id]");
    var key = event.key;
    if (pendingG) {
      pendingG = false;
      if (key === "q") { event.preventDefault(); go("/console/queue"); }
      return;
    }
    if (key === "?") { event.preventDefault(); if (help && !help.open) { help.showModal(); } return; }
    if (key === "g") { pendingG = true; return; }
    if (!conv) {
      if (key === "j") { event.preventDefault(); moveInQueue(1); }
      else if (key === "k") { event.preventDefault(); moveInQueue(-1); }
      return;
    }
    if (key === "j" || key === "n") { event.preventDefault(); go(conv.getAttribute("data-next")); }
    else if (key === "k" || key === "p") { event.preventDefault(); go(conv.getAttribute("data-prev")); }
    else if (key === "1" || key === "2" || key === "3") { if (pickDraft(key)) { event.preventDefault(); } }
    else if (key === "c") { var box = composer(); if (box) { event.preventDefault(); box.focus(); } }
    else if (key === "a") { event.preventDefault(); submitComposer(); }
    else if (key === "r") {
      var card = pickedCard();
      var reason = card && card.querySelector('input[name="reason"]');
      if (reason) { event.preventDefault(); reason.focus(); }
    } else if (key === "m") {
      var claim = document.getElementById("claim");
      if (claim) { event.preventDefault(); claim.click(); }
    }
  }

  function onClick(event) {
    var pick = event.target.closest("[data-pick]");
    if (pick && pickDraft(pick.getAttribute("data-pick"))) { event.preventDefault(); return; }
    if (event.target.closest("[data-clear]")) { event.preventDefault(); clearComposer(); return; }
    if (event.target.closest("[data-help]")) {
      var help = document.getElementById("help");
      if (help && !help.open) { help.showModal(); }
    }
  }

  function start() {
    var serverNow = Date.parse(document.body.getAttribute("data-server-now") || "");
    if (!isNaN(serverNow)) { serverSkewMs = serverNow - Date.now(); }
    tickSla();
    window.setInterval(tickSla, 1000);
    syncBlocking();
    document.addEventListener("keydown", onKey);
    document.addEventListener("click", onClick);
    document.body.addEventListener("htmx:afterSwap", function () { tickSla(); syncBlocking(); });
    var picked = document.getElementById("composer-suggestion");
    if (picked && picked.value) {
      var card = document.querySelector('.draft[data-suggestion-id="' + picked.value + '"]');
      if (card) { card.classList.add("draft--picked"); }
    }
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
