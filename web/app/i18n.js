// The interface language: Simplified Chinese by default, English on request, remembered in
// localStorage (and `?lang=en|zh` in the URL, which also remembers).

import { STRINGS, LABEL_NAMES } from './strings.js';

const KEY = 'xinsheng-lang';
const listeners = [];

function initial() {
  const asked = new URLSearchParams(location.search).get('lang');
  if (asked in STRINGS) {
    remember(asked);
    return asked;
  }
  try {
    const saved = localStorage.getItem(KEY);
    if (saved in STRINGS) return saved;
  } catch {
    // storage blocked: the default it is
  }
  return 'zh';
}

function remember(lang) {
  try {
    localStorage.setItem(KEY, lang);
  } catch {
    // storage blocked: the choice lasts for this page only
  }
}

export let lang = initial();

/** Keys asked for that neither table has (the tests read it; the page shows the key itself). */
export const missingKeys = new Set();

/**
 * The string `key` in the current language (Chinese where English lacks it), with `{name}`
 * filled from `vars`. A key neither table has never throws: the key itself is shown, and it is
 * reported once on the console so that the page tests fail on it.
 */
export function t(key, vars = {}) {
  let template = STRINGS[lang][key] ?? STRINGS.zh[key];
  if (template === undefined) {
    if (!missingKeys.has(key)) console.error(`xinsheng: no string '${key}'`);
    missingKeys.add(key);
    template = key;
  }
  return template.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? `{${name}}`));
}

/** Whether either table has `key` (for keys made at run time, such as an error's `err-<code>`). */
export const hasString = (key) => key in STRINGS[lang] || key in STRINGS.zh;

/** How a label key is shown (positive → 正面 in Chinese); exports and the API keep the key. */
export function labelName(label) {
  return LABEL_NAMES[lang][label] ?? label;
}

/**
 * How a model version is shown: the shipped model (key null), else 微调 N / fine-tune N. Versions
 * saved by the first page have no `n`, only a `name` such as 'fine-tune 2'.
 */
export const versionName = (v) => (v.key === null ? t('shippedModel') : t('versionName', { n: v.n ?? v.name?.match(/\d+/)?.[0] ?? '?' }));

/** Fills every `data-i18n` (text), `data-i18n-placeholder` and `data-i18n-aria-label` element. */
export function translate(root = document) {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  document.title = t('title');
  for (const node of root.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll('[data-i18n-placeholder]')) node.placeholder = t(node.dataset.i18nPlaceholder);
  for (const node of root.querySelectorAll('[data-i18n-aria-label]')) {
    node.setAttribute('aria-label', t(node.dataset.i18nAriaLabel));
  }
}

/** Runs `render` now and after every language switch. */
export function onLanguage(render) {
  listeners.push(render);
}

export function setLanguage(next) {
  lang = next;
  remember(next);
  translate();
  for (const render of listeners) render();
}

/** A share such as 42.5%. */
export const percent = (x) => `${(x * 100).toFixed(1)}%`;
