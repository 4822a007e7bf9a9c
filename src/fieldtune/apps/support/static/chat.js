/* fieldtune support: the customer's chat. Posts messages, shows answers, polls for an agent's reply. */
(function () {
  "use strict";

  var POLL_MS = Number(document.body.dataset.pollMs) || 3000;
  var KEY = "fieldtune_support_session";  // per tab: a reload keeps the conversation
  var WHO = {user: "You", assistant: "Assistant", agent: "Agent"};
  var log = document.getElementById("chat-log");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("message");
  var send = document.getElementById("send");
  var status = document.getElementById("chat-status");
  var sessionId = sessionStorage.getItem(KEY);
  var shown = {};  // turn ids already on the page
  var after = 0;  // the poll asks for turns after this id (only polls move it: no agent turn is skipped)
  var timer = null;
  var call = fieldtuneSupport.call;  // static/api.js

  function say(text, bad) {
    status.textContent = text;
    status.className = "status" + (bad ? " bad" : "");
  }

  function add(role, who, text, handoff) {
    var item = document.createElement("li");
    item.className = "msg msg-" + role + (handoff ? " handoff" : "");
    var name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    var body = document.createElement("p");
    body.textContent = text;
    item.appendChild(name);
    item.appendChild(body);
    log.appendChild(item);
    item.scrollIntoView({block: "nearest"});
  }

  function render(turn) {
    if (shown[turn.id]) return;
    shown[turn.id] = true;
    var reply = turn.reply || {};
    var who = turn.role === "agent" && reply.agent ? "Agent " + reply.agent : WHO[turn.role] || turn.role;
    add(turn.role, who, turn.text, turn.role === "assistant" && reply.handoff);
  }

  function poll() {
    timer = null;
    if (!sessionId) return;
    call("GET", "/v1/support/sessions/" + encodeURIComponent(sessionId) + "?after=" + after)
      .then(function (data) {
        data.turns.forEach(function (turn) {
          after = Math.max(after, turn.id);
          if (turn.role === "agent") render(turn);
        });
        var h = data.handoff;
        if (h && h.status !== "resolved") schedule();
      })
      .catch(function () { schedule(); });  // a network blip: try again
  }

  function schedule() {
    if (!timer) timer = setTimeout(poll, POLL_MS);
  }

  function restore() {
    if (!sessionId) return;
    call("GET", "/v1/support/sessions/" + encodeURIComponent(sessionId))
      .then(function (data) {
        data.turns.forEach(function (turn) { render(turn); after = Math.max(after, turn.id); });
        if (data.handoff && data.handoff.status !== "resolved") schedule();
      })
      .catch(function () { reset(); });  // gone (a new database): start afresh
  }

  function reset() {
    sessionId = null;
    sessionStorage.removeItem(KEY);
    if (timer) clearTimeout(timer);
    timer = null;
    shown = {};
    after = 0;
    log.textContent = "";
    say("");
  }

  function ask(message, retried) {
    var body = {message: message};
    if (sessionId) body.session_id = sessionId;
    return call("POST", "/v1/support/chat", body).then(function (reply) {
      sessionId = reply.session_id;
      sessionStorage.setItem(KEY, sessionId);
      shown[reply.turn_id] = true;
      add("assistant", "Assistant", reply.text, reply.handoff);
      if (reply.handoff) schedule();
    }).catch(function (e) {
      if (e.type === "unknown_session" && !retried) {
        sessionId = null;
        sessionStorage.removeItem(KEY);
        return ask(message, true);
      }
      throw e;
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var message = input.value.trim();
    if (!message) return;
    add("user", "You", message, false);
    input.value = "";
    send.disabled = true;
    say("The assistant is answering…");
    ask(message, false)
      .then(function () { say(""); })
      .catch(function (e) { say("Not sent: " + e.message, true); })
      .then(function () { send.disabled = false; input.focus(); });
  });

  document.getElementById("new-chat").addEventListener("click", function () {
    reset();
    input.focus();
  });

  restore();
})();
