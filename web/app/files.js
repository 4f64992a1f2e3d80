// Files in and out: reviews to classify and corrections to import are read by the core's
// parser in the engine (the same code as the `xinsheng` CLI: encodings, BOM, CRLF, quoted CSV,
// blank lines); predictions and corrections are exported as CSV (UTF-8 with BOM, so Excel
// shows Chinese) and JSONL.

import { readReviews } from '../xinsheng.js';
import { state, correctionFor } from './state.js';
import { download } from './ui.js';

/**
 * `{records, encoding, skippedBlank, labelled}` of a file, read with the page's options: the
 * encoding and format menus and the columns/label map (the CLI's --encoding, --format,
 * --text-column, --label-column and --label-map). With the format menu on its default the
 * core's one rule for names decides, as in the CLI: .txt, .tsv, .csv, .jsonl/.json, a name
 * without an extension as .txt; any other extension is refused.
 */
export function readFile(file) {
  const value = (id) => document.getElementById(id).value.trim() || undefined;
  const format = value('format');
  return readReviews(file, {
    format: format === 'auto' ? undefined : format,
    encoding: value('encoding'),
    textColumn: value('text-column'),
    labelColumn: value('label-column'),
    labelMap: value('label-map'),
  });
}

/**
 * One CSV field. A value that a spreadsheet would run as a formula (it starts, after any
 * apostrophes, with = + - @ tab or CR: the OWASP CSV-injection rule) gets a leading ' and is
 * quoted, so `=HYPERLINK(…)` shows as text; the core's CSV reader takes the ' off again, so an
 * export re-imports as the texts it came from. The same rule as `csv_field` in
 * crates/xinsheng-core/src/input.rs; tests/fixtures/files/formulas.json holds both to one table.
 */
export function csvField(value) {
  let s = String(value ?? '');
  const guarded = /^'*[=+\-@\t\r]/.test(s);
  if (guarded) s = `'${s}`;
  return guarded || /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The classified rows as CSV: text, label, score, p_LABEL per label, corrected. */
export function predictionsCsv(rows = state.rows, labels = state.clf.labels) {
  const header = ['text', 'label', 'score', ...labels.map((l) => `p_${l}`), 'corrected'];
  const lines = [header.map(csvField).join(',')];
  for (const row of rows) {
    const p = row.prediction;
    lines.push(
      [row.text, p.label, p.score, ...labels.map((l) => p.probs[l] ?? 0), correctionFor(row.text)?.label ?? '']
        .map(csvField)
        .join(','),
    );
  }
  return '\uFEFF' + lines.join('\r\n') + '\r\n';
}

/** The classified rows as JSONL: {text, label, score, probs, corrected?}. */
export function predictionsJsonl(rows = state.rows) {
  return rows
    .map((row) => {
      const { label, score, probs } = row.prediction;
      const corrected = correctionFor(row.text)?.label;
      return JSON.stringify({ text: row.text, label, score, probs, ...(corrected ? { corrected } : {}) });
    })
    .join('\n')
    .concat('\n');
}

export function exportPredictions(kind) {
  if (kind === 'csv') download(new Blob([predictionsCsv()], { type: 'text/csv;charset=utf-8' }), 'xinsheng-predictions.csv');
  else download(new Blob([predictionsJsonl()], { type: 'application/jsonl' }), 'xinsheng-predictions.jsonl');
}

export function exportCorrections() {
  const jsonl = state.corrections.map((c) => JSON.stringify({ label: c.label, text: c.text })).join('\n') + '\n';
  download(new Blob([jsonl], { type: 'application/jsonl' }), 'corrections.jsonl');
}
