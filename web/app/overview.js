// The overview of a batch: reviews per label (counts and shares), the confidence histogram and
// the tokens that most often drive each label (occlusion weights summed over the explained
// reviews). Counts follow the table: a corrected review counts under its correction.

import { state, labelOf, allLabels } from './state.js';
import { $, el } from './ui.js';
import { t, labelName, percent } from './i18n.js';
import { barChart, COLORS } from './charts.js';

const BINS = 10;
let labelsChart = null;
let confidenceChart = null;

/** Counts per label key, in the order of allLabels(). */
export function labelCounts() {
  const counts = new Map(allLabels().map((l) => [l, 0]));
  for (const row of state.rows) {
    const label = labelOf(row);
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return counts;
}

/** Histogram of the top probability over [lowest possible, 1] in BINS bins. */
function confidenceBins() {
  const n = Math.max(2, state.clf?.labels.length ?? 2);
  const low = 1 / n;
  const bins = new Array(BINS).fill(0);
  for (const row of state.rows) {
    const x = (row.prediction.score - low) / (1 - low);
    bins[Math.min(BINS - 1, Math.max(0, Math.floor(x * BINS)))] += 1;
  }
  const edges = bins.map((_, i) => `${Math.round((low + ((1 - low) * i) / BINS) * 100)}%`);
  return { bins, edges };
}

/** The most decisive tokens per predicted label, from the rows explained so far. */
function topTokens(limit = 8) {
  const sums = new Map();
  let explained = 0;
  for (const row of state.rows) {
    if (!row.tokens) continue;
    explained += 1;
    const label = row.prediction.label;
    if (!sums.has(label)) sums.set(label, new Map());
    const forLabel = sums.get(label);
    for (const { token, weight } of row.tokens) {
      // Words and characters, not punctuation: what a reader can act on.
      if (weight > 0 && /[\p{L}\p{N}]/u.test(token)) forLabel.set(token, (forLabel.get(token) ?? 0) + weight);
    }
  }
  const top = new Map(
    [...sums].map(([label, weights]) => [label, [...weights].sort((a, b) => b[1] - a[1]).slice(0, limit)]),
  );
  return { top, explained };
}

export function renderOverview() {
  const section = $('overview');
  section.hidden = state.rows.length === 0;
  if (section.hidden) return;
  labelsChart ??= barChart($('chart-labels'), { color: COLORS[0] });
  confidenceChart ??= barChart($('chart-confidence'), { color: COLORS[2] });

  const counts = labelCounts();
  const total = state.rows.length;
  const keys = [...counts.keys()];
  labelsChart(keys.map(labelName), keys.map((k) => counts.get(k)), t('reviews'));
  $('label-counts').replaceChildren(
    ...keys.map((label) =>
      el('li', { dataset: { label, count: String(counts.get(label)) } }, [
        el('span', { class: 'name', text: labelName(label) }),
        el('span', { text: ` ${t('countShare', { count: counts.get(label), share: percent(counts.get(label) / total) })}` }),
      ]),
    ),
  );

  const { bins, edges } = confidenceBins();
  confidenceChart(edges, bins, t('reviews'));
  $('chart-confidence').dataset.bins = bins.join(',');

  const { top, explained } = topTokens();
  $('top-tokens').replaceChildren(
    ...[...top].map(([label, tokens]) =>
      el('div', { class: 'token-list', dataset: { label } }, [
        el('h3', { text: labelName(label) }),
        el(
          'ol',
          {},
          tokens.map(([token, weight]) => el('li', { text: token, title: weight.toFixed(3) })),
        ),
      ]),
    ),
  );
  $('top-tokens-note').textContent = explained ? t('topTokensNote', { explained, total }) : '';
}
