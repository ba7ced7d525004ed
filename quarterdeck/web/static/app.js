// Keyboard help for search: "/" focuses the search box, arrows move through live results,
// Escape closes them. No inline scripts anywhere, so the Content-Security-Policy stays strict.
(function () {
  "use strict";

  document.documentElement.classList.add("js");

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
      links.forEach(function (a) { a.classList.remove("active"); a.setAttribute("aria-selected", "false"); });
      links[next].classList.add("active");
      links[next].setAttribute("aria-selected", "true");
      if (links[next].id) { target.setAttribute("aria-activedescendant", links[next].id); }
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
    var box = document.getElementById("global-search");
    if (box) { box.setAttribute("aria-expanded", "false"); box.removeAttribute("aria-activedescendant"); }
    var admin = document.getElementById("admin-menu");
    if (admin) { admin.open = false; }
  }

  // The combobox says whether its listbox is showing.
  document.addEventListener("htmx:afterSwap", function (event) {
    var box = document.getElementById("global-search");
    if (box && event.target && event.target.id === "live-results") {
      box.setAttribute("aria-expanded", event.target.querySelector("[role=option]") ? "true" : "false");
      box.removeAttribute("aria-activedescendant");
    }
  });

  // On narrow screens the menu folds behind a button.
  document.addEventListener("click", function (event) {
    var toggle = event.target instanceof Element ? event.target.closest("#menu-toggle") : null;
    if (toggle) {
      var menu = document.getElementById("site-menu");
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      if (menu) { menu.classList.toggle("open", open); }
      return;
    }
    var admin = document.getElementById("admin-menu");
    if (admin && admin.open && !(event.target instanceof Node && admin.contains(event.target))) { admin.open = false; }
  });

  document.addEventListener("click", function (event) {
    var live = document.getElementById("live-results");
    if (live && !live.contains(event.target) && event.target.id !== "global-search") {
      live.innerHTML = "";
      var box = document.getElementById("global-search");
      if (box) { box.setAttribute("aria-expanded", "false"); }
    }
  });
})();

// htmx requests carry the session's CSRF token from the page's meta tag.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) { event.detail.headers["X-CSRF-Token"] = meta.getAttribute("content"); }
});

// The dependency graph fits its box; drag to pan, Ctrl + wheel or the buttons to zoom, arrow keys pan
// while a zoom button has focus. All by moving the SVG's viewBox, so text stays sharp.
(function () {
  "use strict";

  function setUp(viewport) {
    var svg = viewport.querySelector("svg.depgraph");
    if (!svg || !svg.viewBox || !svg.viewBox.baseVal) { return; }
    var base = svg.viewBox.baseVal;
    var home = { x: base.x, y: base.y, w: base.width, h: base.height };
    var view = { x: home.x, y: home.y, w: home.w, h: home.h };

    function apply() { svg.setAttribute("viewBox", [view.x, view.y, view.w, view.h].join(" ")); }
    function zoom(factor, cx, cy) {
      var w = Math.min(Math.max(view.w * factor, home.w / 8), home.w * 4);
      var ratio = w / view.w;
      var px = cx === undefined ? view.x + view.w / 2 : cx;
      var py = cy === undefined ? view.y + view.h / 2 : cy;
      view.x = px - (px - view.x) * ratio;
      view.y = py - (py - view.y) * ratio;
      view.w = w;
      view.h = view.h * ratio;
      apply();
    }
    function pan(dx, dy) { view.x += dx; view.y += dy; apply(); }
    function fit() { view = { x: home.x, y: home.y, w: home.w, h: home.h }; apply(); }
    function scale() { return view.w / (svg.getBoundingClientRect().width || 1); }

    var tools = document.createElement("div");
    tools.className = "graph-tools";
    tools.setAttribute("role", "toolbar");
    tools.setAttribute("aria-label", "Graph view");
    [["+", "Zoom in", function () { zoom(0.8); }], ["−", "Zoom out", function () { zoom(1.25); }],
     ["Fit", "Fit the whole graph", fit]].forEach(function (spec) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = spec[0];
      button.setAttribute("aria-label", spec[1]);
      button.addEventListener("click", spec[2]);
      tools.appendChild(button);
    });
    tools.addEventListener("keydown", function (event) {
      var step = view.w / 10;
      var moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
      if (moves[event.key]) { event.preventDefault(); pan(moves[event.key][0], moves[event.key][1]); }
    });
    viewport.parentNode.insertBefore(tools, viewport);

    var drag = null;
    viewport.addEventListener("pointerdown", function (event) {
      if (event.target instanceof Element && event.target.closest("a")) { return; }
      drag = { x: event.clientX, y: event.clientY, moved: false };
      viewport.setPointerCapture(event.pointerId);
      viewport.classList.add("dragging");
    });
    viewport.addEventListener("pointermove", function (event) {
      if (!drag) { return; }
      var s = scale();
      pan((drag.x - event.clientX) * s, (drag.y - event.clientY) * s);
      drag.x = event.clientX;
      drag.y = event.clientY;
    });
    function end() { drag = null; viewport.classList.remove("dragging"); }
    viewport.addEventListener("pointerup", end);
    viewport.addEventListener("pointercancel", end);
    viewport.addEventListener("wheel", function (event) {
      if (!event.ctrlKey && !event.metaKey) { return; }
      event.preventDefault();
      var box = svg.getBoundingClientRect();
      var s = scale();
      zoom(event.deltaY > 0 ? 1.15 : 0.87, view.x + (event.clientX - box.left) * s, view.y + (event.clientY - box.top) * s);
    }, { passive: false });
  }

  function init() { document.querySelectorAll(".graph-viewport").forEach(setUp); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();

// A table wider than the screen scrolls sideways in its .table-wrap; keyboard users need to reach
// that scroll area too, so it becomes a focusable, named region while (and only while) it scrolls.
(function () {
  "use strict";

  function nameOf(wrap) {
    var table = wrap.querySelector("table");
    var caption = table && table.querySelector("caption");
    if (table && table.getAttribute("aria-label")) { return table.getAttribute("aria-label"); }
    if (caption) { return caption.textContent.trim(); }
    var heading = wrap.closest("section, main");
    heading = heading && heading.querySelector("h2, h1");
    return (heading ? heading.textContent.trim() + ": " : "") + "table, scrolls sideways";
  }

  function mark() {
    document.querySelectorAll(".table-wrap").forEach(function (wrap) {
      if (wrap.scrollWidth > wrap.clientWidth + 1) {
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("role", "region");
        wrap.setAttribute("aria-label", nameOf(wrap));
      } else if (wrap.getAttribute("role") === "region") {
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("role");
        wrap.removeAttribute("aria-label");
      }
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", mark); } else { mark(); }
  window.addEventListener("resize", mark);
  document.addEventListener("htmx:afterSettle", mark);
})();
