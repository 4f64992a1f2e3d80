// xinsheng (心声): Chinese sentiment classification that runs and learns in the browser.
//
//   import { Classifier } from './xinsheng.js';
//   const clf = await Classifier.load({ backend: 'auto' });   // WebGPU if offered, else CPU
//   await clf.classify(['质量很好', '太差了']);               // [{label, score, probs}]
//
// The model runs in WebAssembly (Rust + burn); see README.md for the whole API.

import init, { Engine, initWebgpu, loadWordDictionary } from './xinsheng-web.js';

const here = new URL('.', import.meta.url);
/** The model shipped with the build. */
export const DEFAULT_MODEL_URL = new URL('models/default/model.bpk', here).href;

let wasmReady;
function loadWasm() {
  wasmReady ??= init({ module_or_path: new URL('xinsheng-web_bg.wasm', here) });
  return wasmReady;
}

let dictionaryReady;
/** jieba's dictionary, fetched once and only for word models. */
function loadDictionary() {
  dictionaryReady ??= (async () => {
    const url = new URL('jieba-dict.txt', here).href;
    let response;
    try {
      response = await fetch(url);
    } catch (e) {
      throw new Error(`cannot reach the word dictionary at ${url}: ${messageOf(e)}`);
    }
    if (!response.ok) throw new Error(`cannot load the word dictionary at ${url}: HTTP ${response.status}`);
    loadWordDictionary(new Uint8Array(await response.arrayBuffer()));
  })();
  dictionaryReady.catch(() => (dictionaryReady = undefined)); // let a later load retry
  return dictionaryReady;
}

let webgpuReady;
/** Resolves to `{ ok: true }` or `{ ok: false, reason }`; WebGPU is initialised once per page. */
function probeWebgpu() {
  webgpuReady ??= (async () => {
    if (!globalThis.navigator?.gpu) {
      return { ok: false, reason: 'this browser does not offer WebGPU (navigator.gpu is missing)' };
    }
    try {
      const adapter = await navigator.gpu.requestAdapter();
      if (!adapter) return { ok: false, reason: 'WebGPU is present but no GPU adapter is available' };
      await initWebgpu();
      return { ok: true };
    } catch (e) {
      return { ok: false, reason: `WebGPU failed to start: ${messageOf(e)}` };
    }
  })();
  return webgpuReady;
}

function messageOf(e) {
  return e instanceof Error ? e.message : String(e);
}

/** Fetches model bytes, with errors that say which URL and what went wrong. */
async function fetchModel(url) {
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`cannot reach the model at ${url}: ${messageOf(e)}`);
  }
  if (!response.ok) throw new Error(`cannot load the model at ${url}: HTTP ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function pickBackend(requested) {
  if (!['auto', 'webgpu', 'cpu'].includes(requested)) {
    throw new Error(`unknown backend '${requested}' (expected auto, webgpu or cpu)`);
  }
  if (requested === 'cpu') return { backend: 'cpu', reason: 'the CPU backend was requested' };
  const probe = await probeWebgpu();
  if (probe.ok) return { backend: 'webgpu', reason: 'WebGPU is available' };
  if (requested === 'webgpu') throw new Error(`WebGPU was requested but ${probe.reason}`);
  return { backend: 'cpu', reason: probe.reason };
}

const DB_NAME = 'xinsheng';
const STORE = 'models';

function openDb() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(new Error(`IndexedDB: ${request.error?.message ?? 'cannot open'}`));
  });
}

async function dbRequest(mode, run) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = run(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(new Error(`IndexedDB: ${tx.error?.message ?? 'transaction failed'}`));
    });
  } finally {
    db.close();
  }
}

export class Classifier {
  #engine;
  #shipped; // { name, bytes }: what reset() returns to
  #queue = Promise.resolve();

  constructor(engine, shipped, backendReason) {
    this.#engine = engine;
    this.#shipped = shipped;
    /** Why this backend runs (on fallback: why WebGPU does not). */
    this.backendReason = backendReason;
  }

  /**
   * Loads a model bundle. `modelUrl` defaults to the shipped model; `bytes` (a Uint8Array)
   * loads exported bytes instead. `backend`: 'auto' (WebGPU when the browser offers it, else
   * CPU), 'webgpu' (fails without it) or 'cpu'.
   */
  static async load({ modelUrl = DEFAULT_MODEL_URL, bytes, backend = 'auto' } = {}) {
    await loadWasm();
    const choice = await pickBackend(backend);
    const name = bytes ? 'model bytes' : modelUrl;
    const data = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : (bytes ?? (await fetchModel(modelUrl)));
    const engine = Engine.load(name, data, choice.backend);
    if (engine.needsWordDictionary) await loadDictionary();
    return new Classifier(engine, { name, bytes: data }, choice.reason);
  }

  /** Loads a model saved with `save(name)`; null when there is none under that name. */
  static async restore(name, { backend = 'auto', modelUrl = DEFAULT_MODEL_URL } = {}) {
    const saved = await dbRequest('readonly', (store) => store.get(name));
    if (!saved) return null;
    const clf = await Classifier.load({ bytes: new Uint8Array(saved.bytes), backend });
    // reset() still returns to the shipped model, not to the saved one.
    clf.#shipped = { name: modelUrl, url: modelUrl };
    return clf;
  }

  /** Deletes a model saved with `save(name)`. */
  static async forget(name) {
    await dbRequest('readwrite', (store) => store.delete(name));
  }

  /** 'webgpu' or 'cpu'. */
  get backend() {
    return this.#engine.backend;
  }

  /** The model's labels, e.g. ['负面', '正面'] (fine-tuning may add more). */
  get labels() {
    return this.#engine.labels;
  }

  /** Architecture, tokenizer, labels, vocabulary size and the metrics recorded at training. */
  get info() {
    return this.#engine.info;
  }

  // Calls into the model run one at a time: fine-tuning replaces it mid-way.
  #serial(task) {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** `[{label, score, probs: {LABEL: p}}]`, one per text. */
  classify(texts) {
    if (typeof texts === 'string') texts = [texts];
    if (!Array.isArray(texts)) return Promise.reject(new TypeError('classify expects an array of strings'));
    const strings = texts.map((t) => (t == null ? '' : String(t)));
    return this.#serial(() => this.#engine.classify(strings));
  }

  /** Per-token importance for the predicted label: `[{token, weight}]` (positive supports it). */
  async explain(text) {
    const result = await this.#serial(() => this.#engine.explain(String(text ?? '')));
    return result.tokens;
  }

  /**
   * Trains on `examples = [{text, label}]` on this classifier's backend. A label the model
   * does not know adds a class. `onProgress({epoch, epochs, step, steps, loss, accuracy})`
   * runs after every step; the page stays responsive between steps.
   */
  fineTune(examples, { epochs, lr, batchSize, seed, freeze, onProgress } = {}) {
    if (!Array.isArray(examples)) return Promise.reject(new TypeError('fineTune expects [{text, label}]'));
    const unlabelled = examples.findIndex((e) => !e || typeof e.label !== 'string' || e.label.trim() === '');
    if (unlabelled >= 0) return Promise.reject(new Error(`example ${unlabelled + 1} needs a label`));
    const clean = examples.map((e) => ({ text: String(e.text ?? ''), label: e.label }));
    const options = Object.fromEntries(
      Object.entries({ epochs, lr, batchSize, seed, freeze }).filter(([, v]) => v !== undefined),
    );
    return this.#serial(() => this.#engine.fineTune(clean, options, onProgress));
  }

  /** The current model as bundle bytes (Uint8Array) for `Classifier.load({bytes})` or `xinsheng`. */
  exportModel({ precision = 'f16' } = {}) {
    return this.#serial(() => this.#engine.exportModel(precision));
  }

  /** Saves the current model in IndexedDB under `name`. */
  async save(name) {
    const bytes = await this.exportModel({ precision: 'f32' });
    await dbRequest('readwrite', (store) => store.put({ bytes: bytes.buffer, savedAt: Date.now() }, name));
  }

  /** Returns to the shipped model (same backend). */
  reset() {
    return this.#serial(async () => {
      const shipped = this.#shipped;
      const bytes = shipped.bytes ?? (await fetchModel(shipped.url));
      this.#shipped = { name: shipped.name, bytes };
      const previous = this.#engine;
      this.#engine = Engine.load(shipped.name, bytes, previous.backend);
      previous.free(); // the wasm-side model is not garbage-collected
    });
  }
}
