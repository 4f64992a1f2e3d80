#!/usr/bin/env node
// Browser benchmark, xinsheng against TensorFlow.js in one headless Chromium session (WebGPU
// through SwiftShader): cold load to first prediction, single-review latency, classify
// throughput, a 32-example fine-tune, and WebGPU dispatches per single-review forward pass.
// xinsheng runs on the CPU (WebAssembly) and on WebGPU; TensorFlow.js 4.22 runs the same
// architecture (embedding 128 → bidirectional GRU 128 → masked mean+max pooling → dense; its
// GRU applies the reset gate before the hidden matmul, it has no reset-after variant) on its wasm, webgl and webgpu backends, on reviews padded and batched the same way.
// A row's third part picks a variant: `xinsheng-cpu-w2` classifies with a pool of 2 engine
// workers (`workers: 2`; plain `xinsheng-cpu` uses 1), `tfjs-<backend>-lstm` runs the seed's
// model instead (embedding 128 → one LSTM 128 over 100 steps, pre-padded → dense: about our
// FLOPs per review). Classify figures are the median of 3 runs after one warm-up run (the wasm
// engines tier up from their baseline compiler during the first). Results go to stdout as
// Markdown tables (copy them into docs/benchmarks.md), or with --json as one JSON line.
//
//   scripts/build-web && node scripts/bench-browser.mjs [--reviews 64] [--large 1024] [--epochs 1]
//       [--rows xinsheng-cpu,xinsheng-cpu-w2,xinsheng-webgpu,tfjs-wasm,tfjs-webgl,tfjs-webgpu,...]
//       [--gpu] [--json]
//
// --large N: CPU xinsheng rows also classify N reviews (chunks of 256 over the pool; 0: skip).
// --gpu: WebGPU on the machine's real GPU (Chromium's Vulkan flags, headless) instead of
// SwiftShader; needs nothing typed in, for unattended runs on a GPU machine. Set $CHROMIUM to
// the browser to use. --json: one line, {date, chromium, adapter, rows, sizes}.
//
// TensorFlow.js is installed on first use into scripts/tfjs/ (npm, pinned by its lockfile); a
// machine without the registry needs scripts/tfjs/node_modules copied over.
// SwiftShader is a software GPU: its figures say nothing about real GPUs.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { ROOT, countDispatches, engineWorker, launch, startServer } from '../tests/browser/harness.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const reviews = Number(option('reviews', 64));
const large = Number(option('large', 1024));
const epochs = Number(option('epochs', 1));
const hardware = args.includes('--gpu');
const json = args.includes('--json');
const rows = option(
  'rows',
  'xinsheng-cpu,xinsheng-cpu-w2,xinsheng-webgpu,tfjs-wasm,tfjs-webgl,tfjs-webgpu,tfjs-wasm-lstm,tfjs-webgl-lstm',
).split(',');

const heldout = JSON.parse(readFileSync(join(ROOT, 'web/heldout.json'), 'utf8'));
const texts = Array.from({ length: reviews }, (_, i) => heldout[i % heldout.length].text);
// Repeats of the held-out reviews differ by a suffix, so no two texts are the same.
const largeTexts = Array.from({ length: large }, (_, i) => heldout[i % heldout.length].text + '！'.repeat(Math.floor(i / heldout.length)));
const examples = Array.from({ length: 32 }, (_, i) => heldout[(i * 3) % heldout.length]);

const TFJS = join(ROOT, 'scripts/tfjs/node_modules/@tensorflow');
if (rows.some((r) => r.startsWith('tfjs')) && !existsSync(TFJS)) {
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: join(ROOT, 'scripts/tfjs'), stdio: 'inherit' });
}
// TensorFlow.js files served under /tfjs/ on the demo's origin.
const TFJS_FILES = {
  'tf.min.js': 'tfjs/dist/tf.min.js',
  'tf-backend-wasm.min.js': 'tfjs-backend-wasm/dist/tf-backend-wasm.min.js',
  'tf-backend-webgpu.min.js': 'tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js',
  'tfjs-backend-wasm.wasm': 'tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm',
  'tfjs-backend-wasm-simd.wasm': 'tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm',
  'tfjs-backend-wasm-threaded-simd.wasm': 'tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm',
};
const TFJS_PAGE = `<!doctype html><meta charset="utf-8"><title>TensorFlow.js bench</title>
<script src="/tfjs/tf.min.js"></script><script src="/tfjs/tf-backend-wasm.min.js"></script>
<script src="/tfjs/tf-backend-webgpu.min.js"></script>`;

async function xinshengRow(page, backend, workers) {
  const coldMs = await page.evaluate(
    async ({ backend, texts, workers }) => {
      const { Classifier } = await import('/xinsheng.js');
      window.clf = await Classifier.load({ backend, workers });
      await window.clf.classify([texts[0]]);
      // performance.now() counts from navigation start: page, wasm, model and first answer.
      return performance.now();
    },
    { backend, texts, workers },
  );
  // The engine (and WebGPU) runs in xinsheng's worker: count dispatches there.
  const worker = await engineWorker(page);
  await worker.evaluate(countDispatches);
  const before = await worker.evaluate(() => globalThis.__dispatches);
  await page.evaluate((text) => window.clf.classify([text]), texts[1]);
  const dispatches = (await worker.evaluate(() => globalThis.__dispatches)) - before;
  const rest = await page.evaluate(
    async ({ texts, largeTexts, examples, epochs }) => {
      const clf = window.clf;
      const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const timed = async (run) => {
        const t = performance.now();
        await run();
        return performance.now() - t;
      };
      const single = [];
      for (let i = 0; i < 5; i++) single.push(await timed(() => clf.classify([texts[i % texts.length]])));
      // One warm-up run, then the median of three.
      const steady = async (batch) => {
        await clf.classify(batch);
        return median([await timed(() => clf.classify(batch)), await timed(() => clf.classify(batch)), await timed(() => clf.classify(batch))]);
      };
      const batchMs = await steady(texts);
      const largeMs = clf.backend === 'cpu' && largeTexts.length ? await steady(largeTexts) : null;
      const fineTuneMs = await timed(() => clf.fineTune(examples, { epochs, batchSize: 32 }));
      return { backend: clf.backend, workers: clf.workers, singleMs: median(single), batchMs, largeMs, fineTuneMs };
    },
    { texts, largeTexts, examples, epochs },
  );
  return { ...rest, coldMs, dispatches };
}

async function tfjsRow(page, backend, variant) {
  return page.evaluate(
    async ({ backend, texts, examples, epochs, seedModel }) => {
      const tf = window.tf;
      tf.wasm?.setWasmPaths('/tfjs/');
      if (!(await tf.setBackend(backend))) throw new Error(`TensorFlow.js has no ${backend} backend here`);
      await tf.ready();
      const [vocab, embed, hidden, maxLen, batch] = [4172, 128, 128, 160, 64];
      // Characters as ids: the same lengths as xinsheng's character tokens, give or take.
      const ids = (text) => Array.from(text.trim() || '?').slice(0, maxLen).map((c) => 2 + (c.codePointAt(0) % (vocab - 2)));
      let padded = (seqs) => {
        const width = Math.max(...seqs.map((s) => s.length));
        const flat = new Int32Array(seqs.length * width);
        seqs.forEach((s, i) => flat.set(s, i * width));
        return tf.tensor2d(flat, [seqs.length, width], 'int32');
      };
      let logits;
      let weights;
      if (seedModel) {
        // The seed's model: every review pre-padded (or cut, keeping its end) to 100 steps.
        const steps = 100;
        padded = (seqs) => {
          const flat = new Int32Array(seqs.length * steps);
          seqs.forEach((s, i) => {
            const kept = s.slice(-steps);
            flat.set(kept, i * steps + steps - kept.length);
          });
          return tf.tensor2d(flat, [seqs.length, steps], 'int32');
        };
        const model = tf.sequential({
          layers: [
            tf.layers.embedding({ inputDim: vocab, outputDim: embed, inputLength: steps }),
            tf.layers.lstm({ units: hidden }),
            tf.layers.dense({ units: 2 }),
          ],
        });
        logits = (x, training) => model.apply(x, { training });
        weights = model.trainableWeights;
      }
      const input = tf.input({ shape: [null], dtype: 'int32' });
      const embedded = tf.layers.embedding({ inputDim: vocab, outputDim: embed, maskZero: true }).apply(input);
      // TensorFlow.js' GRU has no reset-after variant; reset-before costs the same matmuls.
      const gru = tf.layers.gru({ units: hidden, resetAfter: false, returnSequences: true });
      const encoded = tf.layers.bidirectional({ layer: gru, mergeMode: 'concat' }).apply(embedded);
      const encoder = tf.model({ inputs: input, outputs: encoded });
      const head = tf.layers.dense({ units: 2 });
      head.build([null, 4 * hidden]);
      // xinsheng's pooling: mean and max over the real steps.
      logits ??= (x, training) => {
        const h = encoder.apply(x, { training });
        const m = tf.cast(tf.greater(x, 0), 'float32').expandDims(2);
        const mean = tf.div(tf.sum(tf.mul(h, m), 1), tf.maximum(tf.sum(m, 1), 1));
        const max = tf.max(tf.add(tf.mul(h, m), tf.mul(tf.sub(m, 1), 10)), 1);
        return head.apply(tf.concat([mean, max], 1));
      };
      const classify = async (batchTexts) => {
        const order = batchTexts.map(ids).sort((a, b) => a.length - b.length);
        for (let i = 0; i < order.length; i += batch) {
          const x = padded(order.slice(i, i + batch));
          const probs = tf.tidy(() => tf.softmax(logits(x, false)));
          await probs.data();
          tf.dispose([x, probs]);
        }
      };
      const coldStart = performance.now();
      await classify([texts[0]]);
      const warmMs = performance.now() - coldStart;
      const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const before = window.__dispatches;
      await classify([texts[1]]);
      const dispatches = window.__dispatches - before;
      const single = [];
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        await classify([texts[i % texts.length]]);
        single.push(performance.now() - t);
      }
      // One warm-up run, then the median of three (as for xinsheng).
      await classify(texts);
      const runs = [];
      for (let i = 0; i < 3; i++) {
        const t = performance.now();
        await classify(texts);
        runs.push(performance.now() - t);
      }
      const batchMs = median(runs);

      const x = padded(examples.map((e) => ids(e.text)));
      const y = tf.oneHot(tf.tensor1d(examples.map((e) => (e.label === 'positive' ? 1 : 0)), 'int32'), 2);
      const fineTune = async (weights) => {
        const optimizer = tf.train.adam(1e-3);
        const variables = weights.map((w) => w.read());
        const t = performance.now();
        for (let epoch = 0; epoch < epochs; epoch++) {
          const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, logits(x, true)), true, variables);
          await loss.data();
          loss.dispose();
        }
        return performance.now() - t;
      };
      const all = weights ?? [...encoder.trainableWeights, ...head.trainableWeights];
      let fineTuneMs;
      let note = '';
      try {
        fineTuneMs = await fineTune(all);
      } catch (e) {
        // The wasm backend cannot differentiate the embedding lookup: train everything else.
        note = `embedding frozen (${e.message})`;
        fineTuneMs = await fineTune(all.filter((w) => !w.name.includes('embedding')));
      }
      return { backend: `tfjs-${tf.getBackend()}`, coldMs: null, warmMs, singleMs: median(single), batchMs, largeMs: null, fineTuneMs, dispatches, note };
    },
    { backend, texts, examples, epochs, seedModel: variant === 'lstm' },
  );
}

const server = await startServer();
const browser = await launch({ webgpu: hardware ? 'hardware' : true });
const chromiumVersion = browser.version();
const results = [];
let adapter = null;
try {
  for (const row of rows) {
    const [library, backend, variant] = row.split('-');
    const workers = variant?.startsWith('w') ? Number(variant.slice(1)) : 1;
    if (!['xinsheng', 'tfjs'].includes(library) || !backend || !(workers >= 1) || (variant && variant !== 'lstm' && !variant.startsWith('w'))) {
      throw new Error(`unknown row '${row}' (library-backend[-wN|-lstm], e.g. xinsheng-cpu-w2, tfjs-wasm-lstm)`);
    }
    const context = await browser.newContext();
    const page = await context.newPage();
    if (library === 'tfjs') {
      await page.addInitScript(countDispatches);
      await page.route('**/tfjs/**', (route) => {
        const name = new URL(route.request().url()).pathname.replace('/tfjs/', '');
        if (name === 'bench.html') return route.fulfill({ contentType: 'text/html', body: TFJS_PAGE });
        const file = TFJS_FILES[name];
        if (!file) return route.fulfill({ status: 404 });
        const type = name.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
        return route.fulfill({ contentType: type, body: readFileSync(join(TFJS, file)) });
      });
      await page.goto(`${server.url}tfjs/bench.html`);
    } else {
      await page.goto(`${server.url}widget-test/api.html`);
    }
    adapter ??= await page.evaluate(async () => {
      const found = await navigator.gpu?.requestAdapter();
      const info = found?.info;
      return info ? { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description } : null;
    });
    if (hardware && adapter?.architecture === 'swiftshader' && !results.length) {
      console.error('bench-browser: --gpu asked for the real GPU, but Chromium offers SwiftShader (no usable GPU driver?)');
    }
    const started = Date.now();
    const r = library === 'tfjs' ? await tfjsRow(page, backend, variant) : await xinshengRow(page, backend, workers);
    const expected = library === 'tfjs' ? `tfjs-${backend}` : backend;
    if (r.backend !== expected) throw new Error(`asked for ${expected}, got ${r.backend}`);
    r.row = row;
    results.push(r);
    console.error(`${row} (${((Date.now() - started) / 1000).toFixed(0)} s): ${JSON.stringify(r)}`);
    await context.close();
  }
} finally {
  await browser.close();
  server.close();
}

const wasm = readFileSync(join(ROOT, 'dist/xinsheng-web_bg.wasm'));
const model = readFileSync(join(ROOT, 'dist/models/default/model.bpk'));
const mb = (n) => `${(n / 1048576).toFixed(2)} MB`;
const rate = (n, ms) => `${(n / (ms / 1000)).toFixed(n / (ms / 1000) < 10 ? 1 : 0)}`;
const sizes = { wasm: wasm.length, wasmGzipped: gzipSync(wasm, { level: 9 }).length, model: model.length };
if (json) {
  const perSecond = (n, ms) => (ms ? Math.round((n / (ms / 1000)) * 10) / 10 : null);
  const out = results.map((r) => ({
    ...r,
    classifyPerS: perSecond(reviews, r.batchMs),
    largePerS: perSecond(large, r.largeMs),
    fineTunePerS: perSecond(32 * epochs, r.fineTuneMs),
  }));
  const webgpu = hardware ? 'hardware' : 'swiftshader';
  console.log(JSON.stringify({ date: new Date().toISOString(), chromium: chromiumVersion, webgpu, adapter, reviews, large, epochs, rows: out, sizes }));
} else {
  console.log(`WebGPU adapter: ${adapter ? Object.values(adapter).filter(Boolean).join(', ') : 'none'}; Chromium ${chromiumVersion}\n`);
  console.log(
    `| library, backend | cold load → first prediction | single review | classify ${reviews} (reviews/s) | ` +
      `classify ${large.toLocaleString('en')} (reviews/s) | fine-tune 32 × ${epochs} (examples/s) | WebGPU dispatches per single-review forward |`,
  );
  console.log('|---|---|---|---|---|---|---|');
  for (const r of results) {
    const cold = r.coldMs === null ? '—' : `${(r.coldMs / 1000).toFixed(2)} s`;
    const largeRate = r.largeMs ? `${rate(large, r.largeMs)} (${r.workers} worker${r.workers > 1 ? 's' : ''})` : '—';
    console.log(
      `| ${r.row} | ${cold} | ${r.singleMs.toFixed(1)} ms | ${rate(reviews, r.batchMs)} | ${largeRate} | ` +
        `${rate(32 * epochs, r.fineTuneMs)}${r.note ? ' ¹' : ''} | ${r.row.includes('webgpu') ? r.dispatches : '—'} |`,
    );
  }
  for (const r of results.filter((r) => r.note)) console.log(`\n¹ ${r.row}: ${r.note}`);
  console.log('');
  console.log(`wasm ${mb(sizes.wasm)} (${mb(sizes.wasmGzipped)} gzipped); model ${mb(sizes.model)}`);
}
