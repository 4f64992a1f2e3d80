// The page's own state in IndexedDB: corrections one record per review text (so two tabs that
// correct at once each write only their own changes and lose nothing), and a key-value store
// for added labels, model versions and the last classified batch. Tabs tell each other about
// changes on a BroadcastChannel. Every request settles (success, error, abort, blocked). When
// IndexedDB cannot be used at all (blocked, private mode) the page keeps working from memory and
// says so once; when storage is full (QuotaExceededError) only that write stays in memory, the
// page is told what did not fit, and later writes try again (corrections not yet written go
// with them, so none is lost while the page is open).

import { openDatabase } from '../idb.js';

const DB = 'xinsheng-demo';
const VERSION = 2;
const memory = { state: new Map(), corrections: new Map() };
let unavailable = null; // the error that made us fall back to memory
let sequence = Date.now(); // orders corrections as they were made
/** Corrections in memory but not yet in IndexedDB: text → record, or null for a deletion. */
const unsynced = new Map();

/** Whether `e` says this site's storage is full. */
export const isQuotaError = (e) => e?.name === 'QuotaExceededError';

function open() {
  return openDatabase(DB, VERSION, (request, event) => {
    const db = request.result;
    if (!db.objectStoreNames.contains('state')) db.createObjectStore('state');
    if (event.oldVersion < 2) {
      const corrections = db.createObjectStore('corrections', { keyPath: 'text' });
      // Version 1 kept every correction in one array under state/'corrections'.
      if (event.oldVersion === 1) {
        const state = request.transaction.objectStore('state');
        state.get('corrections').onsuccess = (e) => {
          (e.target.result ?? []).forEach((c, i) => corrections.put({ text: c.text, label: c.label, at: i }));
          state.delete('corrections');
        };
      }
    }
  });
}

async function transaction(stores, mode, run) {
  const handle = await open();
  try {
    return await new Promise((resolve, reject) => {
      let tx;
      let result;
      try {
        tx = handle.transaction(stores, mode);
        result = run(tx);
      } catch (e) {
        reject(e);
        return;
      }
      tx.oncomplete = () => resolve(result instanceof IDBRequest ? result.result : result);
      tx.onerror = (event) => reject(event.target.error ?? tx.error ?? new Error('an IndexedDB request failed'));
      // A full quota aborts the transaction at commit, with a QuotaExceededError.
      tx.onabort = () => reject(tx.error ?? new Error('the transaction was aborted'));
      handle.onclose = () => reject(new Error('the browser closed the database'));
    });
  } finally {
    handle.close();
  }
}

/**
 * The page's store. `onUnavailable(error)` runs the first time IndexedDB cannot be used (later
 * calls use memory only); `onFull(error, what)` runs when a write did not fit ('corrections',
 * 'batch', or the key saved), and `onFits(what)` when a write of that kind fits again;
 * `onOtherTab()` runs when another tab changed the corrections.
 */
export function createStore({ onUnavailable, onFull = () => {}, onFits = () => {}, onOtherTab }) {
  const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('xinsheng-demo') : null;
  if (channel) channel.onmessage = () => onOtherTab();
  const fallback = (e) => {
    if (!unavailable) {
      unavailable = e instanceof Error ? e : new Error(String(e));
      unsynced.clear(); // all of it lives in memory now
      onUnavailable(unavailable);
    }
  };
  /** `run()`, or `inMemory()` when storage fails; `what` names the data for onFull/onFits. */
  const guarded = async (run, inMemory, what) => {
    if (unavailable) return inMemory();
    try {
      return await run();
    } catch (e) {
      if (isQuotaError(e)) onFull(e, what);
      else fallback(e);
      return inMemory();
    }
  };
  /** Writes with `run(tx)` in one transaction: true once stored, false when it stayed in memory. */
  const write = (stores, what, run) =>
    guarded(
      async () => {
        await transaction(stores, 'readwrite', run);
        onFits(what);
        return true;
      },
      () => false,
      what,
    );
  return {
    load(key) {
      return guarded(
        () => transaction('state', 'readonly', (tx) => tx.objectStore('state').get(key)),
        () => memory.state.get(key),
        key,
      );
    },
    /** Resolves to true once stored, false when it is kept in memory only. */
    save(key, value) {
      memory.state.set(key, structuredClone(value));
      return write('state', key, (tx) => tx.objectStore('state').put(value, key));
    },
    /**
     * Keeps the last classified batch across reloads; false when it does not fit, and then the
     * batch saved before is removed, so that a reload never shows an older batch as the last.
     */
    async saveBatch(batch) {
      if (await write('state', 'batch', (tx) => tx.objectStore('state').put(batch, 'batch'))) return true;
      if (!unavailable) {
        await guarded(
          () => transaction('state', 'readwrite', (tx) => tx.objectStore('state').delete('batch')),
          () => undefined,
          'batch',
        );
      }
      return false;
    },
    loadBatch() {
      return guarded(
        () => transaction('state', 'readonly', (tx) => tx.objectStore('state').get('batch')),
        () => undefined,
        'batch',
      );
    },
    /** How many corrections are kept in memory only, for now (storage was full). */
    get unsynced() {
      return unsynced.size;
    },
    /** Every correction, in the order they were made. */
    async loadCorrections() {
      const all = await guarded(
        () => transaction('corrections', 'readonly', (tx) => tx.objectStore('corrections').getAll()),
        () => [...memory.corrections.values()],
        'corrections',
      );
      // Those not yet written (storage full) are still this page's.
      const byText = new Map(all.map((c) => [c.text, c]));
      for (const [text, c] of unsynced) {
        if (c) byText.set(text, c);
        else byText.delete(text);
      }
      return [...byText.values()].sort((a, b) => a.at - b.at).map(({ text, label }) => ({ text, label }));
    },
    /**
     * Writes the difference from `before` to `after` (lists of {text, label}) in one
     * transaction, with any earlier change that did not fit; true once all are stored.
     */
    async saveCorrections(before, after) {
      const old = new Map(before.map((c) => [c.text, c.label]));
      const now = new Set(after.map((c) => c.text));
      const puts = after.filter((c) => old.get(c.text) !== c.label).map((c) => ({ ...c, at: sequence++ }));
      const deletes = [...old.keys()].filter((text) => !now.has(text));
      for (const c of puts) memory.corrections.set(c.text, c);
      for (const text of deletes) memory.corrections.delete(text);
      if (unavailable) return false; // memory only, and the page said so
      for (const c of puts) unsynced.set(c.text, c);
      for (const text of deletes) unsynced.set(text, null);
      if (unsynced.size === 0) return true;
      const writing = new Map(unsynced);
      const stored = await write('corrections', 'corrections', (tx) => {
        const store = tx.objectStore('corrections');
        for (const [text, c] of writing) {
          if (c) store.put(c);
          else store.delete(text);
        }
      });
      if (stored) {
        for (const [text, c] of writing) if (unsynced.get(text) === c) unsynced.delete(text);
        channel?.postMessage('corrections');
      }
      return stored;
    },
  };
}
