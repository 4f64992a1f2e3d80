// The workbench page: classify pasted reviews or whole files (in chunks, cancellable), see the
// batch at a glance, correct the least certain reviews first, fine-tune on the corrections and
// keep model versions. The engine runs in a Web Worker (xinsheng.js); this thread only draws.
// This module starts the page and wires its controls to the modules that do the work:
// classify.js, corrections.js, versions.js, storage.js, results.js, overview.js and files.js.

import { engineLocation } from '../xinsheng.js';
import { state, indexCorrections } from './state.js';
import { $, errorText, showStatus, nextFrame } from './ui.js';
import { t, lang, translate, setLanguage, onLanguage } from './i18n.js';
import { initResults, renderResults } from './results.js';
import { renderOverview } from './overview.js';
import { exportPredictions, exportCorrections } from './files.js';
import { onOtherTab, loadSaved, loadBatch, unpackBatch, renderStorage } from './storage.js';
import { setBusy, cancelClassifying, classifyPasted, classifyTexts, explainRows, openReviews, renderSamples } from './classify.js';
import { correct, showCorrections, renderCorrections, addLabel, undoCorrection, clearCorrections, importCorrections } from './corrections.js';
import {
  showBackend,
  resetTrainingPlot,
  fineTune,
  showWorse,
  renderWorse,
  keepPrevious,
  renderVersions,
  loadModel,
  useVersion,
  undoModel,
  exportModel,
} from './versions.js';

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
    resetTrainingPlot();
    renderAll();
  });
  onOtherTab(showCorrections); // corrections another tab saved: show the merged set
  $('classify').addEventListener('click', classifyPasted);
  $('cancel').addEventListener('click', cancelClassifying);
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
  renderSamples();
  initResults({ onCorrect: correct });
  $('export-csv').addEventListener('click', () => exportPredictions('csv'));
  $('export-jsonl').addEventListener('click', () => exportPredictions('jsonl'));
  $('add-label').addEventListener('click', addLabel);
  $('undo-correction').addEventListener('click', undoCorrection);
  $('export-corrections').addEventListener('click', exportCorrections);
  $('import-corrections').addEventListener('change', (ev) => {
    const file = ev.target.files[0];
    ev.target.value = '';
    if (file) importCorrections(file);
  });
  $('clear-corrections').addEventListener('click', clearCorrections);
  $('finetune').addEventListener('click', fineTune);
  $('undo-model').addEventListener('click', undoModel);
  $('keep-previous').addEventListener('click', keepPrevious);
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
    await loadSaved();
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
    batch = await loadBatch();
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
