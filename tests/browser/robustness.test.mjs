// Hostile conditions, in headless Chromium: bad model URLs and hosts, a renderer crash in the
// middle of a fine-tune, two tabs correcting at once, IndexedDB unavailable, a lost WebGPU
// device, and memory that must stay flat over long loops.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { ROOT, openPage, inBrowser, engineWorker, sharedSession } from './harness.mjs';

const session = sharedSession({ webgpu: false });

const apiPage = () => `${session.server.url}widget-test/api.html`;
const demo = (query = '') => `${session.server.url}?backend=cpu&lang=en${query}`;
const ready = (page) => page.waitForSelector('body[data-ready=true]');

test('model URLs that serve gzip, HTML or a cut-off file are named with what the bytes look like; wasm as octet-stream loads', async () => {
  const { page, context, errors } = await openPage(session.browser, apiPage());
  const model = readFileSync(join(ROOT, 'models/default/model.bpk'));
  await context.route('**/hostile/**', (route) => {
    const name = new URL(route.request().url()).pathname.split('/').pop();
    const body = { 'gzip.bpk': gzipSync(model), 'page.bpk': '<!doctype html><title>Sign in</title>', 'cut.bpk': model.subarray(0, 4096) }[name];
    return route.fulfill({ status: 200, contentType: 'application/octet-stream', body });
  });
  const messages = await page.evaluate(async () => {
    const { Classifier } = await import('/xinsheng.js');
    const attempt = (modelUrl) => Classifier.load({ modelUrl, backend: 'cpu' }).then(() => 'loaded', (e) => e.message);
    return {
      gzip: await attempt('/hostile/gzip.bpk'),
      html: await attempt('/hostile/page.bpk'),
      cut: await attempt('/hostile/cut.bpk'),
      bytes: await Classifier.load({ bytes: new TextEncoder().encode('<html></html>'), backend: 'cpu' }).catch((e) => e.message),
    };
  });
  assert.match(messages.gzip, /hostile\/gzip\.bpk is not a model bundle: it looks like a gzip file/);
  assert.match(messages.html, /hostile\/page\.bpk is not a model bundle: it looks like an HTML page/);
  assert.match(messages.cut, /hostile\/cut\.bpk.*(truncated|corrupt)/);
  assert.match(messages.bytes, /model bytes are not a model bundle: they look like an HTML page/);
  assert.deepEqual(errors, []);
  await context.close();

  // The same build with its .wasm served as application/octet-stream still loads.
  const octet = await openPage(session.browser, apiPage());
  const labels = await octet.page.evaluate(async () => {
    const { Classifier } = await import('/octet-stream-wasm/xinsheng.js');
    const clf = await Classifier.load({ backend: 'cpu' });
    return (await clf.classify(['太差了']))[0].label;
  });
  assert.equal(labels, 'negative');
  await octet.context.close();
});

test('a renderer crash in the middle of a fine-tune loses no correction and no version; fine-tuning works again', async () => {
  const context = await session.browser.newContext();
  const page = await context.newPage();
  await page.goto(demo());
  await ready(page);
  const texts = ['酒店位置还可以，就是早餐一般', '价格便宜，但是做工一般', '外观很漂亮，做工也精致，可惜用了三天就坏了'];
  await page.fill('#input', texts.join('\n'));
  await page.click('#classify');
  await page.waitForFunction(() => document.body.dataset.classified === '3');
  for (let i = 0; i < 3; i++) await page.click(`#results tbody tr[data-row="${i}"] .choice[data-label="negative"]`);
  await page.waitForFunction(() => document.querySelectorAll('#corrections li').length === 3);
  // One finished fine-tune (a version), then a crash during the second.
  await page.fill('#epochs', '2');
  await page.click('#finetune');
  await page.waitForFunction(() => /Fine-tuned/.test(document.getElementById('status').textContent), null, { timeout: 120_000 });
  await page.fill('#epochs', '50');
  await page.click('#finetune');
  await page.waitForFunction(() => Number(document.getElementById('ft-progress').value) > 0.05, null, { timeout: 120_000 });
  const cdp = await context.newCDPSession(page);
  const crashed = new Promise((resolve) => page.once('crash', resolve));
  cdp.send('Page.crash').catch(() => {}); // the renderer dies; this call never answers
  await crashed;

  const again = await context.newPage();
  await again.goto(demo());
  await ready(again);
  assert.equal(await again.$$eval('#corrections li', (items) => items.length), 3, 'every correction is there');
  assert.equal(await again.$$eval('#versions li', (items) => items.length), 2, 'shipped + the finished fine-tune');
  assert.match(await again.textContent('#backend'), /fine-tune 1/);
  await again.fill('#epochs', '1');
  await again.click('#finetune');
  await again.waitForFunction(() => /Fine-tuned|failed/.test(document.getElementById('status').textContent), null, { timeout: 120_000 });
  assert.match(await again.textContent('#status'), /Fine-tuned/);
  await context.close();
});

test('two tabs correcting at once keep both tabs’ corrections', async () => {
  const context = await session.browser.newContext();
  const [a, b] = [await context.newPage(), await context.newPage()];
  for (const page of [a, b]) {
    await page.goto(demo());
    await ready(page);
  }
  const classify = async (page, texts) => {
    await page.fill('#input', texts.join('\n'));
    await page.click('#classify');
    await page.waitForFunction((n) => document.body.dataset.classified === String(n), texts.length);
  };
  await classify(a, ['质量很好', '物流很快']);
  await classify(b, ['太差了', '很失望']);
  // Interleaved corrections from both tabs, as fast as they come.
  await Promise.all([
    a.click('#results tbody tr[data-row="0"] .choice[data-label="negative"]'),
    b.click('#results tbody tr[data-row="0"] .choice[data-label="positive"]'),
  ]);
  await Promise.all([
    a.click('#results tbody tr[data-row="1"] .choice[data-label="negative"]'),
    b.click('#results tbody tr[data-row="1"] .choice[data-label="positive"]'),
  ]);
  // Each tab sees the other's corrections too, and a reload has all four.
  await a.waitForFunction(() => document.querySelectorAll('#corrections li').length === 4);
  await b.waitForFunction(() => document.querySelectorAll('#corrections li').length === 4);
  await a.reload();
  await ready(a);
  const texts = await a.$$eval('#corrections .ctext', (items) => items.map((i) => i.textContent).sort());
  assert.deepEqual(texts, ['很失望', '太差了', '物流很快', '质量很好'].sort());
  await context.close();
});

test('IndexedDB unavailable: a clear message, and the page works from memory', async () => {
  const blocked = () => {
    IDBFactory.prototype.open = function () {
      throw new DOMException('The user denied permission to access the database.', 'SecurityError');
    };
  };
  const { page, context, errors } = await openPage(session.browser, demo(), { init: blocked });
  await ready(page);
  assert.match(await page.textContent('#status'), /Browser storage is unavailable \(.*denied.*\): corrections live in this page only/);
  await page.fill('#input', '质量很好');
  await page.click('#classify');
  await page.waitForFunction(() => document.body.dataset.classified === '1');
  await page.click('#results tbody tr[data-row="0"] .choice[data-label="negative"]');
  await page.waitForFunction(() => document.querySelectorAll('#corrections li').length === 1);
  assert.deepEqual(errors, []);
  await context.close();
});

/** Runs `rounds` of `work` after a warm-up and returns the sizes before and after. */
async function growth(page, worker, rounds, work) {
  const sizes = async () => {
    await page.evaluate(() => new Promise((r) => setTimeout(r, 50)));
    const engine = await page.evaluate(async () => (await import('/xinsheng.js')).engineStats());
    // Live objects only: collect first (Chromium runs with --expose-gc), or garbage not yet
    // collected reads as growth, more of it the faster the calls come back.
    const heap = await page.evaluate(() => {
      globalThis.gc();
      return performance.memory.usedJSHeapSize;
    });
    const buffers = worker ? await worker.evaluate(() => globalThis.__liveBuffers ?? 0) : 0;
    return { ...engine, heap, buffers };
  };
  await page.evaluate(work, 3); // warm-up: caches, pools and buffers reach their size
  const first = await sizes();
  await page.evaluate(work, rounds);
  return { first, last: await sizes() };
}

function assertFlat(first, last, what) {
  assert.ok(last.wasmBytes <= first.wasmBytes * 1.1 + (4 << 20), `${what}: wasm memory ${first.wasmBytes} → ${last.wasmBytes}`);
  assert.ok(last.heap <= first.heap * 1.5 + (8 << 20), `${what}: JS heap ${first.heap} → ${last.heap}`);
  assert.ok(last.buffers <= first.buffers + 16, `${what}: GPU buffers ${first.buffers} → ${last.buffers}`);
  assert.equal(last.engines, first.engines, `${what}: models held`);
}

test('CPU: memory stays flat over 200 classify calls of 300 reviews, 50 explains and 10 fine-tunes', async () => {
  await inBrowser({ webgpu: false, args: ['--enable-precise-memory-info', '--js-flags=--expose-gc'] }, apiPage(), async ({ page, errors }) => {
    await page.evaluate(async () => {
      const { Classifier } = await import('/xinsheng.js');
      window.clf = await Classifier.load({ backend: 'cpu' });
      // Short reviews: the point is the number of calls and rows, not the arithmetic per row.
      window.reviews = Array.from({ length: 300 }, (_, i) => `${i % 2 ? '很好' : '太差'}${i % 7 ? '' : '，还行'}`);
    });
    const classify = await growth(page, null, 200, async (n) => {
      for (let i = 0; i < n; i++) await window.clf.classify(window.reviews);
    });
    assertFlat(classify.first, classify.last, 'classify');
    const explain = await growth(page, null, 50, async (n) => {
      for (let i = 0; i < n; i++) await window.clf.explain('质量很好，物流也快，但是包装有点简陋');
    });
    assertFlat(explain.first, explain.last, 'explain');
    const tune = await growth(page, null, 10, async (n) => {
      for (let i = 0; i < n; i++) await window.clf.fineTune([{ text: '很好', label: 'positive' }, { text: '太差', label: 'negative' }], { epochs: 1 });
    });
    assertFlat(tune.first, tune.last, 'fineTune');
    assert.deepEqual(errors, []);
  });
});

test('WebGPU: memory and GPU buffers stay flat over 200 classify calls of 20 reviews; a lost device rejects with the reason and a new load works', async () => {
  await inBrowser({ webgpu: true, args: ['--enable-precise-memory-info', '--js-flags=--expose-gc'] }, apiPage(), async ({ page, errors }) => {
    await page.evaluate(async () => (await import('/xinsheng.js')).engineLocation()); // starts the worker
    const worker = await engineWorker(page);
    await worker.evaluate(() => {
      // Count live GPU buffers in the engine's worker.
      globalThis.__liveBuffers = 0;
      const create = GPUDevice.prototype.createBuffer;
      GPUDevice.prototype.createBuffer = function (...args) {
        const buffer = create.apply(this, args);
        globalThis.__liveBuffers++;
        const destroy = buffer.destroy.bind(buffer);
        let alive = true;
        buffer.destroy = () => {
          if (alive) globalThis.__liveBuffers--;
          alive = false;
          destroy();
        };
        return buffer;
      };
    });
    await page.evaluate(async () => {
      const { Classifier } = await import('/xinsheng.js');
      window.clf = await Classifier.load({ backend: 'webgpu' });
      // SwiftShader runs the GPU on the CPU, so the test's calls are smaller than on the CPU path
      // (200 calls of 300 reviews take over 10 minutes there); the buffers per call are the same.
      window.reviews = Array.from({ length: 20 }, (_, i) => (i % 2 ? '好' : '差'));
    });
    const classify = await growth(page, worker, 200, async (n) => {
      for (let i = 0; i < n; i++) await window.clf.classify(window.reviews);
    });
    assertFlat(classify.first, classify.last, 'WebGPU classify');

    // The device goes away (as after a GPU process crash or a driver reset).
    await worker.evaluate(() => globalThis.xinshengGpuDevice.destroy());
    const lost = await page.evaluate(async () => {
      const { Classifier } = await import('/xinsheng.js');
      const failure = await window.clf.classify(['好']).then(() => 'answered', (e) => `${e.name}: ${e.message}`);
      const fresh = await Classifier.load({ backend: 'auto' });
      return { failure, backend: fresh.backend, label: (await fresh.classify(['太差了']))[0].label };
    });
    assert.match(lost.failure, /^EngineLostError: the WebGPU device was lost .*load the classifier again/);
    assert.equal(lost.label, 'negative', `a new load works (on ${lost.backend})`);
    assert.deepEqual(errors.filter((e) => !/device|lost|destroyed/i.test(e)), []);
  });
});
