/* fieldtune support: the agent console. Claims and resolves handoffs; the queue checks for new ones. */
(function () {
  "use strict";

  var call = fieldtuneSupport.call;  // static/api.js
  var POLL_MS = Math.max(Number(document.body.dataset.pollMs) || 3000, 1000);
  var NAME_KEY = "fieldtune_support_agent";
  var nameInput = document.getElementById("agent-name");

  function show(node, text, ok) {
    if (!node) return;
    node.textContent = text;
    node.className = "status " + (ok ? "ok" : "bad");
  }

  // the agent's name: remembered in this browser, asked for before a claim or an answer
  if (nameInput) {
    nameInput.value = localStorage.getItem(NAME_KEY) || "";
    nameInput.addEventListener("input", function () { localStorage.setItem(NAME_KEY, nameInput.value.trim()); });
  }

  function agentName(status) {
    var name = nameInput ? nameInput.value.trim() : "";
    if (!name) {
      show(status, "Enter your name first.", false);
      if (nameInput) nameInput.focus();
    }
    return name;
  }

  function wireHandoff(panel) {
    var id = panel.dataset.handoffId;
    var status = document.getElementById("answer-status");
    var base = "/v1/support/handoffs/" + id;
    var buttons = panel.querySelectorAll(".answer button");

    function busy(on) {
      Array.prototype.forEach.call(buttons, function (b) { b.disabled = on || b.dataset.done === "1"; });
    }

    function resolve(body) {
      var agent = agentName(status);
      if (!agent) return;
      body.agent = agent;
      busy(true);
      show(status, "Sending…", true);
      call("POST", base + "/resolve", body)
        .then(function () {
          show(status, "Sent: the customer sees your answer now.", true);
          setTimeout(function () { location.reload(); }, 600);
        })
        .catch(function (e) { show(status, e.message, false); busy(false); });
    }

    var claim = document.getElementById("claim");
    if (claim) {
      claim.addEventListener("click", function () {
        var agent = agentName(status);
        if (!agent) return;
        call("POST", base + "/claim", {agent: agent})
          .then(function (h) {
            document.getElementById("claimed-by").textContent = h.agent;
            document.getElementById("handoff-status").textContent = h.status;
            claim.textContent = "Claimed";
            claim.dataset.done = "1";
            claim.disabled = true;
            show(status, "Claimed: it is yours to answer.", true);
          })
          .catch(function (e) { show(status, e.message, false); });
      });
    }
    panel.querySelectorAll(".use-template").forEach(function (button) {
      button.addEventListener("click", function () { resolve({template_id: button.dataset.templateId}); });
    });
    var templateForm = document.getElementById("template-form");
    if (templateForm) {
      templateForm.addEventListener("submit", function (event) {
        event.preventDefault();
        resolve({template_id: templateForm.elements.template_id.value});
      });
    }
    var answerForm = document.getElementById("answer-form");
    if (answerForm) {
      answerForm.addEventListener("submit", function (event) {
        event.preventDefault();
        var intent = answerForm.elements.intent.value.trim();
        resolve({answer: answerForm.elements.answer.value, intent: intent || null});
      });
    }
  }

  // the queue: check for new or taken handoffs and offer a refresh (never reload under the agent's cursor)
  function watchQueue(list) {
    var note = document.getElementById("queue-note");
    var known = list.dataset.ids || "";
    function check() {
      call("GET", "/v1/support/handoffs?status=pending")
        .then(function (rows) {
          var ids = rows.map(function (h) { return h.id; }).join(",");
          if (ids !== known && !note.querySelector("button")) {
            note.textContent = "The queue has changed. ";
            note.className = "status ok";
            var refresh = document.createElement("button");
            refresh.type = "button";
            refresh.textContent = "Refresh";
            refresh.addEventListener("click", function () { location.reload(); });
            note.appendChild(refresh);
          }
        })
        .catch(function () {})
        .then(function () { setTimeout(check, POLL_MS); });
    }
    setTimeout(check, POLL_MS);
  }

  var panel = document.getElementById("handoff");
  if (panel && panel.dataset.status !== "resolved") wireHandoff(panel);
  var queue = document.querySelector("ul.queue");
  if (queue) watchQueue(queue);
})();
