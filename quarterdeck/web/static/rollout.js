// A rollout's page follows the rollout live: an EventSource on /rollouts/{id}/stream says something
// changed, and the live part is fetched again (?fragment=steps) and put in place, step by step, so the
// step list (aria-live) announces only the steps that changed. Countdowns tick every second from the
// seconds the server gave (not the browser's clock). Refused controls and Deploy forms show the
// server's words instead of nothing. No inline scripts: the CSP forbids them.
(function () {
  "use strict";

  // ------------------------------------------------------------------ countdowns and waiting times

  function words(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) { return seconds + " s"; }
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) { return minutes + " min " + (seconds % 60) + " s"; }
    var hours = Math.floor(minutes / 60);
    if (hours < 24) { return hours + " h " + (minutes % 60) + " min"; }
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  function startTimers(root) {
    var now = performance.now();
    root.querySelectorAll("[data-seconds-left]").forEach(function (el) {
      if (el.qdDeadline === undefined) {
        el.qdDeadline = now + Number(el.getAttribute("data-seconds-left")) * 1000;
      }
    });
    root.querySelectorAll("[data-count-up]").forEach(function (el) {
      if (el.qdSince === undefined) {
        el.qdSince = now - Number(el.getAttribute("data-count-up")) * 1000;
      }
    });
  }

  function tick() {
    var now = performance.now();
    document.querySelectorAll("[data-seconds-left]").forEach(function (el) {
      if (el.qdDeadline === undefined) { return; }
      var left = Math.ceil((el.qdDeadline - now) / 1000);
      el.textContent = left > 0 ? words(left) : "due now";
      el.setAttribute("data-left", String(Math.max(0, left)));
    });
    document.querySelectorAll("[data-count-up]").forEach(function (el) {
      if (el.qdSince !== undefined) { el.textContent = words((now - el.qdSince) / 1000); }
    });
  }

  // ------------------------------------------------------------------ putting a fresh fragment in place

  var served = {};  // step id -> the HTML the server last sent for it

  function remember(list) {
    served = {};
    if (!list) { return; }
    Array.prototype.forEach.call(list.children, function (li) { served[li.id] = li.outerHTML; });
  }

  function apply(live, html) {
    var open = {};
    live.querySelectorAll("details[id]").forEach(function (d) { open[d.id] = d.open; });
    var template = document.createElement("template");
    template.innerHTML = html;
    var fresh = template.content.querySelector("#rollout-steps");
    var list = live.querySelector("#rollout-steps");
    if (fresh && list) {
      // Keep the list element (the live region) and replace only the steps that changed.
      var newSteps = Array.prototype.slice.call(fresh.children);
      var markups = {};
      newSteps.forEach(function (li) { markups[li.id] = li.outerHTML; });
      newSteps.forEach(function (li, index) {
        var old = list.children[index];
        if (!old) {
          list.appendChild(li);
        } else if (old.id !== li.id || served[li.id] !== markups[li.id]) {
          list.replaceChild(li, old);
        }
      });
      while (list.children.length > newSteps.length) { list.removeChild(list.lastElementChild); }
      fresh.replaceWith(list);
      served = markups;
    }
    live.replaceChildren(template.content);
    live.querySelectorAll("details[id]").forEach(function (d) { if (open[d.id] !== undefined) { d.open = open[d.id]; } });
    if (window.htmx) { window.htmx.process(live); }
    startTimers(live);
    tick();
  }

  function follow(live) {
    var status = document.getElementById("rollout-connection");
    function say(text) { if (status) { status.textContent = text; } }
    remember(live.querySelector("#rollout-steps"));
    startTimers(live);
    if (live.getAttribute("data-final") === "true" || !window.EventSource) { return; }

    var busy = false;
    var again = false;
    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      fetch(live.getAttribute("data-fragment"), {
        headers: { "HX-Request": "true" }, credentials: "same-origin", cache: "no-store"
      }).then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      }).then(function (html) {
        apply(live, html);
      }).catch(function () {
        say("Could not fetch the rollout's latest state; the next change tries again.");
      }).finally(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
    }

    var source = new EventSource(live.getAttribute("data-stream"));
    source.addEventListener("open", function () { say("This page follows the rollout as it moves."); });
    source.addEventListener("change", refresh);
    source.addEventListener("end", function () {
      source.close();
      refresh();
      say("The rollout is finished.");
    });
    // The browser reconnects by itself, sending the Last-Event-ID it saw: nothing is missed.
    source.addEventListener("error", function () {
      if (source.readyState !== EventSource.CLOSED) { say("Connection lost; reconnecting…"); }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // ------------------------------------------------------------------ refusals shown in words

  document.addEventListener("htmx:beforeSwap", function (event) {
    var detail = event.detail;
    var status = detail.xhr ? detail.xhr.status : 0;
    if (status < 400 || status >= 500) { return; }
    var elt = detail.requestConfig && detail.requestConfig.elt ? detail.requestConfig.elt : event.target;
    if (!(elt instanceof Element)) { return; }
    if (elt.closest("[data-swap-errors]")) {
      // The Deploy panel comes back with the refusal written on it.
      detail.shouldSwap = true;
      detail.isError = false;
    } else if (elt.closest("#rollout-live")) {
      var flash = document.getElementById("rollout-flash");
      if (flash) {
        detail.shouldSwap = true;
        detail.isError = false;
        detail.target = flash;
        detail.swapOverride = "innerHTML";
      }
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.id === "rollout-live") {
      var flash = document.getElementById("rollout-flash");
      if (flash) { flash.textContent = ""; }
      remember(target.querySelector("#rollout-steps"));
      startTimers(target);
      tick();
    }
  });

  function ready() {
    var live = document.getElementById("rollout-live");
    if (live) { follow(live); }
    setInterval(tick, 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
