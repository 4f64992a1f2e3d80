// The models: loading one (the shipped model or a saved version), the badge that names it,
// fine-tuning on the corrections (with accuracy before and after on them and on the held-out
// reviews, the training curve, and a warning when the held-out accuracy drops), and the list of
// versions: use one, undo the newest, export the model in use.

import { Classifier } from '../xinsheng.js';
import { state } from './state.js';
import { $, el, errorText, showStatus, download } from './ui.js';
import { t, lang, labelName, versionName } from './i18n.js';
import { isQuotaError } from './store.js';
import { trainingChart } from './charts.js';
import { persist, renderStorage, storageTrouble } from './storage.js';
import { setBusy, reclassify } from './classify.js';
import { renderCorrections } from './corrections.js';

const params = new URLSearchParams(location.search);
const BACKEND = params.get('backend') ?? 'auto';
const MODEL_URL = params.get('model') ?? undefined;
/** Engine workers for classifying on the CPU (`?workers=N`; default one per core left free). */
const WORKERS = ((raw) => (raw === null || raw === '' ? undefined : /^\d+$/.test(raw) ? Number(raw) : raw))(
  params.get('workers'),
);

/** Models whose save failed (storage full), by version key: the page can still switch to them. */
const memoryModels = new Map();

/** The badge in the header: the backend (and why not WebGPU), the model in use and its labels. */
export function showBackend() {
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

// ---------- fine-tuning ----------

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

/** Empties the training curve, so the next fine-tune draws it anew (in the page's language). */
export function resetTrainingPlot() {
  drawTraining = null;
  $('chart').replaceChildren();
}

export async function fineTune() {
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
export function showWorse(next) {
  worse = next;
  renderWorse();
}

export function renderWorse() {
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

/** The warning's button back: switches to the version the worse fine-tune started from. */
export function keepPrevious() {
  return worse && useVersion(worse.base);
}

// ---------- versions ----------

const versionSaved = (v) => (v.unsaved ? ` · ${t('versionUnsaved')}` : '');

export function renderVersions() {
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

/** The classifier of version `key` (null: the shipped model), on the backend the URL asks for. */
export async function loadModel(key) {
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
export async function useVersion(key) {
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
export async function undoModel() {
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

export async function exportModel() {
  try {
    const bytes = await state.clf.exportModel();
    download(new Blob([bytes], { type: 'application/octet-stream' }), 'xinsheng-model.bpk');
  } catch (e) {
    showStatus(t('exportFailed', { error: errorText(e) }));
  }
}
