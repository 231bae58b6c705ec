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
    if (spec.kind === "money") {  // group-buy per day: paid and refunded, in yuan
      return Object.assign(base, {
        legend: {data: ["支付", "退款"]}, grid: {left: 56, right: 16, top: 32, bottom: 28},
        tooltip: {trigger: "axis", valueFormatter: (v) => "¥" + Number(v).toFixed(2)},
        xAxis: {type: "category", data: spec.days}, yAxis: {type: "value", axisLabel: {formatter: "¥{value}"}},
        series: [
          {name: "支付", type: "bar", data: spec.paid, itemStyle: {color: "#2f9e44"}},
          {name: "退款", type: "bar", data: spec.refunded, itemStyle: {color: "#e03131"}},
        ],
      });
    }
    if (spec.kind === "funnel") {
      // A funnel of centred horizontal bars (the vendored common build has no funnel series): an invisible
      // bar of half the missing width on each step centres the visible one, the widest step on top.
      const top = Math.max(1, ...spec.values);
      return {
        animation: false, grid: {left: 150, right: 24, top: 8, bottom: 8},
        tooltip: {trigger: "item", formatter: (p) => (p.seriesIndex === 1 ? `${p.name}: ${p.value}` : "")},
        xAxis: {type: "value", max: top, show: false},
        yAxis: {type: "category", inverse: true, data: spec.labels, axisTick: {show: false}, axisLine: {show: false}},
        series: [
          {type: "bar", stack: "f", silent: true, itemStyle: {color: "transparent"},
           data: spec.values.map((v) => (top - v) / 2)},
          {type: "bar", stack: "f", barWidth: "70%", data: spec.values,
           itemStyle: {color: "#1971c2"}, label: {show: true, position: "inside", color: "#fff"}},
        ],
      };
    }
    return Object.assign(base, {
      xAxis: {type: "category", data: spec.labels, axisLabel: {interval: 0}}, yAxis: {type: "value", minInterval: 1},
      series: [{type: "bar", data: spec.values, itemStyle: {color: "#1971c2"}, label: {show: true, position: "top"}}],
    });
  }
  const charts = [];
  function draw() {
    for (const old of charts.splice(0)) {  // charts whose box a swap removed are let go
      if (document.body.contains(old.getDom())) charts.push(old); else old.dispose();
    }
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
