#!/usr/bin/env node
// Browser benchmark: classify latency and throughput, a 32-example x 5-epoch fine-tune, and
// cold load to first prediction, on WebGPU and on the CPU (WebAssembly), in one headless
// Chromium session each. Also the gzipped wasm and model sizes. Results go to stdout as a
// Markdown table (copy it into docs/benchmarks.md).
//
//   scripts/build-web && node scripts/bench-browser.mjs [--backends cpu,webgpu] [--reviews 256]
//
// WebGPU here is SwiftShader (a software GPU), so its figures say nothing about real GPUs.

import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { ROOT, launch, startServer } from '../tests/browser/harness.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const backends = option('backends', 'cpu,webgpu').split(',');
const reviews = Number(option('reviews', 256));

const heldout = JSON.parse(readFileSync(join(ROOT, 'web/heldout.json'), 'utf8'));
const texts = Array.from({ length: reviews }, (_, i) => heldout[i % heldout.length].text);
const examples = Array.from({ length: 32 }, (_, i) => heldout[(i * 3) % heldout.length]);

async function measure(backend, server) {
  const browser = await launch({ webgpu: backend === 'webgpu' });
  try {
    const page = await browser.newPage();
    await page.goto(`${server.url}widget-test/api.html`);
    return await page.evaluate(
      async ({ backend, texts, examples }) => {
        const { Classifier } = await import('/xinsheng.js');
        const clf = await Classifier.load({ backend });
        await clf.classify([texts[0]]);
        // performance.now() counts from navigation start: page, wasm, model and first answer.
        const coldMs = performance.now();
        const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
        const single = [];
        for (let i = 0; i < 15; i++) {
          const t = performance.now();
          await clf.classify([texts[i % texts.length]]);
          single.push(performance.now() - t);
        }
        let t = performance.now();
        await clf.classify(texts);
        const batchMs = performance.now() - t;
        t = performance.now();
        await clf.fineTune(examples, { epochs: 5, batchSize: 32 });
        const fineTuneMs = performance.now() - t;
        return { backend: clf.backend, coldMs, singleMs: median(single), batchMs, fineTuneMs };
      },
      { backend, texts, examples },
    );
  } finally {
    await browser.close();
  }
}

const server = await startServer();
const rows = [];
try {
  for (const backend of backends) {
    const r = await measure(backend, server);
    if (r.backend !== backend) throw new Error(`asked for ${backend}, got ${r.backend}`);
    rows.push(r);
    console.error(`${backend}: ${JSON.stringify(r)}`);
  }
} finally {
  server.close();
}

const wasm = readFileSync(join(ROOT, 'dist/xinsheng-web_bg.wasm'));
const model = readFileSync(join(ROOT, 'dist/models/default/model.bpk'));
const mb = (n) => `${(n / 1048576).toFixed(2)} MB`;
console.log(`| backend | cold load → first prediction | single review | batch of ${reviews} | fine-tune 32 × 5 epochs |`);
console.log('|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.backend} | ${(r.coldMs / 1000).toFixed(2)} s | ${r.singleMs.toFixed(1)} ms | ` +
      `${(reviews / (r.batchMs / 1000)).toFixed(0)} reviews/s | ${(r.fineTuneMs / 1000).toFixed(1)} s |`,
  );
}
console.log('');
console.log(`wasm ${mb(wasm.length)} (${mb(gzipSync(wasm, { level: 9 }).length)} gzipped); model ${mb(model.length)}`);
