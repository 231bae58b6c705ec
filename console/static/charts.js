// Draws every [data-chart] from the JSON next to it with ECharts (served by Siyu; the numbers are also in a table).
(function () {
  "use strict";
  function option(spec) {
    const base = {tooltip: {trigger: "axis"}, grid: {left: 40, right: 16, top: 32, bottom: 28}, animation: false};
    if (spec.kind === "flow") {
      return Object.assign(base, {
        legend: {data: ["新增", "流失", "净增"]},
        xAxis: {type: "category", data: spec.days}, yAxis: {type: "value", minInterval: 1},
        series: [
          {name: "新增", type: "bar", data: spec.added, itemStyle: {color: "#2f9e44"}},
          {name: "流失", type: "bar", data: spec.lost.map((n) => -n), itemStyle: {color: "#e03131"}},
          {name: "净增", type: "line", data: spec.net, itemStyle: {color: "#1971c2"}},
        ],
      });
    }
    if (spec.kind === "funnel") {
      return {tooltip: {trigger: "item"}, animation: false, series: [{
        type: "funnel", left: "10%", width: "80%", top: 16, bottom: 16, sort: "none", minSize: "8%",
        label: {show: true, position: "inside", formatter: "{b}  {c}"},
        data: spec.labels.map((name, i) => ({name: name, value: spec.values[i]})),
      }]};
    }
    return Object.assign(base, {
      xAxis: {type: "category", data: spec.labels, axisLabel: {interval: 0}}, yAxis: {type: "value", minInterval: 1},
      series: [{type: "bar", data: spec.values, itemStyle: {color: "#1971c2"}, label: {show: true, position: "top"}}],
    });
  }
  const charts = [];
  function draw() {
    for (const box of document.querySelectorAll("[data-chart]:not([data-drawn])")) {
      const data = document.getElementById("chart-" + box.dataset.chart);
      if (!data || !window.echarts) continue;
      const chart = echarts.init(box, null, {renderer: "svg"});
      chart.setOption(option(JSON.parse(data.textContent)));
      box.dataset.drawn = "1";
      charts.push(chart);
    }
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);  // a fragment htmx swapped in (polled results)
  window.addEventListener("resize", () => charts.forEach((c) => c.isDisposed() || c.resize()));
})();
