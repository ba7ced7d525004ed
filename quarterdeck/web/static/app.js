// Keyboard help for search: "/" focuses the search box, arrows move through live results,
// Escape closes them. No inline scripts anywhere, so the Content-Security-Policy stays strict.
(function () {
  "use strict";

  function searchBox() {
    return document.getElementById("home-search") || document.getElementById("global-search");
  }

  function resultsFor(input) {
    return document.getElementById(input.id === "home-search" ? "home-results" : "live-results");
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    var typing = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement ||
      target instanceof HTMLSelectElement || (target && target.isContentEditable);
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      var box = searchBox();
      if (box) {
        event.preventDefault();
        box.focus();
        box.select();
      }
      return;
    }
    if (!(target instanceof HTMLInputElement) || (target.id !== "global-search" && target.id !== "home-search")) {
      if (event.key === "Escape") { closeAll(); }
      return;
    }
    var panel = resultsFor(target);
    var links = panel ? Array.prototype.slice.call(panel.querySelectorAll("a")) : [];
    var current = links.findIndex(function (a) { return a.classList.contains("active"); });
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!links.length) { return; }
      event.preventDefault();
      var next = event.key === "ArrowDown" ? current + 1 : current - 1;
      next = (next + links.length) % links.length;
      links.forEach(function (a) { a.classList.remove("active"); });
      links[next].classList.add("active");
      links[next].scrollIntoView({ block: "nearest" });
    } else if (event.key === "Enter" && current >= 0) {
      event.preventDefault();
      window.location.href = links[current].href;
    } else if (event.key === "Escape") {
      closeAll();
    }
  });

  function closeAll() {
    var live = document.getElementById("live-results");
    if (live) { live.innerHTML = ""; }
  }

  document.addEventListener("click", function (event) {
    var live = document.getElementById("live-results");
    if (live && !live.contains(event.target) && event.target.id !== "global-search") { live.innerHTML = ""; }
  });
})();

// htmx requests carry the session's CSRF token from the page's meta tag.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { event.detail.headers["X-CSRF-Token"] = meta.getAttribute("content"); }
});
