// Files as users have them, opened on the demo page (CPU backend: reading files does not depend
// on the backend): the same fixtures as the CLI's crates/xinsheng-train/tests/input_files.rs,
// read by the same core reader in the engine (issue 23). A file mixing UTF-8 and GBK lines is an
// error naming the line, never mojibake; a CSV renamed .xlsx is refused by the CLI's rule and
// opens with the Format menu; a doccano export with another text key names the page's field;
// and the CSV export guards cells a spreadsheet would run as formulas, by the table in
// tests/fixtures/files/formulas.json, and re-imports as the texts it came from.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, openPage, writeTemp, sharedSession } from './harness.mjs';

const session = sharedSession({ webgpu: false });

const fixture = (name) => join(ROOT, 'tests/fixtures/files', name);
const ready = (page) => page.waitForSelector('body[data-ready=true]');
const classified = (page, n) =>
  page.waitForFunction((n) => document.body.dataset.classified === String(n), n, { timeout: 120_000 });
const shownTexts = (page) => page.$$eval('#results tbody tr .review', (cells) => cells.map((c) => c.title || c.textContent));

/** Opens `file` with the page's file input and resolves to the status line it leads to. */
async function openFailing(page, file) {
  await page.evaluate(() => {
    const status = document.getElementById('status');
    status.hidden = true;
    status.textContent = '';
  });
  await page.setInputFiles('#file', file);
  await page.waitForFunction(() => !document.getElementById('status').hidden && document.getElementById('status').textContent);
  return page.textContent('#status');
}

async function openFine(page, file, n) {
  await page.evaluate(() => delete document.body.dataset.classified);
  await page.setInputFiles('#file', file);
  await classified(page, n);
}

test('a file mixing UTF-8 and GBK lines is an error naming its line; the table shows no mojibake', async () => {
  const { page, context } = await openPage(session.browser, `${session.server.url}?backend=cpu&lang=en`);
  await ready(page);
  const status = await openFailing(page, fixture('mixed-encodings.txt'));
  assert.match(status, /mixed-encodings\.txt:3/, status);
  assert.match(status, /UTF-8/, status);
  assert.doesNotMatch(status, /浠锋牸/, status);
  const texts = await shownTexts(page);
  assert.ok(!texts.some((t) => /浠锋牸|瀹㈡湇/.test(t)), `mojibake in the table: ${texts}`);
  await context.close();
});

test('a CSV renamed .xlsx is refused as the CLI refuses it and opens with the Format menu; a doccano key names the Text column field', async () => {
  const { page, context } = await openPage(session.browser, `${session.server.url}?backend=cpu&lang=en`);
  await ready(page);
  const status = await openFailing(page, fixture('renamed-csv.xlsx'));
  assert.match(status, /renamed-csv\.xlsx/, status);
  assert.match(status, /\.xlsx/, status);
  assert.match(status, /Format/, status);
  await page.selectOption('#format', 'csv');
  await openFine(page, fixture('renamed-csv.xlsx'), 2);
  assert.deepEqual(await shownTexts(page), ['质量很好，物流也快', '太差了，不推荐'], 'the header is not a review');
  await page.selectOption('#format', 'auto');

  const doccano = await openFailing(page, fixture('doccano-data-key.jsonl'));
  assert.match(doccano, /doccano-data-key\.jsonl:1/, doccano);
  assert.match(doccano, /\bdata\b/, doccano); // the keys the line has
  assert.match(doccano, /Text column/, doccano);
  await page.click('details.columns summary');
  await page.fill('#text-column', 'data');
  await openFine(page, fixture('doccano-data-key.jsonl'), 2);
  assert.deepEqual(await shownTexts(page), ['质量很好，物流也快', '太差了，不推荐']);
  await context.close();
});

test('the CSV export guards formula cells by the shared table and re-imports as the same texts', async () => {
  const { cases } = JSON.parse(readFileSync(fixture('formulas.json'), 'utf8'));
  const { page, context, errors } = await openPage(session.browser, `${session.server.url}?backend=cpu&lang=en`);
  await ready(page);
  const jsonl = cases.map((c) => JSON.stringify({ text: c.text })).join('\n') + '\n';
  await openFine(page, writeTemp('formulas.jsonl', jsonl), cases.length);

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
  const csv = readFileSync(await download.path(), 'utf8');
  const lines = csv.replace(/^\uFEFF/, '').split('\r\n');
  assert.equal(lines[0], 'text,label,score,p_negative,p_neutral,p_positive,corrected');
  cases.forEach((c, i) => {
    assert.ok(lines[i + 1].startsWith(`${c.cell},`), `row ${i + 1}: ${JSON.stringify(lines[i + 1])} should start with ${JSON.stringify(c.cell)}`);
  });
  for (const line of lines.slice(1)) {
    assert.doesNotMatch(line, /^[=+\-@\t\r]/, 'no cell starts a formula');
  }

  // Re-imported, the export reads as the original texts (the core's reader takes the ' off).
  await openFine(page, writeTemp('xinsheng-predictions.csv', csv), cases.length);
  const [again] = await Promise.all([page.waitForEvent('download'), page.click('#export-jsonl')]);
  const reread = readFileSync(await again.path(), 'utf8').trim().split('\n').map((l) => JSON.parse(l).text);
  assert.deepEqual(reread, cases.map((c) => c.text));
  assert.deepEqual(errors, []);
  await context.close();
});
