// The page's own state (corrections, added labels, model versions) in IndexedDB, one
// key-value store. When IndexedDB is blocked or fails (private mode, full disk) the page keeps
// working from memory and says so once.

const DB = 'xinsheng-demo';
const memory = new Map();
let unavailable = null; // the error that made us fall back to memory

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore('state');
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB cannot be opened'));
    request.onblocked = () => reject(new Error('IndexedDB is blocked by another tab'));
  });
}

async function kv(mode, run) {
  const handle = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = handle.transaction('state', mode);
      const request = run(tx.objectStore('state'));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error('the transaction was aborted'));
    });
  } finally {
    handle.close();
  }
}

/** Calls `onUnavailable(error)` the first time storage fails; later calls use memory only. */
export function createStore(onUnavailable) {
  const fallback = (e) => {
    if (!unavailable) {
      unavailable = e instanceof Error ? e : new Error(String(e));
      onUnavailable(unavailable);
    }
  };
  return {
    async load(key) {
      if (unavailable) return memory.get(key);
      try {
        return await kv('readonly', (s) => s.get(key));
      } catch (e) {
        fallback(e);
        return memory.get(key);
      }
    },
    async save(key, value) {
      memory.set(key, structuredClone(value));
      if (unavailable) return;
      try {
        await kv('readwrite', (s) => s.put(value, key));
      } catch (e) {
        fallback(e);
      }
    },
  };
}
