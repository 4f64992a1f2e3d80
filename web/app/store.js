// The page's own state in IndexedDB: corrections one record per review text (so two tabs that
// correct at once each write only their own changes and lose nothing), and a key-value store
// for added labels and model versions. Tabs tell each other about changes on a
// BroadcastChannel. When IndexedDB is blocked or fails (private mode, a full disk) the page keeps
// working from memory and says so once.

const DB = 'xinsheng-demo';
const VERSION = 2;
const memory = { state: new Map(), corrections: new Map() };
let unavailable = null; // the error that made us fall back to memory
let sequence = Date.now(); // orders corrections as they were made

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, VERSION);
    request.onupgradeneeded = (event) => {
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
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB cannot be opened'));
    request.onblocked = () => reject(new Error('IndexedDB is blocked by another tab'));
  });
}

async function transaction(stores, mode, run) {
  const handle = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = handle.transaction(stores, mode);
      const result = run(tx);
      tx.oncomplete = () => resolve(result instanceof IDBRequest ? result.result : result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error('the transaction was aborted'));
    });
  } finally {
    handle.close();
  }
}

/**
 * The page's store. `onUnavailable(error)` runs the first time storage fails (later calls use
 * memory only); `onOtherTab()` runs when another tab changed the corrections.
 */
export function createStore({ onUnavailable, onOtherTab }) {
  const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('xinsheng-demo') : null;
  if (channel) channel.onmessage = () => onOtherTab();
  const fallback = (e) => {
    if (!unavailable) {
      unavailable = e instanceof Error ? e : new Error(String(e));
      onUnavailable(unavailable);
    }
  };
  const guarded = async (run, inMemory) => {
    if (unavailable) return inMemory();
    try {
      return await run();
    } catch (e) {
      fallback(e);
      return inMemory();
    }
  };
  return {
    load(key) {
      return guarded(
        () => transaction('state', 'readonly', (tx) => tx.objectStore('state').get(key)),
        () => memory.state.get(key),
      );
    },
    save(key, value) {
      memory.state.set(key, structuredClone(value));
      return guarded(
        () => transaction('state', 'readwrite', (tx) => tx.objectStore('state').put(value, key)),
        () => undefined,
      );
    },
    /** Every correction, in the order they were made. */
    async loadCorrections() {
      const all = await guarded(
        () => transaction('corrections', 'readonly', (tx) => tx.objectStore('corrections').getAll()),
        () => [...memory.corrections.values()],
      );
      return all.sort((a, b) => a.at - b.at).map(({ text, label }) => ({ text, label }));
    },
    /** Writes the difference from `before` to `after` (lists of {text, label}) in one transaction. */
    async saveCorrections(before, after) {
      const old = new Map(before.map((c) => [c.text, c.label]));
      const now = new Set(after.map((c) => c.text));
      const puts = after.filter((c) => old.get(c.text) !== c.label).map((c) => ({ ...c, at: sequence++ }));
      const deletes = [...old.keys()].filter((text) => !now.has(text));
      if (puts.length === 0 && deletes.length === 0) return;
      for (const c of puts) memory.corrections.set(c.text, c);
      for (const text of deletes) memory.corrections.delete(text);
      await guarded(
        () =>
          transaction('corrections', 'readwrite', (tx) => {
            const store = tx.objectStore('corrections');
            for (const c of puts) store.put(c);
            for (const text of deletes) store.delete(text);
          }),
        () => undefined,
      );
      channel?.postMessage('corrections');
    },
  };
}
