// The JS API (dist/xinsheng.js) in headless Chromium, on WebGPU (SwiftShader) and on the CPU,
// compared with the native `xinsheng` binary on the same bundles.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT,
  countDispatches,
  countMainThreadWasm,
  engineWorker,
  inBrowser,
  startServer,
  nativePredict,
  writeTemp,
  assertSamePredictions,
} from './harness.mjs';

// Odd inputs included on purpose: empty, whitespace, emoji, English, traditional, very long.
const TEXTS = [
  '这家酒店的服务非常好，房间干净，下次还来！',
  '质量太差了，用了两天就坏了，不推荐购买。',
  '',
  '   ',
  '😀😀😀',
  'The battery life is terrible',
  '這本書寫得很好，值得一讀',
  '还行吧，一般般',
  '好'.repeat(100_000),
];

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.close());

const apiPage = () => `${server.url}widget-test/api.html`;

test('CPU: without WebGPU, auto falls back to the CPU and says why; classify equals native predict', async () => {
  await inBrowser({ webgpu: false }, apiPage(), async ({ page, errors }) => {
    const result = await page.evaluate(async (texts) => {
      const { Classifier } = await import('/xinsheng.js');
      const clf = await Classifier.load({ backend: 'auto' });
      return { backend: clf.backend, reason: clf.backendReason, labels: clf.labels, predictions: await clf.classify(texts) };
    }, TEXTS);
    assert.equal(result.backend, 'cpu');
    assert.match(result.reason, /WebGPU|adapter/);
    assert.deepEqual(result.labels, ['negative', 'neutral', 'positive']);
    // The CPU engine is the CLI's Rust compiled to wasm: within 1e-5, the tolerance the Python
    // package's tests hold it to against the same CLI (WebGPU's kernels get 1e-4).
    assertSamePredictions(assert, result.predictions, nativePredict(TEXTS), 1e-5);
    assert.deepEqual(errors, []);
  });
});

test('WebGPU: auto picks WebGPU; classify equals native predict; dispatches independent of length; explain; fine-tune and export on WebGPU', async () => {
  await inBrowser({ webgpu: true }, apiPage(), async ({ page, errors }) => {
    // SwiftShader runs every dispatch on the CPU: keep this small.
    const texts = TEXTS.slice(0, 3);
    const loaded = await page.evaluate(async (texts) => {
      const { Classifier } = await import('/xinsheng.js');
      window.clf = await Classifier.load({ backend: 'auto' });
      return { backend: window.clf.backend, predictions: await window.clf.classify(texts) };
    }, texts);
    // The engine, and so WebGPU, lives in the worker: count its dispatches there.
    const worker = await engineWorker(page);
    await worker.evaluate(countDispatches);
    const dispatchesFor = async (text) => {
      const before = await worker.evaluate(() => globalThis.__dispatches);
      await page.evaluate((text) => window.clf.classify([text]), text);
      return (await worker.evaluate(() => globalThis.__dispatches)) - before;
    };
    const perForward = [await dispatchesFor('好'), await dispatchesFor('质量很好，'.repeat(30))];
    const rest = await page.evaluate(async (texts) => {
      const { Classifier } = await import('/xinsheng.js');
      const clf = window.clf;
      const explained = await clf.explain('质量太差了');
      // A second model on the same page reuses the one WebGPU device.
      const second = await Classifier.load({ backend: 'webgpu' });
      const again = await second.classify(texts.slice(0, 1));
      const summary = await clf.fineTune([{ text: '一般般', label: '一般' }], { epochs: 1 });
      const bytes = await clf.exportModel({ precision: 'f32' });
      return { explained, again, summary, bytes: Array.from(bytes) };
    }, texts);
    const result = { ...loaded, ...rest, perForward };
    assert.equal(result.backend, 'webgpu');
    // The fused recurrence: one kernel launch per layer and direction, whatever the length
    // (1 token or 150), not dispatches per step.
    const [short, long] = result.perForward;
    assert.equal(short, long, `dispatches for 1 token vs 150 tokens: ${result.perForward}`);
    assert.ok(short > 0 && short < 60, `dispatches per forward pass: ${short}`);
    assertSamePredictions(assert, result.predictions, nativePredict(texts));
    assertSamePredictions(assert, result.again, nativePredict(texts.slice(0, 1)));
    assert.deepEqual(
      result.explained.map((t) => t.token),
      ['质', '量', '太', '差', '了'],
    );
    assert.ok(result.explained.some((t) => t.weight > 0), 'some token supports the prediction');
    assert.deepEqual(result.summary.labels, ['negative', 'neutral', 'positive', '一般']);
    // The model fine-tuned on WebGPU, read back asynchronously, is a bundle the CLI accepts.
    const model = writeTemp('webgpu-tuned.bpk', Buffer.from(result.bytes));
    const native = nativePredict(['一般般'], model);
    assert.deepEqual(Object.keys(native[0].probs).sort(), ['negative', 'neutral', 'positive', '一般'].sort());
    assert.deepEqual(errors, []);
  });
});

test('CPU: fine-tuning adds a fourth label (一般) and learns it; exported bytes load in the browser and natively alike', async () => {
  await inBrowser({ webgpu: false }, apiPage(), async ({ page, errors }) => {
    const neutral = ['还行吧，一般般', '中规中矩，没什么特别的', '普普通通，不好不坏'];
    const result = await page.evaluate(async (neutral) => {
      const { Classifier } = await import('/xinsheng.js');
      const clf = await Classifier.load({ backend: 'cpu' });
      const reports = [];
      const examples = [
        ...neutral.map((text) => ({ text, label: '一般' })),
        { text: '非常好，很满意', label: 'positive' },
        { text: '太差了，很失望', label: 'negative' },
      ];
      await clf.fineTune(examples, { epochs: 15, onProgress: (p) => reports.push(p) });
      const tuned = await clf.classify(neutral);
      const bytes = await clf.exportModel();
      const reloaded = await Classifier.load({ bytes: bytes.buffer, backend: 'cpu' }); // ArrayBuffer works too
      const fromBytes = await reloaded.classify(neutral);
      await clf.reset();
      const afterReset = await clf.classify(neutral);
      const noExamples = await clf.fineTune([]).catch((e) => e.message);
      const noLabel = await clf.fineTune([{ text: '好' }]).catch((e) => e.message);
      return {
        labels: reloaded.labels, tuned, fromBytes, reports, bytes: Array.from(bytes), afterReset, noExamples, noLabel,
        resetLabels: clf.labels,
      };
    }, neutral);
    assert.deepEqual(result.labels, ['negative', 'neutral', 'positive', '一般']);
    assert.deepEqual(result.tuned.map((p) => p.label), ['一般', '一般', '一般']);
    assert.equal(result.reports.length, 15, 'one progress report per step (5 examples fit one batch)');
    assert.ok(result.reports.at(-1).loss < result.reports[0].loss, 'loss falls');
    const native = nativePredict(neutral, writeTemp('tuned.bpk', Buffer.from(result.bytes)));
    assertSamePredictions(assert, result.fromBytes, native);
    assert.deepEqual(result.resetLabels, ['negative', 'neutral', 'positive']);
    assertSamePredictions(assert, result.afterReset, nativePredict(neutral));
    assert.match(result.noExamples, /at least one labelled example/);
    assert.match(result.noLabel, /example 1 needs a label/);
    assert.deepEqual(errors, []);
  });
});

test('CPU: a word (jieba) model fetches the dictionary on demand and matches native predict', async () => {
  // A tiny word model trained natively for this test.
  const out = mkdtempSync(join(tmpdir(), 'xinsheng-word-'));
  execFileSync(process.env.XINSHENG_BIN, [
    'train', '--data', join(ROOT, 'tests/fixtures/tiny.csv'), '--tokenizer', 'word',
    '--epochs', '2', '--hidden', '16', '--embed-dim', '16', '--min-freq', '1', '--precision', 'f32', '--out', out,
  ]);
  const model = join(out, 'model.bpk');
  const texts = ['这本书非常好看，物流也很快', '太差了', '', '😀'];
  await inBrowser({ webgpu: false }, apiPage(), async ({ page, errors }) => {
    const result = await page.evaluate(
      async ({ bytes, texts }) => {
        const { Classifier } = await import('/xinsheng.js');
        const clf = await Classifier.load({ bytes: new Uint8Array(bytes), backend: 'cpu' });
        return { predictions: await clf.classify(texts), explained: await clf.explain(texts[0]) };
      },
      { bytes: Array.from(readFileSync(model)), texts },
    );
    assertSamePredictions(assert, result.predictions, nativePredict(texts, model));
    // Same jieba tokens and the same occlusion weights as `xinsheng predict --explain`.
    const [native] = nativePredict([texts[0]], model, ['--explain']);
    assert.deepEqual(result.explained.map((t) => t.token), native.tokens.map((t) => t.token));
    assert.ok(native.tokens.some((t) => t.token === '非常'), 'jieba words, not characters');
    result.explained.forEach((t, i) => assert.ok(Math.abs(t.weight - native.tokens[i].weight) <= 1e-4, t.token));
    assert.deepEqual(errors, []);
  });
});

test('CPU: unreachable, corrupt or foreign model URLs give clear errors', async () => {
  await inBrowser({ webgpu: false }, apiPage(), async ({ page }) => {
    const messages = await page.evaluate(async () => {
      const { Classifier } = await import('/xinsheng.js');
      const attempt = async (options) => {
        try {
          await Classifier.load(options);
          return 'loaded';
        } catch (e) {
          return e.message;
        }
      };
      return {
        missing: await attempt({ modelUrl: '/no-such-model.bpk', backend: 'cpu' }),
        unreachable: await attempt({ modelUrl: 'http://127.0.0.1:9/model.bpk', backend: 'cpu' }),
        notAModel: await attempt({ modelUrl: '/widget-test/page.css', backend: 'cpu' }),
        truncated: await attempt({ bytes: new Uint8Array(100), backend: 'cpu' }),
        badBackend: await attempt({ backend: 'tpu' }),
      };
    });
    assert.match(messages.missing, /no-such-model\.bpk.*HTTP 404/);
    assert.match(messages.unreachable, /cannot reach the model/);
    assert.match(messages.notAModel, /page\.css.*(burnpack|corrupt)/);
    assert.match(messages.truncated, /model bytes/);
    assert.match(messages.badBackend, /unknown backend 'tpu'/);
  });
});

test('CPU: the engine runs in a worker; 5,000 reviews report progress, cancel with AbortError, and the classifier stays usable', async () => {
  await inBrowser({ webgpu: false, init: countMainThreadWasm }, apiPage(), async ({ page, errors }) => {
    const result = await page.evaluate(async () => {
      const { Classifier, engineLocation } = await import('/xinsheng.js');
      const clf = await Classifier.load({ backend: 'cpu' });
      const texts = Array.from({ length: 5000 }, (_, i) => `第${i}条：${i % 2 ? '质量很好，推荐' : '太差了，失望'}`);
      const progress = [];
      const full = await clf.classify(texts.slice(0, 1000), { onProgress: (p) => progress.push([p.done, p.total, p.start, p.predictions.length]) });
      const controller = new AbortController();
      let seen = 0;
      const cancelled = await clf
        .classify(texts, {
          signal: controller.signal,
          onProgress: ({ done }) => {
            seen = done;
            if (done >= 2500) controller.abort();
          },
        })
        .then(() => 'resolved', (e) => ({ name: e.name, seen }));
      const after = await clf.classify(['质量很好', '太差了']);
      const alreadyAborted = await clf.classify(['好'], { signal: AbortSignal.abort() }).catch((e) => e.name);
      return { where: await engineLocation(), wasmOnMain: window.__wasmOnMain, progress, full: full.length, cancelled, after, alreadyAborted };
    });
    assert.equal(result.where, 'worker');
    assert.equal(result.wasmOnMain, 0, 'no WebAssembly instantiated on the main thread');
    assert.deepEqual(result.progress.at(-1), [1000, 1000, 768, 232]);
    assert.ok(result.progress.length >= 4, `progress events: ${result.progress.length}`);
    assert.equal(result.full, 1000);
    assert.equal(result.cancelled.name, 'AbortError');
    assert.ok(result.cancelled.seen >= 2500 && result.cancelled.seen < 5000, `cancelled after ${result.cancelled.seen}`);
    assertSamePredictions(assert, result.after, nativePredict(['质量很好', '太差了']));
    assert.equal(result.alreadyAborted, 'AbortError');
    assert.deepEqual(errors, []);
  });
});

test('CPU: a pool of workers classifies in input order, bit for bit like one engine, follows fine-tuning and reset, and stops when unused', async () => {
  const heldout = JSON.parse(readFileSync(join(ROOT, 'web/heldout.json'), 'utf8'));
  // 700 reviews: three chunks (256, 256, 188), so both engines of a pool of two work.
  const texts = Array.from({ length: 700 }, (_, i) => heldout[i % heldout.length].text + (i >= heldout.length ? '！' : ''));
  // Counts the engine workers the page starts.
  const countWorkers = () => {
    const Original = window.Worker;
    window.__workers = 0;
    window.Worker = class extends Original {
      constructor(...args) {
        super(...args);
        window.__workers++;
      }
    };
  };
  await inBrowser({ webgpu: false, init: countWorkers }, apiPage(), async ({ page, errors }) => {
    const result = await page.evaluate(async (texts) => {
      const { Classifier, defaultWorkers, engineStats } = await import('/xinsheng.js');
      const one = await Classifier.load({ backend: 'cpu', workers: 1 });
      const pool = await Classifier.load({ backend: 'cpu', workers: 2 });
      const starts = [];
      const single = await one.classify(texts);
      const pooled = await pool.classify(texts, { onProgress: (p) => starts.push([p.start, p.done]) });
      // The same fine-tune (fixed seed, and a new label, whose head rows must be drawn from
      // the seed too) on both: the pool must drop its stale copy.
      const examples = [
        { text: '物流很快，包装完好', label: 'negative' },
        { text: '客服态度差，不会再买', label: 'positive' },
        { text: '还行吧，一般般', label: '一般' },
      ];
      await one.fineTune(examples, { epochs: 3, seed: 7 });
      await pool.fineTune(examples, { epochs: 3, seed: 7 });
      const tunedOne = await one.classify(texts);
      const tunedPool = await pool.classify(texts);
      await pool.reset();
      const resetPool = await pool.classify(texts);
      // Aborting inside onProgress: no report after it.
      const controller = new AbortController();
      let reports = 0;
      const aborted = await pool
        .classify(texts, { signal: controller.signal, onProgress: () => (reports++, controller.abort()) })
        .catch((e) => e.name);
      const running = (await engineStats()).workers;
      await pool.dispose();
      const afterDispose = (await engineStats()).workers;
      const bad = (workers) => Classifier.load({ backend: 'cpu', workers }).catch((e) => `${e.name}: ${e.message}`);
      return {
        workers: [one.workers, pool.workers], defaults: defaultWorkers(), cores: navigator.hardwareConcurrency,
        single, pooled, starts, tunedOne, tunedPool, resetPool, started: window.__workers, aborted, reports,
        running, afterDispose, bad: [await bad(0), await bad('2')], many: (await Classifier.load({ backend: 'cpu', workers: 1000 })).workers,
      };
    }, texts);
    const two = Math.min(2, result.cores);
    assert.deepEqual(result.workers, [1, two]);
    assert.equal(result.started, two, 'one worker per engine: the first and one helper');
    assert.equal(result.many, result.cores, 'at most one engine per core');
    assert.equal(result.defaults, Math.max(1, result.cores - 1));
    assert.equal(result.pooled.length, texts.length);
    assert.deepEqual(result.pooled, result.single, 'a pool answers exactly as one engine, in input order');
    assert.deepEqual(result.starts, [[0, 256], [256, 512], [512, 700]], 'progress in input order');
    assert.notDeepEqual(result.tunedOne, result.single, 'the fine-tune changed the model');
    assert.deepEqual(result.tunedPool, result.tunedOne, 'after fine-tuning, every engine of the pool runs the new model');
    assert.deepEqual(result.resetPool, result.single, 'after reset, the shipped model again');
    assertSamePredictions(assert, result.pooled.slice(0, 40), nativePredict(texts.slice(0, 40)), 1e-5);
    assert.equal(result.aborted, 'AbortError');
    assert.equal(result.reports, 1, 'no progress after an abort from inside onProgress');
    assert.deepEqual([result.running, result.afterDispose], [two, 1], 'a helper nobody uses is stopped');
    assert.deepEqual(result.bad, [
      'RangeError: workers must be a whole number ≥ 1 (got 0)',
      'RangeError: workers must be a whole number ≥ 1 (got "2")',
    ]);
    assert.deepEqual(errors, []);
  });
});

test('the core parser in the page reads BOM/CRLF/quoted CSV, GB18030 CSV and JSONL as the CLI does', async () => {
  const dir = join(ROOT, 'tests/fixtures/files');
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
  const files = Object.keys(expected).map((name) => ({ name, bytes: Array.from(readFileSync(join(dir, name))) }));
  await inBrowser({ webgpu: false }, apiPage(), async ({ page }) => {
    const read = await page.evaluate(async (files) => {
      const { readReviews } = await import('/xinsheng.js');
      const out = {};
      for (const { name, bytes } of files) out[name] = await readReviews({ name, bytes: new Uint8Array(bytes) });
      const bad = await readReviews({ name: 'x.txt', bytes: new Uint8Array([0x6f, 0x6b, 0x0a, 0xff, 0xff, 0xff]) }).catch((e) => e.message);
      return { out, bad };
    }, files);
    for (const [name, want] of Object.entries(expected)) {
      assert.equal(read.out[name].encoding, want.encoding, name);
      assert.equal(read.out[name].skippedBlank, want.skippedBlank, name);
      assert.deepEqual(read.out[name].records, want.records, name);
    }
    assert.match(read.bad, /^x\.txt:2: this is neither UTF-8 nor GB18030/);
  });
});

test('the shipped model stays within the 2 MB budget', () => {
  const model = readFileSync(join(ROOT, 'dist/models/default/model.bpk'));
  assert.ok(model.length <= 2 * 1024 * 1024, `model ${model.length} bytes`);
});

test('fineTune refuses options that cannot train with the core\'s message (the CLI\'s and Python\'s), leaving the model as it was', async () => {
  await inBrowser({ webgpu: false }, apiPage(), async ({ page, errors }) => {
    const result = await page.evaluate(async () => {
      const { Classifier } = await import('/xinsheng.js');
      const clf = await Classifier.load({ backend: 'cpu' });
      const examples = [{ text: '还行吧', label: 'positive' }];
      const before = await clf.classify(['还行吧']);
      const refused = [];
      for (const options of [{ epochs: 0 }, { lr: NaN }, { lr: -1 }, { batchSize: 0 }]) {
        refused.push(await clf.fineTune(examples, options).then(() => 'trained', (e) => e.message));
      }
      return { refused, before, after: await clf.classify(['还行吧']) };
    });
    assert.deepEqual(result.refused, [
      'epochs must be at least 1, got 0',
      'the learning rate (lr) must be a finite number above 0, got NaN',
      'the learning rate (lr) must be a finite number above 0, got -1',
      'the batch size must be at least 1, got 0',
    ]);
    assert.deepEqual(result.after, result.before, 'a refused fine-tune trains nothing');
    assert.deepEqual(errors, []);
  });
});

test('calls of the wrong shape are refused with a TypeError that shows the right call, before any work', async () => {
  await inBrowser({ webgpu: false }, apiPage(), async ({ page, errors }) => {
    const result = await page.evaluate(async () => {
      const { Classifier, readReviews } = await import('/xinsheng.js');
      const refused = async (run) => {
        try {
          await run();
          return 'resolved';
        } catch (e) {
          return `${e.name}: ${e.message}`;
        }
      };
      const out = {
        loadString: await refused(() => Classifier.load('/my.bpk')),
        loadTypo: await refused(() => Classifier.load({ model: '/my.bpk' })),
        restoreNoName: await refused(() => Classifier.restore()),
        readNothing: await refused(() => readReviews('reviews.csv')),
      };
      const clf = await Classifier.load({ backend: 'cpu' });
      out.saveNoName = await refused(() => clf.save());
      out.saveEmpty = await refused(() => clf.save('  '));
      out.classifyOptions = await refused(() => clf.classify(['好'], 'fast'));
      out.classifyTypo = await refused(() => clf.classify(['好'], { onprogress: () => {} }));
      out.exportTypo = await refused(() => clf.exportModel({ precison: 'f32' }));
      out.fineTuneString = await refused(() => clf.fineTune('还行'));
      out.stillWorks = (await clf.classify(['好']))[0].label;
      return out;
    });
    assert.deepEqual(result, {
      loadString: `TypeError: Classifier.load takes an options object, e.g. Classifier.load({ modelUrl: '/my.bpk' }) (got the string "/my.bpk")`,
      loadTypo: `TypeError: Classifier.load: unknown option 'model' (expected modelUrl, bytes, backend, workers), e.g. Classifier.load({ modelUrl: '/my.bpk' })`,
      restoreNoName: `TypeError: Classifier.restore(name) needs the saved model's name, a non-empty string, e.g. Classifier.restore('tuned') (got undefined)`,
      readNothing: `TypeError: readReviews expects a File or Blob, or {name, bytes}, e.g. readReviews(input.files[0]) (got the string "reviews.csv")`,
      saveNoName: `TypeError: save(name) needs the saved model's name, a non-empty string, e.g. save('tuned') (got undefined)`,
      saveEmpty: `TypeError: save(name) needs the saved model's name, a non-empty string, e.g. save('tuned') (got the string "  ")`,
      classifyOptions: `TypeError: classify takes an options object, e.g. clf.classify(texts, { onProgress, signal }) (got the string "fast")`,
      classifyTypo: `TypeError: classify: unknown option 'onprogress' (expected onProgress, signal), e.g. clf.classify(texts, { onProgress, signal })`,
      exportTypo: `TypeError: exportModel: unknown option 'precison' (expected precision), e.g. clf.exportModel({ precision: 'f32' })`,
      fineTuneString: `TypeError: fineTune expects [{text, label}], e.g. clf.fineTune([{ text: '还行', label: 'positive' }]) (got the string "还行")`,
      stillWorks: result.stillWorks,
    });
    assert.deepEqual(errors, []);
  });
});
