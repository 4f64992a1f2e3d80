#!/usr/bin/env node
// Writes web/heldout.json, the held-out sample the page scores before and after a fine-tune
// ("Fine-tune and versions" in the README): every 16th review of data/test.tsv (the first, the
// 17th, …, counting reviews, not lines) whose text is at most 200 characters (code points), as
// [{label, text}] in the file's order. The page only reports accuracy on it; nothing is chosen
// on it. `--check` exits 1 when the committed file differs from what this script makes.
//
//   node scripts/heldout.mjs          # rewrite web/heldout.json
//   node scripts/heldout.mjs --check  # what tests/browser/heldout.test.mjs runs
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const EVERY = 16;
export const MAX_CHARS = 200;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'data', 'test.tsv');
const target = join(root, 'web', 'heldout.json');

/** The sample from data/test.tsv's text (a `label\ttext` header, then one review per line). */
export function heldout(tsv) {
  const [header, ...lines] = tsv.split('\n').filter((line) => line !== '');
  if (header !== 'label\ttext') throw new Error(`${source}: expected the header 'label<TAB>text', got '${header}'`);
  return lines
    .map((line, i) => {
      const tab = line.indexOf('\t');
      if (tab < 0) throw new Error(`${source}:${i + 2}: expected 'label<TAB>text'`);
      return { label: line.slice(0, tab), text: line.slice(tab + 1) };
    })
    .filter((review, i) => i % EVERY === 0 && [...review.text].length <= MAX_CHARS);
}

/** The file's bytes: one key per line, as the page has always shipped it. */
export function render(sample) {
  const items = sample.map(({ label, text }) => `{\n"label": ${JSON.stringify(label)},\n"text": ${JSON.stringify(text)}\n}`);
  return `[\n${items.join(',\n')}\n]`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const made = render(heldout(readFileSync(source, 'utf8')));
  if (process.argv.includes('--check')) {
    if (readFileSync(target, 'utf8') !== made) {
      console.error(`${target} differs from what scripts/heldout.mjs makes from ${source}: run node scripts/heldout.mjs`);
      process.exit(1);
    }
  } else {
    writeFileSync(target, made);
    console.error(`wrote ${target}`);
  }
}
