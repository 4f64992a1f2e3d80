// The results table: filter by label, search, order (as read, needs review = smallest margin
// first, confidence), and pages of PAGE_SIZE rows so 50,000 reviews stay fast to show.

import { state, labelOf, correctionFor, allLabels } from './state.js';
import { $, el } from './ui.js';
import { t, labelName } from './i18n.js';

export const PAGE_SIZE = 100;

/** The key that picks each label of a focused row, in label order: 1–9, then 0 for the tenth. */
export const KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '0'];

const ORDERS = {
  input: null,
  review: (a, b) => a.margin - b.margin || a.index - b.index,
  high: (a, b) => b.prediction.score - a.prediction.score || a.index - b.index,
  low: (a, b) => a.prediction.score - b.prediction.score || a.index - b.index,
};

let correct = () => {};

/** Wires the toolbar; `onCorrect(rowIndex, label)` applies a correction. */
export function initResults({ onCorrect }) {
  correct = onCorrect;
  $('filter-label').addEventListener('change', (ev) => setView({ label: ev.target.value }));
  $('sort').addEventListener('change', (ev) => setView({ sort: ev.target.value }));
  $('search').addEventListener('input', (ev) => setView({ search: ev.target.value.trim() }));
  $('prev-page').addEventListener('click', () => setView({ page: state.view.page - 1 }, false));
  $('next-page').addEventListener('click', () => setView({ page: state.view.page + 1 }, false));
}

function setView(change, toFirstPage = true) {
  Object.assign(state.view, change, toFirstPage ? { page: 0 } : {});
  renderResults();
}

/** The rows the current filter, search and order give, in order. */
export function viewRows() {
  const { label, sort, search } = state.view;
  let rows = state.rows;
  if (label) rows = rows.filter((r) => labelOf(r) === label);
  if (search) {
    const needle = search.toLowerCase();
    rows = rows.filter((r) => r.text.toLowerCase().includes(needle));
  }
  const order = ORDERS[sort];
  return order ? [...rows].sort(order) : rows;
}

function renderFilter(labels) {
  const select = $('filter-label');
  const chosen = state.view.label;
  select.replaceChildren(
    el('option', { value: '', text: t('allLabels') }),
    ...labels.map((l) => el('option', { value: l, text: labelName(l) })),
  );
  select.value = labels.includes(chosen) ? chosen : '';
}

/**
 * Redraws the visible page of the table, the counts and the pager. With `{ streaming: true }`
 * (results still arriving) the rows are left alone when the visible ones have not changed, so
 * the page does not re-lay out a full table for every chunk.
 */
export function renderResults({ streaming = false } = {}) {
  const labels = allLabels();
  if (!streaming) renderFilter(labels);
  const rows = viewRows();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  state.view.page = Math.min(Math.max(0, state.view.page), pages - 1);
  const start = state.view.page * PAGE_SIZE;
  const visible = rows.slice(start, start + PAGE_SIZE);
  const body = $('results').querySelector('tbody');
  const same =
    streaming &&
    body.rows.length === visible.length &&
    visible.every((row, i) => body.rows[i].dataset.row === String(row.index));
  if (!same) {
    const kept = focusedRow(body);
    body.replaceChildren(...visible.map((row) => renderRow(row, labels)));
    restoreFocus(body, kept);
  }
  $('results').hidden = state.rows.length === 0;
  $('results-tools').hidden = state.rows.length === 0;
  const count = $('result-count');
  count.textContent = rows.length === 0 && state.rows.length > 0 ? t('noResults') : t('resultCount', { shown: rows.length, total: state.rows.length });
  count.dataset.shown = String(rows.length);
  $('page-info').textContent = t('pageInfo', { page: state.view.page + 1, pages });
  $('pager').hidden = pages <= 1;
  $('prev-page').disabled = state.view.page === 0;
  $('next-page').disabled = state.view.page >= pages - 1;
}

function renderRow(row, labels) {
  const corrected = correctionFor(row.text);
  const label = row.prediction.label;
  const bar = el('span', { class: 'bar' });
  bar.style.width = `${Math.round(row.prediction.score * 100)}%`;
  const buttons = labels.map((l, k) =>
    el('button', {
      type: 'button',
      class: corrected?.label === l ? 'choice chosen' : 'choice',
      'aria-pressed': String(corrected?.label === l),
      dataset: { label: l },
      text: k < KEYS.length ? `${KEYS[k]} ${labelName(l)}` : labelName(l),
      onclick: () => correct(row.index, l),
    }),
  );
  const tr = el(
    'tr',
    {
      tabindex: '0',
      dataset: { row: String(row.index), label, corrected: corrected?.label ?? '', margin: row.margin.toFixed(6) },
      onkeydown: (ev) => onRowKey(ev, row.index),
    },
    [
      el('td', { class: 'review', text: row.text }),
      el('td', {
        class: 'label',
        text: corrected && corrected.label !== label ? `${labelName(label)} → ${labelName(corrected.label)}` : labelName(label),
      }),
      el('td', { class: 'confidence' }, [
        el('span', { class: 'meter' }, [bar]),
        el('span', { class: 'pct', text: `${(row.prediction.score * 100).toFixed(1)}%` }),
      ]),
      el('td', { class: 'choices' }, buttons),
    ],
  );
  highlight(tr.firstChild, row);
  return tr;
}

/**
 * Pieces of `text` to draw: `{text, weight?}` in order, covering every character the user
 * wrote. Each token's weight lands on the characters it was read from (the core's `start` /
 * `end`, in code points); tokens read from the same characters (NFKC makes "㈱" three tokens)
 * add up; characters no token covers (spaces, the dropped middle of a long text) are plain.
 * Without spans (a text whose normalisation cannot be traced) the tokens themselves are drawn.
 */
export function highlightPieces(text, tokens) {
  if (!tokens.every((tok) => Number.isInteger(tok.start) && Number.isInteger(tok.end))) {
    return tokens.map((tok) => ({ text: tok.token, weight: tok.weight, token: tok.token }));
  }
  const chars = Array.from(text);
  const pieces = [];
  let at = 0;
  for (const tok of tokens) {
    const last = pieces.at(-1);
    if (last?.start === tok.start && last.end === tok.end) {
      last.weight += tok.weight;
      last.token += tok.token;
      continue;
    }
    if (tok.start < at) continue; // overlaps what is drawn already: cannot happen for the core's spans
    if (tok.start > at) pieces.push({ text: chars.slice(at, tok.start).join('') });
    pieces.push({ text: chars.slice(tok.start, tok.end).join(''), weight: tok.weight, token: tok.token, start: tok.start, end: tok.end });
    at = tok.end;
  }
  if (at < chars.length) pieces.push({ text: chars.slice(at).join('') });
  return pieces;
}

/** Colours the characters of a row by their tokens' occlusion weight, once the explanation has arrived. */
function highlight(cell, row) {
  if (!cell || !row?.tokens) return;
  const pieces = highlightPieces(row.text, row.tokens);
  const max = Math.max(1e-6, ...pieces.filter((p) => p.weight !== undefined).map((p) => Math.abs(p.weight)));
  const nodes = pieces.map((piece) => {
    if (piece.weight === undefined) return document.createTextNode(piece.text);
    const strength = Math.min(1, Math.abs(piece.weight) / max);
    const title = piece.token === piece.text ? piece.weight.toFixed(3) : `${piece.token} · ${piece.weight.toFixed(3)}`;
    const span = el('span', { class: piece.weight >= 0 ? 'tok pro' : 'tok con', text: piece.text, title });
    span.style.setProperty('--w', strength.toFixed(2));
    return span;
  });
  cell.replaceChildren(...nodes);
  cell.title = row.text;
}

/** Re-renders one row's highlight if it is on the visible page. */
export function renderReview(index) {
  const cell = document.querySelector(`#results tbody tr[data-row="${index}"] .review`);
  highlight(cell, state.rows[index]);
}

/**
 * Where the keyboard is in the table before a redraw: the focused row (or a control in it) and
 * its position, so that a redraw (a correction, an undo, a correction that moves the row out of
 * the filter) does not drop the focus to the page body.
 */
function focusedRow(body) {
  const active = document.activeElement;
  if (active === $('results')) return { row: null, position: 0, label: null }; // the view was empty
  const tr = active?.closest?.('tr');
  if (!tr || tr.parentNode !== body) return null;
  return { row: tr.dataset.row, position: tr.sectionRowIndex, label: active === tr ? null : (active.dataset.label ?? null) };
}

/** Puts the focus back on the same row, else on the row now at its place (the next one), else the last. */
function restoreFocus(body, kept) {
  if (!kept) return;
  const same = [...body.rows].find((tr) => tr.dataset.row === kept.row);
  const tr = same ?? body.rows[Math.min(kept.position, body.rows.length - 1)];
  if (!tr) {
    // Nothing left in the view: the table keeps the keyboard, so u still undoes.
    $('results').tabIndex = -1;
    $('results').focus();
    return;
  }
  const control = same && kept.label !== null ? [...tr.querySelectorAll('.choice')].find((b) => b.dataset.label === kept.label) : null;
  (control ?? tr).focus();
}

/** The rows on the visible page, in order. */
export function visibleIndices() {
  return [...document.querySelectorAll('#results tbody tr')].map((tr) => Number(tr.dataset.row));
}

function onRowKey(ev, index) {
  const rows = [...document.querySelectorAll('#results tbody tr')];
  const at = rows.findIndex((tr) => Number(tr.dataset.row) === index);
  if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
    rows[at + (ev.key === 'ArrowDown' ? 1 : -1)]?.focus();
    ev.preventDefault();
  } else if (KEYS.includes(ev.key) && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
    const label = allLabels()[KEYS.indexOf(ev.key)];
    if (label) {
      correct(index, label);
      ev.preventDefault();
    }
  }
}
