// The page as a workbench, in headless Chromium on the CPU backend: whole files through the
// engine's worker (progress, a responsive page, cancelling), the overview against the table,
// the "needs review" order, export and re-import, and the Chinese/English switch.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, openPage, countMainThreadWasm, writeTemp, sharedSession } from './harness.mjs';

const session = sharedSession({ webgpu: false });

const demo = (query) => `${session.server.url}?backend=cpu${query ? `&${query}` : ''}`;
const ready = (page) => page.waitForSelector('body[data-ready=true]');
/** Resolves when a classification (of `n` reviews, if given) has finished. */
const classified = (page, n) =>
  page.waitForFunction((n) => document.body.dataset.classified !== undefined && (n === undefined || document.body.dataset.classified === String(n)), n, {
    timeout: 180_000,
  });

test('a 5,000-review file classifies in the worker while the page answers clicks; cancel keeps what is done', async () => {
  const { page, context, errors } = await openPage(session.browser, demo('lang=en'), { init: countMainThreadWasm });
  await ready(page);
  const reviews = Array.from({ length: 5000 }, (_, i) => `第${i}条评论：${i % 3 ? '质量很好，物流也快' : '太差了，不推荐'}`);
  const file = writeTemp('reviews-5000.txt', `${reviews.join('\n')}\n`);

  await page.evaluate(() => {
    document.querySelector('h1').addEventListener('click', () => (window.__clickedAt ??= performance.now()));
    new MutationObserver(() => {
      if (document.body.dataset.classified !== undefined) window.__doneAt ??= performance.now();
    }).observe(document.body, { attributes: true });
    window.__progress = [];
    new MutationObserver(() => window.__progress.push(Number(document.getElementById('classify-progress').value))).observe(
      document.getElementById('classify-progress'),
      { attributes: true },
    );
  });
  await page.setInputFiles('#file', file);
  await page.waitForFunction(() => Number(document.getElementById('classify-progress').value) >= 512);
  await page.click('h1'); // a click in the middle of the batch
  await classified(page, 5000);
  const timing = await page.evaluate(() => ({ clickedAt: window.__clickedAt, doneAt: window.__doneAt, progress: window.__progress }));
  assert.ok(timing.clickedAt < timing.doneAt, `click handled at ${timing.clickedAt} ms, batch done at ${timing.doneAt} ms`);
  assert.ok(new Set(timing.progress.filter((v) => v > 0 && v < 5000)).size >= 3, 'progress arrived in chunks');
  assert.equal(await page.evaluate(() => window.__wasmOnMain), 0, 'no WebAssembly on the main thread');
  assert.equal(await page.getAttribute('#result-count', 'data-shown'), '5000');
  assert.equal(await page.$$eval('#results tbody tr', (rows) => rows.length), 100, 'one page of rows in the DOM');

  // Cancel halfway: the rows done so far stay, and the next classification works.
  await page.evaluate(() => {
    delete document.body.dataset.classified;
    document.getElementById('classify-progress').value = 0;
  });
  await page.setInputFiles('#file', file);
  await page.waitForFunction(() => Number(document.getElementById('classify-progress').value) >= 1024);
  await page.click('#cancel');
  await classified(page);
  const kept = Number(await page.evaluate(() => document.body.dataset.classified));
  assert.ok(kept >= 1024 && kept < 5000, `kept ${kept}`);
  assert.match(await page.textContent('#status'), /Cancelled/);
  await page.evaluate(() => delete document.body.dataset.classified);
  await page.fill('#input', '质量很好\n太差了');
  await page.click('#classify');
  await classified(page, 2);
  assert.deepEqual(await page.$$eval('#results tbody tr', (rows) => rows.map((r) => r.dataset.label)), ['positive', 'negative']);
  assert.deepEqual(errors, []);
  await context.close();
});

test('overview counts equal the table; needs-review is ascending margin; CSV export re-imports to the same predictions; GB18030 opens', async () => {
  const { page, context, errors } = await openPage(session.browser, demo('lang=en'));
  await ready(page);
  const lines = readFileSync(join(ROOT, 'data/test.tsv'), 'utf8').split('\n').slice(0, 401).join('\n');
  await page.setInputFiles('#file', writeTemp('test-400.tsv', `${lines}\n`));
  await classified(page, 400);

  // Overview counts = what the label filter shows in the table.
  const counts = await page.$$eval('#label-counts li', (items) => items.map((li) => [li.dataset.label, Number(li.dataset.count)]));
  assert.equal(counts.reduce((n, [, c]) => n + c, 0), 400);
  for (const [label, count] of counts) {
    await page.selectOption('#filter-label', label);
    assert.equal(Number(await page.getAttribute('#result-count', 'data-shown')), count, label);
    const shown = await page.$$eval('#results tbody tr', (rows) => rows.map((r) => r.dataset.label));
    assert.ok(shown.every((l) => l === label), `${label}: ${shown}`);
  }
  await page.selectOption('#filter-label', '');
  const bins = (await page.getAttribute('#chart-confidence', 'data-bins')).split(',').map(Number);
  assert.equal(bins.reduce((a, b) => a + b, 0), 400, 'the histogram counts every review');

  // Export JSONL and CSV (input order).
  const [jsonl] = await Promise.all([page.waitForEvent('download'), page.click('#export-jsonl')]);
  const exported = readFileSync(await jsonl.path(), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(exported.length, 400);
  const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const csvBytes = readFileSync(await csv.path());
  assert.deepEqual([...csvBytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'UTF-8 BOM for Excel');
  assert.match(csvBytes.toString('utf8'), /^\uFEFFtext,label,score,p_negative,p_neutral,p_positive,corrected\r\n/);

  // Needs review: the least sure first, i.e. ascending margin between the top two labels.
  await page.selectOption('#sort', 'review');
  const margins = await page.$$eval('#results tbody tr', (rows) => rows.map((r) => Number(r.dataset.margin)));
  const expected = exported
    .map((p) => {
      const [a, b] = Object.values(p.probs).sort((x, y) => y - x);
      return Number((a - b).toFixed(6));
    })
    .sort((x, y) => x - y)
    .slice(0, 100);
  assert.deepEqual(margins, expected);

  // Re-import the CSV: the page reads the same texts and labels, and classifies them the same.
  await page.evaluate(() => delete document.body.dataset.classified);
  await page.setInputFiles('#file', { name: 'exported.csv', mimeType: 'text/csv', buffer: csvBytes });
  await classified(page, 400);
  const [again] = await Promise.all([page.waitForEvent('download'), page.click('#export-jsonl')]);
  const reimported = readFileSync(await again.path(), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(reimported.map((p) => p.text), exported.map((p) => p.text));
  assert.deepEqual(reimported.map((p) => p.label), exported.map((p) => p.label));
  reimported.forEach((p, i) => assert.ok(Math.abs(p.score - exported[i].score) < 1e-6, `row ${i}`));

  // A GB18030 file, as Chinese Excel saves it, opens with the right text.
  const gb = join(ROOT, 'tests/fixtures/files/gb18030.csv');
  const want = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/files/expected.json'), 'utf8'))['gb18030.csv'];
  await page.evaluate(() => delete document.body.dataset.classified);
  await page.selectOption('#sort', 'input');
  await page.setInputFiles('#file', gb);
  await classified(page, want.records.length);
  assert.deepEqual(
    await page.$$eval('#results tbody tr .review', (cells) => cells.map((c) => c.title || c.textContent)),
    want.records.map((r) => r.text),
  );
  assert.match(await page.textContent('#status'), /gb18030/);
  assert.deepEqual(errors, []);
  await context.close();
});

test('Chinese by default; the English switch changes every string, label names included, and survives reload', async () => {
  const { page, context, errors } = await openPage(session.browser, demo());
  await ready(page);
  const strings = () =>
    page.evaluate(() => [
      ...[...document.querySelectorAll('[data-i18n]')].map((n) => n.textContent),
      ...[...document.querySelectorAll('[data-i18n-placeholder]')].map((n) => n.placeholder),
      document.title,
    ]);
  assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
  assert.equal(await page.textContent('#classify'), '分析');
  await page.fill('#input', '质量很好\n太差了');
  await page.click('#classify');
  await classified(page, 2);
  assert.deepEqual(await page.$$eval('#results tbody tr .label', (cells) => cells.map((c) => c.textContent)), ['正面', '负面']);
  const zh = await strings();

  await page.click('#lang');
  const en = await strings();
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  zh.forEach((s, i) => assert.notEqual(en[i], s, `string ${i} is the same in both languages: ${s}`));
  assert.deepEqual(await page.$$eval('#results tbody tr .label', (cells) => cells.map((c) => c.textContent)), ['positive', 'negative']);
  assert.match(await page.textContent('#backend'), /Running on the CPU/);
  const keys = await page.$$eval('#results tbody tr', (rows) => rows.map((r) => r.dataset.label));
  assert.deepEqual(keys, ['positive', 'negative'], 'keys stay as the bundle names them');

  await page.reload();
  await ready(page);
  assert.deepEqual(await strings(), en, 'English survives reload');
  await page.click('#lang');
  await page.reload();
  await ready(page);
  assert.deepEqual(await strings(), zh, 'and so does Chinese');
  assert.deepEqual(errors, []);
  await context.close();
});
