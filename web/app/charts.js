// Charts drawn with uPlot (web/vendor/uplot, MIT): bar charts for the overview and the
// loss/accuracy curve of fine-tuning. uPlot styles through the CSSOM, so the strict CSP holds.

import uPlot from '../vendor/uplot/uPlot.esm.js';

const COLORS = ['#1f6feb', '#cf222e', '#1a7f37', '#9a6700', '#8250df', '#bf3989', '#0a3069', '#6e7781'];

function width(el, fallback) {
  return Math.max(240, Math.min(el.clientWidth || fallback, 720));
}

/**
 * A bar chart in `el`: one bar per category. Returns `update(categories, values, title)`;
 * the chart is rebuilt when the categories change and only re-fed otherwise.
 */
export function barChart(el, { height = 180, color = COLORS[0] } = {}) {
  let plot = null;
  let shape = '';
  return function update(categories, values, title) {
    const key = `${categories.join('\u0001')}|${title}`;
    const data = [categories.map((_, i) => i), values];
    if (plot && key === shape) {
      plot.setData(data);
      return;
    }
    plot?.destroy();
    shape = key;
    const bars = uPlot.paths.bars({ size: [0.7, 80], align: 0 });
    plot = new uPlot(
      {
        width: width(el, 360),
        height,
        legend: { show: false },
        cursor: { show: false },
        scales: { x: { time: false, range: [-0.5, categories.length - 0.5] }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
        axes: [
          { values: (u, ticks) => ticks.map((i) => categories[i] ?? ''), splits: () => categories.map((_, i) => i), grid: { show: false } },
          { size: 50 },
        ],
        series: [
          {},
          {
            label: title,
            paths: bars,
            points: { show: false },
            fill: `${color}cc`,
            stroke: color,
          },
        ],
      },
      data,
      el,
    );
  };
}

/** Tick steps for a count (training steps): whole numbers only, never 2.5. */
const WHOLE_INCREMENTS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10_000, 20_000, 50_000, 100_000];

/**
 * The loss and accuracy of fine-tuning, step by step: returns `update(points)`. The legend
 * names the two series (not the step, whose value a static legend has none of); the step axis
 * ticks whole steps.
 */
export function trainingChart(el, { loss, accuracy, step }) {
  const plot = new uPlot(
    {
      width: width(el, 640),
      height: 180,
      cursor: { show: false },
      legend: { live: false },
      scales: {
        x: { time: false, range: (u, min, max) => [1, Math.max(2, max ?? 2)] },
        loss: { range: (u, min, max) => [0, Math.max(max, 1e-6) * 1.05] },
        acc: { range: [0, 1] },
      },
      axes: [
        { label: step, incrs: WHOLE_INCREMENTS, values: (u, ticks) => ticks.map((v) => String(Math.round(v))) },
        { scale: 'loss', label: loss, size: 50 },
        { scale: 'acc', side: 1, label: accuracy, grid: { show: false }, size: 50 },
      ],
      series: [{}, { label: loss, scale: 'loss', stroke: '#6e7781', width: 2 }, { label: accuracy, scale: 'acc', stroke: '#1a7f37', width: 2 }],
    },
    [[], [], []],
    el,
  );
  return (points) => plot.setData([points.map((_, i) => i + 1), points.map((p) => p.loss), points.map((p) => p.accuracy)]);
}

export { COLORS };
