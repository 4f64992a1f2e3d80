// The corrections: a label picked for a review (from the table or an imported file), labels
// added by hand, undo (the corrections before each change), the list beside the table, and the
// suggestion to fine-tune once enough corrections are new. Every change is saved (persist).

import { state, indexCorrections, allLabels } from './state.js';
import { $, el, errorText, showStatus } from './ui.js';
import { t, labelName } from './i18n.js';
import { renderResults } from './results.js';
import { renderOverview } from './overview.js';
import { readFile } from './files.js';
import { persist } from './storage.js';

/** Corrections after which the page suggests fine-tuning. */
const SUGGEST_AFTER = 10;

function remember() {
  state.history.push(structuredClone(state.corrections));
  if (state.history.length > 100) state.history.shift();
}

/** Corrects the review in row `index` to `label`. */
export async function correct(index, label) {
  const text = state.rows[index].text;
  remember();
  state.corrections = state.corrections.filter((c) => c.text !== text);
  state.corrections.push({ text, label });
  const saved = afterCorrections();
  // The table was just redrawn: keep the keyboard on the same row.
  document.querySelector(`#results tbody tr[data-row="${index}"]`)?.focus();
  await saved;
}

/** Draws what follows from the corrections (list, table, overview) once they changed. */
export function showCorrections() {
  indexCorrections();
  renderCorrections();
  renderResults();
  renderOverview();
}

function afterCorrections() {
  showCorrections();
  return persist();
}

export function renderCorrections() {
  const count = state.corrections.length;
  $('correction-count').textContent = String(count);
  $('corrections').replaceChildren(
    ...state.corrections.map((c, i) =>
      el('li', {}, [
        el('span', { class: 'ctext', text: c.text }),
        el('span', { class: 'clabel', dataset: { label: c.label }, text: labelName(c.label) }),
        el('button', {
          type: 'button',
          class: 'remove',
          'aria-label': t('removeCorrection'),
          text: '×',
          onclick: async () => {
            remember();
            state.corrections.splice(i, 1);
            await afterCorrections();
          },
        }),
      ]),
    ),
  );
  $('label-list').textContent = t('labelsList', { labels: allLabels().map(labelName).join(' / ') });
  const fresh = count - state.correctionsAtLastTune;
  $('suggest').hidden = fresh < SUGGEST_AFTER;
  $('suggest').textContent = t('suggestFineTune', { count });
}

/** Adds the label typed in the new-label field to those a correction can pick. */
export async function addLabel() {
  const label = $('new-label').value.trim();
  if (!label) return showStatus(t('typeLabel'), 'info');
  if (!allLabels().includes(label)) state.extraLabels.push(label);
  $('new-label').value = '';
  await afterCorrections();
}

export async function undoCorrection() {
  const previous = state.history.pop();
  if (!previous) {
    showStatus(t('nothingToUndo'), 'info');
    return;
  }
  state.corrections = previous;
  await afterCorrections();
}

export async function clearCorrections() {
  remember();
  state.corrections = [];
  await afterCorrections();
}

/** Adds a labelled file's reviews as corrections (replacing those of the same texts). */
export async function importCorrections(file) {
  try {
    const read = await readFile(file);
    if (!read.labelled) throw new Error(t('importNeedsLabels', { name: file.name }));
    const examples = read.records.filter((r) => r.label).map((r) => ({ text: r.text, label: r.label }));
    remember();
    const byText = new Map(state.corrections.map((c) => [c.text, c]));
    for (const e of examples) byText.set(e.text, e);
    state.corrections = [...byText.values()];
    await afterCorrections();
    showStatus(t('imported', { count: examples.length, name: file.name }), 'info');
  } catch (e) {
    showStatus(t('importFailed', { error: errorText(e) }));
  }
}
