// Shared set-up for the browser tests: the static server, Chromium with or without WebGPU,
// and the native `xinsheng` binary to compare against.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

const BASE_FLAGS = ['--no-sandbox', '--headless=new', '--disable-background-networking', '--disable-component-update'];
// WebGPU through SwiftShader (software Vulkan): slow but real, available on any machine.
const WEBGPU_FLAGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
];
const NO_WEBGPU_FLAGS = ['--disable-features=WebGPU,Vulkan', '--disable-gpu'];
// WebGPU on the machine's real GPU (Vulkan driver), headless: for benchmarks on a GPU machine.
const HARDWARE_WEBGPU_FLAGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-angle=vulkan',
  '--ignore-gpu-blocklist',
  '--enable-gpu',
];

/** Chromium (`$CHROMIUM` or Debian's); `webgpu`: false, true (SwiftShader) or 'hardware'. */
export async function launch({ webgpu, args = [] }) {
  const flags = webgpu === 'hardware' ? HARDWARE_WEBGPU_FLAGS : webgpu ? WEBGPU_FLAGS : NO_WEBGPU_FLAGS;
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [...BASE_FLAGS, ...flags, ...args],
  });
}

/**
 * Runs in the engine's worker (`worker.evaluate`, see engineWorker): counts WebGPU compute
 * dispatches in `globalThis.__dispatches`.
 */
export function countDispatches() {
  globalThis.__dispatches = 0;
  if (typeof GPUComputePassEncoder === 'undefined') return;
  for (const name of ['dispatchWorkgroups', 'dispatchWorkgroupsIndirect']) {
    const original = GPUComputePassEncoder.prototype[name];
    GPUComputePassEncoder.prototype[name] = function (...args) {
      globalThis.__dispatches++;
      return original.apply(this, args);
    };
  }
}

/** The page's engine worker (xinsheng.js starts one, named 'xinsheng-engine'). */
export async function engineWorker(page) {
  const found = () => page.workers().find((w) => /engine-worker\.js/.test(w.url()));
  return found() ?? (await page.waitForEvent('worker', { predicate: (w) => /engine-worker\.js/.test(w.url()) }));
}

/**
 * Runs in the page before its scripts (`page.addInitScript`): counts WebAssembly instantiations
 * on the main thread in `window.__wasmOnMain`, to show the engine runs elsewhere.
 */
export function countMainThreadWasm() {
  window.__wasmOnMain = 0;
  for (const name of ['instantiate', 'instantiateStreaming', 'compile', 'compileStreaming']) {
    const original = WebAssembly[name];
    WebAssembly[name] = function (...args) {
      window.__wasmOnMain++;
      return original.apply(this, args);
    };
  }
}

/**
 * One server and one Chromium for all the tests of a file (node:test hooks; closed after the
 * last test): read `session.server.url` and `session.browser` inside the tests.
 */
export function sharedSession(options) {
  const session = {};
  before(async () => {
    session.server = await startServer();
    session.browser = await launch(options);
  });
  after(async () => {
    await session.browser?.close();
    session.server?.close();
  });
  return session;
}

/** Starts scripts/serve.mjs on a free port (with `args`, e.g. ['--cors']); resolves to { url, close }. */
export function startServer(args = []) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'scripts/serve.mjs'), '--port', '0', ...args], { cwd: ROOT });
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = out.match(/serving (http:\/\/\S+)/);
      if (match) resolvePromise({ url: match[1], close: () => child.kill() });
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}): ${out}`)));
    if (!existsSync(join(ROOT, 'dist/xinsheng.js'))) reject(new Error('dist/ is not built: run scripts/test'));
  });
}

/** A page whose console errors and uncaught exceptions fail the test that reads `errors`. */
export async function openPage(browser, url, { init } = {}) {
  const context = await browser.newContext();
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console: ${m.text()}`));
  page.on('dialog', (d) => {
    errors.push(`dialog opened: ${d.message()}`);
    d.dismiss();
  });
  await page.goto(url);
  return { page, context, errors };
}

/** Runs `test({ page, context, errors })` on `url` in a fresh Chromium (after `init` runs in it), closed afterwards. */
export async function inBrowser({ webgpu, init, args }, url, test) {
  const browser = await launch({ webgpu, args });
  try {
    return await test(await openPage(browser, url, { init }));
  } finally {
    await browser.close();
  }
}

function binary() {
  const bin = process.env.XINSHENG_BIN;
  if (!bin || !existsSync(bin)) throw new Error('set XINSHENG_BIN to the built `xinsheng` binary (scripts/test does)');
  return bin;
}

/**
 * `xinsheng predict` on `texts` (one per line, so none may contain a newline), aligned with
 * `texts`: `null` for a blank text, which the CLI skips as every text source does.
 */
export function nativePredict(texts, model = join(ROOT, 'models/default'), extra = []) {
  const dir = mkdtempSync(join(tmpdir(), 'xinsheng-'));
  const input = join(dir, 'input.txt');
  writeFileSync(input, texts.join('\n') + '\n');
  const out = execFileSync(binary(), ['predict', '--model', model, '--input', input, ...extra], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const answers = out.trim().split('\n').map((line) => JSON.parse(line));
  return texts.map((t) => (t.trim() ? answers.shift() : null));
}

export function writeTemp(name, bytes) {
  const path = join(mkdtempSync(join(tmpdir(), 'xinsheng-')), name);
  writeFileSync(path, bytes);
  return path;
}

/** Asserts two prediction lists agree: same labels, probabilities within `tolerance`. */
export function assertSamePredictions(assert, browser, native, tolerance = 1e-4) {
  assert.equal(browser.length, native.length);
  browser.forEach((b, i) => {
    if (native[i] === null) return; // a blank text: the CLI skips it
    assert.equal(b.label, native[i].label, `text ${i}: label`);
    for (const [label, p] of Object.entries(native[i].probs)) {
      const diff = Math.abs(b.probs[label] - p);
      assert.ok(diff <= tolerance, `text ${i}: P(${label}) browser ${b.probs[label]} native ${p} (diff ${diff})`);
    }
  });
}
