#!/usr/bin/env node
// Writes the npm package `xinsheng` (the browser library) into dist/npm/ from what
// scripts/build-web put in dist/: the library's modules, the wasm engine, the shipped model and
// its card, jieba's dictionary, package.json (version from Cargo.toml), README and licence, and
// TypeScript declarations that `tsc` generates from the sources' JSDoc (types/*.d.ts). The demo
// (index.html, app/) is not in it. `npm pack dist/npm` makes the tarball.
//
//   node scripts/package-web.mjs        # after scripts/build-web (which runs it)
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const out = join(dist, 'npm');

/** The library's modules: every web/*.js (the demo lives in web/app/), and the wasm glue. */
export const modules = [...readdirSync(join(root, 'web')).filter((f) => f.endsWith('.js')), 'xinsheng-web.js'].sort();
/** What else the modules fetch, relative to themselves. */
export const assets = ['xinsheng-web_bg.wasm', 'widget.css', 'jieba-dict.txt', 'models/default/model.bpk', 'models/default/README.md'];

function version() {
  const cargo = readFileSync(join(root, 'Cargo.toml'), 'utf8');
  const found = cargo.match(/^\[workspace\.package\][^[]*?^version\s*=\s*"([^"]+)"/ms);
  if (!found) throw new Error('Cargo.toml: no [workspace.package] version');
  return found[1];
}

export function packageJson() {
  return {
    name: 'xinsheng',
    version: version(),
    description: 'Chinese sentiment classification (正面 / 负面 / 中立) that runs and learns in the browser: a recurrent network in WebAssembly on WebGPU or the CPU, in a Web Worker',
    license: 'MIT',
    type: 'module',
    keywords: ['sentiment', 'chinese', 'nlp', 'webgpu', 'webassembly', 'rnn', 'lstm', 'web-component'],
    exports: {
      '.': { types: './types/xinsheng.d.ts', default: './xinsheng.js' },
      './widget': { types: './types/widget.d.ts', default: './widget.js' },
      './widget.css': './widget.css',
      './package.json': './package.json',
    },
    types: './types/xinsheng.d.ts',
    files: [...modules, ...assets.map((a) => (a.startsWith('models/') ? 'models/' : a)), 'types/', 'README.md', 'LICENSE']
      .filter((f, i, all) => all.indexOf(f) === i),
    // widget.js defines the <sentiment-widget> element when imported.
    sideEffects: ['./widget.js'],
  };
}

function main() {
  for (const f of [...modules, ...assets]) {
    if (!existsSync(join(dist, f))) throw new Error(`dist/${f} is missing: run scripts/build-web first`);
  }
  rmSync(out, { recursive: true, force: true });
  mkdirSync(join(out, 'models', 'default'), { recursive: true });
  for (const f of [...modules, ...assets]) copyFileSync(join(dist, f), join(out, f));
  cpSync(join(root, 'web', 'package', 'README.md'), join(out, 'README.md'));
  cpSync(join(root, 'web', 'package', 'LICENSE'), join(out, 'LICENSE'));
  const pkg = packageJson();
  writeFileSync(join(out, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  // Declarations from the JSDoc, by TypeScript itself (tests/node_modules, from npm).
  const tsc = join(root, 'tests', 'node_modules', 'typescript', 'bin', 'tsc');
  if (!existsSync(tsc)) throw new Error('tests/node_modules has no typescript: run `npm ci` in tests/ (scripts/setup does)');
  execFileSync(process.execPath, [tsc, '-p', join(root, 'web', 'package', 'tsconfig.json')], { stdio: 'inherit' });
  console.error(`package-web: wrote ${out} (${pkg.name} ${pkg.version})`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
