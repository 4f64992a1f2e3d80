// The workbench page: classify pasted reviews or whole files (in chunks, cancellable), see the
// batch at a glance, correct the least certain reviews first, fine-tune on the corrections and
// keep model versions. The engine runs in a Web Worker (xinsheng.js); this thread only draws.

import { Classifier, engineLocation, readReviews } from '../xinsheng.js';
import { state, indexCorrections, allLabels, marginOf } from './state.js';
import { $, el, errorText, showStatus, nextFrame, download } from './ui.js';
import { t, lang, labelName, translate, setLanguage, onLanguage } from './i18n.js';
import { createStore, isQuotaError } from './store.js';
import { initResults, renderResults, renderReview, viewRows } from './results.js';
import { renderOverview } from './overview.js';
import { readFile, exportPredictions, exportCorrections } from './files.js';
import { trainingChart } from './charts.js';

const params = new URLSearchParams(location.search);
const BACKEND = params.get('backend') ?? 'auto';
const MODEL_URL = params.get('model') ?? undefined;
/** Engine workers for classifying on the CPU (`?workers=N`; default one per core left free). */
const WORKERS = ((raw) => (raw === null || raw === '' ? undefined : /^\d+$/.test(raw) ? Number(raw) : raw))(
  params.get('workers'),
);
/** Reviews explained in the background (highlights and the overview's tokens). */
const EXPLAIN_LIMIT = 200;
/** Corrections after which the page suggests fine-tuning. */
const SUGGEST_AFTER = 10;

const SAMPLES = [
  '这家酒店的服务非常好，房间干净，下次还来！',
  '质量太差了，用了两天就坏了，不推荐购买。',
  '物流很快，包装完好，性价比很高。',
  '客服态度恶劣，退货流程麻烦死了。',
  '书的内容一般，没有想象中那么好。',
  '屏幕清晰，电池耐用，非常满意。',
];

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
    state.corrections = await store.loadCorrections();
    savedCorrections = structuredClone(state.corrections);
    indexCorrections();
    renderCorrections();
    renderResults();
    renderOverview();
  },
});
let savedCorrections = []; // the corrections as last read from or written to the store

async function persist() {
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

/** Models whose save failed (storage full), by version key: the page can still switch to them. */
const memoryModels = new Map();
/** What else storage could not keep: the last batch (its size), the versions and labels. */
const storageTrouble = { batch: 0, state: false, full: false };

/** Says, under the header, what the browser's storage could not keep, until it can. */
function renderStorage() {
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

function unpackBatch({ texts, labels, label, probs }) {
  const width = labels.length;
  return texts.map((text, i) => {
    const p = Object.fromEntries(labels.map((l, j) => [l, probs[i * width + j]]));
    const top = labels[label[i]];
    return toRow(text, { label: top, score: p[top], probs: p }, i);
  });
}

let batchSaving = Promise.resolve();
/** Stores the batch just classified (after the ones before it); says so when it does not fit. */
function keepBatch(rows) {
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

// Bumped whenever other work starts, so background explanations stop queueing ahead of it.
let explainRun = 0;
let classifying = null; // AbortController of the classification in progress

function setBusy(busy) {
  state.busy = busy;
  if (busy) explainRun++;
  $('classify').disabled = busy || !state.clf;
  $('finetune').disabled = busy || !state.clf;
  $('undo-model').disabled = busy || state.versions.length === 0;
  $('reset-model').disabled = busy;
}

function showBackend() {
  const badge = $('backend');
  const clf = state.clf;
  if (!clf) {
    badge.dataset.state = 'error';
    badge.textContent = t('noModel');
    return;
  }
  badge.dataset.state = clf.backend;
  badge.dataset.engine = state.engineWhere;
  if (clf.backend === 'webgpu') {
    badge.textContent = t('backendWebgpu');
  } else {
    const reason = clf.backendReasonCode
      ? t(`reason-${clf.backendReasonCode}`, { detail: clf.backendReason.replace(/^WebGPU failed to start: /, '') })
      : clf.backendReason;
    badge.textContent = t('backendCpu', { reason });
  }
  const version = state.versions.find((v) => v.key === state.current);
  const name = version ? versionName(version) : t('shippedModel');
  const labels = clf.labels.map(labelName).join(' / ');
  const where = state.engineWhere && state.engineWhere !== 'worker' ? ` · ${t('engineWhere', { where: state.engineWhere })}` : '';
  badge.append(el('span', { class: 'model-name', text: ` · ${name} · ${t('modelLabels', { labels })}${where}` }));
}

// ---------- classification ----------

/** The paste box's reviews, read by the same core reader as files (one review per line). */
async function pastedReviews() {
  const text = $('input').value;
  if (!text.trim()) return [];
  const read = await readReviews({ name: 'pasted.txt', bytes: new TextEncoder().encode(text) }, { format: 'txt', encoding: 'utf-8' });
  return read.records.map((r) => r.text);
}

/** While results stream in, the table and the overview are redrawn at most this often. */
const STREAM_RENDER_MS = 300;
let renderTimer = null;
let lastStreamRender = 0;
function scheduleRender() {
  if (renderTimer !== null) return;
  const wait = Math.max(0, lastStreamRender + STREAM_RENDER_MS - performance.now());
  renderTimer = setTimeout(() => {
    // The table and the overview in separate frames: each stays a short task.
    requestAnimationFrame(() => {
      renderResults({ streaming: true });
      requestAnimationFrame(() => {
        renderOverview();
        renderTimer = null;
        lastStreamRender = performance.now();
      });
    });
  }, wait);
}

function toRow(text, prediction, index) {
  return { index, text, prediction, margin: marginOf(prediction), tokens: null };
}

async function classifyTexts(texts) {
  if (texts.length === 0) {
    showStatus(t('nothingToClassify'), 'info');
    return;
  }
  showStatus('');
  setBusy(true);
  const rows = [];
  state.rows = rows;
  state.view.page = 0;
  const controller = new AbortController();
  classifying = controller;
  const progress = $('classify-progress');
  const row = $('progress-row');
  row.hidden = false;
  progress.max = texts.length;
  progress.value = 0;
  $('progress-text').textContent = t('progress', { done: 0, total: texts.length });
  try {
    await state.clf.classify(texts, {
      signal: controller.signal,
      onProgress: ({ done, total, start, predictions }) => {
        if (state.rows !== rows) return; // a newer classification took over
        predictions.forEach((p, k) => rows.push(toRow(texts[start + k], p, start + k)));
        progress.value = done;
        $('progress-text').textContent = t('progress', { done, total });
        scheduleRender();
      },
    });
  } catch (e) {
    if (e?.name === 'AbortError') showStatus(t('cancelled', { done: state.rows.length }), 'info');
    else showStatus(t('classifyFailed', { error: errorText(e) }));
  } finally {
    classifying = null;
    row.hidden = true;
    setBusy(false);
    renderResults();
    renderOverview();
    document.body.dataset.classified = String(state.rows.length);
  }
  keepBatch(rows);
  explainRows();
}

/** Explanations for the visible rows first, then for the rest of the view, in the background. */
async function explainRows() {
  const run = explainRun;
  const rows = state.rows;
  const order = viewRows().slice(0, EXPLAIN_LIMIT);
  let since = 0;
  for (const row of order) {
    if (state.rows !== rows || run !== explainRun || row.tokens) continue;
    try {
      row.tokens = await state.clf.explain(row.text);
    } catch {
      return;
    }
    if (state.rows !== rows || run !== explainRun) return;
    renderReview(row.index);
    if (++since % 10 === 0) renderOverview();
  }
  if (state.rows === rows && run === explainRun) renderOverview();
}

async function openReviews(file) {
  try {
    const read = await readFile(file);
    const texts = read.records.map((r) => r.text);
    const blank = read.skippedBlank ? t('blankSkipped', { n: read.skippedBlank }) : '';
    $('input').value = texts.slice(0, 200).join('\n');
    await classifyTexts(texts);
    if ($('status').hidden) showStatus(t('opened', { name: file.name, count: texts.length, encoding: read.encoding, blank }), 'info');
  } catch (e) {
    showStatus(t('openFailed', { error: errorText(e) }));
  }
}

async function reclassify() {
  if (state.rows.length) await classifyTexts(state.rows.map((r) => r.text));
}

// ---------- corrections ----------

function remember() {
  state.history.push(structuredClone(state.corrections));
  if (state.history.length > 100) state.history.shift();
}

async function correct(index, label) {
  const text = state.rows[index].text;
  remember();
  state.corrections = state.corrections.filter((c) => c.text !== text);
  state.corrections.push({ text, label });
  const saved = afterCorrections();
  // The table was just redrawn: keep the keyboard on the same row.
  document.querySelector(`#results tbody tr[data-row="${index}"]`)?.focus();
  await saved;
}

function afterCorrections() {
  indexCorrections();
  renderCorrections();
  renderResults();
  renderOverview();
  return persist();
}

function renderCorrections() {
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

async function undoCorrection() {
  const previous = state.history.pop();
  if (!previous) {
    showStatus(t('nothingToUndo'), 'info');
    return;
  }
  state.corrections = previous;
  await afterCorrections();
}

async function importCorrections(file) {
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

// ---------- fine-tuning and versions ----------

let heldout = null;
async function heldoutSample() {
  heldout ??= fetch('heldout.json').then((r) => (r.ok ? r.json() : []));
  return heldout;
}

async function accuracy(examples) {
  if (examples.length === 0) return null;
  const predictions = await state.clf.classify(examples.map((e) => e.text));
  const right = predictions.filter((p, i) => p.label === examples[i].label).length;
  return { right, total: examples.length };
}

const fmt = (a) => (a === null ? '—' : `${((a.right / a.total) * 100).toFixed(1)}% (${a.right}/${a.total})`);

let drawTraining = null;
function trainingPlot() {
  drawTraining ??= trainingChart($('chart'), { loss: t('chartLoss'), accuracy: t('chartAccuracy'), step: t('chartStep') });
  return drawTraining;
}

async function fineTune() {
  if (state.corrections.length === 0) {
    showStatus(t('noCorrections'), 'info');
    return;
  }
  const epochs = Number($('epochs').value);
  const lr = Number($('lr').value);
  if (!Number.isInteger(epochs) || epochs < 1 || epochs > 50) {
    showStatus(t('badEpochs'));
    return;
  }
  if (!(lr > 0 && lr <= 0.1)) {
    showStatus(t('badLr'));
    return;
  }
  showStatus('');
  setBusy(true);
  showWorse(null);
  const base = state.current; // the version this fine-tune starts from
  const progress = $('ft-progress');
  progress.hidden = false;
  progress.value = 0;
  const points = [];
  const draw = trainingPlot();
  draw(points);
  try {
    const examples = state.corrections.map((c) => ({ text: c.text, label: c.label }));
    const held = await heldoutSample();
    const before = { corr: await accuracy(examples), held: await accuracy(held) };
    const summary = await state.clf.fineTune(examples, {
      epochs,
      lr,
      onProgress: (p) => {
        points.push(p);
        progress.value = (p.epoch - 1 + p.step / p.steps) / p.epochs;
        draw(points);
      },
    });
    progress.value = 1;
    const after = { corr: await accuracy(examples), held: await accuracy(held) };
    $('acc-corr-before').textContent = fmt(before.corr);
    $('acc-corr-after').textContent = fmt(after.corr);
    $('acc-held-before').textContent = fmt(before.held);
    $('acc-held-after').textContent = fmt(after.held);
    $('ft-summary').hidden = false;
    await addVersion(summary, after, base);
    state.extraLabels = state.extraLabels.filter((l) => !state.clf.labels.includes(l));
    state.correctionsAtLastTune = state.corrections.length;
    await persist();
    showBackend();
    renderCorrections();
    // Worse on the held-out reviews: say so, and offer the version it started from.
    if (before.held && after.held && after.held.right < before.held.right) {
      showWorse({ key: state.current, base, before: before.held, after: after.held });
    }
    setBusy(false);
    await reclassify();
    showStatus(t('fineTuned', { epochs: summary.epochs, steps: summary.steps }), 'info');
  } catch (e) {
    showStatus(t('finetuneFailed', { error: errorText(e) }));
  } finally {
    setBusy(false);
  }
}

async function addVersion(summary, after, base) {
  const n = state.versions.length + 1;
  const key = `demo-v${Date.now()}`;
  const version = {
    key,
    n,
    base,
    createdAt: new Date().toISOString(),
    labels: summary.labels,
    corrections: state.corrections.length,
    heldout: after.held ? after.held.right / after.held.total : null,
  };
  try {
    await state.clf.save(key);
  } catch (e) {
    // Not saved (storage full, or IndexedDB failing): the model stays current in memory, and
    // its bytes stay in the page, so switching back to it works until a reload.
    memoryModels.set(key, await state.clf.exportModel({ precision: 'f32' }));
    version.unsaved = isQuotaError(e) ? 'full' : errorText(e);
    if (isQuotaError(e)) storageTrouble.full = true;
  }
  state.versions.push(version);
  state.current = key;
  renderVersions();
  renderStorage();
}

/**
 * The warning after a fine-tune that is worse on the held-out reviews than the version it
 * started from (`{key, base, before, after}`; null hides it), with a button back to that one.
 */
let worse = null;
function showWorse(next) {
  worse = next;
  renderWorse();
}

function renderWorse() {
  const box = $('ft-worse');
  const tuned = worse && state.versions.find((v) => v.key === worse.key);
  if (!tuned || state.current !== worse.key) {
    box.hidden = true;
    return;
  }
  const previous = worse.base === null ? { key: null } : state.versions.find((v) => v.key === worse.base);
  box.dataset.before = String(worse.before.right / worse.before.total);
  box.dataset.after = String(worse.after.right / worse.after.total);
  $('ft-worse-text').textContent = t('heldoutDropped', { name: versionName(tuned), before: fmt(worse.before), after: fmt(worse.after) });
  const back = $('keep-previous');
  back.hidden = !previous;
  if (previous) back.textContent = t('keepPrevious', { name: versionName(previous) });
  box.hidden = false;
}

const versionName = (v) => (v.key === null ? t('shippedModel') : t('versionName', { n: v.n ?? v.name?.match(/\d+/)?.[0] ?? '?' }));
const versionSaved = (v) => (v.unsaved ? ` · ${t('versionUnsaved')}` : '');

function renderVersions() {
  const items = [{ key: null }, ...state.versions];
  $('versions').replaceChildren(
    ...items.map((v) =>
      el('li', { class: v.key === state.current ? 'current' : '', dataset: { key: v.key ?? '' } }, [
        el('span', {
          text:
            v.key === null
              ? versionName(v)
              : t('versionLine', {
                  name: versionName(v),
                  date: new Date(v.createdAt).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en'),
                  corrections: v.corrections,
                  labels: v.labels.map(labelName).join(' / '),
                }) + versionSaved(v),
        }),
        el('button', { type: 'button', text: t('use'), onclick: () => useVersion(v.key) }),
      ]),
    ),
  );
  $('undo-model').disabled = state.busy || state.versions.length === 0;
}

async function loadModel(key) {
  if (WORKERS !== undefined && !(Number.isInteger(WORKERS) && WORKERS >= 1)) {
    throw new Error(t('badWorkers', { value: params.get('workers') }));
  }
  if (key === null) return Classifier.load({ backend: BACKEND, modelUrl: MODEL_URL, workers: WORKERS });
  const inMemory = memoryModels.get(key);
  if (inMemory) return Classifier.load({ bytes: inMemory, backend: BACKEND, workers: WORKERS });
  const clf = await Classifier.restore(key, { backend: BACKEND, modelUrl: MODEL_URL, workers: WORKERS });
  if (!clf) throw new Error(t('savedModelMissing', { key }));
  return clf;
}

/** Switches to version `key` (null: the shipped model); resolves to whether it did. */
async function useVersion(key) {
  setBusy(true);
  try {
    const previous = state.clf;
    state.clf = await loadModel(key);
    previous?.dispose().catch(() => {});
    state.current = key;
    await persist();
    showBackend();
    renderVersions();
    renderWorse();
    renderCorrections();
    setBusy(false);
    await reclassify();
    return true;
  } catch (e) {
    showStatus(t('switchFailed', { error: errorText(e) }));
    return false;
  } finally {
    setBusy(false);
  }
}

/**
 * Removes the newest fine-tune, as the button says; when it is the one in use, the page first
 * switches to the version before it (the shipped model before the first).
 */
async function undoModel() {
  const newest = state.versions.at(-1);
  if (!newest) return;
  const inUse = newest.key === state.current;
  // Out of the list before anything is saved or drawn, so a reload never brings it back.
  state.versions.pop();
  if (inUse && !(await useVersion(state.versions.at(-1)?.key ?? null))) {
    state.versions.push(newest); // the switch failed: nothing is undone
    renderVersions();
    return;
  }
  memoryModels.delete(newest.key);
  if (!newest.unsaved) Classifier.forget(newest.key).catch(() => {});
  if (!inUse) await persist();
  renderVersions();
  renderWorse();
  renderStorage();
  showBackend();
}

async function exportModel() {
  try {
    const bytes = await state.clf.exportModel();
    download(new Blob([bytes], { type: 'application/octet-stream' }), 'xinsheng-model.bpk');
  } catch (e) {
    showStatus(t('exportFailed', { error: errorText(e) }));
  }
}

// ---------- start-up ----------

function renderAll() {
  showBackend();
  renderCorrections();
  renderVersions();
  renderWorse();
  renderStorage();
  renderResults();
  renderOverview();
}

function wire() {
  $('lang').addEventListener('click', () => setLanguage(lang === 'zh' ? 'en' : 'zh'));
  onLanguage(() => {
    drawTraining = null;
    $('chart').replaceChildren();
    renderAll();
  });
  $('classify').addEventListener('click', async () => {
    try {
      await classifyTexts(await pastedReviews());
    } catch (e) {
      showStatus(t('classifyFailed', { error: errorText(e) }));
    }
  });
  $('cancel').addEventListener('click', () => classifying?.abort());
  $('file').addEventListener('change', (ev) => {
    const file = ev.target.files[0];
    ev.target.value = ''; // the same file again is a new open
    if (file) openReviews(file);
  });
  const input = $('input');
  input.addEventListener('dragover', (ev) => ev.preventDefault());
  input.addEventListener('drop', (ev) => {
    ev.preventDefault();
    const file = ev.dataTransfer?.files?.[0];
    if (file) openReviews(file);
  });
  $('samples').replaceChildren(
    ...SAMPLES.map((s) =>
      el('button', {
        type: 'button',
        class: 'sample',
        text: s,
        onclick: () => {
          $('input').value = s;
          classifyTexts([s]);
        },
      }),
    ),
  );
  initResults({ onCorrect: correct });
  $('export-csv').addEventListener('click', () => exportPredictions('csv'));
  $('export-jsonl').addEventListener('click', () => exportPredictions('jsonl'));
  $('add-label').addEventListener('click', async () => {
    const label = $('new-label').value.trim();
    if (!label) return showStatus(t('typeLabel'), 'info');
    if (!allLabels().includes(label)) state.extraLabels.push(label);
    $('new-label').value = '';
    await afterCorrections();
  });
  $('undo-correction').addEventListener('click', undoCorrection);
  $('export-corrections').addEventListener('click', exportCorrections);
  $('import-corrections').addEventListener('change', (ev) => {
    const file = ev.target.files[0];
    ev.target.value = '';
    if (file) importCorrections(file);
  });
  $('clear-corrections').addEventListener('click', async () => {
    remember();
    state.corrections = [];
    await afterCorrections();
  });
  $('finetune').addEventListener('click', fineTune);
  $('undo-model').addEventListener('click', undoModel);
  $('keep-previous').addEventListener('click', () => worse && useVersion(worse.base));
  $('keep-new').addEventListener('click', () => showWorse(null));
  $('reset-model').addEventListener('click', () => useVersion(null));
  $('export-model').addEventListener('click', exportModel);
  document.addEventListener('keydown', (ev) => {
    const typing =
      ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement || ev.target instanceof HTMLSelectElement;
    if (!typing && (ev.key === 'u' || ((ev.ctrlKey || ev.metaKey) && ev.key === 'z'))) {
      ev.preventDefault();
      undoCorrection();
    }
  });
}

async function start() {
  translate();
  wire();
  setBusy(true);
  try {
    state.corrections = await store.loadCorrections();
    savedCorrections = structuredClone(state.corrections);
    state.extraLabels = (await store.load('extraLabels')) ?? [];
    const saved = (await store.load('versions')) ?? { list: [], current: null };
    state.versions = saved.list;
    state.current = saved.current;
    state.correctionsAtLastTune = saved.tunedAt ?? 0;
  } catch (e) {
    showStatus(t('savedUnreadable', { error: errorText(e) }));
  }
  indexCorrections();
  try {
    try {
      state.clf = await loadModel(state.current);
    } catch (e) {
      if (state.current === null) throw e;
      showStatus(t('restoreFailed', { error: errorText(e) }));
      state.current = null;
      state.clf = await loadModel(null);
    }
    state.engineWhere = await engineLocation();
    // The fine-tune fields start at the core's defaults (those of `xinsheng finetune` and Python).
    const defaults = state.clf.info?.finetune_defaults;
    if (defaults) {
      $('epochs').value = String(defaults.epochs);
      $('lr').value = String(defaults.lr);
    }
  } catch (e) {
    showStatus(t('loadFailed', { error: errorText(e) }));
  }
  // The last batch: as it was when it was classified by the model in use, else classified again.
  let batch = null;
  try {
    batch = await store.loadBatch();
  } catch {
    batch = null;
  }
  const same = (a, b) => a.length === b.length && a.every((l) => b.includes(l));
  if (batch?.texts?.length && state.clf && batch.model === state.current && same(batch.labels, state.clf.labels)) {
    state.rows = unpackBatch(batch);
    document.body.dataset.classified = String(state.rows.length);
  }
  renderAll();
  setBusy(false);
  await nextFrame();
  document.body.dataset.ready = 'true';
  if (batch?.texts?.length && state.clf) {
    if (state.rows.length) {
      if ($('status').hidden) showStatus(t('batchRestored', { count: state.rows.length }), 'info');
      explainRows();
    } else {
      classifyTexts(batch.texts); // classified by another model: again, by this one
    }
  }
}

start();
