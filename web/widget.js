// <sentiment-widget>: an embeddable sentiment box for any page.
//
//   <script type="module" src="https://example.org/xinsheng/widget.js"></script>
//   <sentiment-widget model-url="…/model.bpk" labels="正面,负面,中立" backend="auto"></sentiment-widget>
//
// Attributes (all optional): model-url (default: the model shipped beside widget.js),
// labels (comma-separated choices offered for corrections; default: the model's labels),
// backend (auto | webgpu | cpu), placeholder, lang (zh, the default, or en: the widget's words
// and how labels are shown, e.g. positive → 正面; events carry the label keys).
// The model runs in the same engine Web Worker as every other classifier on the page.
// Events (bubbling, composed): `sentiment-prediction` {text, label, score, probs},
// `sentiment-correction` {text, predicted, label}, `sentiment-error` {message}.

import { Classifier, DEFAULT_MODEL_URL } from './xinsheng.js';
import { WIDGET_STRINGS, LABEL_NAMES } from './app/strings.js';

const STYLESHEET = new URL('widget.css', import.meta.url).href;
// Widgets on one page that use the same model share one loaded classifier.
const loaded = new Map();

function classifierFor(modelUrl, backend, { reload = false } = {}) {
  const key = `${backend} ${modelUrl}`;
  if (reload) loaded.delete(key);
  if (!loaded.has(key)) {
    const promise = Classifier.load({ modelUrl, backend });
    promise.catch(() => loaded.delete(key)); // a later widget may retry
    loaded.set(key, promise);
  }
  return loaded.get(key);
}

class SentimentWidget extends HTMLElement {
  #root;
  #last = null; // { text, prediction }

  static observedAttributes = ['lang'];

  get #lang() {
    const lang = (this.getAttribute('lang') || 'zh').toLowerCase();
    return lang.startsWith('en') ? 'en' : 'zh';
  }

  #t(key, vars = {}) {
    return WIDGET_STRINGS[this.#lang][key].replace(/\{(\w+)\}/g, (_, name) => String(vars[name]));
  }

  #labelName(label) {
    return LABEL_NAMES[this.#lang][label] ?? label;
  }

  attributeChangedCallback() {
    if (!this.#root) return;
    this.#translate();
    if (this.#last) this.#renderResult();
  }

  #translate() {
    const input = this.#root.querySelector('textarea');
    input.placeholder = this.getAttribute('placeholder') ?? this.#t('placeholder');
    input.setAttribute('aria-label', this.#t('inputLabel'));
    this.#parts.button.textContent = this.#t('analyse');
  }

  connectedCallback() {
    if (this.#root) return;
    this.#root = this.attachShadow({ mode: 'open' });
    const sheet = document.createElement('link');
    sheet.rel = 'stylesheet';
    sheet.href = STYLESHEET;
    const form = document.createElement('form');
    form.part = 'form';
    const input = document.createElement('textarea');
    input.rows = 3;
    const button = document.createElement('button');
    button.type = 'submit';
    const result = document.createElement('p');
    result.className = 'result';
    result.setAttribute('role', 'status');
    const fix = document.createElement('div');
    fix.className = 'fix';
    fix.hidden = true;
    form.append(input, button);
    this.#root.append(sheet, form, result, fix);
    this.#translate();
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.classify(input.value);
    });
  }

  get #parts() {
    const r = this.#root;
    return { button: r.querySelector('button[type=submit]'), result: r.querySelector('.result'), fix: r.querySelector('.fix') };
  }

  #classifier(options) {
    const modelUrl = this.getAttribute('model-url') || DEFAULT_MODEL_URL;
    return classifierFor(new URL(modelUrl, document.baseURI).href, this.getAttribute('backend') || 'auto', options);
  }

  /** Classifies `text`, shows the result and dispatches `sentiment-prediction`. */
  async classify(text) {
    const { button, result, fix } = this.#parts;
    button.disabled = true;
    result.textContent = '…';
    result.className = 'result';
    fix.hidden = true;
    try {
      const clf = await this.#classifier();
      const [prediction] = await clf.classify([text]);
      this.#last = { text, prediction, labels: clf.labels };
      this.#renderResult();
      this.dispatchEvent(
        new CustomEvent('sentiment-prediction', { bubbles: true, composed: true, detail: { text, ...prediction } }),
      );
      return prediction;
    } catch (e) {
      // The engine stopped (a lost GPU): the next classification loads the model afresh.
      if (e?.name === 'EngineLostError') this.#classifier({ reload: true }).catch(() => {});
      const message = e instanceof Error ? e.message : String(e);
      result.textContent = this.#t('error', { message });
      result.className = 'result error';
      this.dispatchEvent(new CustomEvent('sentiment-error', { bubbles: true, composed: true, detail: { message } }));
      return null;
    } finally {
      button.disabled = false;
    }
  }

  #renderResult() {
    const { result } = this.#parts;
    const { prediction } = this.#last;
    result.textContent = `${this.#labelName(prediction.label)} · ${(prediction.score * 100).toFixed(1)}%`;
    result.dataset.label = prediction.label;
    this.#renderFix();
  }

  #renderFix() {
    const { fix } = this.#parts;
    const { text, prediction, labels } = this.#last;
    const choices = (this.getAttribute('labels') || labels.join(','))
      .split(',')
      .map((l) => l.trim())
      .filter((l) => l && l !== prediction.label);
    const prompt = document.createElement('span');
    prompt.textContent = this.#t('wrong');
    const buttons = choices.map((label) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'choice';
      b.dataset.label = label;
      b.textContent = this.#labelName(label);
      b.addEventListener('click', () => {
        this.dispatchEvent(
          new CustomEvent('sentiment-correction', {
            bubbles: true,
            composed: true,
            detail: { text, predicted: prediction.label, label },
          }),
        );
        const thanks = document.createElement('span');
        thanks.textContent = this.#t('thanks', { label: this.#labelName(label) });
        fix.replaceChildren(thanks);
      });
      return b;
    });
    fix.replaceChildren(prompt, ...buttons);
    fix.hidden = buttons.length === 0;
  }
}

if (!customElements.get('sentiment-widget')) customElements.define('sentiment-widget', SentimentWidget);

export { SentimentWidget };
