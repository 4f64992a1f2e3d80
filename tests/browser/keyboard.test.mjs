// Correcting from the keyboard, the page's own words for what went wrong, and the training
// chart: in headless Chromium on the CPU, in the page's default Chinese (English where noted).
//
// - After u / Ctrl+Z, and after a correction that takes a row out of the current filter, the
//   focus stays on the row or moves to the next one, so ↓ and the number keys go on working
//   (they once fell to the page body: 12 presses, 0 corrections). A tenth label has a key, 0.
// - Errors from the core's file reader are worded from the page's string tables by their stable
//   code, and name the page's own controls (文本列, the Encoding menu), never a CLI flag.
// - The fine-tuning chart's legend names its series (not "Value"), and its step axis ticks
//   whole steps.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openPage, writeTemp, sharedSession } from './harness.mjs';

const session = sharedSession({ webgpu: false });

const demo = (query) => `${session.server.url}?backend=cpu${query ? `&${query}` : ''}`;
const ready = (page) => page.waitForSelector('body[data-ready=true]', { timeout: 180_000 });

const REVIEWS = [
  '这家酒店的服务非常好，房间干净，下次还来！',
  '质量太差了，用了两天就坏了，不推荐购买。',
  '物流很快，包装完好，性价比很高。',
  '客服态度恶劣，退货流程麻烦死了。',
  '屏幕清晰，电池耐用，非常满意。',
  '质量很好，物流也快，推荐购买',
  '书的内容一般，没有想象中那么好。',
  '服务热情周到，菜也好吃，下次还来',
];

async function classify(page, texts) {
  await page.fill('#input', texts.join('\n'));
  await page.click('#classify');
  await page.waitForFunction((n) => document.querySelectorAll('#results tbody tr').length === n, texts.length, {
    timeout: 120_000,
  });
}

/** The focused element, as the row index it is or is in (`null` for anything outside the table). */
const focusedRow = (page) =>
  page.evaluate(() => {
    const tr = document.activeElement?.closest?.('#results tbody tr');
    return tr ? Number(tr.dataset.row) : document.activeElement === document.body ? 'body' : document.activeElement?.id ?? null;
  });

const corrections = async (page) => Number(await page.textContent('#correction-count'));

test('after u and Ctrl+Z the focus stays on the row: ↓ and the number keys go on correcting', async () => {
  const { page, context, errors } = await openPage(session.browser, demo());
  await ready(page);
  await classify(page, REVIEWS);
  const labels = await page.$$eval('#results tbody tr:first-child .choice', (bs) => bs.map((b) => b.dataset.label));
  assert.deepEqual(labels, ['negative', 'neutral', 'positive']);

  await page.focus('#results tbody tr[data-row="0"]');
  await page.keyboard.press('1');
  assert.equal(await corrections(page), 1);
  await page.keyboard.press('u');
  assert.equal(await corrections(page), 0);
  assert.equal(await focusedRow(page), 0, 'u keeps the focus on the row');

  // The issue's example: twelve presses after an undo, six of them corrections.
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('3'); // positive, the third label
  }
  assert.equal(await corrections(page), 6);
  assert.equal(await focusedRow(page), 6);
  const corrected = await page.$$eval('#results tbody tr', (rows) => rows.map((r) => r.dataset.corrected));
  assert.deepEqual(corrected, ['', 'positive', 'positive', 'positive', 'positive', 'positive', 'positive', '']);

  await page.keyboard.press('Control+z');
  assert.equal(await corrections(page), 5);
  assert.equal(await focusedRow(page), 6, 'Ctrl+Z keeps the focus on the row');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('1');
  assert.equal(await corrections(page), 6);
  assert.equal(await page.getAttribute('#results tbody tr[data-row="7"]', 'data-corrected'), 'negative');

  // A click on a label, then the keyboard from there.
  await page.click('#results tbody tr[data-row="0"] .choice[data-label="negative"]');
  assert.equal(await focusedRow(page), 0);
  await page.keyboard.press('u');
  assert.equal(await focusedRow(page), 0, 'an undo after a click keeps the focus in the row');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('1');
  assert.equal(await page.getAttribute('#results tbody tr[data-row="1"]', 'data-corrected'), 'negative');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a correction that moves the row out of the filter moves the focus to the next row', async () => {
  const { page, context, errors } = await openPage(session.browser, demo());
  await ready(page);
  await classify(page, REVIEWS);
  const positives = await page.$$eval('#results tbody tr[data-label="positive"]', (rows) => rows.map((r) => Number(r.dataset.row)));
  assert.ok(positives.length >= 4, `the model calls ${positives.length} of these positive`);

  await page.selectOption('#filter-label', 'positive');
  await page.waitForFunction((n) => document.querySelectorAll('#results tbody tr').length === n, positives.length);
  await page.focus(`#results tbody tr[data-row="${positives[0]}"]`);
  await page.keyboard.press('1'); // negative: the row leaves the filter
  assert.equal(await focusedRow(page), positives[1], 'the focus moves to the next row');
  await page.keyboard.press('1');
  assert.equal(await focusedRow(page), positives[2]);

  // A click that moves the row out also leaves the keyboard on the next row.
  await page.click(`#results tbody tr[data-row="${positives[2]}"] .choice[data-label="negative"]`);
  assert.equal(await focusedRow(page), positives[3]);

  // Every remaining press corrects the next row, until the view is empty; u still undoes there.
  for (let i = 3; i < positives.length; i++) await page.keyboard.press('1');
  assert.equal(await corrections(page), positives.length);
  assert.equal(await page.getAttribute('#result-count', 'data-shown'), '0');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'results', 'the empty table keeps the keyboard');
  await page.keyboard.press('u');
  assert.equal(await corrections(page), positives.length - 1);
  assert.equal(await focusedRow(page), positives.at(-1), 'the row the undo brings back has the focus');
  await page.keyboard.press('3'); // positive: it stays in the filter
  assert.equal(await focusedRow(page), positives.at(-1));
  assert.equal(await page.getAttribute(`#results tbody tr[data-row="${positives.at(-1)}"]`, 'data-corrected'), 'positive');
  assert.deepEqual(errors, []);
  await context.close();
});

test('with ten labels the tenth has the key 0, and the hint says so', async () => {
  const { page, context, errors } = await openPage(session.browser, demo());
  await ready(page);
  assert.match(await page.textContent('.hint[data-i18n="correctHint"]'), /1–9.*第 10 个标签按 0/);
  for (let i = 4; i <= 10; i++) {
    await page.fill('#new-label', `标签${i}`);
    await page.click('#add-label');
  }
  await classify(page, REVIEWS.slice(0, 2));
  const buttons = await page.$$eval('#results tbody tr[data-row="0"] .choice', (bs) => bs.map((b) => b.textContent));
  assert.equal(buttons.length, 10);
  assert.deepEqual(
    buttons.map((b) => b.split(' ')[0]),
    ['1', '2', '3', '4', '5', '6', '7', '8', '9', '0'],
  );
  await page.focus('#results tbody tr[data-row="0"]');
  await page.keyboard.press('0');
  assert.equal(await page.getAttribute('#results tbody tr[data-row="0"]', 'data-corrected'), '标签10');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('9');
  assert.equal(await page.getAttribute('#results tbody tr[data-row="1"]', 'data-corrected'), '标签9');

  await page.click('#lang');
  assert.match(await page.textContent('.hint[data-i18n="correctHint"]'), /1–9, and 0 for the tenth/);
  assert.deepEqual(errors, []);
  await context.close();
});

/** Opens `name` with `content` through the page's file input and returns the status line once it changes. */
async function open(page, name, content) {
  const before = await page.textContent('#status');
  await page.setInputFiles('#file', writeTemp(name, content));
  await page.waitForFunction((old) => {
    const node = document.getElementById('status');
    return !node.hidden && node.textContent !== old;
  }, before);
  return page.textContent('#status');
}

test('file errors are worded in the page language and name the page controls, not CLI flags', async () => {
  const { page, context, errors } = await openPage(session.browser, demo());
  await ready(page);

  // A table without a recognisable text column: the 文本列 field, not --text-column.
  let status = await open(page, 'reviews.csv', 'title,score\n很好,5\n');
  assert.equal(
    status,
    '无法打开文件：reviews.csv 第 1 行：表头中没有文本列（可识别的列名：text, review, content, sentence, comment, 评论, 内容）；' +
      '表头中的列：title, score。请在“列与标签”的“文本列”中填写评论所在的列名。',
  );
  assert.doesNotMatch(status, /--text-column|header row/);

  // Named in the field, but the file has no such column.
  await page.click('details.columns summary');
  await page.fill('#text-column', 'body');
  status = await open(page, 'reviews.csv', 'title,score\n很好,5\n');
  assert.equal(status, '无法打开文件：reviews.csv 第 1 行：表头中没有“文本列”中填写的列“body”；表头中的列：title, score。请在“文本列”中填写其中一个。');
  await page.fill('#text-column', 'title');
  await page.setInputFiles('#file', writeTemp('reviews.csv', 'title,score\n很好,5\n'));
  await page.waitForFunction(() => document.querySelectorAll('#results tbody tr').length === 1);
  await page.fill('#text-column', '');

  // A doccano-style line whose text is under another key.
  status = await open(page, 'export.jsonl', '{"data": "很好", "label": ["positive"]}\n');
  assert.match(status, /^无法打开文件：export\.jsonl 第 1 行：找不到评论文本的键.*这一行的键：data, label。请在“列与标签”的“文本列”中填写/);

  // Bytes that are no supported encoding: the Encoding menu, not --encoding.
  status = await open(page, 'bytes.txt', Buffer.from([0x6f, 0x6b, 0x0a, 0xff, 0xff, 0xff, 0x0a]));
  assert.equal(status, '无法打开文件：bytes.txt 第 2 行：既不是 UTF-8 也不是 GB18030/GBK 文本。请把文件另存为 UTF-8，或在“编码”菜单中选择它的编码。');
  assert.doesNotMatch(status, /--encoding/);

  // A UTF-8 file with a line pasted from a GBK one, and a CSV renamed .xlsx: the page's menus.
  const gbk = Buffer.from([0xce, 0xef, 0xc1, 0xf7, 0xcc, 0xab, 0xc2, 0xfd, 0xc1, 0xcb, 0x0a]); // 物流太慢了, in GBK
  status = await open(page, 'mixed.txt', Buffer.concat([gbk, Buffer.from('价格和配置都很满意\n')]));
  assert.match(status, /^无法打开文件：mixed\.txt 第 1 行：这一行不是 UTF-8，而第 2 行是 UTF-8.*请在“编码”菜单中选择 GB18030。$/);
  status = await open(page, 'reviews.xlsx', 'text\n很好\n');
  assert.match(status, /^无法打开文件：reviews\.xlsx：无法识别的文件格式“\.xlsx”。.*电子表格请先另存为 CSV（UTF-8）.*“格式”菜单/);
  assert.doesNotMatch(status, /--format|format=/);

  // Malformed JSON in an import of corrections.
  const before = await page.textContent('#status');
  await page.setInputFiles('#import-corrections', writeTemp('bad.jsonl', '{"label":"positive","text":"好"}\n{"label": "negative", "text": \n'));
  await page.waitForFunction((old) => document.getElementById('status').textContent !== old, before);
  assert.match(await page.textContent('#status'), /^导入失败：bad\.jsonl 第 2 行：这一行不是有效的 JSON（.*）；每一行应是一个对象/);

  // English, after the switch: the same fault in English, naming the same field.
  await page.click('#lang');
  status = await open(page, 'reviews.tsv', 'title\tscore\n很好\t5\n');
  assert.match(status, /^Cannot open the file: reviews\.tsv:1: the header row has no text column .*in the Text column field/);
  assert.doesNotMatch(status, /--text-column/);

  // An error whose code the tables do not know shows its own message; one without a code too.
  const shown = await page.evaluate(async () => {
    const { errorText } = await import('./app/ui.js');
    return [
      errorText(Object.assign(new Error('core words'), { code: 'no-such-code', values: {} })),
      errorText(new Error('plain')),
      errorText('text'),
    ];
  });
  assert.deepEqual(shown, ['core words', 'plain', 'text']);
  assert.deepEqual(errors, []);
  await context.close();
});

/** Runs in the page before its scripts: records the text uPlot draws in the training chart. */
function recordChartText() {
  window.__chartText = [];
  const original = CanvasRenderingContext2D.prototype.fillText;
  CanvasRenderingContext2D.prototype.fillText = function (text, x, y, ...rest) {
    if (this.canvas.closest?.('#chart')) window.__chartText.push({ text: String(text), align: this.textAlign, y });
    return original.call(this, text, x, y, ...rest);
  };
}

test('the training chart legend names loss and accuracy, and its step axis ticks whole steps', async () => {
  const { page, context, errors } = await openPage(session.browser, demo(), { init: recordChartText });
  await ready(page);
  await classify(page, REVIEWS.slice(0, 3));
  await page.click('#results tbody tr[data-row="0"] .choice[data-label="negative"]');
  await page.fill('#epochs', '3'); // one example: one step an epoch, three steps
  await page.click('#finetune');
  await page.waitForFunction(
    () => /失败/.test(document.getElementById('status').textContent) || !document.getElementById('ft-summary').hidden,
    null,
    { timeout: 180_000 },
  );
  assert.doesNotMatch(await page.textContent('#status'), /失败/);

  const legend = await page.$$eval('#chart .u-legend .u-series', (items) => items.map((i) => i.textContent.trim()));
  assert.deepEqual(legend, ['损失', '准确率']);
  assert.doesNotMatch(await page.textContent('#chart'), /Value/);

  // The step axis: the centred labels under the plot (the axis titles aside).
  const drawn = await page.evaluate(() => window.__chartText);
  const bottom = drawn.filter((d) => d.align === 'center' && !['步', '损失', '准确率'].includes(d.text));
  const ticks = [...new Set(bottom.map((d) => d.text))];
  assert.ok(ticks.length >= 2, `step ticks drawn: ${JSON.stringify(ticks)}`);
  for (const tick of ticks) assert.match(tick, /^\d+$/, `step tick '${tick}' is a whole number`);
  assert.deepEqual(errors, []);
  await context.close();
});
