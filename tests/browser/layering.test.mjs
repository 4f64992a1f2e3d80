// The browser library (web/*.js) stands apart from the demo (web/app/): no library module imports
// the demo, and every module the library imports is one the build ships. (A static check of the
// sources: the library's behaviour is tested in api.test.mjs and widget.test.mjs.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (p) => readFileSync(join(root, p), 'utf8');
/** Static `import … from '…'`, `export … from '…'` and dynamic `import('…')` specifiers. */
const importsOf = (source) => [
  ...[...source.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]/gm)].map((m) => m[1]),
  ...[...source.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)].map((m) => m[1]),
  ...[...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]),
];

test('the library imports nothing from the demo, and the build ships every module it imports', () => {
  const library = readdirSync(join(root, 'web')).filter((f) => f.endsWith('.js'));
  assert.ok(library.includes('xinsheng.js') && library.includes('rpc.js') && library.includes('pool.js'), `found ${library}`);
  const shipped = new Set([...read('web/index.html').matchAll(/rel="copy-file" href="([^"]+)"/g)].map((m) => m[1]));
  let seen = 0;
  for (const file of library) {
    for (const spec of importsOf(read(`web/${file}`))) {
      seen++;
      assert.ok(spec.startsWith('./'), `${file} imports ${spec}: the library imports only its own modules`);
      assert.ok(!spec.startsWith('./app/'), `${file} imports the demo's ${spec}`);
      const target = spec.slice(2);
      if (target === 'xinsheng-web.js') continue; // the wasm glue, written by the build
      assert.ok(existsSync(join(root, 'web', target)), `${file} imports ${spec}, which does not exist`);
      assert.ok(shipped.has(target), `${file} imports ${spec}, which web/index.html does not copy into dist/`);
    }
  }
  assert.ok(seen >= 8, `only ${seen} imports found: the scan is broken`);
});

/** The first import cycle among `graph`'s modules (`a → b → a`), or null. */
function cycleIn(graph) {
  const state = new Map(); // module → 'open' while on the path, 'done' after
  const path = [];
  const visit = (node) => {
    if (state.get(node) === 'done') return null;
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node];
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const found = visit(next);
      if (found) return found;
    }
    path.pop();
    state.set(node, 'done');
    return null;
  };
  for (const node of graph.keys()) {
    const found = visit(node);
    if (found) return found;
  }
  return null;
}

test('no import cycle among the library and the demo modules, and nothing imports the demo\'s main.js', () => {
  const graph = new Map();
  for (const dir of ['web', 'web/app']) {
    for (const file of readdirSync(join(root, dir)).filter((f) => f.endsWith('.js'))) {
      const from = `${dir}/${file}`;
      const targets = importsOf(read(from))
        .filter((spec) => spec.startsWith('.') && !spec.endsWith('xinsheng-web.js') && !spec.includes('/vendor/'))
        .map((spec) => join(dirname(from), spec));
      graph.set(from, targets);
    }
  }
  assert.ok(graph.size >= 20, `only ${graph.size} modules found`);
  assert.equal(cycleIn(graph), null);
  const importers = [...graph].filter(([, targets]) => targets.includes('web/app/main.js')).map(([from]) => from);
  assert.deepEqual(importers, [], 'main.js wires the page; no module depends on it');
  // The finder finds a cycle when there is one.
  assert.deepEqual(cycleIn(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]])), ['a', 'b', 'c', 'a']);
});
