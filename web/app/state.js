// What the page knows: the classifier, the classified rows, the corrections, the versions.

export const state = {
  clf: null,
  engineWhere: '',
  rows: [], // { index, text, prediction, margin, tokens }
  corrections: [], // { text, label }
  byText: new Map(), // text → correction, rebuilt with indexCorrections()
  extraLabels: [], // labels added by hand, e.g. 一般, until the model learns them
  history: [], // corrections before each change, for undo
  versions: [], // { key, n, base, createdAt, labels, corrections, heldout, unsaved? }, made by addVersion (versions.js)
  current: null, // key of the model in use; null = shipped
  correctionsAtLastTune: 0,
  busy: false,
  view: { label: '', sort: 'input', search: '', page: 0 },
};

export function indexCorrections() {
  state.byText = new Map(state.corrections.map((c) => [c.text, c]));
}

export const correctionFor = (text) => state.byText.get(text);

/** The label a row counts under: the user's correction, else the model's prediction. */
export const labelOf = (row) => correctionFor(row.text)?.label ?? row.prediction.label;

/** The model's labels, then labels added by hand or through corrections. */
export function allLabels() {
  const labels = state.clf ? [...state.clf.labels] : [];
  for (const l of [...state.extraLabels, ...state.corrections.map((c) => c.label)]) {
    if (!labels.includes(l)) labels.push(l);
  }
  return labels;
}

/** Top probability minus the second: small means the model is unsure. */
export function marginOf(prediction) {
  const [first = 0, second = 0] = Object.values(prediction.probs).sort((a, b) => b - a);
  return first - second;
}

/** A row of `state.rows`: review `index` of the batch, its text and prediction, not yet explained. */
export function toRow(text, prediction, index) {
  return { index, text, prediction, margin: marginOf(prediction), tokens: null };
}
