#!/usr/bin/env node
// The workbench page on a whole file: opens the demo in headless Chromium, drops a file of N
// reviews (the test split's texts repeated; default 50,000) and measures, per backend,
// - the time from choosing the file to the last result in the table,
// - the longest main-thread task meanwhile (PerformanceObserver 'longtask' entries: the page
//   should never freeze for more than 50 ms while the engine works in its worker),
// - the peak JS heap of the page's main thread (performance.memory, precise-memory flag).
// Prints one JSON line per backend (copy the figures into docs/benchmarks.md).
//
//   scripts/build-web && node scripts/bench-workbench.mjs [--reviews 50000] [--backends cpu,webgpu]
//
// WebGPU runs on SwiftShader here (a software GPU on the CPU cores): its figure is not a GPU's.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, launch, startServer, writeTemp } from '../tests/browser/harness.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const n = Number(option('reviews', 50_000));
const backends = option('backends', 'cpu,webgpu').split(',');

const texts = readFileSync(join(ROOT, 'data/test.tsv'), 'utf8')
  .split('\n')
  .slice(1)
  .filter((l) => l.trim())
  .map((l) => l.split('\t').slice(1).join('\t'));
const reviews = Array.from({ length: n }, (_, i) => texts[i % texts.length]);
const file = writeTemp(`reviews-${n}.txt`, `${reviews.join('\n')}\n`);
const chars = reviews.reduce((sum, r) => sum + [...r].length, 0);

function observe() {
  window.__longest = 0;
  window.__longTasks = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      window.__longTasks++;
      window.__longest = Math.max(window.__longest, e.duration);
    }
  }).observe({ type: 'longtask', buffered: true });
  window.__peakHeap = 0;
  setInterval(() => {
    window.__peakHeap = Math.max(window.__peakHeap, performance.memory?.usedJSHeapSize ?? 0);
  }, 100);
}

const server = await startServer();
try {
  for (const backend of backends) {
    const browser = await launch({ webgpu: backend === 'webgpu', args: ['--enable-precise-memory-info'] });
    try {
      const page = await browser.newPage();
      await page.addInitScript(observe);
      await page.goto(`${server.url}?backend=${backend}&lang=en`);
      await page.waitForSelector('body[data-ready=true]', { timeout: 120_000 });
      const started = Date.now();
      await page.setInputFiles('#file', file);
      await page.waitForFunction((n) => document.body.dataset.classified === String(n), n, { timeout: 0, polling: 500 });
      const seconds = (Date.now() - started) / 1000;
      const measured = await page.evaluate(() => ({
        longestTaskMs: window.__longest,
        longTasks: window.__longTasks,
        peakHeapMB: window.__peakHeap / 2 ** 20,
        backendShown: document.getElementById('backend').dataset.state,
      }));
      console.log(
        JSON.stringify({
          backend,
          reviews: n,
          meanChars: +(chars / n).toFixed(1),
          seconds: +seconds.toFixed(1),
          reviewsPerSecond: +(n / seconds).toFixed(1),
          longestTaskMs: measured.longestTaskMs,
          longTasks: measured.longTasks,
          peakHeapMB: +measured.peakHeapMB.toFixed(1),
          ran: measured.backendShown,
        }),
      );
    } finally {
      await browser.close();
    }
  }
} finally {
  server.close();
}
