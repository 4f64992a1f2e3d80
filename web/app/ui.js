// Small DOM helpers shared by the page's modules. User text goes into the DOM through
// textContent only, never as HTML.

import { t, hasString } from './i18n.js';

export const $ = (id) => document.getElementById(id);

/**
 * What went wrong, in the page's language. A fault that carries a stable `code` (the core's
 * file reader: `xinsheng_core::error::Code`, through readReviews) is worded by the string
 * `err-<code>`, filled from its `values` and `{at}` (the file, and the line when known); any
 * other error, or a code the tables lack, shows its own message.
 */
export function errorText(e) {
  const code = typeof e?.code === 'string' ? e.code : null;
  if (code && hasString(`err-${code}`)) {
    const values = { ...e.values };
    values.at = values.line ? t('errAtLine', values) : (values.file ?? '');
    return t(`err-${code}`, values);
  }
  return e instanceof Error ? e.message : String(e);
}

/** `message` in the status line; `kind` 'error' or 'info'; an empty message hides it. */
export function showStatus(message, kind = 'error') {
  const node = $('status');
  node.textContent = message;
  node.dataset.kind = kind;
  node.hidden = !message;
}

/** An element with attributes (`text`, `dataset`, `on…` handled specially) and children. */
export function el(tag, props = {}, children = []) {
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

/** Saves `blob` as a file called `name`. */
export function download(blob, name) {
  const a = el('a', { href: URL.createObjectURL(blob), download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

/** Waits for the next frame, so the browser can paint and handle input. */
export const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
