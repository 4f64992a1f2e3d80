// Every interface string the page and the widget look up exists in both languages: a key used
// in code (t('…'), data-i18n* in index.html, the engine's backend reason codes) that a table
// lacks fails here, before a user meets it (a missing 'reason-webgpu' once left the page
// loading forever wherever WebGPU works).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';
import { STRINGS } from '../../web/app/strings.js';

const read = (path) => readFileSync(join(ROOT, path), 'utf8');
const appSources = () => [
  ...readdirSync(join(ROOT, 'web/app'))
    .filter((f) => f.endsWith('.js') && f !== 'strings.js')
    .map((f) => read(`web/app/${f}`)),
];

/** Keys the page asks for: literal t('…') calls, data-i18n* attributes, `reason-<code>`. */
function pageKeys() {
  const keys = new Set();
  for (const source of appSources()) {
    for (const [, key] of source.matchAll(/\bt\(\s*'([^']+)'/g)) keys.add(key);
  }
  for (const [, key] of read('web/index.html').matchAll(/data-i18n(?:-[a-z-]+)?="([^"]+)"/g)) keys.add(key);
  // main.js shows t(`reason-${code}`) for each code engine.js can report.
  for (const [, code] of read('web/engine.js').matchAll(/\bcode: '([a-z-]+)'/g)) keys.add(`reason-${code}`);
  return keys;
}

test('every string key the page uses exists in Chinese and in English', () => {
  const keys = pageKeys();
  assert.ok(keys.size > 100, `found only ${keys.size} keys: the scan is broken`);
  assert.ok(keys.has('reason-webgpu') && keys.has('backendWebgpu'));
  for (const lang of ['zh', 'en']) {
    const missing = [...keys].filter((k) => !(k in STRINGS[lang]));
    assert.deepEqual(missing, [], `${lang} lacks these keys`);
  }
});

test('both languages hold the same keys with the same {placeholders}', () => {
  const names = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  assert.deepEqual(Object.keys(STRINGS.en).sort(), Object.keys(STRINGS.zh).sort());
  for (const key of Object.keys(STRINGS.zh)) {
    assert.deepEqual(names(STRINGS.en[key]), names(STRINGS.zh[key]), `placeholders of '${key}'`);
  }
});
