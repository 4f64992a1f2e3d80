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

// The page words the core's faults by their stable code (errorText in web/app/ui.js looks up
// `err-<code>`); every code the core's data errors and the browser crate give has both strings.
test('every error code from the core has its wording in Chinese and in English', () => {
  const rust = [
    ...readdirSync(join(ROOT, 'crates/xinsheng-core/src'))
      .filter((f) => f.endsWith('.rs'))
      .map((f) => read(`crates/xinsheng-core/src/${f}`)),
    read('crates/xinsheng-web/src/lib.rs'),
  ];
  const codes = new Set();
  for (const source of rust) {
    for (const [, code] of source.matchAll(/\b(?:with_code|set_code)\(\s*(?:&\w+,\s*)?"([a-z0-9-]+)"/g)) codes.add(code);
  }
  assert.ok(codes.has('no-text-column') && codes.size >= 15, `found only ${[...codes]}: the scan is broken`);
  for (const lang of ['zh', 'en']) {
    const missing = [...codes].filter((code) => !(`err-${code}` in STRINGS[lang]));
    assert.deepEqual(missing, [], `${lang} lacks the wording of these codes`);
  }
});
