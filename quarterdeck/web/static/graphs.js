// Service graphs: fetches the panels' series and the service's deploys, draws each panel with uPlot and
// marks every deploy as a vertical line (green succeeded, red failed, amber rolled back, blue running).
// A failure is said once, in words, naming the graphs it affects; the page renders no per-panel errors.
(function () {
  "use strict";

  var COLOURS = { succeeded: "#1a7f37", failed: "#cf222e", rolled_back: "#bf8700", running: "#0b5cad" };
  var LINE_COLOURS = ["#0b5cad", "#8250df", "#1a7f37", "#bf3989", "#bc4c00"];

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value;
    if (cls) { el.className = cls; }
    return el;
  }

  function markerPlugin(deploys) {
    return {
      hooks: {
        draw: function (u) {
          var ctx = u.ctx;
          ctx.save();
          ctx.lineWidth = 2 * devicePixelRatio;
          deploys.forEach(function (d) {
            var t = Date.parse(d.finished_at || d.started_at) / 1000;
            if (t < u.scales.x.min || t > u.scales.x.max) { return; }
            var x = Math.round(u.valToPos(t, "x", true));
            ctx.strokeStyle = COLOURS[d.status] || "#57606a";
            ctx.setLineDash([5, 4]);
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          });
          ctx.restore();
        }
      }
    };
  }

  function drawPanel(container, panel, deploys, width, span) {
    var box = document.createElement("div");
    box.className = "panel";
    box.dataset.panel = panel.key;
    box.appendChild(text("h3", panel.title + (panel.unit ? " (" + panel.unit + ")" : "")));
    container.appendChild(box);
    if (!panel.series.length) { box.appendChild(text("p", "No data in this range.", "muted small")); return; }
    var times = panel.series[0].points.map(function (p) { return p[0]; });
    var data = [times];
    var series = [{}];
    panel.series.forEach(function (s, i) {
      var byTime = {};
      s.points.forEach(function (p) { byTime[p[0]] = p[1]; });
      data.push(times.map(function (t) { return t in byTime ? byTime[t] : null; }));
      var label = Object.keys(s.labels).map(function (k) { return k + "=" + s.labels[k]; }).join(", ") || panel.title;
      series.push({ label: label, stroke: LINE_COLOURS[i % LINE_COLOURS.length], width: 1.5, spanGaps: false });
    });
    var opts = {
      width: width,
      height: 180,
      series: series,
      scales: { x: { time: true, range: function () { return span; } } },
      plugins: [markerPlugin(deploys)],
      axes: [{}, { size: 60 }]
    };
    new uPlot(opts, data, box);
  }

  function load(section, range) {
    var status = document.getElementById("graphs-status");
    var panels = document.getElementById("panels");
    var problems = document.getElementById("graphs-problems");
    status.textContent = "Loading graphs…";
    var graphsUrl = section.dataset.graphs + "?range=" + encodeURIComponent(range);
    fetch(graphsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (graphs) {
        if (!graphs.panels) { throw new Error((graphs.error && graphs.error.message) || "no graphs"); }
        var deploysUrl = section.dataset.deploys + "?per_page=500&since=" + encodeURIComponent(graphs.start);
        return fetch(deploysUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (r) { return r.json(); })
          .then(function (page) { return [graphs, page.items || []]; });
      })
      .then(function (both) {
        var graphs = both[0], deploys = both[1];
        panels.replaceChildren();
        problems.replaceChildren();
        var titles = function (list) { return list.map(function (p) { return p.title; }).join(", "); };
        if (graphs.error) {
          // Prometheus itself failed: said once, with the graphs it keeps from being drawn.
          status.textContent = graphs.error + ". Not drawn: " + titles(graphs.panels) + ".";
          status.className = "alert alert-warning";
          section.dataset.loaded = range;
          return;
        }
        var count = deploys.length === 1 ? "1 deploy" : deploys.length + " deploys";
        status.textContent = count + " in the last " + range + ".";
        status.className = "muted small";
        var failed = graphs.panels.filter(function (p) { return p.error; });
        if (failed.length) {
          var box = text("div", "", "alert alert-warning");
          box.appendChild(text("p", (failed.length === 1 ? "This graph" : "These graphs") + " could not be drawn:"));
          var list = document.createElement("ul");
          failed.forEach(function (p) { list.appendChild(text("li", p.title + ": " + p.error)); });
          box.appendChild(list);
          problems.appendChild(box);
        }
        var full = panels.clientWidth;
        var width = Math.max(240, Math.min(620, full >= 860 ? full / 2 - 20 : full - 10));
        var span = [Date.parse(graphs.start) / 1000, Date.parse(graphs.end) / 1000];
        graphs.panels.forEach(function (panel) {
          if (!panel.error) { drawPanel(panels, panel, deploys, width, span); }
        });
        section.dataset.loaded = range;
      })
      .catch(function (err) { status.textContent = "Graphs could not be loaded: " + err.message; status.className = "alert"; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = document.getElementById("graphs");
    if (!section || !section.dataset.graphs || typeof uPlot === "undefined") { return; }
    section.querySelectorAll("[data-range]").forEach(function (button) {
      button.addEventListener("click", function () {
        section.querySelectorAll("[data-range]").forEach(function (b) { b.classList.remove("primary"); });
        button.classList.add("primary");
        load(section, button.dataset.range);
      });
    });
    load(section, "6h");
  });
})();
