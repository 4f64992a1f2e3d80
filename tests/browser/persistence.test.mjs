// Nothing lost, nothing hanging: the demo page with the browser's storage full (a 200 KB quota
// through the DevTools protocol), undoing fine-tunes, a fine-tune that makes the model worse,
// and the last classified batch across reloads. Headless Chromium on the CPU backend.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedSession, writeTemp } from './harness.mjs';

const session = sharedSession({ webgpu: false });

const demo = (query = '') => `${session.server.url}?backend=cpu&lang=en${query}`;
const ready = (page) => page.waitForSelector('body[data-ready=true]', { timeout: 180_000 });
const classified = (page, n) =>
  page.waitForFunction((n) => document.body.dataset.classified === String(n), n, { timeout: 300_000 });

/** A fresh context and page (its own storage), its console errors, and quota in bytes if given. */
async function open({ quota } = {}) {
  const context = await session.browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  if (quota !== undefined) {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(session.server.url).origin, quotaSize: quota });
  }
  await page.goto(demo());
  await ready(page);
  return { context, page, errors };
}

async function classify(page, texts) {
  await page.evaluate(() => delete document.body.dataset.classified);
  await page.fill('#input', texts.join('\n'));
  await page.click('#classify');
  await classified(page, texts.length);
  return page.$$eval('#results tbody tr', (rows) => rows.map((r) => r.dataset.label));
}

async function fineTune(page, epochs) {
  await page.fill('#epochs', String(epochs));
  await page.evaluate(() => (document.getElementById('status').textContent = ''));
  await page.click('#finetune');
  await page.waitForFunction(() => /Fine-tuned|failed/.test(document.getElementById('status').textContent), null, {
    timeout: 180_000,
  });
  await page.waitForFunction(() => !document.getElementById('finetune').disabled, null, { timeout: 180_000 });
  return page.textContent('#status');
}

/** Held-out accuracy before and after the last fine-tune, as the summary table shows them. */
async function heldout(page) {
  const read = async (id) => Number((await page.textContent(id)).match(/\((\d+)\/\d+\)/)[1]);
  return { before: await read('#acc-held-before'), after: await read('#acc-held-after') };
}

/** Clicks `selector` (a version switch) and waits for the badge to match and the rows to be classified again. */
async function switchVersion(page, selector, badgeText) {
  const rows = await page.evaluate(() => document.body.dataset.classified);
  await page.evaluate(() => delete document.body.dataset.classified);
  await page.click(selector);
  await page.waitForFunction((text) => document.getElementById('backend').textContent.includes(text), badgeText);
  if (rows) await classified(page, rows);
}

/** `count` reviews of `length` Chinese characters drawn at random (seeded): they do not compress. */
function randomReviews(count, length) {
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  return Array.from({ length: count }, () => String.fromCodePoint(...Array.from({ length }, () => 0x4e00 + (next() % 20000))));
}

const versions = (page) => page.$$eval('#versions li', (items) => items.map((li) => ({ key: li.dataset.key, text: li.textContent })));
const badge = (page) => page.textContent('#backend');

// Reviews the shipped model calls positive; the user says they are negative.
const WRONG = ['酒店位置还可以，就是早餐一般', '价格便宜，但是做工一般', '外观很漂亮，做工也精致，可惜用了三天就坏了'];

async function correctAll(page, label) {
  const rows = await page.$$eval('#results tbody tr', (trs) => trs.length);
  for (let i = 0; i < rows; i++) await page.click(`#results tbody tr[data-row="${i}"] .choice[data-label="${label}"]`);
  await page.waitForFunction((n) => document.querySelectorAll('#corrections li').length === n, rows);
}

test('storage full: fine-tuning finishes and says so, the model stays current in memory, no correction is lost; save() rejects with QuotaExceededError', async () => {
  const { context, page, errors } = await open({ quota: 200 * 1024 });
  assert.deepEqual(await classify(page, WRONG), ['positive', 'positive', 'positive']);
  await correctAll(page, 'negative');

  assert.match(await fineTune(page, 15), /Fine-tuned/);
  const note = await page.textContent('#storage');
  assert.equal(await page.isVisible('#storage'), true);
  assert.match(note, /Browser storage is full/);
  assert.match(note, /The fine-tuned model \(fine-tune 1\) was not saved and is lost on reload/);
  assert.match(await badge(page), /fine-tune 1/);
  assert.match((await versions(page))[1].text, /memory only \(not saved\)/);
  // The fine-tuned model is the one in use, and the page is usable.
  assert.deepEqual(await classify(page, WRONG), ['negative', 'negative', 'negative']);
  for (const id of ['#classify', '#finetune', '#undo-model', '#reset-model']) assert.equal(await page.isDisabled(id), false, id);
  // Switching away and back works from memory.
  await switchVersion(page, '#reset-model', ' · shipped model · ');
  await switchVersion(page, '#versions li:nth-child(2) button', ' · fine-tune 1 · ');
  assert.deepEqual(await classify(page, WRONG), ['negative', 'negative', 'negative']);

  // In Chinese too.
  await page.click('#lang');
  assert.match(await page.textContent('#storage'), /浏览器存储已满.*\n· 微调得到的模型（微调 1）没有保存/);
  await page.click('#lang');

  // The API: save() settles, with a named error, instead of hanging.
  const saved = await page.evaluate(async () => {
    const { Classifier } = await import('/xinsheng.js');
    const clf = await Classifier.load({ backend: 'cpu', workers: 1 });
    const outcome = await Promise.race([
      clf.save('too-big').then(
        () => 'saved',
        (e) => `${e.name}: ${e.message}`,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still pending after 60 s'), 60_000)),
    ]);
    await clf.dispose();
    return outcome;
  });
  assert.match(saved, /^QuotaExceededError: browser storage is full: saving the model 'too-big' failed/);

  // A reload has every correction; the unsaved version is gone, as the page said.
  await page.reload();
  await ready(page);
  assert.deepEqual(
    (await page.$$eval('#corrections .ctext', (items) => items.map((i) => i.textContent))).sort(),
    [...WRONG].sort(),
  );
  assert.match(await badge(page), /shipped model/);
  assert.equal((await versions(page)).length, 1);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a batch too big for the storage left: the page says it is not kept, corrections still are, and a reload shows no older batch', async () => {
  const { context, page, errors } = await open({ quota: 200 * 1024 });
  await classify(page, ['质量很好', '太差了']); // small: kept
  await page.waitForFunction(() => document.body.dataset.batchKept === '2');
  const big = randomReviews(3000, 60); // about 360 KB of text
  await page.evaluate(() => delete document.body.dataset.classified);
  await page.setInputFiles('#file', writeTemp('big.txt', `${big.join('\n')}\n`));
  await classified(page, 3000);
  await page.waitForFunction(() => document.body.dataset.batchKept === '0');
  assert.match(await page.textContent('#storage'), /This batch of results \(3000 reviews\) will not be there after a reload/);
  assert.match(await page.textContent('#storage'), /^Browser storage is full/);
  await page.click('#results tbody tr[data-row="0"] .choice[data-label="positive"]');
  await page.waitForFunction(() => document.querySelectorAll('#corrections li').length === 1);

  await page.reload();
  await ready(page);
  assert.equal(await page.$$eval('#corrections li', (items) => items.length), 1, 'the correction is kept');
  assert.equal(await page.isVisible('#results'), false, 'no older batch comes back as the last one');
  assert.deepEqual(errors, []);
  await context.close();
});

test('undo the last fine-tune removes the newest version, not the one in use', async () => {
  const { context, page, errors } = await open();
  await classify(page, WRONG);
  await correctAll(page, 'negative');
  for (let n = 1; n <= 2; n++) {
    assert.match(await fineTune(page, 1), /Fine-tuned/);
    // The drop warning shows exactly when held-out accuracy fell.
    const { before, after } = await heldout(page);
    assert.equal(await page.isVisible('#ft-worse'), after < before, `fine-tune ${n}: held-out ${before} → ${after}`);
  }
  const [, first, second] = await versions(page);
  assert.match(first.text, /^fine-tune 1/);
  assert.match(second.text, /^fine-tune 2/);

  await switchVersion(page, '#versions li:nth-child(2) button', ' · fine-tune 1 · ');
  await page.click('#undo-model');
  await page.waitForFunction(() => document.querySelectorAll('#versions li').length === 2);
  assert.deepEqual((await versions(page)).map((v) => v.key), ['', first.key], 'fine-tune 2 is gone, fine-tune 1 stays');
  assert.match(await badge(page), / · fine-tune 1 · /);
  const gone = await page.evaluate(async (key) => {
    const { Classifier } = await import('/xinsheng.js');
    for (let i = 0; i < 50; i++) {
      if ((await Classifier.restore(key, { backend: 'cpu', workers: 1 })) === null) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }, second.key);
  assert.equal(gone, true, "fine-tune 2's saved model is deleted");

  // Undoing the one in use switches to the one before it: the shipped model.
  await page.click('#undo-model');
  await page.waitForFunction(() => document.querySelectorAll('#versions li').length === 1);
  await page.waitForFunction(() => /shipped model/.test(document.getElementById('backend').textContent));
  assert.equal(await page.isDisabled('#undo-model'), true, 'nothing left to undo');
  await page.reload();
  await ready(page);
  assert.equal((await versions(page)).length, 1);
  assert.match(await badge(page), /shipped model/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a fine-tune that lowers held-out accuracy says so plainly and offers the previous version', async () => {
  const { context, page, errors } = await open();
  // Plainly positive reviews corrected to negative (a user's slip): the model learns that
  // praise is a complaint, and the held-out reviews suffer.
  await classify(page, ['质量很好，非常满意', '物流很快，包装完好，推荐购买', '服务热情，环境干净，下次还来']);
  await correctAll(page, 'negative');
  assert.match(await fineTune(page, 8), /Fine-tuned/);
  const { before, after } = await heldout(page);
  assert.ok(after < before, `held-out accuracy ${before} → ${after} of 99: this example is one that drops it`);
  assert.equal(await page.isVisible('#ft-worse'), true);
  const warning = await page.textContent('#ft-worse-text');
  assert.match(warning, /^Warning: fine-tune 1 is less accurate on the held-out reviews/);
  assert.ok(warning.includes(`${await page.textContent('#acc-held-before')} → ${await page.textContent('#acc-held-after')}`), warning);
  assert.equal(await page.textContent('#keep-previous'), 'Go back to the previous version (shipped model)');

  await switchVersion(page, '#keep-previous', ' · shipped model · ');
  assert.equal(await page.isVisible('#ft-worse'), false);
  assert.equal((await versions(page)).length, 2, 'the worse version stays in the list');
  assert.match(await badge(page), /shipped model/);
  await page.reload();
  await ready(page);
  assert.match(await badge(page), /shipped model/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('the last batch of 5,000 reviews, its predictions and corrections survive a reload', async () => {
  const { context, page, errors } = await open();
  const reviews = Array.from({ length: 5000 }, (_, i) => `第${i}条评论：${i % 3 ? '质量很好，物流也快' : '太差了，不推荐'}`);
  await page.setInputFiles('#file', writeTemp('reviews-5000.txt', `${reviews.join('\n')}\n`));
  await classified(page, 5000);
  await page.click('#results tbody tr[data-row="0"] .choice[data-label="positive"]');
  await page.click('#results tbody tr[data-row="1"] .choice[data-label="negative"]');
  await page.waitForFunction(() => document.querySelectorAll('#corrections li').length === 2);
  const shown = () =>
    page.$$eval('#results tbody tr', (rows) =>
      rows.map((r) => [r.dataset.row, r.dataset.label, r.dataset.corrected, r.dataset.margin, r.querySelector('.pct').textContent]),
    );
  const counts = () => page.$$eval('#label-counts li', (items) => items.map((li) => [li.dataset.label, li.dataset.count]));
  const table = await shown();
  const overview = await counts();
  await page.waitForFunction(() => document.body.dataset.batchKept === '5000');
  assert.equal(await page.isVisible('#storage'), false);

  await page.reload();
  await ready(page);
  await classified(page, 5000);
  assert.match(await page.textContent('#status'), /Restored the last analysis: 5000 reviews/);
  assert.equal(await page.getAttribute('#result-count', 'data-shown'), '5000');
  assert.deepEqual(await shown(), table);
  assert.deepEqual(await counts(), overview);
  assert.deepEqual(errors, []);
  await context.close();
});
