// Line plots with Chart.js (npm package chart.js, served from /app/vendor/chart.js). When it is
// not installed every plot becomes one clear message and the rest of the app works.
import { h } from "./dom.js";

const COLORS = ["#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#475569"];

export function chartsAvailable() {
  return typeof window.Chart === "function";
}

/**
 * A line chart in a box: {id, title, yTitle, logY}. Returns {box, chart}; chart is null (and
 * the box says why) when Chart.js is missing. Tests read the data with Chart.getChart(id).
 */
export function lineChart({ id, title, yTitle, logY = false }) {
  const heading = h("h3", { id: `${id}-title` }, title);
  if (!chartsAvailable()) {
    return {
      box: h("div", { class: "chart-box" }, heading, h("p", { class: "chart-missing", role: "note" },
        "Plots are unavailable: the charting library (npm package chart.js) is not installed. " +
        "Run scripts/setup, which installs it, then reload this page.")),
      chart: null,
    };
  }
  const canvas = h("canvas", { id, role: "img", "aria-labelledby": `${id}-title` });
  const box = h("div", { class: "chart-box" }, heading, h("div", { class: "chart-area" }, canvas));
  const chart = new window.Chart(canvas, {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      normalized: true,
      spanGaps: true,
      interaction: { mode: "nearest", intersect: false },
      plugins: { legend: { position: "bottom" } },
      scales: {
        x: { type: "linear", title: { display: true, text: "iteration" } },
        y: { type: logY ? "logarithmic" : "linear", title: { display: !!yTitle, text: yTitle || "" } },
      },
    },
  });
  return { box, chart };
}

/** Points {x, y} of two parallel arrays (non-numbers dropped). */
export function points(xs, ys) {
  const out = [];
  for (let i = 0; i < Math.min(xs.length, ys.length); i += 1) {
    if (typeof ys[i] === "number" && Number.isFinite(ys[i])) out.push({ x: xs[i], y: ys[i] });
  }
  return out;
}

/** Show these series [{label, data: [{x, y}]}] (keeps colors stable by position). */
export function setSeries(chart, series) {
  if (!chart) return;
  chart.data.datasets = series.map((s, i) => ({
    label: s.label,
    data: s.data,
    borderColor: COLORS[i % COLORS.length],
    backgroundColor: COLORS[i % COLORS.length],
    borderWidth: 2,
    pointRadius: s.data.length > 60 ? 0 : 2,
    tension: 0,
  }));
  chart.update("none");
}

/** The test outputs of a job's metrics as series: "<output> (test net N)". */
export function testSeries(metrics, prefix = "") {
  const test = metrics.test || { iteration: [], net: [], outputs: {} };
  const nets = [...new Set(test.net || [])].sort();
  const series = [];
  for (const [name, values] of Object.entries(test.outputs || {})) {
    for (const net of nets) {
      const xs = [];
      const ys = [];
      test.iteration.forEach((iteration, i) => {
        if (test.net[i] === net) {
          xs.push(iteration);
          ys.push(values[i]);
        }
      });
      const suffix = nets.length > 1 ? ` (test net ${net})` : "";
      series.push({ label: `${prefix}${name}${suffix}`, data: points(xs, ys) });
    }
  }
  return series;
}

export function destroy(chart) {
  if (chart) chart.destroy();
}
