// <sentiment-widget>: an embeddable sentiment box for any page.
//
//   <script type="module" src="https://example.org/xinsheng/widget.js"></script>
//   <sentiment-widget model-url="…/model.bpk" labels="positive,negative,neutral" backend="auto"></sentiment-widget>
//
// Attributes (all optional, each also a property, and each applied when it changes after the
// widget is attached, as frameworks set them): model-url (default: the model shipped beside
// widget.js), labels (comma-separated choices offered for corrections; default: the model's
// labels), backend (auto | webgpu | cpu), placeholder, lang (zh, the default, or en: the
// widget's words and how labels are shown, e.g. positive → 正面; events carry the label keys).
// Enter (or Ctrl/Cmd+Enter) classifies, Shift+Enter starts a new line; an Enter that an input
// method (IME) uses to confirm its candidates never submits.
// Styles: widget.css, fetched beside widget.js and adopted as a constructable stylesheet, which
// a host page's CSP `style-src` does not block; light or dark after the host page's colour scheme.
// The model runs in the same engine Web Worker as every other classifier on the page.
// Events (bubbling, composed): `sentiment-prediction` {text, label, score, probs},
// `sentiment-correction` {text, predicted, label}, `sentiment-error` {message}.

import { Classifier, DEFAULT_MODEL_URL } from './xinsheng.js';
import { WIDGET_STRINGS, LABEL_NAMES } from './widget-strings.js';

const STYLESHEET = new URL('./widget.css', import.meta.url).href;
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

const constructable =
  typeof CSSStyleSheet === 'function' &&
  typeof CSSStyleSheet.prototype.replaceSync === 'function' &&
  typeof ShadowRoot === 'function' &&
  'adoptedStyleSheets' in ShadowRoot.prototype;
let shared = null;

/**
 * widget.css's text. A bundler may inline the small file as a `data:` URL (Vite does below
 * 4 kB); that is decoded here, since a host page's CSP `connect-src` may not allow fetching it.
 */
async function stylesheetText() {
  const inlined = STYLESHEET.match(/^data:[^,]*?(;base64)?,(.*)$/s);
  if (inlined) {
    if (!inlined[1]) return decodeURIComponent(inlined[2]);
    return new TextDecoder().decode(Uint8Array.from(atob(inlined[2]), (c) => c.charCodeAt(0)));
  }
  const response = await fetch(STYLESHEET);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.text();
}

/**
 * The stylesheet every widget on the page adopts: widget.css's text in one constructable
 * stylesheet. A `<link>` from widget.js's origin is blocked by a host page's CSP `style-src
 * 'self'`; an adopted sheet is not. Until the text arrives the widgets stay hidden (no flash of
 * unstyled controls). `ready` rejects when it cannot be fetched (a CSP `connect-src` that
 * leaves the origin out, for one): the widgets then try a `<link>` instead.
 */
function sharedStyles() {
  if (!constructable) return null;
  if (shared) return shared;
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(':host { visibility: hidden; }');
  const ready = stylesheetText()
    .then(
      (text) => sheet.replaceSync(text),
      (e) => {
        sheet.replaceSync('');
        throw e;
      },
    );
  ready.catch(() => {});
  shared = { sheet, ready };
  return shared;
}

// Attributes and the properties that reflect them (`lang` is HTMLElement's own).
/**
 * @typedef {{text: string} & import('./xinsheng.js').Prediction} PredictionDetail `sentiment-prediction`'s detail.
 * @typedef {{text: string, predicted: string, label: string}} CorrectionDetail `sentiment-correction`'s detail.
 * @typedef {{message: string}} ErrorDetail `sentiment-error`'s detail.
 */

const PROPERTIES = { placeholder: 'placeholder', labels: 'labels', 'model-url': 'modelUrl', backend: 'backend' };

class SentimentWidget extends HTMLElement {
  #root;
  #last = null; // { text, prediction, labels }
  #busy = false;

  static observedAttributes = ['lang', ...Object.keys(PROPERTIES)];

  get #lang() {
    const lang = (this.getAttribute('lang') || 'zh').toLowerCase();
    return lang.startsWith('en') ? 'en' : 'zh';
  }

  #t(key, vars = {}) {
    const template = WIDGET_STRINGS[this.#lang][key];
    if (template === undefined) {
      console.warn(`sentiment-widget: no string '${key}'`);
      return key;
    }
    return template.replace(/\{(\w+)\}/g, (_, name) => String(vars[name]));
  }

  #labelName(label) {
    return LABEL_NAMES[this.#lang][label] ?? label;
  }

  attributeChangedCallback(name, previous, value) {
    if (!this.#root || previous === value) return;
    if (name === 'lang' || name === 'placeholder') {
      this.#translate();
      if (name === 'lang' && this.#last) this.#renderResult();
    } else if (name === 'labels') {
      if (this.#last) this.#renderFix();
    } else {
      // model-url or backend: the result shown came from another model; the next
      // classification loads the new one.
      this.#last = null;
      const { result, fix } = this.#parts;
      result.textContent = '';
      result.className = 'result';
      delete result.dataset.label;
      fix.hidden = true;
      fix.replaceChildren();
    }
  }

  #translate() {
    const input = this.#root.querySelector('textarea');
    input.placeholder = this.getAttribute('placeholder') ?? this.#t('placeholder');
    input.setAttribute('aria-label', this.#t('inputLabel'));
    this.#parts.button.textContent = this.#t('analyse');
  }

  connectedCallback() {
    if (this.#root) return;
    // A framework may have set a property before this element was upgraded: that own property
    // hides the accessor; move its value onto the attribute.
    for (const property of Object.values(PROPERTIES)) {
      if (Object.prototype.hasOwnProperty.call(this, property)) {
        const value = this[property];
        delete this[property];
        this[property] = value;
      }
    }
    this.#root = this.attachShadow({ mode: 'open' });
    const form = document.createElement('form');
    form.part = 'form';
    const input = document.createElement('textarea');
    input.rows = 3;
    input.enterKeyHint = 'send';
    const button = document.createElement('button');
    button.type = 'submit';
    const result = document.createElement('p');
    result.className = 'result';
    result.setAttribute('role', 'status');
    const fix = document.createElement('div');
    fix.className = 'fix';
    fix.hidden = true;
    form.append(input, button);
    this.#root.append(form, result, fix);
    this.#style();
    this.#translate();
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (!this.#busy) this.classify(input.value);
    });
    input.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Enter' || ev.shiftKey || ev.altKey) return;
      // An input method is composing (pinyin, for one): this Enter confirms its candidate.
      // Safari reports that Enter after compositionend, with keyCode 229.
      if (ev.isComposing || ev.keyCode === 229) return;
      ev.preventDefault();
      if (typeof form.requestSubmit === 'function') form.requestSubmit();
      else button.click();
    });
  }

  #style() {
    const styles = sharedStyles();
    if (styles) {
      this.#root.adoptedStyleSheets = [...this.#root.adoptedStyleSheets, styles.sheet];
      styles.ready.catch(() => this.#linkStyles());
    } else {
      this.#linkStyles();
    }
  }

  /** widget.css through a `<link>`: where constructable stylesheets are missing, or the fetch failed. */
  #linkStyles() {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = STYLESHEET;
    link.addEventListener('error', () => {
      // Blocked (a CSP style-src without this origin) or unreachable: say so instead of
      // rendering unstyled in silence.
      const message = this.#t('styleFailed', { url: STYLESHEET });
      console.warn(`sentiment-widget: ${message}`);
      const { result } = this.#parts;
      if (!this.#last) {
        result.textContent = message;
        result.className = 'result error';
      }
      this.dispatchEvent(new CustomEvent('sentiment-error', { bubbles: true, composed: true, detail: { message } }));
    });
    this.#root.prepend(link);
  }

  get #parts() {
    const r = this.#root;
    return { button: r.querySelector('button[type=submit]'), result: r.querySelector('.result'), fix: r.querySelector('.fix') };
  }

  #classifier(options) {
    const modelUrl = this.getAttribute('model-url') || DEFAULT_MODEL_URL;
    return classifierFor(new URL(modelUrl, document.baseURI).href, this.getAttribute('backend') || 'auto', options);
  }

  /**
   * Classifies `text`, shows the result and dispatches `sentiment-prediction`; on failure shows
   * the error, dispatches `sentiment-error` and resolves to null.
   * @param {string} text
   * @returns {Promise<import('./xinsheng.js').Prediction | null>}
   */
  async classify(text) {
    const { button, result, fix } = this.#parts;
    this.#busy = true;
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
      this.#busy = false;
      button.disabled = false;
    }
  }

  #renderResult() {
    const { result } = this.#parts;
    const { prediction } = this.#last;
    result.textContent = `${this.#labelName(prediction.label)} · ${(prediction.score * 100).toFixed(1)}%`;
    result.className = 'result';
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

// The attributes as properties (el.placeholder = '…', el.modelUrl = '…'), as frameworks bind them.
for (const [attribute, property] of Object.entries(PROPERTIES)) {
  Object.defineProperty(SentimentWidget.prototype, property, {
    configurable: true,
    enumerable: true,
    get() {
      return this.getAttribute(attribute);
    },
    set(value) {
      if (value === null || value === undefined) this.removeAttribute(attribute);
      else this.setAttribute(attribute, Array.isArray(value) ? value.join(',') : String(value));
    },
  });
}

if (!customElements.get('sentiment-widget')) customElements.define('sentiment-widget', SentimentWidget);

export { SentimentWidget };
