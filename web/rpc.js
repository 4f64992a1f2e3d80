// The RPC to one engine host: a dedicated module Web Worker running engine.js when one can
// start, else engine.js on this thread (same code, same protocol, the same copying semantics).
// Each call is `{id, op, args}`; the host answers `result`, `error` (with the core's `code`
// and `values` when it has them) or streams `event`s, and says `failed` when it cannot go on.
// Part of the library (see xinsheng.js); nothing here knows the demo.

/** The engine's worker module, named through a constant where bundlers should not copy it raw. */
const ENGINE_WORKER = './engine-worker.js';

export const messageOf = (e) => (e instanceof Error ? e.message : String(e));

/** The engine host stopped (its WebGPU device was lost, or its worker died); `Classifier.load` starts a new one. */
export function lostError(reason) {
  const error = new Error(`${reason}: load the classifier again (it falls back to the CPU if WebGPU stays unavailable)`);
  error.name = 'EngineLostError';
  return error;
}

/** The engine host, in a worker when one can start, else on this thread (same code, same protocol). */
export class Remote {
  #send = null; // (message, transfer) => void, once started
  #started;
  #worker = null;
  /** Set when the host can no longer be used, to the reason. */
  failed = null;
  #calls = new Map(); // id → { resolve, reject, onEvent }
  #nextId = 1;
  /** Where the engine runs: 'worker' or 'main thread', with why when it is the latter. */
  where = 'worker';

  /** Called once when this host ends (see `terminate`), with the host. */
  onEnd = null;

  /** `inPage`: when no worker can start, run the engine on this thread (else fail). */
  constructor({ inPage = true } = {}) {
    this.#started = this.#startWorker().catch((reason) => {
      if (inPage) return this.#startInPage(reason);
      this.failed = messageOf(reason);
    });
  }

  #startWorker() {
    return new Promise((resolve, reject) => {
      let worker;
      let blob = null;
      try {
        if (new URL(import.meta.url).origin === globalThis.location?.origin) {
          worker = new Worker(new URL('./engine-worker.js', import.meta.url), { type: 'module', name: 'xinsheng-engine' });
        } else {
          // Imported from another origin (a CDN): a worker's script must be the page's origin,
          // so a module worker from a same-origin Blob imports the engine from there (with
          // CORS). A page with a CSP lets it with `worker-src blob: <that origin>` (a module
          // worker's imports count as worker scripts); where it does not, the worker fails to
          // start and the engine runs on this thread instead.
          const source = `import ${JSON.stringify(new URL(ENGINE_WORKER, import.meta.url).href)};`;
          blob = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
          worker = new Worker(blob, { type: 'module', name: 'xinsheng-engine' });
        }
      } catch (e) {
        reject(e);
        return;
      }
      let ready = false;
      this.#worker = worker;
      worker.addEventListener('message', (event) => {
        if (event.data?.kind === 'ready') {
          ready = true;
          if (blob) URL.revokeObjectURL(blob);
          this.#send = (message, transfer) => worker.postMessage(message, transfer);
          resolve();
        } else this.#receive(event.data);
      });
      worker.addEventListener('error', (event) => {
        event.preventDefault();
        const reason = `the engine's worker failed (${event.message || 'it could not start'})`;
        if (!ready) {
          reject(new Error(reason));
          return;
        }
        // A dead worker never answers: fail what is pending and everything after.
        this.terminate(reason);
      });
    });
  }

  async #startInPage(reason) {
    this.where = `main thread (${messageOf(reason)})`;
    const { serve } = await import('./engine.js');
    const receive = serve((message) => this.#receive(message));
    // Copy as a worker would, so callers see the same semantics on both paths.
    this.#send = (message) => receive(structuredClone(message));
  }

  /**
   * Ends this host (its worker died, its WebGPU device was lost, or it is a pool helper nobody
   * uses any more): pending and later calls reject with `reason`, and later loads start a
   * fresh host.
   */
  terminate(reason = 'the engine worker was stopped') {
    this.failed = reason;
    this.onEnd?.(this);
    this.#failAll(lostError(reason));
    this.#worker?.terminate();
  }

  #receive({ id, kind, value, error, message }) {
    if (kind === 'failed') {
      // The host cannot go on (its WebGPU device was lost): later loads get a fresh one.
      this.terminate(message);
      return;
    }
    const call = this.#calls.get(id);
    if (!call) return;
    if (kind === 'event') {
      call.onEvent?.(value);
      return;
    }
    this.#calls.delete(id);
    if (kind === 'result') call.resolve(value);
    else {
      // A fault with a stable code (the core's file reader) keeps it: `code` and `values`.
      const coded = error.code ? { code: error.code, values: error.values ?? {} } : {};
      call.reject(Object.assign(new Error(error.message), { name: error.name }, coded));
    }
  }

  #failAll(error) {
    for (const call of this.#calls.values()) call.reject(error);
    this.#calls.clear();
  }

  /** Runs `op` in the engine; `transfer` lists buffers that move instead of being copied. */
  async call(op, args, { transfer = [], onEvent } = {}) {
    await this.#started;
    if (this.failed) throw lostError(this.failed);
    return new Promise((resolve, reject) => {
      const id = this.#nextId++;
      this.#calls.set(id, { resolve, reject, onEvent });
      try {
        this.#send({ id, op, args }, transfer);
      } catch (e) {
        this.#calls.delete(id);
        reject(e);
      }
    });
  }
}
