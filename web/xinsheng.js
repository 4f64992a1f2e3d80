// xinsheng (心声): Chinese sentiment classification that runs and learns in the browser.
//
//   import { Classifier } from './xinsheng.js';
//   const clf = await Classifier.load({ backend: 'auto' });   // WebGPU if offered, else CPU
//   await clf.classify(['质量很好', '太差了']);               // [{label, score, probs}]
//
// The model runs in WebAssembly (Rust + burn) inside a dedicated Web Worker, so the page stays
// responsive while it works; every method returns a promise. See README.md for the whole API.
//
// The library is this file (the public API), rpc.js (the protocol to an engine host), pool.js
// (the page's hosts), engine.js / engine-worker.js (the host), widget.js (the embeddable
// widget, with its own strings) and idb.js; none of them imports anything from app/, the demo.

import { defaultWorkers, engine, helperHosts, hostCount, maxWorkers, releaseHelper, useHelper } from './pool.js';

export { defaultWorkers };

// The public types (TypeScript reads them from this JSDoc: `tsc` writes the package's .d.ts).
/** @typedef {'auto' | 'webgpu' | 'cpu'} Backend Where the model runs; 'auto' is WebGPU when offered, else CPU. */
/**
 * @typedef {object} LoadOptions
 * @property {string} [modelUrl] A `.bpk` bundle's URL (relative to the page); default the shipped model.
 * @property {Uint8Array | ArrayBuffer} [bytes] Bundle bytes (e.g. from `exportModel`), instead of a URL.
 * @property {Backend} [backend] Default 'auto'.
 * @property {number} [workers] CPU engines (Web Workers) `classify` uses, ≥ 1; default `defaultWorkers()`.
 */
/**
 * @typedef {object} RestoreOptions
 * @property {Backend} [backend] Default 'auto'.
 * @property {string} [modelUrl] The base model `reset` returns to; default the shipped model.
 * @property {number} [workers] As for `load`.
 */
/**
 * @typedef {object} Prediction
 * @property {string} label The most probable label.
 * @property {number} score Its probability, 0–1.
 * @property {Record<string, number>} probs Every label's probability (they sum to 1).
 */
/**
 * @typedef {object} ClassifyProgress
 * @property {number} done Texts classified so far.
 * @property {number} total All texts.
 * @property {number} start Index of `predictions[0]` in the texts.
 * @property {Prediction[]} predictions The chunk just classified.
 */
/**
 * @typedef {object} ClassifyOptions
 * @property {(progress: ClassifyProgress) => void} [onProgress] Called after each chunk, in order.
 * @property {AbortSignal} [signal] Aborting rejects with the signal's reason.
 */
/**
 * @typedef {object} TokenWeight
 * @property {string} token What the model reads (normalised).
 * @property {number} weight Importance for the predicted label (> 0 supports it).
 * @property {number} [start] First code point of the text it was read from.
 * @property {number} [end] Code point after the last.
 */
/**
 * @typedef {object} Example
 * @property {string} text
 * @property {string} label A label the model knows, or a new one (adds a class).
 */
/**
 * @typedef {object} FineTuneProgress
 * @property {number} epoch
 * @property {number} epochs
 * @property {number} step
 * @property {number} steps
 * @property {number} loss Mean training loss of the epoch so far.
 * @property {number} accuracy Training accuracy of the epoch so far, 0–1.
 */
/**
 * @typedef {object} FineTuneOptions The core's fine-tuning options (`info.finetune_defaults`
 * lists them with their defaults); an unknown one rejects naming it.
 * @property {number} [epochs] Default 8.
 * @property {number} [lr] Learning rate, default 2e-3.
 * @property {number} [batchSize] Default 16.
 * @property {number} [patience] Default 3.
 * @property {number} [seed] Default 42.
 * @property {'none' | 'embedding' | 'encoder'} [freeze] Parameters left untouched; default 'none'.
 * @property {(progress: FineTuneProgress) => void} [onProgress] Called after every step.
 */
/**
 * @typedef {object} FineTuneSummary
 * @property {number} epochs Epochs run.
 * @property {number} steps
 * @property {number} loss The last epoch's training loss.
 * @property {number} accuracy The last epoch's training accuracy.
 * @property {string[]} labels The model's labels afterwards.
 */
/**
 * @typedef {object} ExportOptions
 * @property {'f16' | 'f32'} [precision] Weight precision in the bundle; default 'f16'.
 */
/**
 * @typedef {object} ReadOptions
 * @property {'txt' | 'tsv' | 'csv' | 'jsonl'} [format] Default: from the file's name.
 * @property {string} [encoding] 'auto' (default), 'utf-8', 'gb18030', 'utf-16le' or 'utf-16be'.
 * @property {string} [textColumn]
 * @property {string} [labelColumn]
 * @property {string} [labelMap] e.g. '1=positive,0=negative'.
 */
/**
 * @typedef {object} ReviewRecord
 * @property {number} line The line (or JSONL row) in the file, from 1.
 * @property {string} text
 * @property {string} [label]
 */
/**
 * @typedef {object} Reviews
 * @property {string} format
 * @property {string} encoding
 * @property {boolean} labelled
 * @property {ReviewRecord[]} records
 * @property {number} skippedBlank
 */
/**
 * @typedef {object} ModelInfo
 * @property {object} config The architecture (arch, hidden, layers, …).
 * @property {object} tokenizer
 * @property {string[]} labels
 * @property {number} vocab_size
 * @property {object | null} metrics Validation metrics recorded at training (cleared by a fine-tune without validation data).
 * @property {Record<string, unknown>} finetune_defaults `fineTune`'s options with the core's defaults.
 */

const here = new URL('.', import.meta.url);
/** The model shipped with the build. */
export const DEFAULT_MODEL_URL = new URL('./models/default/model.bpk', import.meta.url).href;
/**
 * Texts per message to an engine: progress and cancellation happen between chunks, and a pool
 * of engines (see `workers`) shares the chunks out. The boundaries depend on the input alone, so
 * every pool size computes each chunk the same way and answers bit for bit alike.
 */
const CHUNK = 256;

/**
 * Sizes for leak checks and diagnostics: `{wasmBytes, engines, workers}` (the first engine's
 * WebAssembly memory and the models it holds, and the engine workers running, pool helpers
 * included).
 */
/** @returns {Promise<{wasmBytes: number, engines: number, workers: number}>} */
export async function engineStats() {
  return { ...(await engine().call('stats', {})), workers: hostCount() };
}

/**
 * Where the engine runs on this page: 'worker', or 'main thread (why)'.
 * @returns {Promise<string>}
 */
export async function engineLocation() {
  const r = engine();
  await r.call('ping', {});
  return r.where;
}

/** `bytes` as a Uint8Array the caller no longer shares: one copy, then transferred. */
function ownedCopy(bytes) {
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes.slice(0));
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  throw new TypeError('bytes must be a Uint8Array or an ArrayBuffer');
}

function checkWorkers(workers) {
  if (Number.isInteger(workers) && workers >= 1) return;
  const shown = typeof workers === 'string' ? JSON.stringify(workers) : typeof workers === 'number' ? String(workers) : `a ${typeof workers}`;
  throw new RangeError(`workers must be a whole number ≥ 1 (got ${shown})`);
}

/** `value` as a message shows it: `the string '/my.bpk'`, `a number (3)`, `an array`. */
function shown(value) {
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value === 'number' ? 'a number' : 'a boolean'} (${value})`;
  if (value === undefined || value === null) return String(value);
  return `a ${typeof value}`;
}

/**
 * The options object of a call, checked: `undefined` is no options; anything but a plain object,
 * or a name not in `allowed`, is a TypeError that shows the right call (`example`), so that
 * `Classifier.load('/my.bpk')` or `load({model: …})` does not silently load the shipped model.
 * `allowed` null: the names are the core's, which refuses unknown ones itself.
 */
function optionsOf(call, options, allowed, example) {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options) || options instanceof Blob) {
    throw new TypeError(`${call} takes an options object, e.g. ${example} (got ${shown(options)})`);
  }
  const unknown = allowed ? Object.keys(options).find((k) => !allowed.includes(k)) : undefined;
  if (unknown !== undefined) {
    throw new TypeError(`${call}: unknown option '${unknown}' (expected ${allowed.join(', ')}), e.g. ${example}`);
  }
  return options;
}

/** A saved model's name, checked: a non-empty string. */
function nameOf(call, name) {
  if (typeof name === 'string' && name.trim() !== '') return name;
  throw new TypeError(`${call} needs the saved model's name, a non-empty string, e.g. ${call.replace('(name)', "('tuned')")} (got ${shown(name)})`);
}

/** Runs `check` now and turns what it throws into a rejected promise (for promise-returning methods). */
function checked(check) {
  try {
    return { value: check() };
  } catch (error) {
    return { error: Promise.reject(error) };
  }
}

function abortError(signal) {
  return signal.reason ?? new DOMException('the operation was aborted', 'AbortError');
}

/**
 * Reads a file of reviews exactly as the `xinsheng` CLI does (the core's parser, in the engine):
 * `.txt` (one review per line), or the text (and optional label) column of `.tsv`, `.csv` or
 * `.jsonl`. Options, all optional: `format` ('txt' | 'tsv' | 'csv' | 'jsonl'; default: from the
 * name), `encoding` ('auto', the default: BOM, UTF-8, else GB18030/GBK; or 'utf-8' | 'gb18030' |
 * 'utf-16le' | 'utf-16be'), `textColumn` and `labelColumn` (default: the first of text, review,
 * content, … and of label, sentiment, …), `labelMap` ('1=positive,0=negative'). Resolves to
 * `{format, encoding, labelled, records: [{line, text, label?}], skippedBlank}`; rejects with
 * an Error whose message is `file:line: what is wrong` and whose `code` ('no-text-column',
 * 'not-utf8-or-gb18030', …: the core's `error::Code`) and `values` (`{file, line, …}`) let an
 * interface word the fault in its own language.
 * @param {Blob | {name?: string, bytes: Uint8Array | ArrayBuffer}} file
 * @param {ReadOptions} [options]
 * @returns {Promise<Reviews>}
 */
export async function readReviews(file, options) {
  if (!(file instanceof Blob) && !(file && (file.bytes instanceof Uint8Array || file.bytes instanceof ArrayBuffer))) {
    throw new TypeError(`readReviews expects a File or Blob, or {name, bytes}, e.g. readReviews(input.files[0]) (got ${shown(file)})`);
  }
  options = optionsOf('readReviews', options, null, "readReviews(file, { format: 'csv' })");
  const name = file.name ?? 'input';
  const bytes = file instanceof Blob ? new Uint8Array(await file.arrayBuffer()) : ownedCopy(file.bytes);
  const clean = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined && v !== ''));
  return engine().call('parse', { name, bytes, options: clean }, { transfer: [bytes.buffer] });
}

// Frees the engine-side model when a Classifier is garbage-collected without dispose().
// A pool copy also releases its helper (`token` stands for the classifier, which is gone).
const finalizer = new FinalizationRegistry(({ host, handle, token }) => {
  host.call('free', { handle }).catch(() => {});
  if (token) releaseHelper(host, token);
});

export class Classifier {
  #handle;
  #queue = Promise.resolve();
  #labels;
  #info;
  #backend;

  #remote;
  /** Engines `classify` spreads over (CPU only). */
  #workers;
  /** Bumped whenever the model changes (fine-tuning, reset), so pooled copies reload. */
  #version = 0;
  /** helper host → { handle, version }: this model's copies in the pool. */
  #copies = new Map();
  /** Stands for this classifier among a helper's users. */
  #token = {};

  /**
   * Use `Classifier.load` or `Classifier.restore`.
   * @private
   */
  constructor(described, remote, workers = 1) {
    this.#remote = remote;
    this.#workers = described.backend === 'cpu' && remote.where === 'worker' ? Math.min(workers, maxWorkers()) : 1;
    this.#handle = described.handle;
    this.#backend = described.backend;
    this.#labels = described.labels;
    this.#info = described.info;
    /**
     * Why this backend runs (on fallback: why WebGPU does not).
     * @type {string}
     */
    this.backendReason = described.backendReason;
    /**
     * The same as a code, for interfaces that word it themselves: 'webgpu', 'cpu-requested',
     * 'no-webgpu', 'no-adapter' or 'webgpu-failed'.
     * @type {'webgpu' | 'cpu-requested' | 'no-webgpu' | 'no-adapter' | 'webgpu-failed'}
     */
    this.backendReasonCode = described.backendReasonCode;
    finalizer.register(this, { host: remote, handle: described.handle }, this);
  }

  /**
   * Engines (Web Workers) that `classify` spreads its chunks over: the `workers` asked of
   * `load` on the CPU backend, at most `navigator.hardwareConcurrency`; 1 on WebGPU (one
   * device) or when the engine runs on the page's thread. Fine-tuning, explanations and exports
   * run on the first engine.
   * @returns {number}
   */
  get workers() {
    return this.#workers;
  }

  /**
   * Loads a model bundle. `modelUrl` defaults to the shipped model; `bytes` (a Uint8Array or
   * ArrayBuffer, copied once) loads exported bytes instead. `backend`: 'auto' (WebGPU when the
   * browser offers it, else CPU), 'webgpu' (fails without it) or 'cpu'. `workers`: on the CPU,
   * how many engines (Web Workers, each with its own copy of the model) `classify` uses; default
   * `defaultWorkers()`, one per core the page leaves free. The answers do not depend on it.
   * @param {LoadOptions} [options]
   * @returns {Promise<Classifier>}
   */
  static async load(options) {
    const given = optionsOf('Classifier.load', options, ['modelUrl', 'bytes', 'backend', 'workers'], "Classifier.load({ modelUrl: '/my.bpk' })");
    const { modelUrl = DEFAULT_MODEL_URL, bytes, backend = 'auto', workers = defaultWorkers() } = given;
    checkWorkers(workers);
    if (bytes !== undefined) {
      const owned = ownedCopy(bytes);
      const host = engine();
      const described = await host.call('load', { bytes: owned, backend }, { transfer: [owned.buffer] });
      return new Classifier(described, host, workers);
    }
    const url = new URL(modelUrl, globalThis.document?.baseURI ?? here).href;
    const host = engine();
    return new Classifier(await host.call('load', { url, backend }), host, workers);
  }

  /**
   * Loads a model saved with `save(name)`; null when there is none under that name.
   * @param {string} name
   * @param {RestoreOptions} [options]
   * @returns {Promise<Classifier | null>}
   */
  static async restore(name, options) {
    nameOf('Classifier.restore(name)', name);
    const given = optionsOf('Classifier.restore', options, ['backend', 'modelUrl', 'workers'], "Classifier.restore('tuned', { backend: 'cpu' })");
    const { backend = 'auto', modelUrl = DEFAULT_MODEL_URL, workers = defaultWorkers() } = given;
    checkWorkers(workers);
    const url = new URL(modelUrl, globalThis.document?.baseURI ?? here).href;
    const host = engine();
    const described = await host.call('restore', { key: name, backend, url });
    return described && new Classifier(described, host, workers);
  }

  /**
   * Deletes a model saved with `save(name)`.
   * @param {string} name
   * @returns {Promise<void>}
   */
  static async forget(name) {
    nameOf('Classifier.forget(name)', name);
    await engine().call('forget', { key: name });
  }

  /**
   * 'webgpu' or 'cpu'.
   * @returns {'webgpu' | 'cpu'}
   */
  get backend() {
    return this.#backend;
  }

  /**
   * The model's labels, e.g. ['negative', 'neutral', 'positive'] (fine-tuning may add more).
   * @returns {string[]}
   */
  get labels() {
    return [...this.#labels];
  }

  /**
   * Architecture, tokenizer, labels, vocabulary size and the metrics recorded at training.
   * @returns {ModelInfo}
   */
  get info() {
    return this.#info;
  }

  // Calls into the model run one at a time: fine-tuning replaces it mid-way.
  #serial(task) {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => {});
    return run;
  }

  #call(op, args = {}, options) {
    if (this.#handle === null) return Promise.reject(new Error('this classifier was disposed'));
    return this.#remote.call(op, { handle: this.#handle, ...args }, options);
  }

  /** Classifies `texts` on a pool host, first loading the current model there if it has not. */
  async #classifyOn(host, texts) {
    try {
      return await this.#classifyOnHelper(host, texts);
    } catch (e) {
      if (e?.name !== 'EngineLostError') throw e;
      // The helper's worker died or never started: its chunk runs on the first engine.
      this.#copies.delete(host);
      return this.#call('classify', { texts });
    }
  }

  async #classifyOnHelper(host, texts) {
    let copy = this.#copies.get(host);
    if (!copy || copy.version !== this.#version) {
      const version = this.#version;
      // The current weights, exactly (f32), from the first engine.
      const bytes = await this.#call('exportModel', { precision: 'f32' });
      const { handle } = await host.call('load', { bytes, backend: 'cpu' }, { transfer: [bytes.buffer] });
      if (copy) host.call('free', { handle: copy.handle }).catch(() => {});
      copy = { handle, version };
      this.#copies.set(host, copy);
      useHelper(host, this.#token);
      finalizer.register(this, { host, handle, token: this.#token }, this);
    }
    return host.call('classify', { handle: copy.handle, texts });
  }

  /** Frees this model's copies in the pool (they reload on the next pooled classify). */
  #dropCopies() {
    for (const [host, { handle }] of this.#copies) {
      host.call('free', { handle }).catch(() => {});
      releaseHelper(host, this.#token);
    }
    this.#copies.clear();
  }

  /**
   * `[{label, score, probs: {LABEL: p}}]`, one per text, in order. Long batches go to the
   * engine in chunks: `onProgress({done, total, start, predictions})` follows them (`predictions`
   * are those of `texts[start…]`, for showing results as they arrive), and aborting `signal` rejects
   * with its reason (an `AbortError` DOMException by default); the classifier stays usable.
   * @param {string[] | string} texts
   * @param {ClassifyOptions} [options]
   * @returns {Promise<Prediction[]>}
   */
  classify(texts, options) {
    const given = checked(() => optionsOf('classify', options, ['onProgress', 'signal'], "clf.classify(texts, { onProgress, signal })"));
    if (given.error) return given.error;
    const { onProgress, signal } = given.value;
    if (typeof texts === 'string') texts = [texts];
    if (!Array.isArray(texts)) return Promise.reject(new TypeError(`classify expects an array of strings, e.g. clf.classify(['质量很好']) (got ${shown(texts)})`));
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.#handle === null) return Promise.reject(new Error('this classifier was disposed'));
    const strings = texts.map((t) => (t == null ? '' : String(t)));
    const work = this.#serial(async () => {
      const chunks = [];
      for (let start = 0; start < strings.length; start += CHUNK) chunks.push(start);
      const parts = new Array(chunks.length);
      const out = [];
      let reported = 0; // chunks handed to onProgress, always in input order
      let next = 0; // the next chunk an engine takes
      let stop = null; // set on abort or the first error: engines take no more chunks
      const runOn = async (classifyChunk) => {
        while (next < chunks.length && !stop) {
          const i = next++;
          const start = chunks[i];
          if (signal?.aborted) throw (stop = abortError(signal));
          parts[i] = await classifyChunk(strings.slice(start, start + CHUNK));
          if (stop) return;
          if (signal?.aborted) throw (stop = abortError(signal)); // no progress after the caller gave up
          for (; reported < chunks.length && parts[reported] && !stop && !signal?.aborted; reported++) {
            for (const p of parts[reported]) out.push(p);
            onProgress?.({ done: out.length, total: strings.length, start: chunks[reported], predictions: parts[reported] });
          }
        }
      };
      const engines = [(texts) => this.#call('classify', { texts })];
      if (chunks.length > 1 && this.#workers > 1) {
        const count = Math.min(this.#workers, chunks.length) - 1;
        for (const host of helperHosts(count)) engines.push((texts) => this.#classifyOn(host, texts));
      }
      const running = engines.map((classifyChunk) =>
        runOn(classifyChunk).catch((e) => {
          stop ??= e;
          throw e;
        }),
      );
      const settled = await Promise.allSettled(running);
      if (stop) throw stop;
      const failed = settled.find((s) => s.status === 'rejected');
      if (failed) throw failed.reason;
      return out;
    });
    if (!signal) return work;
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(abortError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /**
   * Per-token importance for the predicted label: `[{token, weight, start, end}]` (weight > 0
   * supports it). `token` is what the model reads (normalised); `start`…`end` are the code
   * points of `text` it was read from (`Array.from(text).slice(start, end)`), absent only where
   * the normalisation cannot be traced.
   * @param {string} text
   * @returns {Promise<TokenWeight[]>}
   */
  explain(text) {
    return this.#serial(() => this.#call('explain', { text: String(text ?? '') }));
  }

  /**
   * Trains on `examples = [{text, label}]` on this classifier's backend. A label the model
   * does not know adds a class. `onProgress({epoch, epochs, step, steps, loss, accuracy})`
   * runs after every step. Options left out take the core's defaults, the same as
   * `xinsheng finetune` and Python's `finetune` (`info.finetune_defaults`: 8 epochs, lr 2e-3,
   * batches of 16, seed 42). The model then records this fine-tune in its manifest's
   * `training`, and its validation `metrics` are cleared (they described the base model).
   * The options are the core's (`epochs`, `lr`, `batchSize`, `patience`, `seed`, `freeze`:
   * `info.finetune_defaults` lists them); an unknown one rejects naming it.
   * Resolves to `{epochs, steps, loss, accuracy, labels}`.
   * @param {Example[]} examples
   * @param {FineTuneOptions} [options]
   * @returns {Promise<FineTuneSummary>}
   */
  fineTune(examples, options) {
    const checkedOptions = checked(() => optionsOf('fineTune', options, null, "clf.fineTune(examples, { epochs: 8 })"));
    if (checkedOptions.error) return checkedOptions.error;
    const { onProgress, ...given } = checkedOptions.value;
    if (!Array.isArray(examples)) {
      return Promise.reject(new TypeError(`fineTune expects [{text, label}], e.g. clf.fineTune([{ text: '还行', label: 'positive' }]) (got ${shown(examples)})`));
    }
    const unlabelled = examples.findIndex((e) => !e || typeof e.label !== 'string' || e.label.trim() === '');
    if (unlabelled >= 0) return Promise.reject(new Error(`example ${unlabelled + 1} needs a label`));
    const clean = examples.map((e) => ({ text: String(e.text ?? ''), label: e.label }));
    const training = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined));
    return this.#serial(async () => {
      this.#version++; // even a failed fine-tune may have changed the weights
      const result = await this.#call('fineTune', { examples: clean, options: training }, { onEvent: onProgress });
      this.#labels = result.labels;
      this.#info = result.info;
      return result.summary;
    });
  }

  /**
   * The current model as bundle bytes for `Classifier.load({bytes})` or `xinsheng`.
   * @param {ExportOptions} [options]
   * @returns {Promise<Uint8Array>}
   */
  exportModel(options) {
    const given = checked(() => optionsOf('exportModel', options, ['precision'], "clf.exportModel({ precision: 'f32' })"));
    if (given.error) return given.error;
    const { precision = 'f16' } = given.value;
    return this.#serial(() => this.#call('exportModel', { precision }));
  }

  /**
   * Saves the current model in IndexedDB under `name` (the bytes never leave the engine).
   * Always settles: rejects with a `QuotaExceededError` when the browser's storage is full and
   * a `StorageError` on any other IndexedDB failure.
   * @param {string} name
   * @returns {Promise<void>}
   */
  save(name) {
    const given = checked(() => nameOf('save(name)', name));
    if (given.error) return given.error;
    return this.#serial(() => this.#call('save', { key: name }));
  }

  /**
   * Returns to the shipped model (same backend).
   * @returns {Promise<void>}
   */
  reset() {
    return this.#serial(async () => {
      this.#version++;
      const { labels, info } = await this.#call('reset');
      this.#labels = labels;
      this.#info = info;
    });
  }

  /**
   * Frees the model in the engine now; later calls reject.
   * @returns {Promise<void>}
   */
  dispose() {
    return this.#serial(async () => {
      if (this.#handle === null) return;
      const handle = this.#handle;
      this.#handle = null;
      finalizer.unregister(this);
      this.#dropCopies();
      await this.#remote.call('free', { handle });
    });
  }
}
