// The demo page and the widget, clicked through in headless Chromium: every flow on WebGPU
// (SwiftShader: what a browser with WebGPU meets at `/`, the page's default) and on the CPU.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPage, nativePredict, sharedSession } from './harness.mjs';

for (const backend of ['webgpu', 'cpu']) describe(`the page on ${backend}`, () => flows(backend));

function flows(backend) {
  const session = sharedSession({ webgpu: backend === 'webgpu' });
  const BADGE = backend === 'webgpu' ? /Running on WebGPU/ : /CPU/;

  // English: these flows check wording; workbench.test.mjs covers the Chinese default.
  const demo = (query = `backend=${backend}&lang=en`) => `${session.server.url}?${query}`;
  const ready = (page) => page.waitForSelector('body[data-ready=true]', { timeout: 180_000 });

  async function classify(page, texts) {
    // Wait out any classification in flight (a switch of model reclassifies the table), then
    // wait for this one's end: the rows of an earlier batch must not be read as its answer.
    await page.waitForSelector('#classify:not([disabled])', { timeout: 180_000 });
    await page.evaluate(() => delete document.body.dataset.classified);
    await page.fill('#input', texts.join('\n'));
    await page.click('#classify');
    await page.waitForSelector(`body[data-classified="${texts.length}"]`, { timeout: 180_000 });
    return page.$$eval('#results tbody tr', (rows) => rows.map((r) => r.dataset.label));
  }

  async function fineTune(page) {
    await page.click('#finetune');
    await page.waitForFunction(() => /Fine-tuned|failed/.test(document.getElementById('status').textContent), null, {
      timeout: 120_000,
    });
    return page.textContent('#status');
  }

  // Reviews the shipped model calls positive; the user says they are negative.
  const WRONG = ['酒店位置还可以，就是早餐一般', '价格便宜，但是做工一般', '外观很漂亮，做工也精致，可惜用了三天就坏了'];

  test('correct three labels, fine-tune, reload, reset', async () => {
    const { page, context, errors } = await openPage(session.browser, demo());
    await ready(page);
    assert.match(await page.textContent('#backend'), BADGE);
    const shipped = nativePredict(WRONG).map((p) => p.label);
    assert.deepEqual(shipped, ['positive', 'positive', 'positive'], 'the corrections must change labels');
    assert.deepEqual(await classify(page, WRONG), shipped);

    // One correction by click, two by keyboard (row focus, then the label's number).
    const negative = (await page.$$eval('#results tbody tr:first-child .choice', (bs) => bs.map((b) => b.dataset.label))).indexOf(
      'negative',
    );
    await page.click(`#results tbody tr[data-row="0"] .choice >> nth=${negative}`);
    await page.focus('#results tbody tr[data-row="1"]');
    await page.keyboard.press(String(negative + 1));
    await page.waitForFunction(() => document.querySelectorAll('#corrections li').length === 2);
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press(String(negative + 1));
    await page.waitForFunction(() => document.querySelectorAll('#corrections li').length === 3);
    // Undo and redo the last one, to exercise undo.
    await page.keyboard.press('u');
    await page.waitForFunction(() => document.querySelectorAll('#corrections li').length === 2);
    await page.focus('#results tbody tr[data-row="2"]');
    await page.keyboard.press(String(negative + 1));
    await page.waitForFunction(() => document.querySelectorAll('#corrections li').length === 3);

    await page.fill('#epochs', '15');
    assert.match(await fineTune(page), /Fine-tuned/);
    assert.deepEqual(await classify(page, WRONG), ['negative', 'negative', 'negative']);
    assert.equal(await page.isVisible('#ft-summary'), true);
    assert.match(await page.textContent('#acc-corr-after'), /100\.0% \(3\/3\)/);

    await page.reload();
    await ready(page);
    assert.equal(await page.$$eval('#corrections li', (items) => items.length), 3);
    assert.match(await page.textContent('#backend'), /fine-tune 1/);
    assert.deepEqual(await classify(page, WRONG), ['negative', 'negative', 'negative']);

    await page.click('#reset-model');
    await page.waitForFunction(() => /shipped model/.test(document.getElementById('backend').textContent));
    assert.deepEqual(await classify(page, WRONG), shipped);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('adding 一般 through corrections yields a four-label model that predicts it', async () => {
    const { page, context, errors } = await openPage(session.browser, demo());
    await ready(page);
    const neutral = ['还行吧，一般般', '中规中矩，没什么特别的', '普普通通，不好不坏'];
    await classify(page, neutral);
    await page.fill('#new-label', '一般');
    await page.click('#add-label');
    for (let i = 0; i < neutral.length; i++) {
      await page.click(`#results tbody tr[data-row="${i}"] .choice[data-label="一般"]`);
    }
    await page.waitForFunction(() => document.querySelectorAll('#corrections li').length === 3);
    await page.fill('#epochs', '15');
    assert.match(await fineTune(page), /Fine-tuned/);
    assert.match(await page.textContent('#backend'), /negative \/ neutral \/ positive \/ 一般/);
    assert.deepEqual(await classify(page, neutral), ['一般', '一般', '一般']);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('bad input gives clear messages and the page stays usable', async () => {
    const { page, context } = await openPage(session.browser, demo());
    await ready(page);

    await page.click('#finetune');
    assert.match(await page.textContent('#status'), /No corrections yet/);

    const dir = mkdtempSync(join(tmpdir(), 'xinsheng-ui-'));
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"label":"positive","text":"好"}\n{"label": "negative", "text": \n');
    await page.setInputFiles('#import-corrections', bad);
    await page.waitForFunction(() => /bad\.jsonl:2: malformed JSON line/.test(document.getElementById('status').textContent));

    const doc = join(dir, 'reviews.docx');
    writeFileSync(doc, 'not a text file');
    await page.setInputFiles('#file', doc);
    await page.waitForFunction(() => /unknown file format/.test(document.getElementById('status').textContent));

    // A TSV dropped/opened for classification uses its text column.
    const tsv = join(dir, 'reviews.tsv');
    writeFileSync(tsv, 'label\ttext\npositive\t很好\nnegative\t很差\n');
    await page.setInputFiles('#file', tsv);
    await page.waitForFunction(() => document.querySelectorAll('#results tbody tr').length === 2);

    // Hostile text is shown as text.
    const hostile = '<img src=x onerror=alert(1)>';
    await classify(page, [hostile]);
    await page.waitForSelector('#results tbody tr .review .tok');
    assert.equal(await page.getAttribute('#results tbody tr .review', 'title'), hostile);
    assert.equal(await page.$$eval('#results img', (imgs) => imgs.length), 0);
    await context.close();

    // A model URL that is not a model: a clear error; corrections still work.
    const broken = await openPage(session.browser, demo(`backend=${backend}&lang=en&model=/widget-test/page.css`));
    await ready(broken.page);
    assert.match(await broken.page.textContent('#status'), /could not be loaded: .*page\.css/);
    await broken.page.fill('#new-label', '一般');
    await broken.page.click('#add-label');
    assert.match(await broken.page.textContent('#label-list'), /一般/);
    await broken.context.close();
  });

  test('the widget classifies inside another page, emits events and keeps text as text', async () => {
    const { page, context, errors } = await openPage(session.browser, `${session.server.url}widget-test/`);
    const hostile = '<img src=x onerror=alert(1)> 太差了';
    await page.fill('sentiment-widget textarea', hostile);
    await page.click('sentiment-widget button[type=submit]');
    await page.waitForFunction(() => (window.widgetEvents ?? []).some((e) => e.type === 'sentiment-prediction'));
    const [native] = nativePredict([hostile]);
    const prediction = await page.evaluate(() => window.widgetEvents[0].detail);
    assert.equal(prediction.text, hostile);
    assert.equal(prediction.label, native.label);
    assert.match(await page.textContent('sentiment-widget .result'), new RegExp(native.label));

    const other = ['positive', 'negative', 'neutral'].find((l) => l !== native.label);
    await page.click(`sentiment-widget .choice[data-label="${other}"]`);
    await page.waitForFunction(() => window.widgetEvents.some((e) => e.type === 'sentiment-correction'));
    const correction = await page.evaluate(() => window.widgetEvents.find((e) => e.type === 'sentiment-correction').detail);
    assert.deepEqual(correction, { text: hostile, predicted: native.label, label: other });

    // lang: the widget's words and label names follow it; events keep the label keys.
    assert.equal(await page.textContent('sentiment-widget button[type=submit]'), 'Analyse');
    await page.evaluate(() => document.getElementById('widget').setAttribute('lang', 'zh'));
    assert.equal(await page.textContent('sentiment-widget button[type=submit]'), '分析');
    const shown = { positive: '正面', negative: '负面' }[native.label];
    assert.match(await page.textContent('sentiment-widget .result'), new RegExp(`^${shown} · `));

    // The event log renders the hostile text; no element was created from it anywhere.
    assert.match(await page.textContent('#events'), /<img src=x onerror=alert\(1\)>/);
    assert.equal(await page.$$eval('img', (imgs) => imgs.length), 0);
    assert.equal(await page.$$eval('sentiment-widget img', (imgs) => imgs.length), 0);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('highlighting shows the review as written, each weight on its own characters', async () => {
    const { page, context, errors } = await openPage(session.browser, demo());
    await ready(page);
    const text = 'iPhone很好用ＡＢＣ①，物流ＯＫ！';
    await classify(page, [text]);
    await page.waitForSelector('#results tbody tr .review .tok');
    assert.equal(await page.textContent('#results tbody tr .review'), text);
    const marked = await page.$$eval('#results tbody tr .review .tok', (spans) => spans.map((s) => s.textContent));
    assert.deepEqual(marked, ['iPhone', '很', '好', '用', 'ＡＢＣ①', '，', '物', '流', 'ＯＫ', '！']);
    assert.deepEqual(errors, []);
    await context.close();
  });

  test('the page at / with no options finishes loading and classifies', async () => {
    const { page, context, errors } = await openPage(session.browser, session.server.url);
    await ready(page);
    const badge = await page.textContent('#backend');
    assert.match(badge, backend === 'webgpu' ? /运行于 WebGPU/ : /^运行于 CPU（WebAssembly）— (此浏览器不支持 WebGPU|浏览器支持 WebGPU，但没有可用的 GPU) · 内置模型/);
    assert.equal(await page.isDisabled('#classify'), false);
    const [native] = nativePredict(['质量太差了，用了两天就坏了']);
    assert.deepEqual(await classify(page, ['质量太差了，用了两天就坏了']), [native.label]);
    assert.deepEqual(errors, []);
    await context.close();
  });
}
