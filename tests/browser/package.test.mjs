// The browser library as the npm package `xinsheng` (scripts/package-web.mjs writes it into
// dist/npm): its declarations type-check a TypeScript consumer, and its packed tarball,
// installed into a fresh project and bundled by Vite, classifies like the CLI, fine-tunes and
// shows the widget in headless Chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, inBrowser, startServer, nativePredict, assertSamePredictions, countMainThreadWasm } from './harness.mjs';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const tsc = join(ROOT, 'tests/node_modules/typescript/bin/tsc');
const TEXTS = ['这家酒店的服务非常好，房间干净，下次还来！', '质量太差了，用了两天就坏了，不推荐购买。', '不差', '还行吧，一般般', '😀'];

let project;
let server;
before(async () => {
  assert.ok(existsSync(join(ROOT, 'dist/npm/package.json')), 'dist/npm is not built: run scripts/build-web');
  project = mkdtempSync(join(tmpdir(), 'xinsheng-vite-'));
  const tarball = execFileSync(npm, ['pack', join(ROOT, 'dist/npm'), '--pack-destination', project, '--silent'], { encoding: 'utf8' }).trim();
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'shop', private: true, type: 'module' }));
  execFileSync(npm, ['install', '--offline', '--no-audit', '--no-fund', '--silent', `./${tarball}`], { cwd: project });
  // The two-line page a site owner writes.
  writeFileSync(join(project, 'main.js'), "import { Classifier } from 'xinsheng';\nimport 'xinsheng/widget';\nwindow.Classifier = Classifier;\n");
  writeFileSync(
    join(project, 'index.html'),
    '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>shop</title><sentiment-widget lang="en"></sentiment-widget><script type="module" src="./main.js"></script>\n',
  );
  const { build } = await import(join(ROOT, 'tests/node_modules/vite/dist/node/index.js'));
  await build({ root: project, logLevel: 'warn', configFile: false, build: { outDir: join(project, 'out') } });
  server = await startServer(['--dist', join(project, 'out')]);
});
after(() => {
  server?.close();
  if (project) rmSync(project, { recursive: true, force: true });
});

test('the declarations type-check a TypeScript consumer, and calls of the wrong shape are type errors', () => {
  execFileSync(process.execPath, [tsc, '-p', join(ROOT, 'tests/package')], { stdio: 'pipe' });
});

test('installed from the packed tarball and bundled by Vite: classifies like the CLI in a worker, fine-tunes, shows the widget', async () => {
  const emitted = readdirSync(join(project, 'out/assets'));
  assert.ok(emitted.some((f) => f.endsWith('.wasm')) && emitted.some((f) => f.endsWith('.bpk')), `Vite copied the wasm and the model: ${emitted}`);
  await inBrowser({ webgpu: false, init: countMainThreadWasm }, server.url, async ({ page, errors }) => {
    await page.waitForFunction(() => window.Classifier);
    const result = await page.evaluate(async (texts) => {
      const clf = await window.Classifier.load({ backend: 'cpu' });
      const predictions = await clf.classify(texts);
      const tuned = await clf.fineTune([{ text: '还行吧，一般般', label: 'positive' }], { epochs: 1 });
      return { predictions, tuned, wasmOnMain: window.__wasmOnMain };
    }, TEXTS);
    assertSamePredictions(assert, result.predictions, nativePredict(TEXTS), 1e-5);
    assert.equal(result.tuned.epochs, 1);
    assert.equal(result.wasmOnMain, 0, 'the engine runs in a worker, not on the page');
    // The widget, from the same package.
    await page.fill('sentiment-widget textarea', '质量太差了');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('sentiment-widget').shadowRoot?.querySelector('.result')?.textContent.length > 1);
    const shown = await page.evaluate(() => document.querySelector('sentiment-widget').shadowRoot.querySelector('.result').textContent);
    assert.match(shown, /negative|Negative/i, shown);
    assert.deepEqual(errors, []);
  });
});
