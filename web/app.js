// The demo page: classify reviews, correct labels, fine-tune on the corrections, manage model
// versions. All user text goes into the DOM through textContent, never as HTML.

import { Classifier } from './xinsheng.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const BACKEND = params.get('backend') ?? 'auto';
const MODEL_URL = params.get('model') ?? undefined;
const MAX_ROWS = 500;

const SAMPLES = [
  '这家酒店的服务非常好，房间干净，下次还来！',
  '质量太差了，用了两天就坏了，不推荐购买。',
  '物流很快，包装完好，性价比很高。',
  '客服态度恶劣，退货流程麻烦死了。',
  '书的内容一般，没有想象中那么好。',
  '屏幕清晰，电池耐用，非常满意。',
];

const state = {
  clf: null,
  rows: [], // { text, prediction, correction }
  corrections: [], // { text, label }
  extraLabels: [], // labels added by hand, e.g. 中立, until the model learns them
  history: [], // corrections before each change, for undo
  versions: [], // { key, name, createdAt, labels }
  current: null, // key of the model in use; null = shipped
  busy: false,
};

// ---------- persistence (IndexedDB, one key-value store) ----------

const DB = 'xinsheng-demo';
function db() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore('state');
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}
async function kv(mode, run) {
  const handle = await db();
  try {
    return await new Promise((resolve, reject) => {
      const tx = handle.transaction('state', mode);
      const request = run(tx.objectStore('state'));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    handle.close();
  }
}
const load = (key) => kv('readonly', (s) => s.get(key));
const store = (key, value) => kv('readwrite', (s) => s.put(value, key));

async function persist() {
  await store('corrections', state.corrections);
  await store('extraLabels', state.extraLabels);
  await store('versions', { list: state.versions, current: state.current });
}

// ---------- small UI helpers ----------

function showStatus(message, kind = 'error') {
  const el = $('status');
  el.textContent = message;
  el.dataset.kind = kind;
  el.hidden = !message;
}
const errorText = (e) => (e instanceof Error ? e.message : String(e));

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'text') node.textContent = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function allLabels() {
  const labels = state.clf ? [...state.clf.labels] : [];
  for (const l of [...state.extraLabels, ...state.corrections.map((c) => c.label)]) {
    if (!labels.includes(l)) labels.push(l);
  }
  return labels;
}

// Bumped whenever other work starts, so background explanations stop queueing ahead of it.
let explainRun = 0;

function setBusy(busy) {
  state.busy = busy;
  if (busy) explainRun++;
  $('classify').disabled = busy || !state.clf;
  $('finetune').disabled = busy || !state.clf;
  $('undo-model').disabled = busy || state.current === null;
  $('reset-model').disabled = busy;
}

function showBackend() {
  const badge = $('backend');
  const clf = state.clf;
  badge.dataset.state = clf.backend;
  badge.textContent = clf.backend === 'webgpu' ? 'Running on WebGPU' : `Running on the CPU (WebAssembly) — ${clf.backendReason}`;
  const name = state.current ? state.versions.find((v) => v.key === state.current)?.name : 'shipped model';
  badge.append(el('span', { class: 'model-name', text: ` · ${name} · labels: ${clf.labels.join(' / ')}` }));
}

// ---------- classification and results ----------

function parseLines(text) {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

async function classifyTexts(texts) {
  if (texts.length === 0) {
    showStatus('Nothing to classify: type or paste at least one review.', 'info');
    return;
  }
  if (texts.length > MAX_ROWS) {
    showStatus(`Showing the first ${MAX_ROWS} of ${texts.length} reviews.`, 'info');
    texts = texts.slice(0, MAX_ROWS);
  } else {
    showStatus('');
  }
  setBusy(true);
  try {
    showRows(texts, await state.clf.classify(texts));
  } catch (e) {
    showStatus(`Classification failed: ${errorText(e)}`);
  } finally {
    setBusy(false);
  }
}

function showRows(texts, predictions) {
  state.rows = texts.map((text, i) => ({ text, prediction: predictions[i], tokens: null }));
  renderResults();
  explainRows();
}

// Highlights arrive row by row after the table is shown.
async function explainRows() {
  const rows = state.rows;
  const run = explainRun;
  for (let i = 0; i < rows.length && i < 50; i++) {
    if (state.rows !== rows || run !== explainRun) return; // newer work came first
    try {
      rows[i].tokens = await state.clf.explain(rows[i].text);
      renderReview(i);
    } catch {
      return;
    }
  }
}

function renderReview(i) {
  const cell = document.querySelector(`#results tbody tr[data-row="${i}"] .review`);
  const row = state.rows[i];
  if (!cell || !row.tokens) return;
  const max = Math.max(1e-6, ...row.tokens.map((t) => Math.abs(t.weight)));
  const spans = row.tokens.map((t) => {
    const strength = Math.min(1, Math.abs(t.weight) / max);
    const span = el('span', { class: t.weight >= 0 ? 'tok pro' : 'tok con', text: t.token, title: t.weight.toFixed(3) });
    span.style.setProperty('--w', strength.toFixed(2));
    return span;
  });
  cell.replaceChildren(...spans);
  cell.title = row.text;
}

function correctionFor(text) {
  return state.corrections.find((c) => c.text === text);
}

function renderResults() {
  const body = $('results').querySelector('tbody');
  const labels = allLabels();
  body.replaceChildren(
    ...state.rows.map((row, i) => {
      const corrected = correctionFor(row.text);
      const label = row.prediction.label;
      const bar = el('span', { class: 'bar' });
      bar.style.width = `${Math.round(row.prediction.score * 100)}%`;
      const buttons = labels.map((l, k) =>
        el('button', {
          type: 'button',
          class: corrected?.label === l ? 'choice chosen' : 'choice',
          'aria-pressed': String(corrected?.label === l),
          text: `${k + 1} ${l}`,
          onclick: () => correct(i, l),
        }),
      );
      return el(
        'tr',
        {
          tabindex: '0',
          dataset: { row: String(i), label, corrected: corrected?.label ?? '' },
          onkeydown: (ev) => onRowKey(ev, i),
        },
        [
          el('td', { class: 'review', text: row.text }),
          el('td', { class: 'label', text: corrected && corrected.label !== label ? `${label} → ${corrected.label}` : label }),
          el('td', { class: 'confidence' }, [
            el('span', { class: 'meter' }, [bar]),
            el('span', { class: 'pct', text: `${(row.prediction.score * 100).toFixed(1)}%` }),
          ]),
          el('td', { class: 'choices' }, buttons),
        ],
      );
    }),
  );
  $('results').hidden = state.rows.length === 0;
  state.rows.forEach((_, i) => renderReview(i));
}

function onRowKey(ev, i) {
  const rows = [...document.querySelectorAll('#results tbody tr')];
  if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
    rows[i + (ev.key === 'ArrowDown' ? 1 : -1)]?.focus();
    ev.preventDefault();
  } else if (/^[1-9]$/.test(ev.key)) {
    const label = allLabels()[Number(ev.key) - 1];
    if (label) {
      correct(i, label);
      ev.preventDefault();
    }
  }
}

// ---------- corrections ----------

function remember() {
  state.history.push(structuredClone(state.corrections));
  if (state.history.length > 100) state.history.shift();
}

async function correct(i, label) {
  const text = state.rows[i].text;
  remember();
  state.corrections = state.corrections.filter((c) => c.text !== text);
  state.corrections.push({ text, label });
  const saved = afterCorrections();
  // The table was just redrawn: keep the keyboard on the same row.
  document.querySelector(`#results tbody tr[data-row="${i}"]`)?.focus();
  await saved;
}

function afterCorrections() {
  renderCorrections();
  renderResults();
  return persist();
}

function renderCorrections() {
  $('correction-count').textContent = String(state.corrections.length);
  $('corrections').replaceChildren(
    ...state.corrections.map((c, i) =>
      el('li', {}, [
        el('span', { class: 'ctext', text: c.text }),
        el('span', { class: 'clabel', text: c.label }),
        el('button', {
          type: 'button',
          class: 'remove',
          'aria-label': 'Remove this correction',
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
  $('label-list').textContent = `Labels: ${allLabels().join(' / ')}`;
}

async function undoCorrection() {
  const previous = state.history.pop();
  if (!previous) {
    showStatus('Nothing to undo.', 'info');
    return;
  }
  state.corrections = previous;
  await afterCorrections();
}

function exportCorrections() {
  const jsonl = state.corrections.map((c) => JSON.stringify({ label: c.label, text: c.text })).join('\n') + '\n';
  download(new Blob([jsonl], { type: 'application/jsonl' }), 'corrections.jsonl');
}

function download(blob, name) {
  const a = el('a', { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/** Labelled examples from a .jsonl / .tsv / .csv file; throws with the line of the first problem. */
function parseLabelled(name, text) {
  const ext = name.toLowerCase().split('.').pop();
  const lines = text.split(/\r?\n/);
  const out = [];
  if (ext === 'jsonl' || ext === 'ndjson') {
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      let value;
      try {
        value = JSON.parse(line);
      } catch (e) {
        throw new Error(`${name}:${i + 1}: not valid JSON (${errorText(e)})`);
      }
      if (typeof value?.label !== 'string' || !value.label.trim() || typeof value?.text !== 'string') {
        throw new Error(`${name}:${i + 1}: each line needs a string "label" and "text"`);
      }
      out.push({ label: value.label.trim(), text: value.text });
    });
    return out;
  }
  if (ext === 'tsv' || ext === 'csv') {
    const { header, rows } = parseTable(text, ext);
    const [li, ti] = [header.indexOf('label'), header.indexOf('text')];
    if (li < 0 || ti < 0) throw new Error(`${name}:1: the header needs 'label' and 'text' columns`);
    for (const { line, cells } of rows) {
      const label = cells[li]?.trim();
      const text = cells[ti];
      if (!label || text === undefined) throw new Error(`${name}:${line}: missing label or text`);
      out.push({ label, text });
    }
    return out;
  }
  throw new Error(`${name}: unknown file format; use .jsonl, .tsv or .csv with 'label' and 'text'`);
}

/** The lower-cased header and the non-blank rows (with their line numbers) of a .tsv or .csv file. */
function parseTable(text, ext) {
  const split = (line) => (ext === 'tsv' ? line.split('\t') : parseCsvLine(line));
  const [first = '', ...lines] = text.split(/\r?\n/);
  const header = split(first).map((h) => h.trim().toLowerCase());
  const rows = lines.flatMap((line, i) => (line.trim() ? [{ line: i + 2, cells: split(line) }] : []));
  return { header, rows };
}

function parseCsvLine(line) {
  const cells = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      cells.push(cell);
      cell = '';
    } else cell += ch;
  }
  cells.push(cell);
  return cells;
}

async function importCorrections(file) {
  try {
    const examples = parseLabelled(file.name, await file.text());
    if (examples.length === 0) throw new Error(`${file.name}: no labelled examples found`);
    remember();
    const byText = new Map(state.corrections.map((c) => [c.text, c]));
    for (const e of examples) byText.set(e.text, e);
    state.corrections = [...byText.values()];
    await afterCorrections();
    showStatus(`Imported ${examples.length} corrections from ${file.name}.`, 'info');
  } catch (e) {
    showStatus(`Import failed: ${errorText(e)}`);
  }
}

/** Reviews to classify from a dropped or opened file: .txt lines, or the text column of a table. */
async function openReviews(file) {
  try {
    const text = await file.text();
    const ext = file.name.toLowerCase().split('.').pop();
    let reviews;
    if (ext === 'txt') reviews = parseLines(text);
    else if (['tsv', 'csv', 'jsonl', 'ndjson'].includes(ext)) {
      if (ext === 'tsv' || ext === 'csv') {
        const { header, rows } = parseTable(text, ext);
        const ti = header.indexOf('text');
        if (ti < 0) throw new Error(`${file.name}:1: the header needs a 'text' column`);
        reviews = rows.map(({ cells }) => cells[ti] ?? '');
      } else {
        reviews = parseLabelled(file.name, text).map((e) => e.text);
      }
    } else {
      throw new Error(`${file.name}: unknown file format; use .txt (one review per line), .tsv, .csv or .jsonl`);
    }
    $('input').value = reviews.slice(0, MAX_ROWS).join('\n');
    await classifyTexts(reviews);
  } catch (e) {
    showStatus(`Cannot open the file: ${errorText(e)}`);
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

function drawChart(points) {
  const canvas = $('chart');
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  ctx.font = '12px sans-serif';
  ctx.fillStyle = '#666';
  ctx.fillText('loss', 8, 14);
  ctx.fillStyle = '#1a7f37';
  ctx.fillText('accuracy', 44, 14);
  if (points.length < 1) return;
  const maxLoss = Math.max(...points.map((p) => p.loss), 1e-6);
  const x = (i) => 8 + (i / Math.max(1, points.length - 1)) * (width - 16);
  const line = (value, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach((p, i) => {
      const y = height - 8 - value(p) * (height - 30);
      if (i === 0) ctx.moveTo(x(i), y);
      else ctx.lineTo(x(i), y);
    });
    ctx.stroke();
  };
  line((p) => p.loss / maxLoss, '#888');
  line((p) => p.accuracy, '#1a7f37');
}

async function fineTune() {
  if (state.corrections.length === 0) {
    showStatus('No corrections yet: correct at least one label (or import a JSONL file) before fine-tuning.', 'info');
    return;
  }
  const epochs = Number($('epochs').value);
  const lr = Number($('lr').value);
  if (!Number.isInteger(epochs) || epochs < 1 || epochs > 50) {
    showStatus('Epochs must be a whole number from 1 to 50.');
    return;
  }
  if (!(lr > 0 && lr <= 0.1)) {
    showStatus('The learning rate must be a number above 0 and at most 0.1.');
    return;
  }
  showStatus('');
  setBusy(true);
  const progress = $('ft-progress');
  progress.hidden = false;
  progress.value = 0;
  const points = [];
  drawChart(points);
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
        drawChart(points);
      },
    });
    progress.value = 1;
    const after = { corr: await accuracy(examples), held: await accuracy(held) };
    $('acc-corr-before').textContent = fmt(before.corr);
    $('acc-corr-after').textContent = fmt(after.corr);
    $('acc-held-before').textContent = fmt(before.held);
    $('acc-held-after').textContent = fmt(after.held);
    $('ft-summary').hidden = false;
    await addVersion(summary, after);
    state.extraLabels = state.extraLabels.filter((l) => !state.clf.labels.includes(l));
    await persist();
    showBackend();
    renderCorrections();
    await reclassify();
    showStatus(`Fine-tuned for ${summary.epochs} epochs (${summary.steps} steps).`, 'info');
  } catch (e) {
    showStatus(`Fine-tuning failed: ${errorText(e)}`);
  } finally {
    setBusy(false);
  }
}

async function addVersion(summary, after) {
  const n = state.versions.length + 1;
  const key = `demo-v${Date.now()}`;
  await state.clf.save(key);
  state.versions.push({
    key,
    name: `fine-tune ${n}`,
    createdAt: new Date().toISOString(),
    labels: summary.labels,
    corrections: state.corrections.length,
    heldout: after.held ? after.held.right / after.held.total : null,
  });
  state.current = key;
  renderVersions();
}

function renderVersions() {
  const items = [{ key: null, name: 'shipped model' }, ...state.versions];
  $('versions').replaceChildren(
    ...items.map((v) =>
      el('li', { class: v.key === state.current ? 'current' : '', dataset: { key: v.key ?? '' } }, [
        el('span', {
          text:
            v.key === null
              ? v.name
              : `${v.name} — ${new Date(v.createdAt).toLocaleString()} · ${v.corrections} corrections · labels ${v.labels.join(' / ')}`,
        }),
        el('button', { type: 'button', text: 'Use', onclick: () => useVersion(v.key) }),
      ]),
    ),
  );
  $('undo-model').disabled = state.busy || state.current === null;
}

async function loadModel(key) {
  if (key === null) return Classifier.load({ backend: BACKEND, modelUrl: MODEL_URL });
  const clf = await Classifier.restore(key, { backend: BACKEND, modelUrl: MODEL_URL });
  if (!clf) throw new Error(`the saved model '${key}' is missing from this browser's storage`);
  return clf;
}

async function useVersion(key) {
  setBusy(true);
  try {
    state.clf = await loadModel(key);
    state.current = key;
    await persist();
    showBackend();
    renderVersions();
    renderCorrections();
    await reclassify();
  } catch (e) {
    showStatus(`Cannot switch models: ${errorText(e)}`);
  } finally {
    setBusy(false);
  }
}

async function undoModel() {
  const i = state.versions.findIndex((v) => v.key === state.current);
  const dropped = state.versions.splice(i, 1)[0];
  await useVersion(i > 0 ? state.versions[i - 1].key : null);
  if (dropped) Classifier.forget(dropped.key).catch(() => {});
  renderVersions();
  await persist();
}

async function reclassify() {
  if (state.rows.length) {
    const texts = state.rows.map((r) => r.text);
    showRows(texts, await state.clf.classify(texts));
  }
}

async function exportModel() {
  try {
    const bytes = await state.clf.exportModel();
    download(new Blob([bytes], { type: 'application/octet-stream' }), 'xinsheng-model.bpk');
  } catch (e) {
    showStatus(`Export failed: ${errorText(e)}`);
  }
}

// ---------- start-up ----------

function wire() {
  $('classify').addEventListener('click', () => classifyTexts(parseLines($('input').value)));
  $('file').addEventListener('change', (ev) => ev.target.files[0] && openReviews(ev.target.files[0]));
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
  $('add-label').addEventListener('click', async () => {
    const label = $('new-label').value.trim();
    if (!label) return showStatus('Type a label name first (for example 中立).', 'info');
    if (!allLabels().includes(label)) state.extraLabels.push(label);
    $('new-label').value = '';
    await afterCorrections();
  });
  $('undo-correction').addEventListener('click', undoCorrection);
  $('export-corrections').addEventListener('click', exportCorrections);
  $('import-corrections').addEventListener('change', (ev) => ev.target.files[0] && importCorrections(ev.target.files[0]));
  $('clear-corrections').addEventListener('click', async () => {
    remember();
    state.corrections = [];
    await afterCorrections();
  });
  $('finetune').addEventListener('click', fineTune);
  $('undo-model').addEventListener('click', undoModel);
  $('reset-model').addEventListener('click', () => useVersion(null));
  $('export-model').addEventListener('click', exportModel);
  document.addEventListener('keydown', (ev) => {
    const typing = ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement;
    if (!typing && (ev.key === 'u' || ((ev.ctrlKey || ev.metaKey) && ev.key === 'z'))) {
      ev.preventDefault();
      undoCorrection();
    }
  });
}

async function start() {
  wire();
  drawChart([]);
  setBusy(true);
  try {
    state.corrections = (await load('corrections')) ?? [];
    state.extraLabels = (await load('extraLabels')) ?? [];
    const saved = (await load('versions')) ?? { list: [], current: null };
    state.versions = saved.list;
    state.current = saved.current;
  } catch (e) {
    showStatus(`Saved corrections could not be read (${errorText(e)}); starting empty.`);
  }
  try {
    try {
      state.clf = await loadModel(state.current);
    } catch (e) {
      if (state.current === null) throw e;
      showStatus(`The saved model could not be restored (${errorText(e)}); using the shipped model.`);
      state.current = null;
      state.clf = await loadModel(null);
    }
    showBackend();
  } catch (e) {
    $('backend').dataset.state = 'error';
    $('backend').textContent = 'No model loaded';
    showStatus(`The model could not be loaded: ${errorText(e)}`);
  }
  renderCorrections();
  renderVersions();
  setBusy(false);
  document.body.dataset.ready = 'true';
}

start();
