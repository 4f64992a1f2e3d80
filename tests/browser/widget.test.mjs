// <sentiment-widget> on other people's sites, in headless Chromium: readable in a dark colour
// scheme, every attribute applied when set after it is attached (as frameworks do), Enter
// classifies (never while an input method composes), and styled and working when imported
// from another origin under the host's CSP `style-src 'self'`. Plus: its strings are its own
// (nothing from the demo's web/app/) and every key it uses exists in both of its languages.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, countMainThreadWasm, sharedSession, startServer, nativePredict } from './harness.mjs';
import { WIDGET_STRINGS, LABEL_NAMES } from '../../web/widget-strings.js';

const session = sharedSession({ webgpu: false });
const read = (path) => readFileSync(join(ROOT, path), 'utf8');

/** A context (with `options`, e.g. colorScheme) and page whose console errors land in `errors`. */
async function open(url, options = {}) {
  const context = await session.browser.newContext(options);
  await context.addInitScript(countMainThreadWasm);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  await page.goto(url);
  await page.evaluate(() => {
    window.__events = [];
    for (const type of ['sentiment-prediction', 'sentiment-correction', 'sentiment-error']) {
      document.addEventListener(type, (ev) => window.__events.push({ type, detail: ev.detail }));
    }
  });
  return { context, page, errors };
}

/** Waits for the `n`th event of `type` (1-based) and returns its detail. */
async function nthEvent(page, type, n = 1) {
  await page.waitForFunction(([t, k]) => window.__events.filter((e) => e.type === t).length >= k, [type, n], {
    timeout: 120_000,
  });
  return page.evaluate(([t, k]) => window.__events.filter((e) => e.type === t)[k - 1].detail, [type, n]);
}

const count = (page, type) => page.evaluate((t) => window.__events.filter((e) => e.type === t).length, type);

test('the widget has its own strings: every key it uses exists in both languages, nothing comes from web/app/', () => {
  const source = read('web/widget.js');
  const imports = [...source.matchAll(/^\s*import\b[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1]);
  assert.deepEqual(imports.filter((p) => p.includes('app/')), [], 'widget.js imports the demo page');
  assert.ok(imports.includes('./widget-strings.js'));
  assert.match(read('web/index.html'), /<link data-trunk rel="copy-file" href="widget-strings.js">/, 'dist lacks widget-strings.js');

  const keys = new Set([...source.matchAll(/#t\(\s*'([^']+)'/g)].map((m) => m[1]));
  assert.ok(keys.size >= 6 && keys.has('analyse') && keys.has('styleFailed'), `found only ${[...keys]}: the scan is broken`);
  const names = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  for (const lang of ['zh', 'en']) {
    assert.deepEqual([...keys].filter((k) => !(k in WIDGET_STRINGS[lang])), [], `${lang} lacks these keys`);
  }
  assert.deepEqual(Object.keys(WIDGET_STRINGS.en).sort(), Object.keys(WIDGET_STRINGS.zh).sort());
  for (const key of Object.keys(WIDGET_STRINGS.zh)) {
    assert.deepEqual(names(WIDGET_STRINGS.en[key]), names(WIDGET_STRINGS.zh[key]), `placeholders of '${key}'`);
  }
  assert.deepEqual(Object.keys(LABEL_NAMES.en).sort(), Object.keys(LABEL_NAMES.zh).sort());
});

/**
 * Runs in the page: for each text in the widget, the WCAG contrast ratio of its colour against
 * the background it is drawn on (the nearest opaque background up through the shadow root).
 */
function measureContrast() {
  const rgba = (css) => {
    const m = css.match(/rgba?\(([^)]+)\)/);
    if (!m) throw new Error(`unparsed colour ${css}`);
    const [r, g, b, a = 1] = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return { r, g, b, a };
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const luminance = ({ r, g, b }) => {
    const [R, G, B] = [r, g, b].map((c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * R + 0.7152 * G + 0.0722 * B;
  };
  const host = document.getElementById('widget');
  const background = (el) => {
    const layers = [];
    for (let node = el; node; node = node === host ? null : node.parentElement ?? node.getRootNode().host) {
      const c = rgba(getComputedStyle(node).backgroundColor);
      if (c.a > 0) layers.push(c);
      if (c.a >= 1) break;
    }
    if (!layers.length || layers.at(-1).a < 1) throw new Error(`no opaque background under ${el.tagName}`);
    return layers.reduceRight((bottom, top) => over(top, bottom));
  };
  const ratio = (fg, bg) => {
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const root = host.shadowRoot;
  const items = {
    host,
    textarea: root.querySelector('textarea'),
    submit: root.querySelector('button[type=submit]'),
    result: root.querySelector('.result'),
    prompt: root.querySelector('.fix span'),
    choice: root.querySelector('.choice'),
  };
  const out = {};
  for (const [name, el] of Object.entries(items)) {
    const bg = background(el);
    out[name] = ratio(over(rgba(getComputedStyle(el).color), bg), bg);
  }
  const textarea = root.querySelector('textarea');
  const bg = background(textarea);
  out.placeholder = ratio(over(rgba(getComputedStyle(textarea, '::placeholder').color), bg), bg);
  const result = root.querySelector('.result');
  result.classList.add('error');
  out.error = ratio(over(rgba(getComputedStyle(result).color), background(result)), background(result));
  result.classList.remove('error');
  out.hostLuminance = luminance(background(host));
  return out;
}

for (const scheme of ['light', 'dark']) {
  test(`on a site with a dark mode, in the ${scheme} scheme, every text passes WCAG AA contrast (4.5:1)`, async () => {
    const { context, page, errors } = await open(`${session.server.url}widget-test/color-scheme.html`, { colorScheme: scheme });
    try {
      await page.fill('sentiment-widget textarea', '质量很好，物流也快');
      await page.click('sentiment-widget button[type=submit]');
      await nthEvent(page, 'sentiment-prediction');
      await page.waitForSelector('sentiment-widget .choice');
      const contrast = await page.evaluate(measureContrast);
      for (const [name, value] of Object.entries(contrast)) {
        if (name !== 'hostLuminance') assert.ok(value >= 4.5, `${scheme}: ${name} contrast ${value.toFixed(2)} < 4.5 (${JSON.stringify(contrast)})`);
      }
      // It follows the site: dark where the site and the system are.
      if (scheme === 'dark') assert.ok(contrast.hostLuminance < 0.1, `not dark: ${contrast.hostLuminance}`);
      else assert.ok(contrast.hostLuminance > 0.8, `not light: ${contrast.hostLuminance}`);
      assert.deepEqual(errors, []);
    } finally {
      await context.close();
    }
  });
}

test('on a light-only site with a dark system the widget stays light and readable', async () => {
  const { context, page, errors } = await open(`${session.server.url}widget-test/`, { colorScheme: 'dark' });
  try {
    await page.fill('sentiment-widget textarea', '太差了');
    await page.click('sentiment-widget button[type=submit]');
    await nthEvent(page, 'sentiment-prediction');
    await page.waitForSelector('sentiment-widget .choice');
    const contrast = await page.evaluate(measureContrast);
    assert.ok(contrast.hostLuminance > 0.8, `not light: ${contrast.hostLuminance}`);
    for (const [name, value] of Object.entries(contrast)) {
      if (name !== 'hostLuminance') assert.ok(value >= 4.5, `${name} contrast ${value.toFixed(2)} < 4.5`);
    }
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test('every attribute set after the widget is attached applies, as frameworks set them', async () => {
  const { context, page } = await open(`${session.server.url}widget-test/api.html`);
  try {
    // One element upgraded with a property already set on it, one created after the definition.
    await page.evaluate(async () => {
      const early = document.createElement('sentiment-widget');
      early.id = 'early';
      early.placeholder = '早就设好的';
      document.body.append(early);
      await import('/widget.js');
      const w = document.createElement('sentiment-widget');
      w.id = 'widget';
      document.body.append(w); // attached first, attributes afterwards
    });
    const shadow = (id, selector, prop) =>
      page.evaluate(([i, s, p]) => document.getElementById(i).shadowRoot.querySelector(s)?.[p], [id, selector, prop]);
    assert.equal(await shadow('early', 'textarea', 'placeholder'), '早就设好的');
    assert.equal(await page.evaluate(() => document.getElementById('early').getAttribute('placeholder')), '早就设好的');

    const set = (name, value) => page.evaluate(([n, v]) => document.getElementById('widget').setAttribute(n, v), [name, value]);
    const submit = () => page.click('#widget button[type=submit]');
    assert.equal(await shadow('widget', 'button[type=submit]', 'textContent'), '分析');
    assert.equal(await shadow('widget', 'textarea', 'placeholder'), WIDGET_STRINGS.zh.placeholder);

    // placeholder (attribute, then property) and lang.
    await set('placeholder', '写下你的评价');
    assert.equal(await shadow('widget', 'textarea', 'placeholder'), '写下你的评价');
    await page.evaluate(() => (document.getElementById('widget').placeholder = 'Say something'));
    assert.equal(await shadow('widget', 'textarea', 'placeholder'), 'Say something');
    await set('lang', 'en');
    assert.equal(await shadow('widget', 'button[type=submit]', 'textContent'), 'Analyse');

    // backend: a wrong one fails with the engine's reason, then cpu works.
    await page.fill('#widget textarea', '质量很好');
    await set('backend', 'nonsense');
    await submit();
    assert.match((await nthEvent(page, 'sentiment-error', 1)).message, /unknown backend 'nonsense'/);
    await set('backend', 'cpu');

    // model-url: something that is not a model fails naming it; the shipped model works.
    await set('model-url', '/widget-test/page.css');
    await submit();
    assert.match((await nthEvent(page, 'sentiment-error', 2)).message, /page\.css/);
    await page.evaluate(() => (document.getElementById('widget').modelUrl = '/models/default/model.bpk'));
    assert.equal(await page.evaluate(() => document.getElementById('widget').getAttribute('model-url')), '/models/default/model.bpk');
    await submit();
    const prediction = await nthEvent(page, 'sentiment-prediction', 1);
    assert.equal(prediction.label, nativePredict(['质量很好'])[0].label);

    // labels: the correction choices follow it while a result is shown.
    const choices = () => page.$$eval('#widget .choice', (bs) => bs.map((b) => b.dataset.label));
    const others = (list) => list.filter((l) => l !== prediction.label);
    assert.deepEqual(await choices(), others(['negative', 'neutral', 'positive']));
    await set('labels', 'positive,negative,中立');
    assert.deepEqual(await choices(), others(['positive', 'negative', '中立']));
    await page.evaluate(() => (document.getElementById('widget').labels = ['positive', 'negative', '很一般']));
    assert.deepEqual(await choices(), others(['positive', 'negative', '很一般']));

    // A new model-url clears the result it no longer describes.
    await set('model-url', '/models/default/model.bpk?v=2');
    assert.equal(await shadow('widget', '.result', 'textContent'), '');
    assert.equal(await page.$$eval('#widget .choice', (bs) => bs.length), 0);
  } finally {
    await context.close();
  }
});

test('Enter and Ctrl+Enter classify, Shift+Enter is a new line, an Enter that confirms an IME candidate is not', async () => {
  const { context, page, errors } = await open(`${session.server.url}widget-test/`);
  try {
    const box = 'sentiment-widget textarea';
    await page.fill(box, '物流很快');
    await page.press(box, 'Enter');
    assert.equal((await nthEvent(page, 'sentiment-prediction', 1)).text, '物流很快');
    assert.equal(await page.inputValue(box), '物流很快', 'Enter also typed a newline');

    await page.press(box, 'Shift+Enter');
    await page.keyboard.type('包装也好');
    assert.equal(await page.inputValue(box), '物流很快\n包装也好');
    await page.press(box, 'Control+Enter');
    assert.equal((await nthEvent(page, 'sentiment-prediction', 2)).text, '物流很快\n包装也好');

    // While an input method composes (pinyin: Enter confirms the letters typed), Enter is the
    // IME's: Chromium and Firefox mark it isComposing, Safari sends keyCode 229 after compositionend.
    const imeEnter = (how) =>
      page.evaluate((h) => {
        const input = document.querySelector('sentiment-widget').shadowRoot.querySelector('textarea');
        const ev = new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true, composed: true, isComposing: h === 'isComposing' });
        if (h === 'keyCode') Object.defineProperty(ev, 'keyCode', { get: () => 229 });
        input.dispatchEvent(ev);
        return ev.defaultPrevented;
      }, how);
    assert.equal(await imeEnter('isComposing'), false);
    assert.equal(await imeEnter('keyCode'), false);
    // A real composition through the DevTools protocol, as an IME drives the page.
    const cdp = await context.newCDPSession(page);
    await page.fill(box, '');
    await page.focus(box);
    await cdp.send('Input.imeSetComposition', { text: 'hao', selectionStart: 3, selectionEnd: 3 });
    await page.keyboard.press('Enter');
    await cdp.send('Input.insertText', { text: '好' });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(await count(page, 'sentiment-prediction'), 2, 'an Enter during composition submitted');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

/**
 * A host page on its own origin with the CSP `style-src 'self'`, embedding widget.js from
 * `widgetOrigin`; `connect` false leaves that origin out of connect-src too. `worker-src blob:`
 * and the widget's origin let the engine's worker start from a same-origin Blob and import the
 * engine (a module worker's imports count as worker scripts: README, loading from another origin).
 */
function startHost(widgetOrigin, { connect = true } = {}) {
  const csp =
    `default-src 'self'; script-src 'self' ${widgetOrigin} 'wasm-unsafe-eval'; style-src 'self'; ` +
    `connect-src 'self' ${connect ? widgetOrigin : ''}; worker-src 'self' blob: ${widgetOrigin}; img-src 'self' data:; object-src 'none'`;
  const html = `<!doctype html><html lang="zh"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>Another site</title><script type="module" src="${widgetOrigin}/widget.js"></script></head>
<body><h1>别人的网站</h1><sentiment-widget id="widget" backend="cpu"></sentiment-widget></body></html>`;
  const server = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': csp });
    response.end(html);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() })),
  );
}

test("imported from another origin under the host's CSP style-src 'self', the widget is styled and classifies, its engine in a worker", async () => {
  const widgetServer = await startServer(['--cors']);
  const widgetOrigin = new URL(widgetServer.url).origin;
  const host = await startHost(widgetOrigin);
  const { context, page, errors } = await open(host.url);
  try {
    // The control: this CSP does block a stylesheet <link> from the widget's origin (what the
    // widget once used), so the styles below come through the adopted sheet.
    const linkBlocked = await page.evaluate(
      (href) =>
        new Promise((resolve) => {
          const root = document.createElement('div').attachShadow({ mode: 'open' });
          const link = document.createElement('link');
          link.rel = 'stylesheet';
          link.href = href;
          link.onload = () => resolve(false);
          link.onerror = () => resolve(true);
          root.append(link);
          document.body.append(root.host);
        }),
      `${widgetOrigin}/widget.css`,
    );
    assert.equal(linkBlocked, true, 'the CSP did not block the cross-origin <link>');
    errors.length = 0; // that blocked <link> logs a CSP error of its own

    await page.waitForSelector('sentiment-widget textarea', { state: 'visible' });
    const look = await page.evaluate(() => {
      const root = document.getElementById('widget').shadowRoot;
      const button = getComputedStyle(root.querySelector('button[type=submit]'));
      const host = getComputedStyle(document.getElementById('widget'));
      return { adopted: root.adoptedStyleSheets.length, background: button.backgroundColor, radius: button.borderRadius, border: host.borderTopStyle };
    });
    assert.equal(look.adopted, 1);
    assert.equal(look.background, 'rgb(26, 127, 55)', `the button is not styled: ${JSON.stringify(look)}`);
    assert.equal(look.radius, '6px');
    assert.equal(look.border, 'solid');

    await page.fill('sentiment-widget textarea', '质量很好，物流也快');
    await page.press('sentiment-widget textarea', 'Enter');
    const prediction = await nthEvent(page, 'sentiment-prediction');
    assert.equal(prediction.label, nativePredict(['质量很好，物流也快'])[0].label);
    assert.match(await page.textContent('sentiment-widget .result'), / · \d+\.\d%$/);
    // The engine runs in a worker started from a same-origin Blob, not on the host's thread.
    const where = await page.evaluate((origin) => import(`${origin}/xinsheng.js`).then((m) => m.engineLocation()), widgetOrigin);
    assert.equal(where, 'worker');
    assert.equal(await page.evaluate(() => window.__wasmOnMain), 0, 'WebAssembly instantiated on the page thread');
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
    host.close();
    widgetServer.close();
  }
});

test('where the host lets it neither fetch nor link its stylesheet, the widget says so instead of rendering unstyled in silence', async () => {
  const widgetServer = await startServer(['--cors']);
  const widgetOrigin = new URL(widgetServer.url).origin;
  const host = await startHost(widgetOrigin, { connect: false });
  const { context, page } = await open(host.url);
  try {
    await page.waitForFunction(() => document.getElementById('widget').shadowRoot?.querySelector('.result.error'));
    const shown = await page.textContent('sentiment-widget .result');
    assert.match(shown, /无法加载组件样式 .*widget\.css/);
    // Unstyled but visible and usable: not left hidden waiting for its styles.
    assert.ok(await page.isVisible('sentiment-widget textarea'));
  } finally {
    await context.close();
    host.close();
    widgetServer.close();
  }
});
