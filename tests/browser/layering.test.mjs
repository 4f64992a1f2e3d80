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
