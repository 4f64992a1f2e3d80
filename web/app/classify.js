// Classifying: the pasted reviews, a whole file (in chunks, cancellable) or a sample, with the
// table and the overview redrawn as results stream in, then explanations (the highlights and
// the overview's tokens) in the background; and the busy state that stops other work meanwhile.

import { readReviews } from '../xinsheng.js';
import { state, toRow } from './state.js';
import { $, el, errorText, showStatus } from './ui.js';
import { t } from './i18n.js';
import { renderResults, renderReview, viewRows } from './results.js';
import { renderOverview } from './overview.js';
import { readFile } from './files.js';
import { keepBatch } from './storage.js';

/** Reviews explained in the background (highlights and the overview's tokens). */
const EXPLAIN_LIMIT = 200;

/** The sample reviews under the paste box. */
const SAMPLES = [
  '这家酒店的服务非常好，房间干净，下次还来！',
  '质量太差了，用了两天就坏了，不推荐购买。',
  '物流很快，包装完好，性价比很高。',
  '客服态度恶劣，退货流程麻烦死了。',
  '书的内容一般，没有想象中那么好。',
  '屏幕清晰，电池耐用，非常满意。',
];

// Bumped whenever other work starts, so background explanations stop queueing ahead of it.
let explainRun = 0;
let classifying = null; // AbortController of the classification in progress

export function setBusy(busy) {
  state.busy = busy;
  if (busy) explainRun++;
  $('classify').disabled = busy || !state.clf;
  $('finetune').disabled = busy || !state.clf;
  $('undo-model').disabled = busy || state.versions.length === 0;
  $('reset-model').disabled = busy;
}

/** Stops the classification in progress, if any. */
export function cancelClassifying() {
  classifying?.abort();
}

/** The paste box's reviews, read by the same core reader as files (one review per line). */
async function pastedReviews() {
  const text = $('input').value;
  if (!text.trim()) return [];
  const read = await readReviews({ name: 'pasted.txt', bytes: new TextEncoder().encode(text) }, { format: 'txt', encoding: 'utf-8' });
  return read.records.map((r) => r.text);
}

/** Classifies the paste box's reviews. */
export async function classifyPasted() {
  try {
    await classifyTexts(await pastedReviews());
  } catch (e) {
    showStatus(t('classifyFailed', { error: errorText(e) }));
  }
}

/** The sample reviews as buttons that classify each. */
export function renderSamples() {
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

export async function classifyTexts(texts) {
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
export async function explainRows() {
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

/** Opens a file of reviews: its first 200 in the paste box, all of them classified. */
export async function openReviews(file) {
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

/** Classifies the batch again (after the model changed). */
export async function reclassify() {
  if (state.rows.length) await classifyTexts(state.rows.map((r) => r.text));
}
