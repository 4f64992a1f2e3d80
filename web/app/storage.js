// What the page keeps across reloads, through the store (store.js): the corrections, added
// labels and model versions (persist), the last classified batch (keepBatch), and the line
// under the header that says what the browser's storage could not keep (renderStorage).

import { state, toRow } from './state.js';
import { $, errorText, showStatus } from './ui.js';
import { t, versionName } from './i18n.js';
import { createStore } from './store.js';

/** Renders run when another tab changed the corrections (onOtherTab). */
const otherTab = [];

const store = createStore({
  onUnavailable: (e) => showStatus(t('storageUnavailable', { error: errorText(e) })),
  // Storage is full: that write stays in memory and the page says what is not kept.
  onFull: (e, what) => {
    storageTrouble.full = true;
    if (what === 'versions' || what === 'extraLabels') storageTrouble.state = true;
    renderStorage();
  },
  onFits: (what) => {
    if (what === 'versions' || what === 'extraLabels') storageTrouble.state = false;
    renderStorage();
  },
  // Another tab saved corrections: show the merged set (each tab writes only its own changes).
  onOtherTab: async () => {
    await loadCorrections();
    for (const render of otherTab) render();
  },
});
let savedCorrections = []; // the corrections as last read from or written to the store

/** Runs `render` when another tab changed the corrections, once `state.corrections` holds the merged set. */
export function onOtherTab(render) {
  otherTab.push(render);
}

async function loadCorrections() {
  state.corrections = await store.loadCorrections();
  savedCorrections = structuredClone(state.corrections);
}

/** Reads the corrections, added labels and versions the page saved into `state`. */
export async function loadSaved() {
  await loadCorrections();
  state.extraLabels = (await store.load('extraLabels')) ?? [];
  const saved = (await store.load('versions')) ?? { list: [], current: null };
  state.versions = saved.list;
  state.current = saved.current;
  state.correctionsAtLastTune = saved.tunedAt ?? 0;
}

export async function persist() {
  const before = savedCorrections;
  savedCorrections = structuredClone(state.corrections);
  await store.saveCorrections(before, state.corrections);
  await store.save('extraLabels', state.extraLabels);
  await store.save('versions', savedVersions());
  renderStorage();
}

/**
 * The versions as a reload will find them: those whose model was saved; when the current one
 * was not, the version it was fine-tuned from.
 */
function savedVersions() {
  const list = state.versions.filter((v) => !v.unsaved);
  let current = state.current;
  while (current !== null && !list.some((v) => v.key === current)) {
    current = state.versions.find((v) => v.key === current)?.base ?? null;
  }
  return { list, current, tunedAt: state.correctionsAtLastTune };
}

/** What else storage could not keep: the last batch (its size), the versions and labels. */
export const storageTrouble = { batch: 0, state: false, full: false };

/** Says, under the header, what the browser's storage could not keep, until it can. */
export function renderStorage() {
  const lines = [];
  const unsaved = state.versions.filter((v) => v.unsaved);
  if (unsaved.length) lines.push(t('storageFullModel', { name: unsaved.map(versionName).join(', ') }));
  if (store.unsynced) lines.push(t('storageFullCorrections', { count: store.unsynced }));
  if (storageTrouble.batch) lines.push(t('storageFullBatch', { count: storageTrouble.batch }));
  if (storageTrouble.state) lines.push(t('storageFullVersions'));
  const failed = unsaved.find((v) => v.unsaved !== 'full');
  const node = $('storage');
  node.textContent = lines.length
    ? [failed && !storageTrouble.full ? t('storageFailed', { error: failed.unsaved }) : t('storageFull'), ...lines].join('\n')
    : '';
  node.hidden = lines.length === 0;
}

// ---------- the last batch, kept across reloads ----------

/** The batch as stored: the texts, and each prediction as a label index and its probabilities (f32, as computed). */
function packBatch(rows, model) {
  const labels = rows.length ? Object.keys(rows[0].prediction.probs) : [];
  const width = labels.length;
  const label = new Uint16Array(rows.length);
  const probs = new Float32Array(rows.length * width);
  rows.forEach((row, i) => {
    label[i] = labels.indexOf(row.prediction.label);
    labels.forEach((l, j) => (probs[i * width + j] = row.prediction.probs[l]));
  });
  return { texts: rows.map((r) => r.text), labels, label, probs, model, savedAt: Date.now() };
}

/** The rows of a stored batch, as they were classified. */
export function unpackBatch({ texts, labels, label, probs }) {
  const width = labels.length;
  return texts.map((text, i) => {
    const p = Object.fromEntries(labels.map((l, j) => [l, probs[i * width + j]]));
    const top = labels[label[i]];
    return toRow(text, { label: top, score: p[top], probs: p }, i);
  });
}

/** The last batch as stored (`{texts, labels, label, probs, model, savedAt}`), if any. */
export const loadBatch = () => store.loadBatch();

let batchSaving = Promise.resolve();
/** Stores the batch just classified (after the ones before it); says so when it does not fit. */
export function keepBatch(rows) {
  const model = state.current; // the version that classified them
  batchSaving = batchSaving.then(async () => {
    if (state.rows !== rows) return; // a newer batch took over
    const kept = await store.saveBatch(packBatch(rows, model));
    storageTrouble.batch = kept ? 0 : rows.length;
    document.body.dataset.batchKept = String(kept ? rows.length : 0); // for the tests
    renderStorage();
  });
  return batchSaving;
}
