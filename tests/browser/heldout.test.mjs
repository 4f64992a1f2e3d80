// web/heldout.json, the sample the page reports held-out accuracy on, is what
// scripts/heldout.mjs makes from data/test.tsv (a static check: the page's use of it is tested
// in persistence.test.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EVERY, MAX_CHARS, heldout, render } from '../../scripts/heldout.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('web/heldout.json is every 16th test review up to 200 characters, as scripts/heldout.mjs makes it', () => {
  const sample = heldout(readFileSync(join(root, 'data/test.tsv'), 'utf8'));
  assert.equal(readFileSync(join(root, 'web/heldout.json'), 'utf8'), render(sample));
  assert.equal(sample.length, 99, 'the README says 99 reviews');
  assert.ok(sample.every((r) => [...r.text].length <= MAX_CHARS && (r.label === 'positive' || r.label === 'negative')));
  assert.equal(EVERY, 16);
});

test('the script refuses a file without the header it expects, naming the file', () => {
  assert.throws(() => heldout('text\tlabel\n好\tpositive\n'), /data\/test\.tsv: expected the header 'label<TAB>text'/);
});
