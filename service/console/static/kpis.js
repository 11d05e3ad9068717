// KPI charts drawn from the JSON the page carries; the tables below each chart hold the same numbers.
(function () {
  "use strict";
  function data(id) {
    var el = document.getElementById(id);
    try { return el ? JSON.parse(el.textContent) : []; } catch (e) { return []; }
  }
  function draw() {
    if (typeof window.Chart !== "function") { return; }
    var series = data("kpi-series");
    var days = series.map(function (d) { return d.day; });
    var frt = document.getElementById("frt-chart");
    if (frt) {
      new window.Chart(frt, {
        type: "line",
        data: { labels: days, datasets: [
          { label: "FRT p50 (min)", data: series.map(function (d) { return d.frt_p50_min; }), borderColor: "#1d4ed8", spanGaps: true },
          { label: "FRT p90 (min)", data: series.map(function (d) { return d.frt_p90_min; }), borderColor: "#b45309", spanGaps: true }
        ] },
        options: { animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: true } } }
      });
    }
    var sla = document.getElementById("sla-chart");
    if (sla) {
      new window.Chart(sla, {
        type: "bar",
        data: { labels: days, datasets: [
          { label: "SLA met (%)", data: series.map(function (d) { return d.sla_met_pct; }), backgroundColor: "#15803d" }
        ] },
        options: { animation: false, maintainAspectRatio: false, scales: { y: { beginAtZero: true, max: 100 } } }
      });
    }
    var intents = data("kpi-intents");
    var per = document.getElementById("intent-chart");
    if (per && intents.length) {
      var names = intents.map(function (d) { return d.intent; });
      new window.Chart(per, {
        type: "bar",
        data: { labels: names, datasets: [
          { label: "As is", data: intents.map(function (d) { return d.approved; }), backgroundColor: "#15803d" },
          { label: "Edited", data: intents.map(function (d) { return d.edited; }), backgroundColor: "#1d4ed8" },
          { label: "Rejected", data: intents.map(function (d) { return d.rejected; }), backgroundColor: "#b91c1c" }
        ] },
        options: { animation: false, maintainAspectRatio: false, indexAxis: "y", scales: { x: { stacked: true }, y: { stacked: true } } }
      });
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); } else { draw(); }
})();
