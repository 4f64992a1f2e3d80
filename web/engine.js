// The engine host: the wasm engine and everything that touches it, driven by messages. It runs
// in a dedicated module Web Worker (engine-worker.js) so the page stays responsive while models
// load, classify and fine-tune; when a worker cannot be started (widget.js imported from another
// origin, for example) xinsheng.js runs this same module on the page's thread instead.
//
// Protocol (structured-clone messages):
//   request  {id, op, args}
//   replies  {id, kind: 'event', value}            zero or more, e.g. fine-tuning progress
//            {id, kind: 'result', value}            exactly one of these two ends the call
//            {id, kind: 'error', error: {name, message, code?, values?}}
//                (code and values: the core's stable code of the fault, for the page's own wording)
// Large byte arrays travel as transferables, never copied twice.

import init, { Engine, initWebgpu, loadWordDictionary, parseFile } from './xinsheng-web.js';
import { openDatabase } from './idb.js';

// Every asset is named as `new URL('./file', import.meta.url)`, literally: bundlers (Vite,
// webpack, Parcel) find and copy assets written so, and unbundled it resolves beside this module.

let wasmReady;
let wasmMemory = null;
function loadWasm() {
  wasmReady ??= init({ module_or_path: new URL('./xinsheng-web_bg.wasm', import.meta.url) }).then((exports) => {
    wasmMemory = exports.memory;
    return exports;
  });
  wasmReady.catch(() => (wasmReady = undefined));
  return wasmReady;
}

const messageOf = (e) => (e instanceof Error ? e.message : String(e));

let dictionaryReady;
/** jieba's dictionary, fetched once and only for word models. */
function loadDictionary() {
  dictionaryReady ??= (async () => {
    const url = new URL('./jieba-dict.txt', import.meta.url).href;
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

/** Why the page's WebGPU device was lost, once it has been (then WebGPU engines stop). */
let gpuLost = null;

/**
 * Watches the device burn creates: when it is lost (GPU process crash, driver reset, the tab
 * backgrounded on some systems) every call on this engine host rejects with the reason instead
 * of hanging or answering wrongly, and xinsheng.js starts a fresh host for later loads
 * (WebGPU can be initialised once per host). The device is also kept on
 * `globalThis.xinshengGpuDevice` for diagnostics.
 */
function watchDevices() {
  const proto = globalThis.GPUAdapter?.prototype;
  if (!proto || proto.requestDevice.xinshengWatched) return;
  const original = proto.requestDevice;
  const watched = async function (...args) {
    const device = await original.apply(this, args);
    globalThis.xinshengGpuDevice = device;
    device.lost.then((info) => {
      gpuLost = `the WebGPU device was lost (${info.reason ?? 'unknown'}${info.message ? `: ${info.message}` : ''})`;
      hostFailed?.(gpuLost);
    });
    return device;
  };
  watched.xinshengWatched = true;
  proto.requestDevice = watched;
}

/** Set by serve(): tells the page this host can no longer be used. */
let hostFailed = null;

let webgpuReady;
/** Resolves to `{ ok: true }` or `{ ok: false, code, reason }`; WebGPU is initialised once per engine host. */
function probeWebgpu() {
  webgpuReady ??= (async () => {
    if (!globalThis.navigator?.gpu) {
      return { ok: false, code: 'no-webgpu', reason: 'this browser does not offer WebGPU (navigator.gpu is missing)' };
    }
    try {
      const adapter = await navigator.gpu.requestAdapter();
      if (!adapter) return { ok: false, code: 'no-adapter', reason: 'WebGPU is present but no GPU adapter is available' };
      watchDevices();
      await initWebgpu();
      return { ok: true };
    } catch (e) {
      return { ok: false, code: 'webgpu-failed', reason: `WebGPU failed to start: ${messageOf(e)}` };
    }
  })();
  return webgpuReady;
}

async function pickBackend(requested) {
  if (!['auto', 'webgpu', 'cpu'].includes(requested)) {
    throw new Error(`unknown backend '${requested}' (expected auto, webgpu or cpu)`);
  }
  if (requested === 'cpu') return { backend: 'cpu', code: 'cpu-requested', reason: 'the CPU backend was requested' };
  const probe = await probeWebgpu();
  if (probe.ok) return { backend: 'webgpu', code: 'webgpu', reason: 'WebGPU is available' };
  if (requested === 'webgpu') throw new Error(`WebGPU was requested but ${probe.reason}`);
  return { backend: 'cpu', code: probe.code, reason: probe.reason };
}

/** What bytes that are not a model look like, for error messages; null when they may be one. */
export function describeBytes(bytes) {
  if (bytes.length === 0) return 'an empty file';
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    return 'a gzip file (the server sent it compressed without Content-Encoding: gzip; serve the .bpk as it is)';
  }
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) return 'a zip archive';
  const head = new TextDecoder().decode(bytes.subarray(0, 256)).trimStart().toLowerCase();
  if (head.startsWith('<!doctype html') || head.startsWith('<html') || head.startsWith('<')) {
    return 'an HTML page (a wrong URL, an error page or a login page?)';
  }
  if (head.startsWith('{') || head.startsWith('[')) return 'JSON, not a model bundle';
  return null;
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
  let bytes;
  try {
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (e) {
    throw new Error(`the download of the model at ${url} broke off: ${messageOf(e)}`);
  }
  const looks = describeBytes(bytes);
  if (looks) throw new Error(`the model at ${url} is not a model bundle: it looks like ${looks}`);
  // Without Content-Encoding the length is the file's: fewer bytes is a cut-off download.
  const declared = Number(response.headers.get('content-length'));
  if (!response.headers.get('content-encoding') && declared > 0 && bytes.length < declared) {
    throw new Error(`the model at ${url} arrived truncated: ${bytes.length} of ${declared} bytes`);
  }
  return bytes;
}

// ---------- saved models (IndexedDB, reachable from workers) ----------

const DB_NAME = 'xinsheng';
const STORE = 'models';

/**
 * An IndexedDB failure as an error that names it: `QuotaExceededError` when this site's share
 * of the browser's storage is full (a full quota aborts the transaction), else `StorageError`.
 */
function storageError(cause, doing) {
  const detail = cause?.message || cause?.name || 'unknown error';
  const full = cause?.name === 'QuotaExceededError';
  const error = new Error(
    full
      ? `browser storage is full: ${doing} failed (${detail}); free some space or export the model`
      : `IndexedDB: ${doing} failed (${detail})`,
  );
  error.name = full ? 'QuotaExceededError' : 'StorageError';
  return error;
}

/** Opens the model store (see idb.js: it always settles), failures named by storageError. */
function openDb() {
  return openDatabase(DB_NAME, 1, (request) => request.result.createObjectStore(STORE)).catch((e) => {
    throw storageError(e, 'opening the model store');
  });
}

/**
 * Runs one request in its own transaction and settles when the transaction does: its result
 * once committed, else a named error (the request failed, the transaction aborted — a full
 * quota aborts at commit — or the database was closed under it).
 */
async function dbRequest(mode, run, doing) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      let tx;
      let request;
      try {
        tx = db.transaction(STORE, mode);
        request = run(tx.objectStore(STORE));
      } catch (e) {
        reject(storageError(e, doing));
        return;
      }
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(storageError(request.error ?? tx.error, doing));
      tx.onabort = () => reject(storageError(tx.error ?? request.error ?? new Error('the transaction was aborted'), doing));
      db.onclose = () => reject(storageError(new Error('the browser closed the database'), doing));
    });
  } finally {
    db.close();
  }
}

// ---------- engines ----------

/** handle → { engine, shipped: { name, bytes } | { name, url } } */
const engines = new Map();
let nextHandle = 1;

function entry(handle) {
  const found = engines.get(handle);
  if (!found) throw new Error('this classifier was disposed');
  return found;
}

function describe(handle, choice) {
  const { engine } = entry(handle);
  return {
    handle,
    backend: engine.backend,
    backendReason: choice.reason,
    backendReasonCode: choice.code,
    labels: engine.labels,
    info: engine.info,
  };
}

async function open(name, bytes, backend) {
  await loadWasm();
  const choice = await pickBackend(backend);
  const engine = Engine.load(name, bytes, choice.backend);
  if (engine.needsWordDictionary) await loadDictionary();
  return { engine, choice };
}

const ops = {
  ping() {
    return true;
  },

  /** Sizes for leak checks: the wasm memory and the models held. */
  stats() {
    return { wasmBytes: wasmMemory?.buffer.byteLength ?? 0, engines: engines.size };
  },

  async load({ url, bytes, backend = 'auto' }) {
    if (!['auto', 'webgpu', 'cpu'].includes(backend)) {
      throw new Error(`unknown backend '${backend}' (expected auto, webgpu or cpu)`);
    }
    const name = bytes ? 'model bytes' : url;
    const looks = bytes && describeBytes(bytes);
    if (looks) throw new Error(`the model bytes are not a model bundle: they look like ${looks}`);
    const data = bytes ?? (await fetchModel(url));
    const { engine, choice } = await open(name, data, backend);
    const handle = nextHandle++;
    engines.set(handle, { engine, shipped: { name, bytes: data } });
    return describe(handle, choice);
  },

  async restore({ key, backend = 'auto', url }) {
    const saved = await dbRequest('readonly', (store) => store.get(key), `reading the saved model '${key}'`);
    if (!saved) return null;
    const { engine, choice } = await open('model bytes', new Uint8Array(saved.bytes), backend);
    const handle = nextHandle++;
    // reset() still returns to the shipped model, not to the saved one.
    engines.set(handle, { engine, shipped: { name: url, url } });
    return describe(handle, choice);
  },

  async forget({ key }) {
    await dbRequest('readwrite', (store) => store.delete(key), `deleting the saved model '${key}'`);
  },

  classify({ handle, texts }) {
    return entry(handle).engine.classify(texts);
  },

  async explain({ handle, text }) {
    return (await entry(handle).engine.explain(text)).tokens;
  },

  async fineTune({ handle, examples, options }, emit) {
    const { engine } = entry(handle);
    const summary = await engine.fineTune(examples, options, emit);
    return { summary, labels: engine.labels, info: engine.info };
  },

  async exportModel({ handle, precision }) {
    return transfer(await entry(handle).engine.exportModel(precision));
  },

  async save({ handle, key }) {
    const bytes = await entry(handle).engine.exportModel('f32');
    await dbRequest('readwrite', (store) => store.put({ bytes: bytes.buffer, savedAt: Date.now() }, key), `saving the model '${key}'`);
  },

  async reset({ handle }) {
    const current = entry(handle);
    const { shipped } = current;
    const bytes = shipped.bytes ?? (await fetchModel(shipped.url));
    current.shipped = { name: shipped.name, bytes };
    const previous = current.engine;
    current.engine = Engine.load(shipped.name, bytes, previous.backend);
    previous.free(); // the wasm-side model is not garbage-collected
    return { labels: current.engine.labels, info: current.engine.info };
  },

  free({ handle }) {
    engines.get(handle)?.engine.free();
    engines.delete(handle);
  },

  async parse({ name, bytes, options }) {
    await loadWasm();
    return parseFile(name, bytes, options);
  },
};

/** A result whose buffer moves to the caller instead of being copied. */
class Transfer {
  constructor(value) {
    this.value = value;
  }
}
const transfer = (bytes) => new Transfer(bytes);

/**
 * Starts serving requests; `post(message, transferables)` sends a reply. Returns the function
 * that takes each request.
 */
export function serve(post) {
  hostFailed = (message) => post({ kind: 'failed', message });
  return async function receive({ id, op, args }) {
    const emit = (value) => post({ id, kind: 'event', value });
    try {
      const run = ops[op];
      if (!run) throw new Error(`unknown engine operation '${op}'`);
      if (gpuLost && !['ping', 'stats', 'parse', 'forget'].includes(op)) {
        throw new Error(`${gpuLost}: load the classifier again (it falls back to the CPU if WebGPU stays unavailable)`);
      }
      const value = await run(args ?? {}, emit);
      if (value instanceof Transfer) post({ id, kind: 'result', value: value.value }, [value.value.buffer]);
      else post({ id, kind: 'result', value });
    } catch (e) {
      const coded = typeof e?.code === 'string' ? { code: e.code, values: { ...e.values } } : {};
      post({ id, kind: 'error', error: { name: e?.name ?? 'Error', message: messageOf(e), ...coded } });
    }
  };
}
